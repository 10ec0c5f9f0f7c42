"""4. The monthly quota (sql/0006_quota.sql, charged by mfs_api.call in sql/0007_dispatch.sql).

* 1,000 authorised HTTP requests really in flight at once through a real router, at a request
  limit of 137: exactly 137 answered 200, the other 863 answered 429 with a JSON body naming
  the exhausted budget and when it resets; the ledger shows exactly 137 requests and exactly
  the bytes of the 137 bodies.
* The same in SQL: 300 asyncpg connections calling mfs_api.call at once, limit 50 -> exactly
  50 admitted; then writes (flow_create) at once: exactly the admitted ones left a row.
* Unauthorised calls (no key, wrong keys, every route) never change the ledger.
* A small egress budget is exhausted and the 429 says egress.
* Month rollover with the injected clock (`set mfs.now`, or `alter database ... set mfs.now`
  for the router's sessions): the next month starts at zero and admits again; resets_at is the
  first instant of the next month, UTC, whatever the session's time zone.
* GET /usage shows this month's usage.

The concurrent requests go out over raw sockets: all 1,000 connections are opened first, then
every request is written, and only then is any answer read, so that all of them are in flight
at the router at once (an HTTP client library would interleave connecting and answering).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import time

import asyncpg
import pytest

from testkit import Router, new_database, q, run_sync
from .kit import digest, figure, parse_routes
from mfs import migrations
from mfs.local_postgres import LocalPostgres
from mfs.postgres_binaries import DEBIAN_BIN


# ----------------------------------------------------------------------------- helpers


class Reply:
    def __init__(self, raw: bytes):
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        if self.headers.get("transfer-encoding") == "chunked":
            out, rest = b"", body
            while rest:
                size, _, rest = rest.partition(b"\r\n")
                n = int(size.split(b";")[0], 16)
                if n == 0:
                    break
                out, rest = out + rest[:n], rest[n + 2 :]
            body = out
        elif "content-length" in self.headers:
            assert len(body) == int(self.headers["content-length"]), (len(body), self.headers)
        self.body = body

    def json(self):
        return json.loads(self.body)


async def burst(port: int, requests: list[tuple[str, str, str | None]], key: str | None) -> list[Reply]:
    """Opens one connection per request, then writes all requests, then reads all answers."""
    conns = await asyncio.gather(*[asyncio.open_connection("127.0.0.1", port) for _ in requests])
    for (method, path, body), (_, w) in zip(requests, conns):
        data = (body or "").encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        if key is not None:
            head += f"x-api-key: {key}\r\n"
        if body is not None:
            head += f"content-type: application/json\r\ncontent-length: {len(data)}\r\n"
        w.write(head.encode() + b"\r\n" + data)
    await asyncio.gather(*[w.drain() for _, w in conns])

    async def answer(r, w):
        try:
            return Reply(await asyncio.wait_for(r.read(), 120))
        finally:
            w.close()

    return await asyncio.gather(*[answer(r, w) for r, w in conns])


def usage_rows(dsn: str) -> list[tuple]:
    return [
        tuple(r)
        for r in q(
            dsn, "select scope, month, requests, egress_bytes from mfs.quota_usage order by scope, month"
        )
    ]


def ledger(dsn: str, scope: str) -> tuple[int, int]:
    rows = q(
        dsn,
        "select requests, egress_bytes from mfs.quota_usage where scope = $1 and month = mfs.current_month()",
        scope,
    )
    return (rows[0][0], rows[0][1]) if rows else (0, 0)


def next_month_start(now: dt.datetime) -> str:
    y, m = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return f"{y:04d}-{m:02d}-01T00:00:00Z"


def assert_quota_429(r: Reply, scope: str, budget: str, resets_at: str) -> dict:
    assert r.status == 429, (r.status, r.body)
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["budget"] == budget and body["scope"] == scope
    assert body["resets_at"] == resets_at
    words = budget.replace("_", " ")
    assert f"monthly {words} quota of scope {scope} is exhausted" in body["message"], body
    assert f"resets at {resets_at}" in body["message"], body
    assert body[budget] >= body[f"max_{budget}"], body
    return body


class BigPostgres(LocalPostgres):
    """A dedicated cluster that accepts more connections than LocalPostgres's 200."""

    def _run(self, *args, check=True):
        args = tuple(a.replace("max_connections=200", "max_connections=400") for a in args)
        return super()._run(*args, check=check)


