"""Dynamic provider `QuotaLimits`: the router's monthly limits and database size limit, written
where it reads them.

Calls the schema's own upserts `mfs_api.set_quota_limits(scope, max_requests, max_egress_bytes)`
and `mfs_api.set_storage_limit(scope, max_database_bytes, warn_percent)` over asyncpg, so every backend (Supabase, Neon, CockroachDB, plain or local Postgres) is served
by one implementation. A changed limit is an in-place update; only a changed scope replaces
the resource. Delete leaves the row: the counters are history, and the database's own delete
(or `dropDataOnDestroy`) removes it.
"""

from __future__ import annotations

from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from ._util import run_async
from .pg_tls import use_system_trust_store


def _write(props) -> dict:
    import asyncpg

    async def go():
        use_system_trust_store(props["dsn"])
        con = await asyncpg.connect(props["dsn"])
        try:
            await con.execute(
                "select mfs_api.set_quota_limits($1, $2, $3)",
                props["scope"],
                int(props["max_requests"]),
                int(props["max_egress_bytes"]),
            )
            size = props.get("max_database_bytes")
            await con.execute(
                "select mfs_api.set_storage_limit($1, $2, $3)",
                props["scope"],
                None if size is None else int(size),
                int(props.get("database_warn_percent") or 80),
            )
        finally:
            await con.close()

    run_async(go())
    return props


class QuotaLimitsProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = ["scope"] if olds.get("scope") != news.get("scope") else []
        changed = [
            k
            for k in (
                "dsn",
                "max_requests",
                "max_egress_bytes",
                "max_database_bytes",
                "database_warn_percent",
            )
            if olds.get(k) != news.get(k)
        ] + replaces
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def create(self, props):
        return CreateResult(f"quota-{props['scope']}", _write(props))

    def update(self, _id, _olds, news):
        return UpdateResult(_write(news))

    def delete(self, _id, _props):
        pass


class QuotaLimits(Resource, module="mfs", name="QuotaLimits"):
    def __init__(
        self,
        name: str,
        dsn,
        scope: str,
        max_requests: int,
        max_egress_bytes: int,
        max_database_bytes: Optional[int] = None,
        database_warn_percent: int = 80,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__(
            QuotaLimitsProvider(),
            name,
            {
                "dsn": pulumi.Output.secret(dsn),
                "scope": scope,
                "max_requests": max_requests,
                "max_egress_bytes": max_egress_bytes,
                "max_database_bytes": max_database_bytes,
                "database_warn_percent": database_warn_percent,
            },
            opts,
        )
