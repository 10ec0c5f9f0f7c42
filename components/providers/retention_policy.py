"""Dynamic provider `RetentionPolicy`: the stack's retention policy, stored in the database
(`mfs_api.set_retention_policy`, sql/0041_retention_policy.sql) and applied once on create and
on every change, through the same code as `python -m mfs retain` (mfs/retention.py: whole runs,
one per transaction, never a running run or one tagged keep_tag). A policy with neither rule
stores "no policy" and deletes nothing. Delete leaves the database as it is (the data may be
gone with it; a later stack writes its own policy).
"""

from __future__ import annotations

import logging
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from ._util import run_async
from .pg_tls import use_system_trust_store

# not pulumi.log (no engine here) nor stdout (the provider's handshake with the engine)
log = logging.getLogger(__name__)
KEYS = ("dsn", "keep_days", "keep_runs", "keep_tag")


def _int(v) -> Optional[int]:
    return None if v is None else int(v)


def _apply(props) -> dict:
    import asyncpg

    from mfs import retention

    days, runs, tag = (
        _int(props.get("keep_days")),
        _int(props.get("keep_runs")),
        props.get("keep_tag") or None,
    )

    async def store():
        use_system_trust_store(props["dsn"])
        con = await asyncpg.connect(props["dsn"])
        try:
            await con.execute("select mfs_api.set_retention_policy($1, $2, $3)", days, runs, tag)
        finally:
            await con.close()

    run_async(store())
    deleted = 0
    if days is not None or runs is not None:
        candidates = retention.plan(props["dsn"], days, runs, tag)
        if candidates:
            retention.delete(props["dsn"], candidates, progress=log.info)
            log.info(retention.compact(props["dsn"]))
        deleted = len(candidates)
    return {**props, "runs_deleted_at_deploy": deleted}


class RetentionPolicyProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        changed = [k for k in KEYS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def create(self, props):
        return CreateResult("retention-policy", _apply(props))

    def update(self, _id, _olds, news):
        return UpdateResult(_apply(news))

    def delete(self, _id, _props):
        pass


class RetentionPolicy(Resource, module="mfs", name="RetentionPolicy"):
    runs_deleted_at_deploy: pulumi.Output[int]

    def __init__(
        self,
        name: str,
        dsn,
        keep_days: Optional[int],
        keep_runs: Optional[int],
        keep_tag: str,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__(
            RetentionPolicyProvider(),
            name,
            {
                "dsn": pulumi.Output.secret(dsn),
                "keep_days": keep_days,
                "keep_runs": keep_runs,
                "keep_tag": keep_tag,
                "runs_deleted_at_deploy": None,
            },
            opts,
        )
