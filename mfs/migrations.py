"""Apply the numbered SQL migrations in `sql/` to a Postgres database (asyncpg).

Each file runs in its own transaction, under a lock so that two runners at once apply each
file exactly once: the row of `mfs.migration_lock`, locked FOR UPDATE by a second session's open
transaction (advisory locks do not exist on CockroachDB; row locks work on both). The ledger `mfs.schema_migrations` records every applied
file's name and sha256; an applied file whose content changed is refused, because the database
would silently differ from what the checkout describes. `pending_migrations` reads the ledger
without changing anything (this is what `pulumi preview` shows).

Connect with a session (not transaction-pooled) connection: the lock is held by a session.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import asyncpg

from .aio import run_sync
from .db import connect

from . import SQL_DIR

DEFAULT_SQL_DIR = SQL_DIR
LOCK_DDL = (
    "create schema if not exists mfs; create table if not exists mfs.migration_lock (id int primary key)"
)
FILE_PATTERN = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

LEDGER_DDL = """
create schema if not exists mfs;
create table if not exists mfs.schema_migrations (
    name       text primary key,
    checksum   text not null,
    applied_at timestamptz not null default now()
);
"""

Progress = Optional[Callable[[str], None]]


class MigrationError(RuntimeError):
    """A migration could not be applied, or the database disagrees with the checkout."""


# A file's own BEGIN/COMMIT would end the runner's transaction and leave it half-applied.
TRANSACTION_CONTROL = re.compile(
    r"^\s*(commit|rollback|begin\s*;|start\s+transaction|end\s+transaction)\b", re.IGNORECASE | re.MULTILINE
)


@dataclass(frozen=True)
class Migration:
    name: str
    checksum: str
    sql: str


def local_migrations(sql_dir: Path = DEFAULT_SQL_DIR) -> list[Migration]:
    """The migration files of the checkout, in order. Needs no database."""
    sql_dir = Path(sql_dir)
    if not sql_dir.is_dir():
        raise MigrationError(f"migration folder {sql_dir} does not exist")
    found = []
    for path in sorted(sql_dir.iterdir()):
        if path.suffix != ".sql":
            continue
        if not FILE_PATTERN.match(path.name):
            raise MigrationError(f"{path.name}: migration files must be named NNNN_lowercase_name.sql")
        data = path.read_bytes()
        control = TRANSACTION_CONTROL.search(data.decode("utf-8"))
        if control:
            line = data.decode("utf-8").count("\n", 0, control.start()) + 1
            raise MigrationError(
                f"{path.name}: line {line} controls the transaction ({control.group(1).split()[0].upper()}); "
                "the runner applies each file in a transaction of its own, so remove it"
            )
        found.append(Migration(path.name, hashlib.sha256(data).hexdigest(), data.decode("utf-8")))
    numbers = [m.name[:4] for m in found]
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicates:
        raise MigrationError(f"two migration files share the number(s) {', '.join(duplicates)}")
    return found


async def _applied(con: asyncpg.Connection) -> dict[str, str]:
    exists = await con.fetchval("select to_regclass('mfs.schema_migrations') is not null")
    if not exists:
        return {}
    rows = await con.fetch("select name, checksum from mfs.schema_migrations")
    return {r["name"]: r["checksum"] for r in rows}


def _plan(files: list[Migration], applied: dict[str, str]) -> list[Migration]:
    """The files still to apply; raises when the ledger contradicts the checkout."""
    by_name = {m.name: m for m in files}
    for name, checksum in sorted(applied.items()):
        if name not in by_name:
            raise MigrationError(
                f"the database has migration {name} applied, which this checkout does not have; "
                "it was migrated by a newer version of metaflow-serverless: update your checkout"
            )
        if by_name[name].checksum != checksum:
            raise MigrationError(
                f"migration {name} was applied with checksum {checksum[:12]}, but the file now has "
                f"{by_name[name].checksum[:12]}. Applied migrations must not be edited: restore "
                "the file and put the change in a new numbered migration"
            )
    return [m for m in files if m.name not in applied]


async def pending_migrations(dsn: str, sql_dir: Path = DEFAULT_SQL_DIR) -> list[str]:
    """Names of the migrations `apply_migrations` would apply now; changes nothing."""
    files = local_migrations(sql_dir)
    con = await connect(dsn)
    try:
        return [m.name for m in _plan(files, await _applied(con))]
    finally:
        await con.close()


async def apply_migrations(dsn: str, sql_dir: Path = DEFAULT_SQL_DIR, progress: Progress = None) -> list[str]:
    """Apply every pending migration in order; returns the names applied (empty = no-op)."""
    files = local_migrations(sql_dir)
    say = progress or (lambda _msg: None)
    lock = await _lock(dsn)
    con = await connect(dsn)
    try:
        try:
            await con.execute(LEDGER_DDL)
            todo = _plan(files, await _applied(con))
            if not todo:
                say("database schema is up to date")
            for i, m in enumerate(todo, 1):
                started = time.monotonic()
                say(f"[{i}/{len(todo)}] applying {m.name} ...")
                try:
                    async with con.transaction():
                        await con.execute(m.sql)
                        # whatever the file created is locked down before it commits (0015)
                        if await con.fetchval("select to_regprocedure('mfs.lock_down()') is not null"):
                            await con.execute("select mfs.lock_down()")
                        await con.execute(
                            "insert into mfs.schema_migrations (name, checksum) values ($1, $2)",
                            m.name,
                            m.checksum,
                        )
                except asyncpg.PostgresError as e:
                    raise MigrationError(
                        f"migration {m.name} failed and was rolled back (the database stays at "
                        f"the previous version): {e.__class__.__name__}: {e}"
                    ) from e
                except (asyncpg.InterfaceError, OSError, asyncio.TimeoutError) as e:
                    raise MigrationError(
                        f"migration {m.name} was interrupted: the connection to the database was lost "
                        f"({e.__class__.__name__}: {e}). The server rolls back an unfinished transaction, "
                        "so the database stays at the previous version; run the migrations again"
                    ) from e
                say(f"[{i}/{len(todo)}] applied {m.name} in {time.monotonic() - started:.2f}s")
            return [m.name for m in todo]
        finally:
            await lock.close()  # ends its transaction: the lock is free
    finally:
        await con.close()


async def _lock(dsn: str) -> asyncpg.Connection:
    """A session whose open transaction holds the row lock of mfs.migration_lock (waits for it)."""
    lock = await connect(dsn)
    try:
        for attempt in range(5):  # two first runners may both try to create the table
            try:
                await lock.execute(LOCK_DDL)
                break
            except (
                asyncpg.UniqueViolationError,
                asyncpg.DuplicateObjectError,
                asyncpg.DuplicateTableError,
                asyncpg.DuplicateSchemaError,
            ):
                if attempt == 4:
                    raise
        await lock.execute("begin")
        await lock.execute("insert into mfs.migration_lock values (1) on conflict (id) do nothing")
        await lock.execute("select id from mfs.migration_lock where id = 1 for update")
        return lock
    except BaseException:
        await lock.close()
        raise


def apply(dsn: str, sql_dir: Path = DEFAULT_SQL_DIR, progress: Progress = None) -> list[str]:
    """Synchronous `apply_migrations`, on a private event loop (safe inside Pulumi providers)."""
    return run_sync(apply_migrations(dsn, sql_dir, progress))


def pending(dsn: str, sql_dir: Path = DEFAULT_SQL_DIR) -> list[str]:
    """Synchronous `pending_migrations`."""
    return run_sync(pending_migrations(dsn, sql_dir))