@pytest.fixture(scope="module")
def big_pg():
    with BigPostgres(DEBIAN_BIN) as pg:
        yield pg


# ----------------------------------------------------------------------------- HTTP, 1,000 in flight


def preload(dsn: str, scope: str, requests: int, egress_bytes: int = 0) -> None:
    """Usage counted earlier this month (in one slot row, as any mix of past charges may leave it)."""
    if requests:
        q(dsn, "select mfs.quota_ensure_slots($1, mfs.current_month())", scope)
        q(
            dsn,
            "update mfs.quota_slots set requests = $2, egress_bytes = $3 "
            "where scope = $1 and month = mfs.current_month() and slot = 7",
            scope,
            requests,
            egress_bytes,
        )


def slots_used(dsn: str, scope: str) -> int:
    """How many slot rows counted requests (more than one: charges ran side by side)."""
    return q(
        dsn,
        "select count(*) from mfs.quota_slots where scope = $1 and month = mfs.current_month() "
        "and requests > 0 and slot <> 7",
        scope,
    )[0][0]


# (used before, limit): 137 left from zero (the original case); far from the limit (900 of the
# 1,000 admitted, mostly side by side); 137 left after 4,000; 10 left (fewer than the 16 slots:
# every charge takes the exact path)
@pytest.mark.parametrize("used, limit", [(0, 137), (0, 900), (4000, 4137), (4000, 4010)])
def test_1000_concurrent_requests_through_the_router_admit_exactly_the_limit(migrated_db, used, limit):
    n = 1000
    scope = f"burst{used}_{limit}"
    q(migrated_db, "select mfs_api.set_quota_limits($1, $2, null)", scope, limit)
    preload(migrated_db, scope, used, 6 * used)
    router = Router(migrated_db, scope=scope)
    try:
        reqs = [("GET", "/ping" if i % 2 else "/flows", None) for i in range(n)]
        started = time.monotonic()
        replies = run_sync(burst(router.port, reqs, router.key))
        took = time.monotonic() - started
    finally:
        router.stop()

    statuses = {}
    for r in replies:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    assert statuses == {200: limit - used, 429: n - limit + used}, statuses
    resets_at = q(migrated_db, "select mfs.resets_at(mfs.current_month())")[0][0]
    assert resets_at == next_month_start(dt.datetime.now(dt.timezone.utc))
    for r in replies:
        if r.status == 429:
            body = assert_quota_429(r, scope, "requests", resets_at)
            assert body["requests"] == limit and body["max_requests"] == limit
        else:
            assert r.json() in ("pong", [])
    # the ledger holds exactly the admitted requests and exactly the bytes they answered
    admitted_bytes = sum(len(r.body) for r in replies if r.status == 200)
    assert ledger(migrated_db, scope) == (limit, 6 * used + admitted_bytes)
    assert [r[0] for r in usage_rows(migrated_db)] == [scope]
    if limit - used > 100:
        assert slots_used(migrated_db, scope) > 1  # the fast path ran, side by side
    figure(
        f"quota/http: {n} requests in flight at once, {used} used before, limit {limit}: {statuses} "
        f"in {took:.2f}s ({n / took:.0f} req/s), ledger {limit} requests / {admitted_bytes} bytes added, "
        f"{slots_used(migrated_db, scope)} slot rows used"
    )


# ----------------------------------------------------------------------------- SQL, 300 sessions


