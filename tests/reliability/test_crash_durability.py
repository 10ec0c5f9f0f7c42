"""Durability across a PostgreSQL crash (issue 14, item 2).

Which commits wait for their WAL flush is decided per request (mfs.durable_commit in
sql/0020_quota_slots.sql): every write of a Metaflow record does; reads, errors, refusals and
heartbeats commit without waiting. This shows the choice loses no stored record: a real
Metaflow foreach run goes through the router behind a recording proxy; mid-run the postmaster
is SIGKILLed and so is every process of the server (no shutdown, no checkpoint: WAL that was
not yet written out is lost, and the restart recovers from what was); the server is started
again on the same data folder (LocalPostgres.resume()); the client's retries complete the run;
then every record whose POST the client was answered 200 for (flow, run, step, task, each
metadata row, each artifact) is in the database, and the run is stored exactly as a run
without fault is (check_foreach_run).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import time
from pathlib import Path

import pytest

from testkit import RecordingProxy, Router, metaflow_env, q
from .kit import (
    N,
    SLEEP,
    SLOW_FLOW,
    WORKERS,
    check_foreach_run,
    expected_total,
    figure,
    finish_flow,
    migrated,
    router_log_since,
    start_flow,
    wait_for_tasks,
)
from mfs.processes import pid_alive

pytestmark = pytest.mark.long

TASK = r"/flows/([^/]+)/runs/([^/]+)/steps/([^/]+)/tasks/([^/]+)"


def kill_postgres(pg) -> int:
    """SIGKILLs the postmaster, then every process it had started; returns how many died."""
    pid = int((pg.real_data_dir / "postmaster.pid").read_text().split()[0])
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    os.kill(pid, signal.SIGKILL)
    for c in children:
        try:
            os.kill(c, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 20
    while any(pid_alive(p) for p in [pid, *children]):
        assert time.monotonic() < deadline, "PostgreSQL processes survived SIGKILL"
        time.sleep(0.05)
    return 1 + len(children)


def stored(dsn: str, rec: dict) -> list[str]:
    """What of the record `rec` (a POST answered 200) is missing from the database."""
    path, body, reply = rec["path"], json.loads(rec["body"] or "null"), json.loads(rec["reply"])
    if m := re.fullmatch(TASK + "/metadata", path):
        f, r, s, t = m.groups()
        return [
            f"metadata {path} {x['field_name']}={x['value']}"
            for x in body
            if not q(
                dsn,
                "select 1 from metadata_v3 where flow_id = $1 and run_number = $2::text::bigint "
                "and step_name = $3 and task_id = $4::text::bigint and field_name = $5 "
                "and value = mfs.stored_value($6::text::jsonb)",  # the stored form of a value
                f,
                r,
                s,
                t,
                x["field_name"],
                json.dumps(x["value"]),
            )
        ]
    if m := re.fullmatch(TASK + "/artifact", path):
        f, r, s, t = m.groups()
        return [
            f"artifact {path} {x['name']}@{x.get('attempt_id', 0)}"
            for x in body
            if not q(
                dsn,
                "select 1 from artifact_v3 where flow_id = $1 and run_number = $2::text::bigint "
                "and step_name = $3 and task_id = $4::text::bigint and name = $5 and attempt_id = $6",
                f,
                r,
                s,
                t,
                x["name"],
                int(x.get("attempt_id", 0)),
            )
        ]
    if m := re.fullmatch(r"/flows/([^/]+)/runs/([^/]+)/steps/([^/]+)/task", path):
        f, r, s = m.groups()
        ok = q(
            dsn,
            "select 1 from tasks_v3 where flow_id = $1 and run_number = $2::text::bigint "
            "and step_name = $3 and task_id = $4",
            f,
            r,
            s,
            int(reply["task_id"]),
        )
        return [] if ok else [f"task {path} {reply['task_id']}"]
    if m := re.fullmatch(r"/flows/([^/]+)/runs/([^/]+)/steps/([^/]+)/step", path):
        ok = q(
            dsn,
            "select 1 from steps_v3 where flow_id = $1 and run_number = $2::text::bigint and step_name = $3",
            *m.groups(),
        )
        return [] if ok else [f"step {path}"]
    if m := re.fullmatch(r"/flows/([^/]+)/run", path):
        ok = q(
            dsn,
            "select 1 from runs_v3 where flow_id = $1 and run_number = $2",
            m.group(1),
            int(reply["run_number"]),
        )
        return [] if ok else [f"run {path} {reply['run_number']}"]
    if m := re.fullmatch(r"/flows/([^/]+)", path):
        return [] if q(dsn, "select 1 from flows_v3 where flow_id = $1", m.group(1)) else [f"flow {path}"]
    assert path.endswith("/heartbeat"), f"a POST this test does not know: {path}"
    return []


def test_postgres_killed_mid_run_loses_no_record_the_client_was_told_was_stored(private_pg, tmp_path):
    dsn = migrated(private_pg)
    r = Router(dsn, secrets.token_urlsafe(24))
    proxy = RecordingProxy(r.url)
    offset = len(r.log_text())
    env = metaflow_env(r, tmp_path)
    env["METAFLOW_SERVICE_URL"] = proxy.url
    flow_log = tmp_path / "run.log"
    proc = None
    try:
        proc = start_flow(
            env, SLOW_FLOW, flow_log, "--n", str(N), "--sleep", SLEEP, "--max-workers", str(WORKERS)
        )
        before = wait_for_tasks(dsn, "SlowForeachFlow", "each", 6, proc)
        crashed_at = time.time()
        killed = kill_postgres(private_pg)
        time.sleep(3)
        private_pg.resume()
        assert proc.poll() is None, "the run ended during the outage"
        finish_flow(proc, flow_log, 900)
        log = router_log_since(r, offset)
        n503 = log.count("database unavailable")
        assert n503 > 0, "no request met the crash: it did not happen during the run"
        assert "internal error" not in log, log[-3000:]
        server_log = (private_pg.real_data_dir / "server.log").read_text(errors="replace")
        assert "database system was interrupted" in server_log or "not properly shut down" in server_log

        writes = [x for x in proxy.records if x["method"] == "POST" and x["status"] == 200]
        acked_before = [x for x in writes if x["t"] < crashed_at and not x["path"].endswith("/heartbeat")]
        assert len(acked_before) > 20, len(acked_before)
        missing = [m for x in writes for m in stored(dsn, x)]
        assert missing == []
        n_meta = sum(len(json.loads(x["body"])) for x in writes if x["path"].endswith("/metadata"))
        n_art = sum(len(json.loads(x["body"])) for x in writes if x["path"].endswith("/artifact"))
        check_foreach_run(dsn, env, "SlowForeachFlow", N, total=expected_total(N))
        figure(
            f"durability: postmaster + {killed - 1} server processes SIGKILLed mid-run (foreach {N}, after "
            f"{before} foreach tasks), restarted on the same data: run succeeded, router answered {n503} x 503; "
            f"all {len(writes)} POSTs answered 200 ({len(acked_before)} record writes before the crash; "
            f"{n_meta} metadata rows, {n_art} artifacts) are stored"
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proxy.stop()
        r.stop()
        if not (private_pg.real_data_dir / "postmaster.pid").exists():
            private_pg.resume()  # the module's fixture stops it
