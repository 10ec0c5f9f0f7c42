"""6. Faults of the migration runner (mfs/migrations.py) on real PostgreSQL 15.

tests/test_migrations.py already covers: two runners at once (each file applied once), an
edited applied file (refused, "must not be edited"), and a broken file on an empty database
(MigrationError "... failed and was rolled back", its table absent, still pending). This file
adds what the issue's list ("two runners at once, a migration that fails half-way, an edited
applied migration") still leaves open:

* a file that fails half-way through, after DDL on existing tables, on an up-to-date database:
  the whole catalog is as before, the ledger has no row for it, and once the file is fixed the
  next apply succeeds and records the fixed file's checksum;
* a failure in the middle of several pending files: the earlier ones stay applied, the later
  ones are not attempted, and after the fix they are applied in order;
* the migration lock is released after a failure; two runners racing on a broken file both
  fail cleanly (no hang, nothing applied);
* `python -m mfs migrate` exits non-zero with the message naming the file;
* a database migrated by a newer checkout is refused with a clear message;
* a file with its own `commit;` and a connection lost half-way (see the two tests at the end).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import uuid

import asyncpg
import pytest

from testkit import ROOT, q, run_sync
from mfs import migrations

BROKEN = "9999_broken.sql"

# A file that does real work on existing objects before it fails.
BROKEN_SQL = """
create table public.half_done (x int primary key);
insert into public.half_done values (1), (2);
alter table public.flows_v3 add column half_done_col int;
create index half_done_idx on public.runs_v3 (user_name, ts_epoch);
create or replace function mfs_api.half_done_fn() returns int language sql as $$ select 1 $$;
update mfs.quota_limits set max_requests = 0;
select 1 / 0;  -- fails half-way
create table public.never_reached (x int);
"""
FIXED_SQL = BROKEN_SQL.replace("select 1 / 0;  -- fails half-way\n", "")

CATALOG_SQL = """
select 'col ' || table_schema || '.' || table_name || '.' || column_name || ' ' || data_type
  from information_schema.columns where table_schema in ('public', 'mfs', 'mfs_api')
union all
select 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname in ('public', 'mfs', 'mfs_api')
union all
select 'fn ' || p.oid::regprocedure::text || ' ' || md5(p.prosrc)
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
 where n.nspname in ('public', 'mfs', 'mfs_api')
