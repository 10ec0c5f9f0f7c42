"""3. Fault injection: PostgreSQL outages and router crashes, alone and in the middle of real
Metaflow runs.

Every test runs on a PostgreSQL cluster of this module's own (`private_pg`), never on the
shared pg15 that other tests use, because the server is stopped and started again.

a. While the database is down every request that needs it answers 503 with a JSON
   {"message": ...} body and a retry-after header, quickly (no hang); once the database is
   back the same router process answers 200 again by itself (it reconnects).
b. PostgreSQL stopped for ~5 s while a foreach run is creating and finishing tasks: the run
   still succeeds (the Metaflow client retries 503) and the database holds every task, its
   'attempt' metadata and its artifacts exactly as many times as a run without fault would.
c. The router SIGKILLed and restarted on the same port mid-run: the same.
d. A database that hangs (SIGSTOPped, sockets open) instead of refusing: 503 within a bounded
   time too, not a request that waits for ever on a pooled connection.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
import requests

from testkit import metaflow_env  # tests/testkit.py
from .conftest import HERE, Router, client_json, figure, migrated, q, run_sync

pytestmark = pytest.mark.long

SLOW_FLOW = HERE / "flows" / "slow_foreach_flow.py"
STEPS = ["_parameters", "start", "each", "join", "end"]


# ---------------------------------------------------------------------------------------------
# helpers (also used by test_concurrency.py)


def pg_down(pg, mode: str) -> None:
    """Stops the server keeping its data: 'immediate' (crash-like) or 'fast' (clean)."""
    if mode == "immediate":
        pg.pause()
    else:
        pg._run(str(pg.bin_dir / "pg_ctl"), "-D", str(pg.data_dir), "-m", mode, "-w", "stop", check=False)


def count_or_none(dsn: str, sql: str, *args):
    """One value, or None when the database cannot be reached within 3 s."""

    async def go():
        con = await asyncpg.connect(dsn, timeout=3)
        try:
            return await con.fetchval(sql, *args, timeout=5)
        finally:
            await con.close()

    try:
        return run_sync(go())
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return None


def router_log_since(router: Router, offset: int) -> str:
    return router.log_text()[offset:]


def wait_for_tasks(
    dsn: str, flow: str, step: str, at_least: int, proc: subprocess.Popen, timeout: float = 600
) -> int:
    """Polls tasks_v3 until `at_least` tasks of `step` exist (the run is mid-way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (code {proc.returncode}) before the fault was injected")
        n = (
            count_or_none(
                dsn, "select count(*) from tasks_v3 where flow_id = $1 and step_name = $2", flow, step
            )
            or 0
        )
        if n >= at_least:
            return n
        time.sleep(0.2)
    raise AssertionError(f"fewer than {at_least} {step} tasks after {timeout}s")


def start_flow(env: dict, flow_file: Path, log: Path, *args: str) -> subprocess.Popen:
    out = open(log, "wb")
    try:
        return subprocess.Popen(
            [sys.executable, str(flow_file), "--no-pylint", "run", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    finally:
        out.close()  # the child holds its own descriptor


def finish_flow(proc: subprocess.Popen, log: Path, timeout: float) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"the run did not end within {timeout}s:\n{log.read_text()[-4000:]}")
    assert proc.returncode == 0, f"the run failed (code {proc.returncode}):\n{log.read_text()[-4000:]}"


def check_foreach_run(
    dsn: str, env: dict, flow: str, n: int, fanout_step: str = "each", value_artifact: str = "sq", total=None
) -> dict:
    """Asserts that the single run of `flow` (start -> foreach of n -> join -> end) is stored
    exactly once, and that the Client API sees exactly what the database holds. Returns the
    per-task shapes (metadata and artifacts of a foreach task) for comparisons across runs."""
    runs = q(dsn, "select run_number, run_id from runs_v3 where flow_id = $1", flow)
    assert len(runs) == 1, runs
    steps = q(dsn, "select step_name, count(*) from steps_v3 where flow_id = $1 group by 1", flow)
    expected_steps = [s if s != "each" else fanout_step for s in STEPS]
    assert {r[0]: r[1] for r in steps} == {s: 1 for s in expected_steps}
    tasks = q(dsn, "select step_name, count(*) from tasks_v3 where flow_id = $1 group by 1", flow)
    assert {r[0]: r[1] for r in tasks} == {s: (n if s == fanout_step else 1) for s in expected_steps}
    # every task (but _parameters, registered by the client without it) has exactly one 'attempt'
    attempts = q(
        dsn,
        """select t.step_name, count(m.*) from tasks_v3 t
                           left join metadata_v3 m on m.flow_id = t.flow_id and m.run_number = t.run_number
                                and m.task_id = t.task_id and m.field_name = 'attempt'
                          where t.flow_id = $1 group by t.task_id, t.step_name""",
        flow,
    )
    assert len(attempts) == n + 4
    assert sorted({r[1] for r in attempts if r[0] != "_parameters"}) == [1], attempts
    attempt_values = q(
        dsn,
        """select distinct value from metadata_v3
                                where flow_id = $1 and field_name = 'attempt'""",
        flow,
    )
    assert [r[0] for r in attempt_values] == ["0"]
    # The client posts system metadata twice per task (runtime at task creation, then the task
    # process): duplicates of those are legitimate; what a fault or a race must not do is lose
    # or repeat rows for some tasks only: all n foreach tasks hold the same multiset of fields.
    shapes = q(
        dsn,
        """select task_id, string_agg(field_name || '=' || c, ',' order by field_name)
                         from (select task_id, field_name, count(*) c from metadata_v3
                                where flow_id = $1 and step_name = $2 group by 1, 2) f
                        group by task_id""",
        flow,
        fanout_step,
    )
    assert len(shapes) == n and len({r[1] for r in shapes}) == 1, {r[1] for r in shapes}
    art_shapes = q(
        dsn,
        """select task_id, string_agg(name || '@' || attempt_id || '=' || c, ',' order by name)
                             from (select task_id, name, attempt_id, count(*) c from artifact_v3
                                    where flow_id = $1 and step_name = $2 group by 1, 2, 3) a
                            group by task_id""",
        flow,
        fanout_step,
    )
    assert len(art_shapes) == n and len({r[1] for r in art_shapes}) == 1, {r[1] for r in art_shapes}
    art_shape = art_shapes[0][1]
    assert f"{value_artifact}@0=1" in art_shape.split(",") and "_task_ok@0=1" in art_shape.split(","), (
        art_shape
    )
    # the single tasks: one of each artifact per attempt, and their metadata not repeated
    # beyond what a foreach task has (a repeated POST would show up as a count above it)
    dup_art = q(
        dsn,
        """select step_name, task_id, name, attempt_id, count(*) from artifact_v3
                         where flow_id = $1 group by 1, 2, 3, 4 having count(*) > 1""",
        flow,
    )
    assert dup_art == []
    each_counts = {f: int(c) for f, c in (x.split("=") for x in shapes[0][1].split(","))}
    single = q(
        dsn,
        """select step_name, field_name, count(*) from metadata_v3
                        where flow_id = $1 and step_name in ('start', 'join', 'end')
                        group by 1, 2""",
        flow,
    )
    for step, field, c in single:
        if field in each_counts:
            assert c == each_counts[field], (step, field, c, each_counts)
    db_meta = q(
        dsn, "select count(*) from metadata_v3 where flow_id = $1 and step_name = $2", flow, fanout_step
    )[0][0]
    # (the Client API lists a task's artifacts without the internal '_'-prefixed ones)
    db_art = q(
        dsn,
        r"""select count(*) from artifact_v3
                         where flow_id = $1 and step_name = $2 and name not like '\_%'""",
        flow,
        fanout_step,
    )[0][0]
    # cross-check with what the Client API reports for the run
    seen = client_json(
        env,
        f"""
        run = Flow({flow!r}).latest_run
        each = list(run[{fanout_step!r}])
        print(json.dumps({{'ok': run.successful, 'finished': run.finished,
                          'runs': len(list(Flow({flow!r}).runs())),
                          'steps': {{s.id: len(list(s)) for s in run}},
                          'metadata': sum(len(t.metadata) for t in each),
                          'artifacts': sum(len(list(t)) for t in each),
                          'attempts': sorted(set(t.metadata_dict.get('attempt') for t in each)),
                          'total': run.data.total}}))
    """,
        timeout=600,
    )
    assert seen["ok"] is True and seen["finished"] is True and seen["runs"] == 1
    assert seen["steps"] == {s: (n if s == fanout_step else 1) for s in expected_steps if s != "_parameters"}
    assert seen["metadata"] == db_meta and seen["artifacts"] == db_art
    assert seen["attempts"] == ["0"]
    if total is not None:
        assert seen["total"] == total
    return {
        "metadata": shapes[0][1],
        "artifacts": art_shape,
        "metadata_rows": db_meta,
        "artifact_rows": db_art,
    }


# ---------------------------------------------------------------------------------------------
# a. outage without a run


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_outage_answers_503_and_the_router_reconnects_by_itself(private_pg, mode):
    dsn = migrated(private_pg)
    r = Router(dsn, secrets.token_urlsafe(24))
    offset = len(r.log_text())
    s = r.session()
    u = r.url
    try:
        pid = r.proc.pid
        # a few requests first, so that the pool holds connections that the outage breaks
        for _ in range(5):
            assert s.get(f"{u}/ping", timeout=10).status_code == 200
        assert s.post(f"{u}/flows/OutageFlow", json={"user_name": "u"}, timeout=10).status_code == 200
        down_at = time.monotonic()
        pg_down(private_pg, mode)
        try:
            assert count_or_none(dsn, "select 1") is None, "PostgreSQL is still up"
            requests_during = [
                ("GET", "/ping", None),
                ("GET", "/flows", None),
                ("GET", "/flows/OutageFlow", None),
                ("POST", "/flows/OutageFlow/run", {"user_name": "u"}),
                ("GET", "/ping", None),
            ]
            latencies = []
            for method, path, body in requests_during:
                t = time.monotonic()
                resp = s.request(method, u + path, json=body, timeout=20)
                latencies.append(time.monotonic() - t)
                assert resp.status_code == 503, (method, path, resp.status_code, resp.text)
                assert resp.headers.get("retry-after", "").isdigit(), dict(resp.headers)
                msg = resp.json()["message"]
                assert isinstance(msg, str) and msg
                assert latencies[-1] < 10, f"{method} {path} took {latencies[-1]:.1f}s"
            # the router's own health probe does not need the database
            assert s.get(f"{u}/healthcheck", timeout=10).status_code == 200
        finally:
            private_pg.resume()
        outage = time.monotonic() - down_at
        up_at = time.monotonic()
        tries, status = 0, None
        while time.monotonic() - up_at < 15:
            tries += 1
            try:
                status = s.get(f"{u}/ping", timeout=10).status_code
            except requests.RequestException:
                status = None
            if status == 200:
                break
            time.sleep(0.25)
        back_after = time.monotonic() - up_at
        assert status == 200, f"/ping still answers {status} {back_after:.1f}s after PostgreSQL came back"
        assert r.proc.poll() is None and r.proc.pid == pid, "the router was restarted"
        # writes work again, and nothing of the refused write was stored
        assert s.post(f"{u}/flows/OutageFlow/run", json={"user_name": "u"}, timeout=10).status_code == 200
        assert q(dsn, "select count(*) from runs_v3 where flow_id = 'OutageFlow'")[0][0] == 1
        log = router_log_since(r, offset)
        assert log.count("database unavailable") == len(requests_during), log[-3000:]
        assert "internal error" not in log, log[-3000:]
        figure(
            f"faults: PostgreSQL stop -m {mode}: {len(requests_during)} requests answered 503 in "
            f"max {max(latencies) * 1000:.0f} ms (outage {outage:.1f}s); router answered 200 again "
            f"{back_after:.2f}s after PostgreSQL came back ({tries} tries), same process"
        )
    finally:
        r.stop()


def freeze(pg) -> list[int]:
    """SIGSTOPs the postmaster and every backend: a server that still holds its sockets but
    answers nothing (a hung host or a network partition, not a refused connection)."""
    import os
    import signal

    pm = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    kids = subprocess.run(["pgrep", "-P", str(pm)], capture_output=True, text=True).stdout.split()
    pids = [pm, *map(int, kids)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    return pids


def thaw(pids: list[int]) -> None:
    import os
    import signal

    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_unresponsive_database_answers_503_within_a_bounded_time(private_pg):
    """The same promise when the database hangs instead of refusing: a request on a pooled
    connection to a frozen server must not wait for ever (statement_timeout is enforced by the
    server, so it cannot help here; the router needs a deadline of its own)."""
    dsn = migrated(private_pg)
    r = Router(dsn, secrets.token_urlsafe(24))
    s = r.session()
    try:
        for _ in range(3):
            assert s.get(f"{r.url}/ping", timeout=10).status_code == 200
        pids = freeze(private_pg)
        results = []
        try:
            for _ in range(2):
                t = time.monotonic()
                try:
                    resp = s.get(f"{r.url}/ping", timeout=30)
                    results.append((resp.status_code, resp.headers.get("retry-after"), time.monotonic() - t))
                except requests.Timeout:
                    results.append(("no answer", None, time.monotonic() - t))
        finally:
            thaw(pids)
        figure(
            "faults: frozen PostgreSQL (SIGSTOP): /ping answered "
            + ", ".join(f"{st} after {dt:.1f}s" for st, _, dt in results)
        )
        assert all(st == 503 and ra for st, ra, _ in results), results
        assert all(dt < 20 for _, _, dt in results), results
        assert s.get(f"{r.url}/ping", timeout=30).status_code == 200
    finally:
        r.stop()


# ---------------------------------------------------------------------------------------------
# b. and c. faults in the middle of a real foreach run

N = 20
WORKERS = 4
SLEEP = "1"


def expected_total(n: int) -> int:
    return sum(i * i for i in range(n))


def test_postgres_restarted_in_the_middle_of_a_foreach_run(private_pg, tmp_path):
    dsn = migrated(private_pg)
    r = Router(dsn, secrets.token_urlsafe(24))
    offset = len(r.log_text())
    env = metaflow_env(r, tmp_path)
    flow_log = tmp_path / "run.log"
    proc = None
    try:
        t0 = time.monotonic()
        proc = start_flow(
            env, SLOW_FLOW, flow_log, "--n", str(N), "--sleep", SLEEP, "--max-workers", str(WORKERS)
        )
        before = wait_for_tasks(dsn, "SlowForeachFlow", "each", 4, proc)
        down_at = time.monotonic()
        pg_down(private_pg, "immediate")
        try:
            time.sleep(5)
        finally:
            private_pg.resume()
        outage = time.monotonic() - down_at
        assert proc.poll() is None, "the run ended during the outage"
        finish_flow(proc, flow_log, 900)
        wall = time.monotonic() - t0
        log = router_log_since(r, offset)
        n503 = log.count("database unavailable")
        assert n503 > 0, "no request met the outage: it did not happen during the run"
        assert "internal error" not in log, log[-3000:]
        shape = check_foreach_run(dsn, env, "SlowForeachFlow", N, total=expected_total(N))
        after = q(dsn, "select count(*) from tasks_v3 where step_name = 'each'")[0][0]
        assert after == N > before
        figure(
            f"faults: PostgreSQL down {outage:.1f}s mid-run (foreach {N}, {WORKERS} workers, after "
            f"{before} foreach tasks): run succeeded in {wall:.0f}s, router answered {n503} x 503, "
            f"every task/attempt/artifact stored once (foreach task metadata {shape['metadata']})"
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        r.stop()


def test_router_killed_and_restarted_in_the_middle_of_a_foreach_run(private_pg, tmp_path):
    dsn = migrated(private_pg)
    r = Router(dsn, secrets.token_urlsafe(24))
    offset = len(r.log_text())
    port = r.port
    env = metaflow_env(r, tmp_path)
    flow_log = tmp_path / "run.log"
    proc = None
    try:
        t0 = time.monotonic()
        proc = start_flow(
            env, SLOW_FLOW, flow_log, "--n", str(N), "--sleep", SLEEP, "--max-workers", str(WORKERS)
        )
        before = wait_for_tasks(dsn, "SlowForeachFlow", "each", 4, proc)
        old_pid = r.proc.pid
        killed_at = time.monotonic()
        r.kill()  # SIGKILL: no graceful shutdown, in-flight requests are cut
        assert r.proc.returncode == -9
        refused = False
        try:
            requests.get(f"http://127.0.0.1:{port}/healthcheck", timeout=2)
        except requests.ConnectionError:
            refused = True
        assert refused, "something still answers on the router's port"
        time.sleep(3)
        r.start()  # same port (chosen at construction), waits until healthy
        down = time.monotonic() - killed_at
        assert r.port == port and r.proc.pid != old_pid
        assert proc.poll() is None, "the run ended while the router was down"
        finish_flow(proc, flow_log, 900)
        wall = time.monotonic() - t0
        log = router_log_since(r, offset)
        assert "internal error" not in log, log[-3000:]
        assert log.count("listening on") == 1, log[-3000:]  # the restarted process (offset: after the first)
        shape = check_foreach_run(dsn, env, "SlowForeachFlow", N, total=expected_total(N))
        assert before < N  # foreach tasks were still to be created when the router died
        figure(
            f"faults: router SIGKILLed and restarted on port {port} after {down:.1f}s, mid-run "
            f"(foreach {N}, {WORKERS} workers, after {before} foreach tasks): run succeeded in "
            f"{wall:.0f}s, every task/attempt/artifact stored once (foreach task metadata "
            f"{shape['metadata']})"
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        r.stop()
