"""Every vendor provider through the SDK's own provider host (the process the engine runs) and
a stand-in of the vendor's API: create -> update of each input (secrets rotated too) -> refresh
present and gone -> delete present and already gone -> create failing half-way -> retry.
Outputs are asserted as the engine stores them after each step (provider_host.py)."""

import grpc
import pytest

from b2_standin import B2StandIn
from components.providers.b2_api import B2BucketProvider
from components.providers.neon_api import NeonProjectProvider
from components.providers.supabase_api import (
    SupabaseBucketProvider,
    SupabaseFunctionProvider,
    SupabaseProjectProvider,
)
from neon_standin import ORG, neon_standin
from provider_host import HostedResource, ProviderHost
from supabase_standin import REF, supabase_standin

FAST = {"poll": 0.01, "retry_backoff": 0.01}


@pytest.fixture(scope="module")
def host():
    h = ProviderHost()
    yield h
    h.close()


@pytest.fixture
def neon():
    api = neon_standin()
    yield api
    api.close()


@pytest.fixture
def supabase():
    api = supabase_standin()
    yield api
    api.close()


@pytest.fixture
def b2():
    api = B2StandIn()
    yield api
    api.close()


def neon_inputs(api, **kw):
    return {
        "name": "mfs-dev",
        "region": "aws-us-east-2",
        "pg_version": 16,
        "org_id": "",
        "api_url": api.url,
        "api_key": "neon-key-1",
        **FAST,
        **kw,
    }


def test_neon_project_lifecycle(host, neon):
    r = HostedResource(host, NeonProjectProvider(), "urn:pulumi:dev::mfs::neon:Project::db")
    outs = r.create(neon_inputs(neon))
    assert outs["db_url"].endswith("@ep-cool-1.us-east-2.aws.neon.tech/neondb?sslmode=require")
    assert "@ep-cool-1-pooler.us-east-2.aws.neon.tech/" in outs["pooled_url"]
    assert neon.state["projects"] == {r.id: "mfs-dev"}
    # the org was discovered (the key sees one organization; Neon answers 400 without it)
    assert b'"org_id": "' + ORG.encode() in neon.bodies[("POST", "/projects")]

    # a rotated API key and a new name: in place, and the stored outputs keep the URLs
    assert r.up(neon_inputs(neon, api_key="neon-key-2", name="mfs-renamed")) == "update"
    assert r.outputs["db_url"] == outs["db_url"] and r.outputs["pooled_url"] == outs["pooled_url"]
    assert r.outputs["api_key"] == "neon-key-2" and neon.state["projects"][r.id] == "mfs-renamed"
    assert r.up(neon_inputs(neon, api_key="neon-key-2", name="mfs-renamed")) == "same"
    assert r.diff(
        neon_inputs(neon, api_key="neon-key-2", name="mfs-renamed", region="aws-eu-central-1")
    ).replaces == ["region"]

    # rate limited and 5xx reads are retried; refresh keeps a present project
    neon.fail("GET", f"/projects/{r.id}", 429, times=2)
    neon.fail("GET", f"/projects/{r.id}", 503, times=1)
    assert r.refresh() and r.outputs["db_url"] == outs["db_url"]

    # deleted outside: refresh drops it, and destroy with the stale state succeeds
    stale, stale_id = dict(r.outputs), r.id
    neon.state["projects"].clear()
    assert not r.refresh() and r.id is None
    r.delete_again(stale, stale_id)
    assert neon.errors == []


def test_neon_failed_create_leaves_nothing_and_a_retry_succeeds(host, neon):
    r = HostedResource(host, NeonProjectProvider(), "urn:pulumi:dev::mfs::neon:Project::db")
    neon.state["operation_status"] = "failed"
    with pytest.raises(grpc.RpcError, match="operation 3f0b9a2c"):
        r.create(neon_inputs(neon))
    assert neon.state["projects"] == {}  # the half-made project was deleted
    neon.state["operation_status"] = "skipped"  # terminal too: not waited on forever
    neon.fail("POST", "/projects", 429)  # a POST the vendor did not act on is retried
    r.create(neon_inputs(neon))
    assert list(neon.state["projects"]) == [r.id]
    r.delete()
    assert neon.state["projects"] == {} and neon.errors == []


def test_neon_org_id_is_required_when_the_key_sees_several(host, neon):
    neon.state["orgs"] = [ORG, "org-other-1"]
    r = HostedResource(host, NeonProjectProvider(), "urn:pulumi:dev::mfs::neon:Project::db")
    with pytest.raises(grpc.RpcError, match="set neonOrgId"):
        r.create(neon_inputs(neon))
    r.create(neon_inputs(neon, org_id="org-other-1"))
    assert r.outputs["org_id"] == "org-other-1" and neon.errors == []


def supabase_inputs(api, **kw):
    return {
        "name": "mfs-dev",
        "organization": "my-org",
        "region": "us-east-1",
        "instance_size": "",
        "api_url": api.url,
        "access_token": "sbp-1",
        "db_pass": "pw-one",
        **FAST,
        **kw,
    }