"""


def catalog(dsn: str) -> list[str]:
    return sorted(r[0] for r in q(dsn, CATALOG_SQL))


def ledger(dsn: str) -> dict[str, str]:
    return {r["name"]: r["checksum"] for r in q(dsn, "select name, checksum from mfs.schema_migrations")}


def sql_copy(tmp_path, extra: dict[str, str] | None = None):
    d = tmp_path / f"sql-{uuid.uuid4().hex[:6]}"
    shutil.copytree(ROOT / "sql", d)
    for name, text in (extra or {}).items():
        (d / name).write_text(text)
    return d


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_half_way_failure_on_an_up_to_date_database_then_fix(migrated_db, tmp_path):
    names = [m.name for m in migrations.local_migrations()]
    before_catalog, before_ledger = catalog(migrated_db), ledger(migrated_db)
    q(migrated_db, "select mfs_api.set_quota_limits('default', 7, null)")
    sql_dir = sql_copy(tmp_path, {BROKEN: BROKEN_SQL})

    with pytest.raises(migrations.MigrationError) as err:
        migrations.apply(migrated_db, sql_dir)
    msg = str(err.value)
    # names the file, says what happened to the database and what PostgreSQL said
    assert BROKEN in msg and "rolled back" in msg and "previous version" in msg, msg
    assert "DivisionByZeroError" in msg and "division by zero" in msg, msg

    # the database is exactly at the previous version
    assert catalog(migrated_db) == before_catalog
    assert ledger(migrated_db) == before_ledger and sorted(before_ledger) == names
    assert q(migrated_db, "select to_regclass('public.half_done')")[0][0] is None
    assert q(migrated_db, "select max_requests from mfs.quota_limits")[0][0] == 7
    assert migrations.pending(migrated_db, sql_dir) == [BROKEN]

    # fixing the (never applied) file is allowed, and the next apply succeeds
    (sql_dir / BROKEN).write_text(FIXED_SQL)
    assert migrations.apply(migrated_db, sql_dir) == [BROKEN]
    assert ledger(migrated_db) == {**before_ledger, BROKEN: sha(FIXED_SQL)}
    assert q(migrated_db, "select count(*) from public.half_done")[0][0] == 2
    assert q(migrated_db, "select to_regclass('public.never_reached') is not null")[0][0] is True
    assert migrations.apply(migrated_db, sql_dir) == []
    assert migrations.pending(migrated_db, sql_dir) == []


def test_failure_among_several_pending_files_keeps_the_earlier_ones(empty_db, tmp_path):
    names = [m.name for m in migrations.local_migrations()]
    later = "9999_zz_after.sql"
    broken = "9998_broken.sql"
    sql_dir = sql_copy(tmp_path, {broken: BROKEN_SQL, later: "create table public.after_broken (x int);\n"})
    seen: list[str] = []
    with pytest.raises(migrations.MigrationError, match=f"migration {broken} failed and was rolled back"):
        migrations.apply(empty_db, sql_dir, progress=seen.append)
    # every file before the broken one was committed on its own; nothing after it was attempted
    assert sorted(ledger(empty_db)) == names
    assert not any(later in line for line in seen), seen
    assert any(f"applying {broken}" in line for line in seen), seen
    assert q(empty_db, "select to_regclass('public.after_broken')")[0][0] is None
    assert q(empty_db, "select to_regclass('public.half_done')")[0][0] is None
    assert migrations.pending(empty_db, sql_dir) == [broken, later]

    (sql_dir / broken).write_text(FIXED_SQL)
    assert migrations.apply(empty_db, sql_dir) == [broken, later]
    assert sorted(ledger(empty_db)) == sorted(names + [broken, later])


def test_failure_releases_the_lock_and_racing_runners_both_fail_cleanly(empty_db, tmp_path):
    sql_dir = sql_copy(tmp_path, {BROKEN: BROKEN_SQL})

    async def race():
        runs = [migrations.apply_migrations(empty_db, sql_dir) for _ in range(3)]
        return await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), 120)

    results = run_sync(race())
    # one runner applied 0001..0008 and then failed on the broken file; the others waited for
    # the lock and then failed on the same file: nobody hangs, nobody applies it
    assert all(isinstance(r, migrations.MigrationError) and BROKEN in str(r) for r in results), results
    assert BROKEN not in ledger(empty_db)
    assert sorted(ledger(empty_db)) == [m.name for m in migrations.local_migrations()]
    held = q(
        empty_db,
        "select count(*) from pg_locks l join pg_class c on c.oid = l.relation "
        "where c.relname = 'migration_lock'",
    )[0][0]
    assert held == 0

    # a later runner takes the lock at once
    (sql_dir / BROKEN).write_text(FIXED_SQL)

    async def later():
        return await asyncio.wait_for(migrations.apply_migrations(empty_db, sql_dir), 60)

    assert run_sync(later()) == [BROKEN]


def test_cli_migrate_reports_the_failed_file_and_exits_non_zero(migrated_db, tmp_path):
    sql_dir = sql_copy(tmp_path, {BROKEN: BROKEN_SQL})
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SUPABASE_DB_URL")}
    res = subprocess.run(
        [sys.executable, "-m", "mfs", "migrate", migrated_db, "--sql-dir", str(sql_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert f"error: migration {BROKEN} failed and was rolled back" in res.stderr
    assert f"[1/1] applying {BROKEN}" in res.stdout
    assert "Traceback" not in res.stderr
    assert BROKEN not in ledger(migrated_db)


def test_database_migrated_by_a_newer_checkout_is_refused(migrated_db, tmp_path):
    newer = sql_copy(tmp_path, {"9999_newer.sql": "create table public.from_the_future (x int);\n"})
    assert migrations.apply(migrated_db, newer) == ["9999_newer.sql"]
    with pytest.raises(
        migrations.MigrationError, match="9999_newer.sql applied, which this checkout does not have"
    ):
        migrations.apply(migrated_db)
    with pytest.raises(migrations.MigrationError, match="update your checkout"):
        migrations.pending(migrated_db)


def test_a_file_with_its_own_commit_is_not_left_half_applied(migrated_db, tmp_path):
    """A file written with its own `begin; ... commit;` (common in hand-written migrations).

    asyncpg runs the file inside the runner's transaction: the file's COMMIT ends that
    transaction, so what came before it is committed, and the later error can no longer roll it
    back. The runner must then either refuse such a file or leave nothing behind; in no case
    may it report "rolled back (the database stays at the previous version)" while the table
    is there."""
    text = "begin;\ncreate table public.half_committed (x int);\ncommit;\nselect 1 / 0;\n"
    sql_dir = sql_copy(tmp_path, {BROKEN: text})
    before = catalog(migrated_db)
    with pytest.raises(migrations.MigrationError) as err:
        migrations.apply(migrated_db, sql_dir)
    assert BROKEN in str(err.value)
    leftover = q(migrated_db, "select to_regclass('public.half_committed')::text")[0][0]
    assert leftover is None and catalog(migrated_db) == before, (
        f"the runner said {str(err.value)!r} but {leftover} was committed"
    )


def test_connection_lost_half_way_is_a_migration_error_naming_the_file(migrated_db, tmp_path):
    """The server ends the runner's session in the middle of a file (as a failover or a
    restart would): the database must stay at the previous version and the runner must say so
    with a MigrationError naming the file (not a bare driver error)."""
    marker = f"mfs_fault_{uuid.uuid4().hex}"
    text = f"create table public.half_done (x int);\nselect pg_sleep(60) /* {marker} */;\n"
    sql_dir = sql_copy(tmp_path, {BROKEN: text})

    async def go():
        task = asyncio.create_task(migrations.apply_migrations(migrated_db, sql_dir))
        con = await asyncpg.connect(migrated_db)
        try:
            for _ in range(300):
                killed = await con.fetchval(
                    "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity "
                    "where query like $1 and pid <> pg_backend_pid()) t",
                    f"%{marker}%",
                )
                if killed:
                    break
                await asyncio.sleep(0.1)
            assert killed == 1
        finally:
            await con.close()
        try:
            await asyncio.wait_for(task, 60)
        except BaseException as e:  # noqa: BLE001 - the type is what is asserted
            return e
        return None

    err = run_sync(go())
    # the data side holds: nothing of the file is left, it is still pending
    assert q(migrated_db, "select to_regclass('public.half_done')")[0][0] is None
    assert BROKEN not in ledger(migrated_db)
    assert migrations.pending(migrated_db, sql_dir) == [BROKEN]
    # and the runner says what happened
    assert isinstance(err, migrations.MigrationError) and BROKEN in str(err), (
        f"got {type(err).__name__}: {err!r} (context: {err.__context__!r})"
    )
