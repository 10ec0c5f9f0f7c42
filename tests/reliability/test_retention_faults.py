"""`python -m mfs retain` under live traffic and a database stopped mid-way (issue 16; the
policy itself is tested in tests/test_retention.py).

* While a real Metaflow flow runs, `retain` deletes exactly the runs its `--dry-run` listed,
  and the flow finishes untouched.
* The database stopped (immediate shutdown, as a crash) in the middle of a `retain` over many
  large runs: after restart every run is either whole or entirely gone, never half deleted;
  `retain` said so in one line and a second `retain` finishes the job.
"""

from __future__ import annotations

import re
import subprocess
import sys

from testkit import FLOWS, ROOT, metaflow_env, q, read_until
from .kit import figure, migrated
from test_retention import TABLES, make_run, retain, rows_of


def listed(out: str) -> set[str]:
    """The pathspecs a `retain` output lists (dry run) or reports deleted."""
    return set(re.findall(r"^  (\S+)  \(\d+ tasks\)$", out, re.M)) | set(
        re.findall(r"^\[\d+/\d+\] deleted (\S+):", out, re.M)
    )


def test_retain_deletes_exactly_what_the_dry_run_listed_while_a_flow_runs(api, router, migrated_db, tmp_path):
    api.dsn = migrated_db
    old = {f"{flow}/{make_run(api, flow, age)}" for flow in ("LinearFlow", "F") for age in (40, 30, 20)}
    recent = {f"LinearFlow/{make_run(api, 'LinearFlow', 1)}"}
    env = metaflow_env(router, tmp_path)
    flow = subprocess.Popen(
        [sys.executable, str(FLOWS / "linear_flow.py"), "--no-pylint", "run", "--sleep", "15"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        read_until(flow, "Task is starting", 180)
        running = q(migrated_db, "select max(run_number) from runs_v3 where flow_id = 'LinearFlow'")[0][0]
        dry = retain(migrated_db, "--keep-days", "15", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert listed(dry.stdout) == old, dry.stdout
        done = retain(migrated_db, "--keep-days", "15")
        assert done.returncode == 0, done.stderr
        assert flow.poll() is None, "the flow should still be running"
        rc = flow.wait(timeout=300)
    finally:
        if flow.poll() is None:
            flow.kill()
            flow.wait()
    assert listed(done.stdout) == old, done.stdout
    assert "database size" in done.stdout  # the guard's size measured again afterwards
    assert rc == 0
    for spec in old:
        f, r = spec.split("/")
        assert rows_of(migrated_db, f, int(r)) == dict.fromkeys(TABLES, 0)
    f, r = next(iter(recent)).split("/")
    assert rows_of(migrated_db, f, int(r))["tasks_v3"] == 2
    live = rows_of(migrated_db, "LinearFlow", running)
    assert live["runs_v3"] == 1 and live["tasks_v3"] == 3  # _parameters, start, end
    figure(f"retention: while a flow ran, retain deleted exactly the {len(old)} runs the dry run listed")


RUNS, TASKS, METADATA = 30, 20, 60  # per run: 20 tasks, 1,200 metadata and 1,200 artifact rows


def fill(dsn: str) -> None:
    """30 finished runs of 40 days ago, each large enough that deleting it takes a moment."""
    q(dsn, "insert into public.flows_v3 (flow_id, ts_epoch) values ('Big', 0)")
    q(
        dsn,
        "insert into public.runs_v3 (flow_id, ts_epoch, last_heartbeat_ts) "
        "select 'Big', (extract(epoch from now()) * 1000)::bigint - 40 * 86400000::bigint + i, 1 "
        "from generate_series(1, $1) i",
        RUNS,
    )
    q(
        dsn,
        "insert into public.steps_v3 (flow_id, run_number, step_name, ts_epoch) select 'Big', run_number, 's', 0 from runs_v3",
    )
    q(
        dsn,
        "insert into public.tasks_v3 (flow_id, run_number, step_name, ts_epoch) "
        "select 'Big', run_number, 's', 0 from runs_v3, generate_series(1, $1)",
        TASKS,
    )
    q(
        dsn,
        "insert into public.metadata_v3 (flow_id, run_number, step_name, task_id, field_name, value, type, ts_epoch) "
        "select 'Big', run_number, 's', task_id, 'f' || i, repeat('v', 100), 't', 0 from tasks_v3, generate_series(1, $1) i",
        METADATA,
    )
    q(
        dsn,
        "insert into public.artifact_v3 (flow_id, run_number, step_name, task_id, name, location, ds_type, sha, "
        "attempt_id, ts_epoch) select 'Big', run_number, 's', task_id, 'a' || i, '/l/' || i, 'local', md5(i::text), "
        "0, 0 from tasks_v3, generate_series(1, $1) i",
        METADATA,
    )


def run_counts(dsn: str) -> dict[int, dict]:
    out = {}
    for t in TABLES:
        for run, n in q(dsn, f"select run_number, count(*) from public.{t} where flow_id = 'Big' group by 1"):
            out.setdefault(run, dict.fromkeys(TABLES, 0))[t] = n
    return out


def test_a_run_is_deleted_whole_or_not_at_all_when_the_database_stops(private_pg):
    dsn = migrated(private_pg)
    fill(dsn)
    whole = {
        "runs_v3": 1,
        "steps_v3": 1,
        "tasks_v3": TASKS,
        "metadata_v3": TASKS * METADATA,
        "artifact_v3": TASKS * METADATA,
    }
    before = run_counts(dsn)
    assert len(before) == RUNS and all(c == whole for c in before.values())
    proc = subprocess.Popen(
        [sys.executable, "-m", "mfs", "retain", dsn, "--keep-days", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        read_until(proc, "[3/30] deleted", 120)
        private_pg.pause()  # immediate shutdown: open transactions are lost, as in a crash
        rc = proc.wait(timeout=120)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        private_pg.resume()
    assert rc != 0 and err.strip().startswith("error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and "run the same command again to finish" in err
    after = run_counts(dsn)
    # every run still there is whole; at least the 3 reported are gone, and the stop came mid-way
    assert all(c == whole for c in after.values()), {r: c for r, c in after.items() if c != whole}
    assert 3 <= RUNS - len(after) < RUNS
    q(dsn, "select 1")  # the database answers again
    again = retain(dsn, "--keep-days", "1")
    assert again.returncode == 0, again.stderr
    assert run_counts(dsn) == {}
    figure(
        f"retention: database stopped mid-way after {RUNS - len(after)} of {RUNS} runs: every other run whole; "
        "a second retain deleted the rest"
    )