def test_supabase_project_lifecycle(host, supabase):
    r = HostedResource(host, SupabaseProjectProvider(), "urn:pulumi:dev::mfs::sb:Project::db")
    outs = r.create(supabase_inputs(supabase))
    assert ":pw-one@" in outs["db_url"] and ":5432/" in outs["db_url"]
    assert ":pw-one@" in outs["pooler_url"] and ":6543/" in outs["pooler_url"]
    # token rotated: in place, nothing lost
    assert r.up(supabase_inputs(supabase, access_token="sbp-2")) == "update"
    assert r.outputs["db_url"] == outs["db_url"] and r.outputs["ref"] == REF
    # password rotated: set at Supabase, then the URLs rebuilt with it
    assert r.up(supabase_inputs(supabase, access_token="sbp-2", db_pass="pw-two")) == "update"
    assert supabase.state["password"] == "pw-two" and ":pw-two@" in r.outputs["db_url"]
    # instance size: the compute add-on, in place
    assert (
        r.up(supabase_inputs(supabase, access_token="sbp-2", db_pass="pw-two", instance_size="small"))
        == "update"
    )
    assert ("PATCH", f"/v1/projects/{REF}/billing/addons") in supabase.calls
    assert r.refresh()
    stale = dict(r.outputs)
    del supabase.state["project"]
    assert not r.refresh()
    r.delete_again(stale, REF)
    assert supabase.errors == []


def test_supabase_failed_create_removes_the_project(host, supabase):
    r = HostedResource(host, SupabaseProjectProvider(), "urn:pulumi:dev::mfs::sb:Project::db")
    supabase.fail("GET", f"/v1/projects/{REF}/config/database/pooler", 500, times=5)  # every attempt
    with pytest.raises(grpc.RpcError, match="get pooler: HTTP 500"):
        r.create(supabase_inputs(supabase))
    assert "project" not in supabase.state
    r.create(supabase_inputs(supabase))
    assert r.outputs["ref"] == REF and supabase.errors == []


def test_supabase_bucket_and_function_lifecycle(host, supabase):
    HostedResource(host, SupabaseProjectProvider(), "urn:p::b").create(supabase_inputs(supabase))
    base = {"ref": REF, "api_url": supabase.url, "access_token": "sbp-1", **FAST}
    bucket = HostedResource(host, SupabaseBucketProvider(), "urn:pulumi:dev::mfs::sb:Bucket::b")
    b_in = {
        **base,
        "bucket": "metaflow-data",
        "drop_data": False,
        "storage_url": f"{supabase.root}/storage/v1",
    }
    bucket.create(b_in)
    assert bucket.outputs["access_key_id"] == REF
    # drop_data matters at delete time: the change is recorded in the state
    assert bucket.up({**b_in, "drop_data": True}) == "update" and bucket.outputs["drop_data"]
    assert bucket.outputs["session_token"] and bucket.outputs["endpoint"].endswith("/storage/v1/s3")
    supabase.state["buckets"]["metaflow-data"] = 5
    stale = dict(bucket.outputs)
    bucket.delete()
    assert supabase.state["buckets"] == {}
    bucket.delete_again(stale, f"{REF}/metaflow-data")  # already gone: still succeeds

    fn = HostedResource(host, SupabaseFunctionProvider(), "urn:pulumi:dev::mfs::sb:Function::f")
    f_in = {
        **base,
        "slug": "metadata-router",
        "source_hash": "h1",
        "secrets": {"METADATA_API_KEY": "k1", "QUOTA_SCOPE": "default"},
    }
    fn.create(f_in)
    assert fn.up({**f_in, "secrets": {"METADATA_API_KEY": "k2"}}) == "update"
    assert supabase.state["secrets"] == {"METADATA_API_KEY"} and fn.outputs["url"]
    assert fn.refresh()
    supabase.state["functions"].clear()
    assert not fn.refresh()
    fn.delete_again({**f_in, "secret_names": ["METADATA_API_KEY"]}, f"{REF}/metadata-router")
    assert supabase.errors == []


def b2_inputs(api, **kw):
    return {
        "bucket": "mfs-dev-a1b2c3",
        "drop_data": False,
        "key_id": "master-id",
        "application_key": "master-key",
        "auth_url": api.auth_url,
        **FAST,
        **kw,
    }


def test_b2_bucket_lifecycle(host, b2):
    r = HostedResource(host, B2BucketProvider(), "urn:pulumi:dev::mfs::b2:Bucket::s")
    # the key cannot be made: the bucket just made is removed, and the retry succeeds
    b2.fail_next["b2_create_key"] = (400, "too_many_keys")
    with pytest.raises(grpc.RpcError, match="create key"):
        r.create(b2_inputs(b2))
    assert b2.buckets == {}
    outs = r.create(b2_inputs(b2))
    assert outs["access_key_id"] in b2.keys and outs["secret_access_key"].startswith("secret-")
    assert r.up(b2_inputs(b2, drop_data=True)) == "update"
    assert r.outputs["drop_data"] and r.outputs["access_key_id"] == outs["access_key_id"]
    assert r.refresh()
    b2.buckets["mfs-dev-a1b2c3"]["files"] = ["a", "b", "c", "d", "e"]
    b2.fail_next["b2_delete_bucket"] = (503, "service_unavailable")  # not POST-retried
    with pytest.raises(grpc.RpcError):
        r.delete()
    assert outs["access_key_id"] in b2.keys  # the key stays until the bucket is gone: retry works
    r.id, r.outputs = outs["bucket_id"], {**outs, "drop_data": True}
    r.delete()
    assert b2.buckets == {} and b2.keys == set()
    r.delete_again({**outs, "drop_data": True}, outs["bucket_id"])  # already gone
    assert b2.errors == []
