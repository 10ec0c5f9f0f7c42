"""`python -m mfs retain`: delete whole old runs so that a free database stays inside its size.

The policy and the deletion are SQL (sql/0016_retention.sql): `mfs.retention_candidates` lists
the runs to go (never a running run, never one tagged with the keep tag), `mfs.delete_run`
deletes one run with its steps, tasks, metadata and artifacts in one transaction. Here: the
plan, the progress, and optionally the runs' folders in a local Metaflow datastore.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional


import asyncpg

from .aio import run_sync
from .db import connect


@dataclass(frozen=True)
class Candidate:
    flow_id: str
    run_number: int
    run_id: Optional[str]
    ts_epoch: int
    tasks: int

    @property
    def pathspec(self) -> str:
        return f"{self.flow_id}/{self.run_id or self.run_number}"


@dataclass(frozen=True)
class Policy:
    """The retention policy a stack stored in the database (sql/0041_retention_policy.sql)."""

    keep_days: Optional[int]
    keep_runs: Optional[int]
    keep_tag: Optional[str]

    def describe(self) -> str:
        parts = [f"runs older than {self.keep_days} days"] if self.keep_days is not None else []
        if self.keep_runs is not None:
            parts.append(f"all but the newest {self.keep_runs} runs of each flow")
        kept = f", runs tagged {self.keep_tag!r} kept" if self.keep_tag else ""
        return "delete " + " and ".join(parts) + kept


TABLES = ("flows_v3", "runs_v3", "steps_v3", "tasks_v3", "metadata_v3", "artifact_v3")


def stored_policy(dsn: str) -> Optional[Policy]:
    """The stack's policy, or None when no stack set one."""

    async def go():
        con = await connect(dsn)
        try:
            return await con.fetchrow("select keep_days, keep_runs, keep_tag from mfs.retention_policy")
        finally:
            await con.close()

    row = run_sync(go())
    return Policy(row["keep_days"], row["keep_runs"], row["keep_tag"]) if row else None


def compact(dsn: str, full: bool = False) -> str:
    """VACUUM the six tables (deleted rows' space is reused by new ones), or VACUUM FULL (each
    table rewritten under an exclusive lock: the files shrink, so the database size, which is
    what free plans limit, goes down); then measures the size for the guard. Says what it did."""

    async def go():
        con = await connect(dsn)
        try:
            before = await con.fetchval("select bytes from mfs.refresh_database_size()")
            for t in TABLES:
                await con.execute(f"vacuum {'full ' if full else ''}analyze public.{t}")
            after = await con.fetchval("select bytes from mfs.refresh_database_size()")
        finally:
            await con.close()
        return before, after

    before, after = run_sync(go())
    how = "VACUUM FULL" if full else "VACUUM (freed space is reused; --vacuum-full gives it back)"
    return f"database size {before / 1e6:,.1f} MB -> {after / 1e6:,.1f} MB after {how}"


def plan(
    dsn: str,
    keep_days: Optional[int],
    keep_runs: Optional[int],
    keep_tag: Optional[str],
    flow: Optional[str] = None,
) -> list[Candidate]:
    """The runs the policy deletes, oldest first; changes nothing."""

    async def go():
        con = await connect(dsn)
        try:
            rows = await con.fetch(
                "select * from mfs.retention_candidates($1, $2, $3, $4)", keep_days, keep_runs, keep_tag, flow
            )
        finally:
            await con.close()
        return [
            Candidate(r["flow_id"], r["run_number"], r["run_id"], r["ts_epoch"], r["tasks"]) for r in rows
        ]

    return run_sync(go())


def delete(
    dsn: str,
    runs: list[Candidate],
    datastore_root: Optional[Path] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> dict:
    """Deletes each run in its own transaction, saying so as it goes; returns the totals."""
    # each line as it happens, even into a pipe or a log file
    progress = progress or (lambda line: print(line, flush=True))
    totals = {"runs": 0, "steps": 0, "tasks": 0, "metadata": 0, "artifacts": 0, "folders": 0}

    async def go():
        con = await connect(dsn)
        try:
            started = time.monotonic()
            for i, run in enumerate(runs, 1):
                try:
                    async with con.transaction():
                        counts = await con.fetchval(
                            "select mfs.delete_run($1, $2)::text", run.flow_id, run.run_number
                        )
                except (
                    asyncpg.PostgresConnectionError,
                    asyncpg.exceptions.OperatorInterventionError,  # 57P01: the server shut down
                    asyncpg.InterfaceError,
                    OSError,
                ) as e:
                    raise RuntimeError(
                        f"the database connection was lost while deleting {run.pathspec} "
                        f"({i - 1} of {len(runs)} runs deleted; that run is untouched: a run goes "
                        f"whole or not at all); run the same command again to finish ({e})"
                    ) from e
                counts = json.loads(counts)
                for key, n in counts.items():
                    totals[key] += n
                folder = ""
                if datastore_root is not None and _remove_run_folder(datastore_root, run):
                    totals["folders"] += 1
                    folder = ", its datastore folder"
                progress(
                    f"[{i}/{len(runs)}] deleted {run.pathspec}: {counts['tasks']} tasks, "
                    f"{counts['metadata']} metadata and {counts['artifacts']} artifact rows{folder} "
                    f"({time.monotonic() - started:.1f}s)"
                )
        finally:
            if not con.is_closed():
                await con.close()

    run_sync(go())
    return totals


def _remove_run_folder(root: Path, run: Candidate) -> bool:
    """The run's folder in a local datastore (<root>/<flow>/<run id>): task logs and metadata
    files. Artifact contents (<root>/<flow>/data) are shared between runs and stay."""
    folder = (root / run.flow_id / str(run.run_id or run.run_number)).resolve()
    if root.resolve() not in folder.parents or not folder.is_dir():
        return False
    shutil.rmtree(folder)
    return True