def test_300_concurrent_sessions_calling_mfs_api_call_admit_exactly_the_limit(big_pg):
    dsn = new_database(big_pg)
    migrations.apply(dsn)
    n, scope = 300, "sql"
    assert int(q(dsn, "show max_connections")[0][0]) > n + 10

    async def round_(op: str, args: list[str], bodies: list[str]) -> list[tuple[int, str]]:
        cons = await asyncio.gather(*[asyncpg.connect(dsn) for _ in range(n)])
        try:
            gate = asyncio.Event()

            async def one(con, a, b):
                await gate.wait()
                return tuple(
                    await con.fetchrow(
                        "select status, body from mfs_api.call($1, $2, $3::jsonb, $4::jsonb)", scope, op, a, b
                    )
                )

            tasks = [asyncio.create_task(one(c, a, b)) for c, a, b in zip(cons, args, bodies)]
            await asyncio.sleep(0.2)
            gate.set()
            return await asyncio.gather(*tasks)
        finally:
            await asyncio.gather(*[c.close() for c in cons])

    # reads: limit 50
    q(dsn, "select mfs_api.set_quota_limits($1, 50, null)", scope)
    started = time.monotonic()
    res = run_sync(round_("ping", ["{}"] * n, ["{}"] * n))
    took = time.monotonic() - started
    assert sorted(s for s, _ in res).count(200) == 50 and [s for s, _ in res].count(429) == n - 50
    assert all(json.loads(b)["budget"] == "requests" for s, b in res if s == 429)
    assert ledger(dsn, scope) == (50, 50 * len('"pong"'))

    # writes: 50 more admitted; every refused flow_create left no row
    q(dsn, "select mfs_api.set_quota_limits($1, 100, null)", scope)
    flows = [f"F{i}" for i in range(n)]
    res = run_sync(
        round_("flow_create", [json.dumps({"flow_id": f}) for f in flows], ['{"user_name": "u"}'] * n)
    )
    admitted = sorted(f for f, (s, _) in zip(flows, res) if s == 200)
    assert len(admitted) == 50 and [s for s, _ in res].count(429) == n - 50, sorted({s for s, _ in res})
    stored = sorted(r[0] for r in q(dsn, "select flow_id from public.flows_v3"))
    assert stored == admitted
    assert ledger(dsn, scope)[0] == 100
    figure(
        f"quota/sql: {n} sessions calling mfs_api.call at once, limit 50: exactly 50 admitted "
        f"(round of pings {took:.2f}s incl. connecting); flow_create round: 50 admitted = 50 rows"
    )


# ----------------------------------------------------------------------------- SQL, sessions until refused


async def until_refused(dsn: str, scope: str, n: int, request) -> list[list[tuple[str, int, str]]]:
    """n sessions, released at once, each calling mfs_api.call with request(session, i) -> (op,
    args, body) until it is refused; returns each session's [(op, status, body)]."""
    cons = await asyncio.gather(*[asyncpg.connect(dsn) for _ in range(n)])
    try:
        gate = asyncio.Event()

        async def one(k, con):
            out = []
            await gate.wait()
            for i in range(100000):
                op, a, b = request(k, i)
                s, body = await con.fetchrow(
                    "select status, body from mfs_api.call($1, $2, $3::jsonb, $4::jsonb)", scope, op, a, b
                )
                out.append((op, s, body))
                if s == 429:
                    return out
            raise AssertionError("never refused")

        tasks = [asyncio.create_task(one(k, c)) for k, c in enumerate(cons)]
        await asyncio.sleep(0.2)
        gate.set()
        return await asyncio.gather(*tasks)
    finally:
        await asyncio.gather(*[c.close() for c in cons])


@pytest.fixture(scope="module")
def big_db(big_pg):
    dsn = new_database(big_pg)
    migrations.apply(dsn)
    return dsn


