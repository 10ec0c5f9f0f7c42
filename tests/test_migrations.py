"""The SQL migrations on real PostgreSQL 15 (Debian) and 16 (pgserver)."""

import asyncio
import shutil
import subprocess
import sys

import pytest

from testkit import ROOT, new_database, q, run_sync
from mfs import migrations

# Copies of ../shared/reference/official-schema.txt and ../shared/tools/schema_facts.py, so the
# test runs from a bare checkout.
OFFICIAL = ROOT / "tests" / "reference" / "official-schema.txt"
SCHEMA_FACTS = ROOT / "tests" / "reference" / "schema_facts.py"


def facts(dsn: str) -> list[str]:
    out = subprocess.run([sys.executable, str(SCHEMA_FACTS), dsn], check=True, capture_output=True, text=True)
    return out.stdout.splitlines()


def official_facts() -> list[str]:
    return [line for line in OFFICIAL.read_text().splitlines() if not line.startswith("# ")]


def test_schema_facts_equal_the_official_schema(any_pg):
    dsn = new_database(any_pg)
    migrations.apply(dsn)
    # Same lines per table; index lines are sorted by (implementation-defined) index name.
    assert sorted(facts(dsn)) == sorted(official_facts())
    assert [l for l in facts(dsn) if l.startswith("##")] == [
        l for l in official_facts() if l.startswith("##")
    ]


def test_reapply_is_a_no_op_and_pending_changes_nothing(any_pg):
    dsn = new_database(any_pg)
    names = [m.name for m in migrations.local_migrations()]
    assert migrations.pending(dsn) == names  # nothing applied yet, and pending applied nothing
    assert migrations.pending(dsn) == names
    assert migrations.apply(dsn) == names
    before = facts(dsn)
    assert migrations.apply(dsn) == []
    assert migrations.pending(dsn) == []
    assert facts(dsn) == before


def test_changed_applied_file_is_refused(empty_db, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", sql_dir)
    migrations.apply(empty_db, sql_dir)
    target = sql_dir / "0003_api_flows_runs.sql"
    target.write_text(target.read_text() + "\n-- edited after it was applied\n")
    with pytest.raises(migrations.MigrationError, match="0003_api_flows_runs.sql was applied with checksum"):
        migrations.apply(empty_db, sql_dir)
    with pytest.raises(migrations.MigrationError, match="must not be edited"):
        migrations.pending(empty_db, sql_dir)


def test_two_runners_at_once_apply_each_migration_once(empty_db):
    async def both():
        return await asyncio.gather(
            migrations.apply_migrations(empty_db), migrations.apply_migrations(empty_db)
        )

    first, second = run_sync(both())
    names = [m.name for m in migrations.local_migrations()]
    # one runner did all the work under the lock; the other found nothing left to do
    assert sorted([first, second], key=len) == [[], names]

    async def ledger():
        import asyncpg

        con = await asyncpg.connect(empty_db)
        try:
            return await con.fetch("select name, count(*) n from mfs.schema_migrations group by name")
        finally:
            await con.close()

    rows = run_sync(ledger())
    assert sorted(r["name"] for r in rows) == names and all(r["n"] == 1 for r in rows)


def test_failed_migration_leaves_the_previous_version(empty_db, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", sql_dir)
    (sql_dir / "0099_broken.sql").write_text("create table public.half_done (x int);\nselect 1/0;\n")
    with pytest.raises(migrations.MigrationError, match="0099_broken.sql failed and was rolled back"):
        migrations.apply(empty_db, sql_dir)
    assert migrations.pending(empty_db, sql_dir) == ["0099_broken.sql"]

    async def table_exists():
        import asyncpg

        con = await asyncpg.connect(empty_db)
        try:
            return await con.fetchval("select to_regclass('public.half_done') is not null")
        finally:
            await con.close()

    assert run_sync(table_exists()) is False


def test_badly_named_file_is_rejected(tmp_path):
    (tmp_path / "1_x.sql").write_text("select 1")
    with pytest.raises(migrations.MigrationError, match="NNNN_lowercase_name.sql"):
        migrations.local_migrations(tmp_path)


def test_what_a_later_migration_creates_is_locked_down_in_its_own_transaction(pg15, tmp_path):
    """A function a future migration adds is not executable by other roles (Supabase's anon and
    friends, or any role): the runner calls mfs.lock_down() before each file commits."""
    sql = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", sql)
    (sql / "0999_later_function.sql").write_text(
        "create function mfs.later() returns int language sql as $$ select 1 $$;\n"
        "create table mfs.later_table (x int);\n"
    )
    dsn = new_database(pg15)
    migrations.apply(dsn, sql)
    q(
        dsn,
        "do $$ begin if not exists (select 1 from pg_roles where rolname = 'probe_role') "
        "then create role probe_role; end if; end $$",
    )
    row = q(
        dsn,
        "select has_function_privilege('probe_role', 'mfs.later()', 'execute') f, "
        "has_table_privilege('probe_role', 'mfs.later_table', 'select') t, "
        "has_schema_privilege('probe_role', 'mfs', 'usage') s",
    )[0]
    assert (row["f"], row["t"], row["s"]) == (False, False, False)
