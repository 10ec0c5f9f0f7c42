"""4. Concurrency: three real Metaflow runs at the same time through one router, each a
foreach of 100 with 32 workers (up to 96 task processes writing at once).

Asserted: every run succeeds; every task is stored exactly once (tasks per step as expected);
every task has exactly one 'attempt' metadata row and all foreach tasks of all three flows
hold the same metadata and artifact shapes; the counts match what the Client API reports for
each run; and the router answered no 5xx (it logs "internal error" for 500 and "database
unavailable" for 503)."""

from __future__ import annotations

import time

import pytest

from testkit import ROOT, metaflow_env, q
from .kit import check_foreach_run, figure, finish_flow, router_log_since, start_flow

pytestmark = pytest.mark.long

FLOW_NAMES = ["ConcurrentForeachA", "ConcurrentForeachB", "ConcurrentForeachC"]
N = 100
WORKERS = 32


@pytest.mark.timeout(1500)
def test_three_foreach_runs_of_100_with_32_workers_at_once(router, migrated_db, tmp_path):
    offset = len(router.log_text())
    env = metaflow_env(router, tmp_path)
    # three flows of distinct names, each the canonical foreach flow of tests/flows
    source = (ROOT / "tests" / "flows" / "foreach_flow.py").read_text()
    assert source.count("ForeachFlow") == 2
    files = {}
    for name in FLOW_NAMES:
        files[name] = tmp_path / f"{name.lower()}.py"
        files[name].write_text(source.replace("ForeachFlow", name))
    t0 = time.monotonic()
    procs = {}
    try:
        for name in FLOW_NAMES:
            procs[name] = start_flow(
                env, files[name], tmp_path / f"{name}.log", "--n", str(N), "--max-workers", str(WORKERS)
            )
        ended = {}
        while len(ended) < len(procs) and time.monotonic() - t0 < 1400:
            for name, p in procs.items():
                if name not in ended and p.poll() is not None:
                    ended[name] = time.monotonic() - t0
            time.sleep(0.5)
        for name in FLOW_NAMES:  # raises with the run's output if one failed or hangs
            finish_flow(procs[name], tmp_path / f"{name}.log", 1)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)
    wall = time.monotonic() - t0
    # the runs really overlapped: each run's tasks were created while the others were creating theirs
    spans = {
        r[0]: (r[1], r[2])
        for r in q(
            migrated_db,
            """select flow_id, min(ts_epoch), max(ts_epoch)
                                                             from tasks_v3 where step_name = 'each'
                                                            group by flow_id""",
        )
    }
    assert set(spans) == set(FLOW_NAMES)
    assert max(s[0] for s in spans.values()) < min(s[1] for s in spans.values()), spans

    log = router_log_since(router, offset)
    fivexx = [line for line in log.splitlines() if "internal error" in line or "database unavailable" in line]
    assert fivexx == [], fivexx[:20]

    shapes = {
        name: check_foreach_run(migrated_db, env, name, N, total=sum(i * i for i in range(N)))
        for name in FLOW_NAMES
    }
    # the three flows are the same program: their foreach tasks must look alike, row for row
    assert len({s["metadata"] for s in shapes.values()}) == 1, shapes
    assert len({s["artifacts"] for s in shapes.values()}) == 1, shapes
    assert len({s["metadata_rows"] for s in shapes.values()}) == 1, shapes
    totals = {
        r[0]: r[1]
        for r in q(
            migrated_db,
            """select flow_id, count(*) from tasks_v3
                                                      group by flow_id""",
        )
    }
    assert totals == {name: N + 4 for name in FLOW_NAMES}
    figure(
        f"concurrency: 3 foreach runs of {N} with --max-workers {WORKERS} at once through one router "
        f"(2 cores): all succeeded in {wall:.0f}s wall (runs ended at "
        f"{', '.join(f'{ended[n]:.0f}s' for n in FLOW_NAMES)}); {3 * (N + 4)} tasks, each stored once, "
        f"{sum(s['metadata_rows'] for s in shapes.values())} foreach metadata rows with identical "
        f"per-task shapes across the 3 flows, 0 router 5xx"
    )