# (used before, limit): far from the limit; a small limit from zero; 600 left after 3,000;
# fewer left than there are slots (exact path only); exactly the slot count left; none left
@pytest.mark.parametrize(
    "used, limit", [(0, 3000), (0, 40), (3000, 3600), (3000, 3011), (3000, 3016), (3000, 3000)]
)
def test_200_sessions_calling_until_refused_admit_exactly_the_limit(big_db, used, limit):
    """Pings and writes (flow_create, a new flow each) from 200 sessions that each call until
    they are refused: exactly limit - used admitted, and exactly the admitted writes stored."""
    dsn, n = big_db, 200
    scope = f"loop{used}_{limit}"
    q(dsn, "select mfs_api.set_quota_limits($1, $2, null)", scope, limit)
    preload(dsn, scope, used, 6 * used)

    def request(k, i):
        if (k + i) % 3:
            return "ping", "{}", "{}"
        return "flow_create", json.dumps({"flow_id": f"{scope}_{k}_{i}"}), '{"user_name": "u"}'

    started = time.monotonic()
    res = run_sync(until_refused(dsn, scope, n, request))
    took = time.monotonic() - started
    calls = [c for session in res for c in session]
    admitted = [c for c in calls if c[1] == 200]
    assert len(admitted) == limit - used, (len(admitted), limit - used)
    assert {c[1] for c in calls} <= {200, 429}
    assert sum(1 for c in calls if c[1] == 429) == n  # every session's last call, nothing else
    for _, status, body in calls:
        if status == 429:
            b = json.loads(body)
            assert (b["budget"], b["requests"], b["max_requests"]) == ("requests", limit, limit)
    stored = {
        r[0] for r in q(dsn, "select flow_id from public.flows_v3 where flow_id like $1", scope + "\\_%")
    }
    written = {json.loads(b)["flow_id"] for op, s, b in admitted if op == "flow_create"}
    assert stored == written
    assert ledger(dsn, scope) == (limit, 6 * used + sum(len(b.encode()) for _, _, b in admitted))
    if limit - used >= 600:
        assert slots_used(dsn, scope) > 1  # the fast path ran, side by side
    figure(
        f"quota/sql: {n} sessions calling until refused, {used} used before, limit {limit}: exactly "
        f"{len(admitted)} admitted ({len(written)} writes = {len(stored)} rows) in {took:.2f}s, "
        f"{slots_used(dsn, scope)} slot rows used"
    )


def test_several_calls_in_one_transaction_are_admitted_exactly(big_db):
    """mfs_api.call is one transaction per request through the router, but SQL users may call it
    several times before a commit: 150 sessions, 4 calls per transaction, until refused."""
    dsn, n, limit, per = big_db, 150, 2000, 4
    scope = "multi"
    q(dsn, "select mfs_api.set_quota_limits($1, $2, null)", scope, limit)

    async def go():
        cons = await asyncio.gather(*[asyncpg.connect(dsn) for _ in range(n)])
        try:
            gate = asyncio.Event()

            async def one(con):
                statuses, deadlocks = [], 0
                await gate.wait()
                while 429 not in statuses:
                    try:
                        async with con.transaction():
                            got = [
                                await con.fetchval(
                                    "select status from mfs_api.call($1, 'ping', '{}', null)", scope
                                )
                                for _ in range(per)
                            ]
                    except asyncpg.DeadlockDetectedError:
                        deadlocks += 1  # (rolled back: counts nothing)
                        continue
                    statuses += got
                return statuses, deadlocks

            tasks = [asyncio.create_task(one(c)) for c in cons]
            await asyncio.sleep(0.2)
            gate.set()
            return await asyncio.gather(*tasks)
        finally:
            await asyncio.gather(*[c.close() for c in cons])

    res = run_sync(go())
    statuses = [s for session, _ in res for s in session]
    assert statuses.count(200) == limit and set(statuses) == {200, 429}
    assert ledger(dsn, scope) == (limit, 6 * limit)
    assert slots_used(dsn, scope) > 1
    # up to mfs.quota_fast_counts() (4) charges a transaction never waits while holding a slot
    assert sum(d for _, d in res) == 0
    figure(
        f"quota/sql: {n} sessions, {per} calls per transaction until refused, limit {limit}: exactly "
        f"{limit} admitted, no deadlock"
    )


