"""Dynamic provider `SchemaMigrations`: the numbered SQL files of `sql/` as one resource.

Uses the project's own runner (`mfs.migrations`, asyncpg). The inputs carry the checkout's
migration names and checksums, so `diff` needs no database: `pulumi preview --diff` shows the
files not yet in the state's `applied` list as additions to `migrations`. `create`/`update` apply them (the runner
takes its migration lock and refuses an edited, already-applied file). `delete` keeps the data
unless `drop_on_destroy` was set, then it drops the schemas the migrations created.
"""

from __future__ import annotations

from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from ._util import REPO_ROOT, run_async
from .pg_tls import use_system_trust_store

OWNED_SCHEMAS = ("mfs_api", "mfs")  # dropped only when drop_on_destroy is set


def _dsn(props) -> str:
    use_system_trust_store(props["dsn"])
    return props["dsn"]


def _sql_dir(props) -> str:
    return str((REPO_ROOT / props.get("sql_dir", "sql")).resolve())


def _apply(props) -> dict:
    from mfs import migrations

    run_async(migrations.apply_migrations(_dsn(props), _sql_dir(props)))
    names = [m.name for m in migrations.local_migrations(_sql_dir(props))]
    return {**props, "applied": names}


class SchemaMigrationsProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        applied = set(olds.get("applied", []))
        pending = [n for n in news.get("migrations", []) if n not in applied]
        changed_sums = [
            n
            for n, s in news.get("checksums", {}).items()
            if n in applied and olds.get("checksums", {}).get(n) != s
        ]
        diffs = []
        if pending or changed_sums:
            diffs.append("migrations")
        if olds.get("dsn") != news.get("dsn"):
            diffs.append("dsn")
        if bool(olds.get("drop_on_destroy")) != bool(news.get("drop_on_destroy")):
            diffs.append("drop_on_destroy")
        return DiffResult(changes=bool(diffs), replaces=[], delete_before_replace=False)

    def create(self, props):
        outs = _apply(props)
        return CreateResult("schema-migrations", outs)

    def update(self, _id, _olds, news):
        return UpdateResult(_apply(news))

    def read(self, id_, props):
        """`applied` as the database's ledger says: a dropped schema shows as pending again."""
        from mfs import migrations

        pending = set(run_async(migrations.pending_migrations(_dsn(props), _sql_dir(props))))
        names = [m.name for m in migrations.local_migrations(_sql_dir(props))]
        return ReadResult(id_, {**props, "applied": [n for n in names if n not in pending]})

    def delete(self, _id, props):
        if not props.get("drop_on_destroy"):
            return
        import asyncpg

        async def drop():
            con = await asyncpg.connect(_dsn(props))
            try:
                for schema in OWNED_SCHEMAS:
                    await con.execute(f'drop schema if exists "{schema}" cascade')
            finally:
                await con.close()

        run_async(drop())


def migration_inputs(sql_dir: str = "sql") -> dict:
    """What the program sends: the checkout's migration names and checksums (no database)."""
    from mfs import migrations

    local = migrations.local_migrations(REPO_ROOT / sql_dir)
    return {"migrations": [m.name for m in local], "checksums": {m.name: m.checksum for m in local}}


class SchemaMigrations(Resource, module="mfs", name="SchemaMigrations"):
    """The schema of `sql/` applied to `dsn`. Outputs `applied`: the migration names."""

    applied: pulumi.Output[list]

    def __init__(
        self,
        name: str,
        dsn,
        drop_on_destroy: bool = False,
        sql_dir: str = "sql",
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__(
            SchemaMigrationsProvider(),
            name,
            {
                "dsn": pulumi.Output.secret(dsn),
                "sql_dir": sql_dir,
                **migration_inputs(sql_dir),
                "drop_on_destroy": drop_on_destroy,
                "applied": None,
            },
            opts,
        )
