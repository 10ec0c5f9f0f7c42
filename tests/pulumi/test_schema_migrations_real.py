"""SchemaMigrations against a real Postgres: diff lists pending files, create/update apply them,
delete keeps the data unless drop_on_destroy."""

import shutil

import asyncpg

from components.providers._util import run_async
from components.providers.schema_migrations import SchemaMigrationsProvider, migration_inputs
from harness import ROOT


def query(dsn, sql):
    async def go():
        con = await asyncpg.connect(dsn)
        try:
            return await con.fetch(sql)
        finally:
            await con.close()

    return run_async(go())


def props(dsn, sql_dir, drop=False):
    return {"dsn": dsn, "sql_dir": str(sql_dir), "drop_on_destroy": drop, **migration_inputs(str(sql_dir))}


def test_create_applies_update_adds_diff_shows_pending_delete_keeps(empty_db, tmp_path):
    sql = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", sql)
    provider = SchemaMigrationsProvider()
    news = props(empty_db, sql)

    assert provider.diff("", {}, news).changes  # never applied: everything pending
    outs = provider.create(news).outs
    assert outs["applied"] == news["migrations"]
    ledger = [r["name"] for r in query(empty_db, "select name from mfs.schema_migrations order by 1")]
    assert ledger == news["migrations"]
    assert not provider.diff("schema-migrations", outs, props(empty_db, sql)).changes

    (sql / "9999_pulumi_test_extra.sql").write_text("create table mfs.pulumi_test_extra (x int);\n")
    news2 = props(empty_db, sql)
    assert provider.diff("schema-migrations", outs, news2).changes  # preview shows the new file
    outs2 = provider.update("schema-migrations", outs, news2).outs
    assert outs2["applied"][-1] == "9999_pulumi_test_extra.sql"
    assert query(empty_db, "select to_regclass('mfs.pulumi_test_extra') is not null as t")[0]["t"]

    provider.delete("schema-migrations", outs2)  # drop_on_destroy is off: data stays
    assert query(empty_db, "select count(*) as n from mfs.schema_migrations")[0]["n"] == len(outs2["applied"])


def test_delete_drops_the_schemas_only_when_opted_in(empty_db):
    provider = SchemaMigrationsProvider()
    outs = provider.create(props(empty_db, ROOT / "sql", drop=True)).outs
    assert (
        query(empty_db, "select count(*) as n from pg_namespace where nspname in ('mfs','mfs_api')")[0]["n"]
        == 2
    )
    provider.delete("schema-migrations", outs)
    assert (
        query(empty_db, "select count(*) as n from pg_namespace where nspname in ('mfs','mfs_api')")[0]["n"]
        == 0
    )


def test_create_is_idempotent_on_an_already_migrated_database(empty_db):
    provider = SchemaMigrationsProvider()
    first = provider.create(props(empty_db, ROOT / "sql")).outs
    again = provider.create(props(empty_db, ROOT / "sql")).outs  # e.g. after a lost state
    assert first["applied"] == again["applied"]