@pytest.mark.parametrize("used_bytes", [0, 2_900_000])
def test_an_egress_limit_with_replies_of_every_size_is_exact(big_db, used_bytes):
    """Replies of 6 bytes, ~200 bytes and > 64 KiB (beyond the fast path's bound) from 100
    sessions until refused, egress limit 3,000,000: the ledger holds exactly the admitted
    bodies' bytes, there is a serial order in which every admitted request started below the
    limit (sum - largest < limit), and the limit was reached before anything was refused."""
    dsn, n, limit = big_db, 100, 3_000_000
    scope = f"egress{used_bytes}"
    if not q(dsn, "select 1 from public.flows_v3 where flow_id = 'Big599'"):
        q(
            dsn,
            "select mfs_api.call('setup', 'flow_create', jsonb_build_object('flow_id', 'Big' || i), "
            '\'{"user_name": "u"}\') from generate_series(0, 599) i',
        )
    q(dsn, "select mfs_api.set_quota_limits($1, null, $2)", scope, limit)
    preload(dsn, scope, 1 if used_bytes else 0, used_bytes)

    def request(k, i):
        kind = (k * 7 + i) % 10
        if kind == 0:
            return "flows_list", "{}", "{}"
        if kind < 5:
            return "flow_get", json.dumps({"flow_id": f"Big{(k + i) % 600}"}), "{}"
        return "ping", "{}", "{}"

    res = run_sync(until_refused(dsn, scope, n, request))
    calls = [c for session in res for c in session]
    sizes = [len(b.encode()) for _, s, b in calls if s == 200]
    assert max(sizes) > 65536 and min(sizes) == 6
    total = used_bytes + sum(sizes)
    assert ledger(dsn, scope) == (len(sizes) + (1 if used_bytes else 0), total)
    assert total - max(sizes) < limit <= total
    refusals = [json.loads(b) for _, s, b in calls if s == 429]
    assert len(refusals) == n and all(
        b["budget"] == "egress_bytes" and b["egress_bytes"] == total for b in refusals
    )
    figure(
        f"quota/sql: egress limit {limit}, {used_bytes} bytes used before, {n} sessions until refused: "
        f"{len(sizes)} admitted, ledger {total} bytes = the admitted bodies (largest {max(sizes)})"
    )


# ----------------------------------------------------------------------------- unauthorised calls


def sample_path(pattern: str) -> str:
    values = {
        "flow_id": "QuotaFlow",
        "run_number": "1",
        "step_name": "start",
        "task_id": "1",
        "name": "x",
        "attempt_id": "0",
        "kind": "flows",
    }
    for k, v in values.items():
        pattern = pattern.replace("{" + k + "}", v)
    return pattern


def test_unauthorised_calls_never_change_the_ledger(router, migrated_db):
    s = router.session()
    assert s.post(f"{router.url}/flows/QuotaFlow", json={"user_name": "u"}).status_code == 200
    assert s.get(f"{router.url}/ping").status_code == 200
    before, data_before = usage_rows(migrated_db), digest(migrated_db)
    assert before and before[0][2] == 2

    routes = parse_routes()
    assert len(routes) >= 25
    k = router.key
    wrong = [
        None,
        "",
        "wrong",
        secrets.token_urlsafe(24)[: len(k)],
        k[:-1],
        k + "x",
        k[:8],
        ("A" if k[0] != "A" else "B") + k[1:],
        k[:-1] + ("A" if k[-1] != "A" else "B"),
        k.upper() + "!",
    ]
    reqs = [(m, sample_path(p), None if m == "GET" else '{"user_name": "u"}') for m, p in routes]
    reqs += [("GET", "/nonexistent", None), ("DELETE", "/flows/QuotaFlow", None), ("POST", "/ping", "{}")]
    total = 0
    for key in wrong:
        replies = run_sync(burst(router.port, reqs, key))
        total += len(replies)
        assert {r.status for r in replies} == {401}, (key, sorted({r.status for r in replies}))
        assert all("x-api-key" in r.json()["message"] for r in replies)
    assert usage_rows(migrated_db) == before
    assert digest(migrated_db) == data_before
    # ... also when the quota is exhausted: auth comes first, and costs nothing
    q(migrated_db, "select mfs_api.set_quota_limits('default', 2, null)")
    assert s.get(f"{router.url}/ping").status_code == 429
    replies = run_sync(burst(router.port, reqs, "wrong"))
    assert {r.status for r in replies} == {401}
    assert usage_rows(migrated_db) == before
    figure(
        f"quota/auth: {total + len(replies)} unauthorised requests over {len(routes)} routes and "
        f"{len(wrong)} wrong keys: all 401, ledger unchanged"
    )


# ----------------------------------------------------------------------------- egress


