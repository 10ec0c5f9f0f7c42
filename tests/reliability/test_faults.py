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

import subprocess
import time

import pytest
import requests

from testkit import Router, metaflow_env, q
from .kit import (
    N,
    SLEEP,
    SLOW_FLOW,
    WORKERS,
    check_foreach_run,
    count_or_none,
    expected_total,
    figure,
    finish_flow,
    migrated,
    pg_down,
    router_log_since,
    start_flow,
    wait_for_tasks,
)

pytestmark = pytest.mark.long

# ---------------------------------------------------------------------------------------------
# a. outage without a run


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_outage_answers_503_and_the_router_reconnects_by_itself(private_pg, mode):
    dsn = migrated(private_pg)
    r = Router(dsn)
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
    r = Router(dsn)
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


def test_postgres_restarted_in_the_middle_of_a_foreach_run(private_pg, tmp_path):
    dsn = migrated(private_pg)
    r = Router(dsn)
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
    r = Router(dsn)
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
        shape = check_foreach_run(
            dsn, env, "SlowForeachFlow", N, total=expected_total(N), replies_cut=WORKERS
        )
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
