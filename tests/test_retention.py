"""`python -m mfs retain`: whole runs deleted by age or count, running and kept runs spared,
nothing else touched, dry run changes nothing, and the runs' local datastore folders."""

from __future__ import annotations

import subprocess
import sys
import time

from testkit import ROOT, q

TABLES = ["runs_v3", "steps_v3", "tasks_v3", "metadata_v3", "artifact_v3"]
DAY_MS = 86_400_000


def make_run(api, flow: str, age_days: float, tags=(), running=False) -> int:
    """A run with one step, two tasks, metadata and artifacts, `age_days` old."""
    u = api.base
    api.post(f"{u}/flows/{flow}", json={"user_name": "u"})
    r = api.post(
        f"{u}/flows/{flow}/run", json={"user_name": "u", "tags": list(tags), "system_tags": ["user:u"]}
    ).json()["run_number"]
    assert api.post(f"{u}/flows/{flow}/runs/{r}/steps/start/step", json={}).status_code == 200
    for _ in range(2):
        t = api.post(f"{u}/flows/{flow}/runs/{r}/steps/start/task", json={}).json()["task_id"]
        base = f"{u}/flows/{flow}/runs/{r}/steps/start/tasks/{t}"
        assert (
            api.post(
                base + "/metadata",
                json=[{"field_name": "attempt", "value": "0", "type": "attempt", "tags": ["attempt_id:0"]}],
            ).status_code
            == 200
        )
        assert (
            api.post(
                base + "/artifact",
                json=[
                    {
                        "name": "x",
                        "location": "/l",
                        "ds_type": "local",
                        "sha": "s",
                        "type": "metaflow.artifact",
                        "content_type": "gzip+pickle-v2",
                        "attempt_id": 0,
                    }
                ],
            ).status_code
            == 200
        )
    now_ms = int(time.time() * 1000)
    heartbeat = int(time.time()) if running else int(time.time()) - 10 * 86400
    q(
        api.dsn,
        "update runs_v3 set ts_epoch = $3, last_heartbeat_ts = $4 where flow_id = $1 and run_number = $2",
        flow,
        r,
        now_ms - int(age_days * DAY_MS),
        heartbeat,
    )
    return r


def rows_of(dsn: str, flow: str, run: int) -> dict:
    return {
        t: q(dsn, f"select count(*) from {t} where flow_id = $1 and run_number = $2", flow, run)[0][0]
        for t in TABLES
    }


def retain(dsn: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mfs", "retain", dsn, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_retain_by_age_spares_running_and_kept_runs_and_touches_nothing_else(api, migrated_db, tmp_path):
    api.dsn = migrated_db
    ages = {"old": 40, "kept": 30, "old2": 25, "running": 20, "recent": 10, "new": 1}
    runs = {
        name: make_run(api, "F", age, tags=("keep",) if name == "kept" else (), running=name == "running")
        for name, age in ages.items()
    }
    other = make_run(api, "G", 100)  # another flow, restricted away with --flow
    before = {name: rows_of(migrated_db, "F", r) for name, r in runs.items()}
    assert all(
        v == {"runs_v3": 1, "steps_v3": 1, "tasks_v3": 2, "metadata_v3": 2, "artifact_v3": 2}
        for v in before.values()
    )

    dry = retain(migrated_db, "--keep-days", "15", "--flow", "F", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "2 run(s) of 1 flow(s) to delete, 4 task(s) in all" in dry.stdout
    assert f"F/{runs['old']}" in dry.stdout and f"F/{runs['old2']}" in dry.stdout
    assert "dry run: nothing deleted" in dry.stdout
    assert {name: rows_of(migrated_db, "F", r) for name, r in runs.items()} == before

    root = tmp_path / "datastore"
    for r in (runs["old"], runs["recent"]):
        (root / "F" / str(r) / "start" / "1").mkdir(parents=True)
    (root / "F" / "data" / "ab").mkdir(parents=True)
    done = retain(migrated_db, "--keep-days", "15", "--flow", "F", "--datastore-root", str(root))
    assert done.returncode == 0, done.stderr
    assert (
        f"[1/2] deleted F/{runs['old']}: 2 tasks, 2 metadata and 2 artifact rows, its datastore folder"
        in done.stdout
    )
    assert f"[2/2] deleted F/{runs['old2']}" in done.stdout
    assert "deleted 2 runs, 2 steps, 4 tasks, 4 metadata, 4 artifacts, 1 folders" in done.stdout
    after = {name: rows_of(migrated_db, "F", r) for name, r in runs.items()}
    for name in ("old", "old2"):
        assert after[name] == dict.fromkeys(TABLES, 0)
    for name in ("kept", "running", "recent", "new"):
        assert after[name] == before[name]
    assert rows_of(migrated_db, "G", other)["tasks_v3"] == 2
    assert not (root / "F" / str(runs["old"])).exists()
    assert (root / "F" / str(runs["recent"])).exists() and (root / "F" / "data" / "ab").exists()

    again = retain(migrated_db, "--keep-days", "15", "--flow", "F")
    assert "0 run(s)" in again.stdout and "nothing to delete" in again.stdout


def test_retain_keeps_the_newest_runs_of_each_flow(api, migrated_db):
    api.dsn = migrated_db
    f = [make_run(api, "F", age) for age in (5, 4, 3)]
    g = [make_run(api, "G", age) for age in (2, 1)]
    res = retain(migrated_db, "--keep-runs", "2", "--keep-tag", "")
    assert res.returncode == 0, res.stderr
    assert "1 run(s) of 1 flow(s) to delete" in res.stdout
    assert rows_of(migrated_db, "F", f[0])["runs_v3"] == 0
    assert [rows_of(migrated_db, "F", r)["runs_v3"] for r in f[1:]] == [1, 1]
    assert [rows_of(migrated_db, "G", r)["runs_v3"] for r in g] == [1, 1]


def test_retain_without_a_policy_says_what_to_give(migrated_db):
    res = retain(migrated_db)
    assert res.returncode != 0
    assert res.stderr.strip() == (
        "error: say what to keep: --keep-days N and/or --keep-runs N "
        "(or deploy a stack with a retention policy: retentionKeepDays / retentionKeepRuns)"
    )
    bad = retain(migrated_db, "--keep-days", "-1")
    assert bad.returncode != 0 and bad.stderr.strip().startswith("error: ") and "Traceback" not in bad.stderr


def test_retain_without_flags_applies_the_stored_policy(api, migrated_db):
    """The policy a stack stored (QuotaGuard's retention, sql/0041) is what a scheduled
    `mfs retain` without --keep-days / --keep-runs applies; its keep tag too."""
    api.dsn = migrated_db
    old, kept, new = make_run(api, "F", 20), make_run(api, "F", 25, tags=("prod",)), make_run(api, "F", 1)
    q(migrated_db, "select mfs_api.set_retention_policy(15, null, 'prod')")
    res = retain(migrated_db)
    assert res.returncode == 0, res.stderr
    assert (
        "the stack's retention policy: delete runs older than 15 days, runs tagged 'prod' kept" in res.stdout
    )
    assert f"[1/1] deleted F/{old}" in res.stdout and "database size" in res.stdout
    assert [rows_of(migrated_db, "F", r)["runs_v3"] for r in (old, kept, new)] == [0, 1, 1]