def test_a_small_egress_budget_is_exhausted_and_the_429_says_egress(migrated_db):
    scope, limit = "egress", 100
    q(migrated_db, "select mfs_api.set_quota_limits($1, null, $2)", scope, limit)
    router = Router(migrated_db, scope=scope)
    try:
        replies = run_sync(burst(router.port, [("GET", "/ping", None)] * 60, router.key))
        later = run_sync(burst(router.port, [("GET", "/usage", None), ("GET", "/flows", None)], router.key))
    finally:
        router.stop()
    resets_at = q(migrated_db, "select mfs.resets_at(mfs.current_month())")[0][0]
    ok = [r for r in replies if r.status == 200]
    # a request is admitted while the bytes used so far are below the budget: ceil(100 / 6) = 17
    assert len(ok) == 17 and all(r.body == b'"pong"' for r in ok)
    for r in [r for r in replies if r.status != 200] + list(later):
        body = assert_quota_429(r, scope, "egress_bytes", resets_at)
        assert body["egress_bytes"] == 17 * 6 and body["max_egress_bytes"] == limit
        assert "egress bytes quota" in body["message"]
    assert ledger(migrated_db, scope) == (17, 17 * 6)


def test_a_zero_request_budget_refuses_everything(migrated_db):
    q(migrated_db, "select mfs_api.set_quota_limits('zero', 0, null)")
    rows = q(migrated_db, "select status, body from mfs_api.call('zero', 'ping', '{}', '{}')")
    assert rows[0][0] == 429 and json.loads(rows[0][1])["budget"] == "requests"
    assert ledger(migrated_db, "zero") == (0, 0)


def test_a_refused_write_leaves_no_trace(router, migrated_db):
    q(migrated_db, "select mfs_api.set_quota_limits('default', 1, null)")
    s = router.session()
    assert s.get(f"{router.url}/ping").status_code == 200
    before = digest(migrated_db)
    for path in ["/flows/Refused", "/flows/Refused/run"]:
        r = s.post(router.url + path, json={"user_name": "u"})
        assert r.status_code == 429 and r.json()["budget"] == "requests"
    assert digest(migrated_db) == before
    assert ledger(migrated_db, "default") == (1, 6)


# ----------------------------------------------------------------------------- month rollover


@pytest.mark.parametrize(
    "last_instant, first_of_next, month, next_month",
    [
        ("2026-01-31 23:59:59.999999+00", "2026-02-01 00:00:00+00", "2026-01", "2026-02"),
        ("2028-02-29 23:59:59.999999+00", "2028-03-01 00:00:00+00", "2028-02", "2028-03"),  # leap year
        ("2026-12-31 23:59:59.999999+00", "2027-01-01 00:00:00+00", "2026-12", "2027-01"),  # new year
        # the same instants written with other offsets: months are UTC months
        ("2026-07-01 01:59:59.999999+02", "2026-06-30 20:00:00-04", "2026-06", "2026-07"),
    ],
)
@pytest.mark.parametrize("session_tz", ["UTC", "Pacific/Kiritimati", "America/Los_Angeles"])
def test_month_rollover_with_the_injected_clock(
    migrated_db, last_instant, first_of_next, month, next_month, session_tz
):
    scope = "rollover"
    resets_at = next_month + "-01T00:00:00Z"

    async def go():
        con = await asyncpg.connect(migrated_db)
        try:
            await con.execute(f"set timezone = '{session_tz}'")
            await con.execute("select mfs_api.set_quota_limits($1, 3, null)", scope)

            async def call(op="ping"):
                s, b = await con.fetchrow(
                    "select status, body from mfs_api.call($1, $2, '{}', null)", scope, op
                )
                return s, json.loads(b)

            await con.execute(f"set mfs.now = '{last_instant}'")
            assert [(await call())[0] for _ in range(3)] == [200, 200, 200]
            status, body = await call()
            assert status == 429 and body["budget"] == "requests" and body["month"] == month
            assert body["resets_at"] == resets_at and f"resets at {resets_at}" in body["message"]
            usage = json.loads(await con.fetchval("select mfs_api.get_usage($1)::text", scope))
            assert (usage["month"], usage["requests"], usage["resets_at"]) == (month, 3, resets_at)

            # the first instant of the next month: a fresh budget
            await con.execute(f"set mfs.now = '{first_of_next}'")
            usage = json.loads(await con.fetchval("select mfs_api.get_usage($1)::text", scope))
            assert (usage["month"], usage["requests"], usage["egress_bytes"]) == (next_month, 0, 0)
            status, body = await call("usage")  # shows the usage before this request
            assert status == 200 and body["month"] == next_month and body["requests"] == 0
            assert [(await call())[0] for _ in range(2)] == [200, 200]
            assert (await call())[0] == 429

            # and the clock going back shows the old month exhausted still
            await con.execute(f"set mfs.now = '{last_instant}'")
            assert (await call())[0] == 429
            return [
                (r[0], r[1].strftime("%Y-%m"), r[2])
                for r in await con.fetch("select scope, month, requests from mfs.quota_usage order by month")
            ]
        finally:
            await con.close()

    assert run_sync(go()) == [(scope, month, 3), (scope, next_month, 3)]


