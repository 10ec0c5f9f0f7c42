"""The database size in the quota guard (sql/0040_size_guard.sql, issue 16).

* Below the warning threshold no reply carries X-Quota-Warning; from it, every reply that went
  to the database does (reads, creates, errors, /usage), with a plain sentence.
* At the limit, the six creates are answered 507 with a message saying what to do, and store
  nothing; reads, heartbeats and tag changes still work.
* Exactness under concurrent writers: a create is refused iff the cached size its request read
  is at or over the limit. So no create that starts after a refresh saying "over" committed is
  admitted, whatever the concurrency; every admitted create is stored, no refused one is.
* The size is measured at most once per max age (the cached row), by one session at a time.
* The real Metaflow client shows the refusal's message plainly and the run fails; `mfs quota`
  shows the size and the warning.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time

import asyncpg

from testkit import ROOT, metaflow_env, q, run_flow, run_sync
from .kit import digest, figure, migrated

HEADER = "x-quota-warning"
CREATES = ["flow_create", "run_create", "step_create", "task_create", "metadata_create", "artifact_create"]


def cached_size(dsn: str) -> int:
    return q(dsn, "select bytes from mfs.refresh_database_size()")[0][0]


def set_limit(dsn: str, max_bytes, warn: int | None = None, scope: str = "default") -> None:
    q(dsn, "select mfs_api.set_storage_limit($1, $2, $3)", scope, max_bytes, warn)


def make_task(s, base: str) -> str:
    """A flow, run, step and task (created while the database has room): the task's URL."""
    assert s.post(f"{base}/flows/G", json={"user_name": "u"}).status_code == 200
    run = s.post(f"{base}/flows/G/run", json={"user_name": "u"}).json()["run_number"]
    assert s.post(f"{base}/flows/G/runs/{run}/steps/start/step", json={}).status_code == 200
    task = s.post(f"{base}/flows/G/runs/{run}/steps/start/task", json={}).json()["task_id"]
    return f"{base}/flows/G/runs/{run}/steps/start/tasks/{task}"


def test_warning_header_below_and_above_the_threshold(router, migrated_db):
    s = router.session()
    size = cached_size(migrated_db)
    # no limit: no header
    assert HEADER not in s.get(f"{router.url}/ping").headers
    # a limit the database is far from (under 80 % of it): no header, /usage shows the size
    set_limit(migrated_db, size * 2)
    replies = [
        s.get(f"{router.url}/flows"),
        s.post(f"{router.url}/flows/A", json={}),
        s.get(f"{router.url}/x"),
    ]
    assert [r.status_code for r in replies] == [200, 200, 404]
    assert not any(HEADER in r.headers for r in replies)
    usage = s.get(f"{router.url}/usage")
    assert HEADER not in usage.headers
    body = usage.json()
    assert body["max_database_bytes"] == size * 2 and body["database_warn_percent"] == 80
    assert body["warning"] is None and size <= body["database_bytes"] < size * 2

    # 90 % of the limit (threshold 80 %): every reply through the database says so
    limit = int(size / 0.9)
    set_limit(migrated_db, limit)
    replies = {
        "read": s.get(f"{router.url}/flows"),
        "create": s.post(f"{router.url}/flows/B", json={}),
        "conflict": s.post(f"{router.url}/flows/B", json={}),
        "missing": s.get(f"{router.url}/flows/Nope"),
        "usage": s.get(f"{router.url}/usage"),
    }
    assert {k: r.status_code for k, r in replies.items()} == {
        "read": 200,
        "create": 200,
        "conflict": 409,
        "missing": 404,
        "usage": 200,
    }
    for name, r in replies.items():
        warning = r.headers.get(HEADER)
        assert warning, name
        assert warning.startswith("the metadata database holds ") and "(90%)" in warning, warning
        assert f"of its {limit / 1e6:.1f} MB limit" in warning and "python -m mfs retain" in warning
    assert replies["usage"].json()["warning"] == replies["usage"].headers[HEADER]
    # the threshold is the scope's: at 95 % nothing is said
    set_limit(migrated_db, limit, 95)
    assert HEADER not in s.get(f"{router.url}/ping").headers
    # /healthcheck does not reach the database: never a warning
    assert HEADER not in s.get(f"{router.url}/healthcheck").headers


