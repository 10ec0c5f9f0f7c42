"""The local providers through the SDK's provider host: refresh notices a stopped process or a
dropped schema, a drop_data change is recorded without a replace, delete of what is already
gone succeeds."""

from components.providers.local_s3 import LocalS3Provider
from components.providers.schema_migrations import SchemaMigrationsProvider, migration_inputs
from mfs.processes import pid_alive, stop_group
from provider_host import HostedResource, ProviderHost
from testkit import q


def test_local_s3_refresh_notices_a_stopped_server(tmp_path):
    host = ProviderHost()
    r = HostedResource(host, LocalS3Provider(), "urn:pulumi:local::mfs::mfs:LocalS3::s3")
    inputs = {"state_dir": str(tmp_path / "s3"), "bucket": "mfs-refresh", "port": 0, "drop_data": False}
    try:
        r.create(inputs)
        pid = int(r.outputs["pid"])
        assert r.up(inputs) == "same"  # port 0 is satisfied by the bound port
        assert r.up({**inputs, "drop_data": True}) == "update"
        assert r.outputs["drop_data"] and int(r.outputs["pid"]) == pid
        assert r.refresh()
        stop_group(pid)
        stale = dict(r.outputs)
        assert not r.refresh()
        r.delete_again(stale, f"seaweedfs-{pid}")
    finally:
        if r.outputs.get("pid") and pid_alive(int(r.outputs["pid"])):
            stop_group(int(r.outputs["pid"]))
        host.close()


def test_schema_refresh_notices_a_dropped_schema(empty_db):
    host = ProviderHost()
    try:
        r = HostedResource(host, SchemaMigrationsProvider(), "urn:pulumi:x::mfs::m:S::schema")
        inputs = {"dsn": empty_db, "sql_dir": "sql", **migration_inputs(), "drop_on_destroy": False}
        r.create(inputs)
        assert r.outputs["applied"] == inputs["migrations"]
        assert r.refresh() and r.up(inputs) == "same"
        q(empty_db, "drop schema mfs_api cascade")
        q(empty_db, "drop schema mfs cascade")
        assert r.refresh() and r.outputs["applied"] == []
        assert r.up(inputs) == "update" and r.outputs["applied"] == inputs["migrations"]
    finally:
        host.close()