def test_month_rollover_through_the_router(migrated_db):
    """The router's own sessions get the injected clock from `alter database ... set mfs.now`."""
    db = migrated_db.rsplit("/", 1)[1]
    q(migrated_db, f"alter database \"{db}\" set mfs.now = '2026-03-31 23:59:59+00'")
    q(migrated_db, "select mfs_api.set_quota_limits('default', 3, null)")
    router = Router(migrated_db)
    try:
        s = router.session()
        assert [s.get(f"{router.url}/ping").status_code for _ in range(3)] == [200, 200, 200]
        r = s.get(f"{router.url}/flows")
        assert r.status_code == 429 and r.json()["resets_at"] == "2026-04-01T00:00:00Z"
        assert r.json()["month"] == "2026-03"
        q(migrated_db, f"alter database \"{db}\" set mfs.now = '2026-04-01 00:00:00+00'")
        router.restart()  # new sessions read the new setting
        s = router.session()
        usage = s.get(f"{router.url}/usage")
        assert usage.status_code == 200
        assert (usage.json()["month"], usage.json()["requests"]) == ("2026-04", 0)
        assert usage.json()["resets_at"] == "2026-05-01T00:00:00Z"
        assert s.get(f"{router.url}/ping").status_code == 200
    finally:
        router.stop()
        q(migrated_db, f'alter database "{db}" reset mfs.now')
    assert [(r[1].strftime("%Y-%m"), r[2]) for r in usage_rows(migrated_db)] == [
        ("2026-03", 3),
        ("2026-04", 2),
    ]


# ----------------------------------------------------------------------------- GET /usage


def test_get_usage_shows_this_months_usage(migrated_db):
    scope = "shown"
    q(migrated_db, "select mfs_api.set_quota_limits($1, 1000, 1000000000)", scope)
    router = Router(migrated_db, scope=scope)
    try:
        s = router.session()
        sent = [s.get(f"{router.url}/ping") for _ in range(5)] + [
            s.get(f"{router.url}/flows") for _ in range(2)
        ]
        assert all(r.status_code == 200 for r in sent)
        now = dt.datetime.now(dt.timezone.utc)
        u = s.get(f"{router.url}/usage")
        anon = router.session(None).get(f"{router.url}/usage")
    finally:
        router.stop()
    assert u.status_code == 200 and u.headers["content-type"] == "application/json"
    body = u.json()
    # the database size (sql/0040_size_guard.sql; tests/reliability/test_size_guard.py): no limit here
    size = {
        k: body.pop(k)
        for k in list(body)
        if k.startswith("database_") or k in ("max_database_bytes", "warning")
    }
    assert size["database_bytes"] > 0 and size["max_database_bytes"] is None and size["warning"] is None
    # what was used before this request: 7 requests and exactly their bytes
    assert body == {
        "scope": scope,
        "month": now.strftime("%Y-%m"),
        "requests": 7,
        "egress_bytes": sum(len(r.content) for r in sent),
        "max_requests": 1000,
        "max_egress_bytes": 1000000000,
        "resets_at": next_month_start(now),
    }
    # the /usage request itself is counted too; the refused anonymous one is not
    assert anon.status_code == 401
    assert ledger(migrated_db, scope) == (8, body["egress_bytes"] + len(u.content))