def test_over_the_limit_creates_are_refused_and_everything_else_works(router, migrated_db):
    s = router.session()
    task = make_task(s, router.url)
    run = task.rsplit("/steps/", 1)[0]
    meta = [{"field_name": "f", "value": "v", "type": "t"}]
    art = [{"name": "a", "location": "/l", "ds_type": "local", "sha": "s", "type": "t", "attempt_id": 0}]
    assert s.post(f"{task}/metadata", json=meta).status_code == 200
    assert s.post(f"{task}/artifact", json=art).status_code == 200
    set_limit(migrated_db, cached_size(migrated_db) - 1)
    before = digest(migrated_db)

    creates = {
        "flow": s.post(f"{router.url}/flows/H", json={"user_name": "u"}),
        "run": s.post(f"{router.url}/flows/G/run", json={"user_name": "u"}),
        "step": s.post(f"{run}/steps/end/step", json={}),
        "task": s.post(f"{run}/steps/start/task", json={}),
        "metadata": s.post(f"{task}/metadata", json=meta),
        "artifact": s.post(f"{task}/artifact", json=art),
    }
    for name, r in creates.items():
        assert r.status_code == 507, (name, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["message"].startswith("the metadata database is full: it holds "), body
        assert "python -m mfs retain --keep-days 30" in body["message"]
        assert (
            "--max-database-bytes" in body["message"] and "reads and heartbeats still work" in body["message"]
        )
        assert body["database_bytes"] >= body["max_database_bytes"]
        assert "(100%)" in r.headers[HEADER] or "(99%)" in r.headers[HEADER]
    assert digest(migrated_db) == before  # nothing stored

    others = {
        "flows": s.get(f"{router.url}/flows"),
        "run": s.get(run),
        "tasks": s.get(f"{run}/steps/start/tasks"),
        "metadata": s.get(f"{task}/metadata"),
        "artifacts": s.get(f"{task}/artifacts"),
        "task heartbeat": s.post(f"{task}/heartbeat", json={}),
        "run heartbeat": s.post(f"{run}/heartbeat", json={}),
        "tags": s.patch(f"{run}/tag/mutate", json={"tags_to_add": ["keep"], "tags_to_remove": []}),
        "usage": s.get(f"{router.url}/usage"),
    }
    assert {k: r.status_code for k, r in others.items()} == dict.fromkeys(others, 200)
    assert all(HEADER in r.headers for r in others.values())
    assert len(others["metadata"].json()) == 1 and others["artifacts"].json()[0]["name"] == "a"
    assert "keep" in others["tags"].json()["tags"]
    # the limit lifted: creates work again at once (the cached size is compared with the new limit)
    set_limit(migrated_db, None)
    assert s.post(f"{router.url}/flows/H", json={"user_name": "u"}).status_code == 200


async def writers_until_refused(dsn: str, n: int, over_at: float | None, setup: str):
    """n sessions creating flows until each is refused. With `over_at`, the test itself marks
    the cache "over the limit" after that many seconds (as a refresh would) and notes when its
    commit returned. Returns (calls [(session, sent, done, status, flow, body)], (mark sent,
    its commit returned))."""
    cons = await asyncio.gather(*[asyncpg.connect(dsn) for _ in range(n + 1)])
    main, cons = cons[0], cons[1:]
    for c in cons:
        await c.execute(setup)
    gate = asyncio.Event()
    marked: list[tuple[float, float]] = []
    calls = []

    async def one(k, con):
        await gate.wait()
        for i in range(100000):
            flow = f"W{k}_{i}"
            sent = time.monotonic()
            status, body = await con.fetchrow(
                "select status, body from mfs_api.call('default', 'flow_create', $1::jsonb, '{}')",
                json.dumps({"flow_id": flow}),
            )
            calls.append((k, sent, time.monotonic(), status, flow, body))
            if status != 200:
                return

    async def mark():
        await gate.wait()
        await asyncio.sleep(over_at)
        sent = time.monotonic()
        await main.execute(
            "update mfs.database_size set bytes = (select max_database_bytes from mfs.quota_limits "
            "where scope = 'default'), measured_at = mfs.clock()"
        )
        marked.append((sent, time.monotonic()))

    try:
        tasks = [asyncio.create_task(one(k, c)) for k, c in enumerate(cons)]
        if over_at is not None:
            tasks.append(asyncio.create_task(mark()))
        await asyncio.sleep(0.2)
        gate.set()
        await asyncio.gather(*tasks)
    finally:
        await asyncio.gather(*[c.close() for c in [main, *cons]])
    return calls, (marked[0] if marked else None)


def stored_flows(dsn: str) -> set:
    return {r[0] for r in q(dsn, "select flow_id from public.flows_v3 where flow_id like 'W%'")}


def test_no_create_is_admitted_once_the_cached_size_says_over(private_pg):
    """40 sessions create flows; after 1.5 s the cache is set over the limit (a refresh that
    never comes by itself: max age 1 day). Every create sent after that commit returned is
    refused; every create answered before it started was admitted; stored = admitted."""
    dsn = migrated(private_pg)
    set_limit(dsn, cached_size(dsn) * 10)
    calls, (mark_sent, marked) = run_sync(
        writers_until_refused(dsn, 40, 1.5, "set mfs.database_size_max_age_s = 86400")
    )
    admitted = [c for c in calls if c[3] == 200]
    refused = [c for c in calls if c[3] != 200]
    assert {c[3] for c in refused} == {507} and len(refused) == 40  # each session's last call
    assert all(c[3] == 507 for c in calls if c[1] > marked), "a create started after the commit was admitted"
    # ... and every create answered before the mark was sent was admitted (below the limit)
    assert all(c[3] == 200 for c in calls if c[2] < mark_sent)
    # the mark committed while the sessions wrote: some calls were admitted, none after it
    assert len(admitted) > 40 and max(c[1] for c in admitted) < marked + 1e-9
    assert stored_flows(dsn) == {c[4] for c in admitted}
    for c in refused:
        assert json.loads(c[5])["database_bytes"] >= json.loads(c[5])["max_database_bytes"]
    figure(
        f"size guard: 40 sessions creating flows, the cache marked over after 1.5 s: "
        f"{len(admitted)} admitted (all before the mark), {len(refused)} refused, stored = admitted"
    )


def test_writers_at_the_threshold_with_real_refreshes(private_pg):
    """The size measured for real, as often as possible (max age 0: any request that gets the
    advisory lock measures): 24 sessions create flows with 2 KB of random tags until refused, limit =
    the size + 1.5 MB. Once any session was refused, every create sent afterwards is refused
    (the size only grows); stored = admitted; and the size really reached the limit."""
    dsn = migrated(private_pg)
    limit = cached_size(dsn) + 1_500_000
    set_limit(dsn, limit)
    q(dsn, "select mfs_api.call('default', 'ping', '{}', '{}')")

    async def go():
        cons = await asyncio.gather(*[asyncpg.connect(dsn) for _ in range(24)])
        for c in cons:
            await c.execute("set mfs.database_size_max_age_s = 0")
        calls = []

        async def one(k, con):
            for i in range(100000):
                flow = f"W{k}_{i}"
                sent = time.monotonic()
                status, body = await con.fetchrow(
                    "select status, body from mfs_api.call('default', 'flow_create', $1::jsonb, $2::jsonb)",
                    json.dumps({"flow_id": flow}),
                    json.dumps({"user_name": "u", "tags": [secrets.token_hex(1000)]}),
                )
                calls.append((k, sent, time.monotonic(), status, flow, body))
                if status != 200:
                    return

        try:
            await asyncio.gather(*[one(k, c) for k, c in enumerate(cons)])
        finally:
            await asyncio.gather(*[c.close() for c in cons])
        return calls

    calls = run_sync(go())
    admitted = [c for c in calls if c[3] == 200]
    refused = [c for c in calls if c[3] != 200]
    assert {c[3] for c in refused} == {507} and len(refused) == 24
    first_refusal_done = min(c[2] for c in refused)
    assert all(c[3] == 507 for c in calls if c[1] > first_refusal_done)
    assert stored_flows(dsn) == {c[4] for c in admitted}
    final = q(dsn, "select bytes from mfs.database_size")[0][0]
    assert final >= limit
    measured = q(dsn, "select pg_database_size(current_database())")[0][0]
    figure(
        f"size guard: 24 sessions at the threshold, real refreshes: {len(admitted)} admitted, "
        f"24 refused; cached size {final} >= limit {limit} (over by {final - limit} bytes; now {measured})"
    )


def test_the_size_is_measured_at_most_once_per_max_age(migrated_db):
    """With the default max age (120 s) a burst of requests measures nothing; a stale row is
    measured again by the next request; a row from the future (the clock went back) too."""
    q(migrated_db, "select mfs_api.set_storage_limit('default', 1000000000000, null)")
    q(migrated_db, "update mfs.database_size set bytes = 1, measured_at = now() - interval '60 s'")
    for _ in range(20):
        q(migrated_db, "select * from mfs_api.call('default', 'ping', '{}', '{}')")
    assert q(migrated_db, "select bytes from mfs.database_size")[0][0] == 1
    q(migrated_db, "update mfs.database_size set measured_at = now() - interval '121 s'")
    q(migrated_db, "select * from mfs_api.call('default', 'ping', '{}', '{}')")
    assert q(migrated_db, "select bytes from mfs.database_size")[0][0] > 1_000_000
    q(migrated_db, "update mfs.database_size set bytes = 1, measured_at = now() + interval '1 day'")
    q(migrated_db, "select * from mfs_api.call('default', 'ping', '{}', '{}')")
    assert q(migrated_db, "select bytes from mfs.database_size")[0][0] > 1_000_000
    # a session that cannot take the advisory lock (another is measuring) uses the cached row
    q(migrated_db, "update mfs.database_size set bytes = 1, measured_at = now() - interval '1 day'")

    async def go():
        holder, other = await asyncpg.connect(migrated_db), await asyncpg.connect(migrated_db)
        try:
            async with holder.transaction():
                await holder.execute("select pg_advisory_xact_lock(7164637391447909477)")
                started = time.monotonic()
                await other.fetchrow("select * from mfs_api.call('default', 'ping', '{}', '{}')")
                waited = time.monotonic() - started
                seen = await other.fetchval("select bytes from mfs.database_size")
            return waited, seen
        finally:
            await holder.close()
            await other.close()

    waited, seen = run_sync(go())
    assert seen == 1 and waited < 5


def test_the_metaflow_client_shows_the_refusal_and_reads_still_work(router, migrated_db, tmp_path):
    env = metaflow_env(router, tmp_path)
    run_flow(env, "linear_flow.py", "run")
    set_limit(migrated_db, 1)
    res = run_flow(env, "linear_flow.py", "run", check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    # what the user sees: Metaflow's ServiceException with our message, not a retry loop
    assert "Metaflow service error:" in out, out[-3000:]
    assert "failed (code 507)" in out and "the metadata database is full" in out, out[-3000:]
    assert "python -m mfs retain --keep-days 30" in out
    # reads through the client still work: the first run is there, successful
    code = "from metaflow import Flow\nr = Flow('LinearFlow').latest_successful_run\nprint(r.successful, r['end'].task.data.y)"
    read = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert read.returncode == 0, read.stderr[-3000:]
    assert read.stdout.split()[-2:] == ["True", "2"]
    figure(
        f"size guard: the Metaflow client's output when refused: {[l for l in out.splitlines() if '507' in l][0][:200]}"
    )


def mfs_quota(dsn: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mfs", "quota", dsn, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_mfs_quota_shows_the_size_and_warns(migrated_db):
    shown = mfs_quota(migrated_db)
    assert shown.returncode == 0, shown.stderr
    usage = json.loads(shown.stdout[: shown.stdout.index("\n}\n") + 2])
    assert usage["max_database_bytes"] is None and usage["database_bytes"] > 1_000_000
    assert "database size (measured " in shown.stdout and "MB (no limit)" in shown.stdout
    assert "warning:" not in shown.stdout
    assert q(migrated_db, "select count(*) from mfs.quota_limits")[0][0] == 0  # showing changed nothing

    size = usage["database_bytes"]
    limit = int(size / 0.85)
    res = mfs_quota(migrated_db, "--max-database-bytes", str(limit), "--max-requests", "1000")
    assert res.returncode == 0, res.stderr
    assert f"of {limit / 1e6:,.1f} MB (8" in res.stdout
    assert "requests this month" in res.stdout and "of 1,000 (0%)" in res.stdout
    warning = [l for l in res.stdout.splitlines() if l.startswith("warning: ")]
    assert len(warning) == 1 and "python -m mfs retain" in warning[0]
    # a limit left out stays; none removes one
    res = mfs_quota(migrated_db, "--max-egress-bytes", "5000")
    usage = json.loads(res.stdout[: res.stdout.index("\n}\n") + 2])
    assert (usage["max_requests"], usage["max_egress_bytes"], usage["max_database_bytes"]) == (
        1000,
        5000,
        limit,
    )
    res = mfs_quota(migrated_db, "--max-database-bytes", "none", "--warn-percent", "50")
    usage = json.loads(res.stdout[: res.stdout.index("\n}\n") + 2])
    assert (usage["max_database_bytes"], usage["database_warn_percent"], usage["max_requests"]) == (
        None,
        50,
        1000,
    )
    bad = mfs_quota(migrated_db, "--max-database-bytes", "-5")
    assert bad.returncode == 2 and "a limit cannot be negative" in bad.stderr


def test_the_worker_bundle_passes_the_warning_and_the_507_on(migrated_db):
    """The Cloudflare Worker (same handler.ts and call.ts, under a real workerd)."""
    import requests

    from mfs.processes import free_port
    from mfs.worker import WorkerdRouter

    worker = WorkerdRouter(migrated_db, "k" * 32, free_port(), path_prefix="/mf").start()
    try:
        s = requests.Session()
        s.headers["x-api-key"] = worker.key
        assert HEADER not in s.get(f"{worker.url}/ping").headers
        set_limit(migrated_db, cached_size(migrated_db) - 1)
        read, create = s.get(f"{worker.url}/flows"), s.post(f"{worker.url}/flows/W", json={"user_name": "u"})
    finally:
        worker.stop()
    assert read.status_code == 200 and "python -m mfs retain" in read.headers[HEADER]
    assert create.status_code == 507 and create.json()["message"].startswith("the metadata database is full")
    assert create.headers[HEADER] == read.headers[HEADER]
