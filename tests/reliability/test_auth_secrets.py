"""5. Authentication and secrets.

* Every route of the router's table (routes.ts) refuses a missing key and wrong keys (empty,
  same length, a prefix of the right key, the right key plus a character, one character
  changed, the key sent as a bearer token or in the query string) with 401 and a JSON body;
  only GET /healthcheck is open.
* The key comparison is constant-time by construction: keyMatches in handler.ts compares
  every byte of the expected key with no early exit (checked on the source here, and
  functionally by handler_test.ts under deno test). Response times of wrong keys are measured and recorded
  as a figure only: a timing assertion would be flaky on a shared machine.
* No key, password or connection string appears in the router's log or in any answer, while
  errors are driven: bad input, 404/405/409/413, an internal error (a dropped function), a
  database outage (a dedicated cluster is paused), a wrong database password, an unreachable
  database.
* `python -m mfs local` writes its key file 0600, never prints the key, and stops cleanly.
* Supabase's roles (anon, authenticated, service_role, NOLOGIN, with Supabase's default
  privileges, reached through a login role granted them, as PostgREST's `authenticator` does)
  can neither read nor write any of the six tables, nor the mfs tables and sequences, nor
  execute any mfs_api.* / mfs.* function (SQLSTATE 42501), whether the roles existed before the
  migrations ran (0008 revokes what default privileges granted them) or were created after
  (0008 skipped them; PUBLIC's rights were revoked).

The Pulumi MetaflowConfig profile files (0600) are tested in tests/pulumi.
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import shutil
import signal
import statistics
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest
import requests

from mfs import ROUTER_DIR
from testkit import ROOT, Router, drain, new_database, port_open, q, read_until, run_sync
from .kit import TABLES, figure, parse_routes
from mfs import migrations
from mfs.local_postgres import LocalPostgres
from mfs.postgres_binaries import DEBIAN_BIN
from mfs.processes import free_port

HANDLER = ROUTER_DIR / "handler.ts"
VALUES = {
    "flow_id": "AuthFlow",
    "run_number": "1",
    "step_name": "start",
    "task_id": "1",
    "name": "x",
    "attempt_id": "0",
    "kind": "flows",
}


def concrete(pattern: str) -> str:
    for k, v in VALUES.items():
        pattern = pattern.replace("{" + k + "}", v)
    assert "{" not in pattern, pattern
    return pattern


def wrong_keys(k: str) -> dict[str, dict]:
    """name -> request kwargs (headers / params) carrying a wrong or misplaced key."""
    flip = lambda c: "A" if c != "A" else "B"  # noqa: E731
    other = secrets.token_urlsafe(64)[: len(k)]
    return {
        "missing": {},
        "empty": {"headers": {"x-api-key": ""}},
        "wrong": {"headers": {"x-api-key": "wrong"}},
        "same length": {"headers": {"x-api-key": other}},
        "prefix": {"headers": {"x-api-key": k[:-1]}},
        "short prefix": {"headers": {"x-api-key": k[:4]}},
        "key plus one": {"headers": {"x-api-key": k + "x"}},
        "first char changed": {"headers": {"x-api-key": flip(k[0]) + k[1:]}},
        "last char changed": {"headers": {"x-api-key": k[:-1] + flip(k[-1])}},
        "doubled": {"headers": {"x-api-key": k + k}},
        "bearer only": {"headers": {"authorization": f"Bearer {k}"}},
        "in the query": {"params": {"x-api-key": k}},
        "other header": {"headers": {"x-api-key-2": k, "apikey": k}},
    }


def assert_json_message(r: requests.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert isinstance(body, dict) and set(body) == {"message"} and isinstance(body["message"], str), body
    return body["message"]


# ----------------------------------------------------------------------------- 401 everywhere


def test_every_route_refuses_missing_and_wrong_keys(router):
    routes = parse_routes()
    assert len(routes) >= 25 and ("GET", "/ping") in routes
    assert not any("healthcheck" in p for _, p in routes)  # the open probe is not a table route
    routes += [
        ("GET", "/nonexistent"),
        ("DELETE", "/flows/AuthFlow"),
        ("PUT", "/ping"),
        ("POST", "/healthcheck"),
        ("PATCH", "/healthcheck"),
        ("GET", "/healthcheck/x"),
    ]
    s = requests.Session()
    n = 0
    for method, pattern in routes:
        url = router.url + concrete(pattern)
        body = None if method in ("GET", "DELETE") else {"user_name": "u"}
        for name, kw in wrong_keys(router.key).items():
            r = s.request(method, url, json=body, **kw)
            n += 1
            assert r.status_code == 401, (method, pattern, name, r.status_code, r.text[:200])
            msg = assert_json_message(r, 401)
            assert "x-api-key" in msg and router.key not in r.text
        # with the right key the same request gets past authentication
        r = s.request(method, url, json=body, headers={"x-api-key": router.key})
        assert r.status_code != 401, (method, pattern)
    # the only open door
    for path in ["/healthcheck"]:
        r = s.get(router.url + path)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json" and r.json()["status"]
    figure(f"auth: {n} requests with missing/wrong keys over {len(routes)} method+path pairs: all 401 JSON")


def test_the_health_probe_is_the_only_thing_answered_before_the_key_check():
    src = HANDLER.read_text()
    body = src[src.index("return async (req: Request): Promise<Response> => {") :]
    body = body[body.index("=> {") :]
    before_auth = body[: body.index("keyMatches(")]
    assert before_auth.count("return ") == 1 and "HEALTH_PATH" in before_auth
    assert re.search(r'const HEALTH_PATH = "/healthcheck";', src)
    assert re.search(r'req\.method === "GET" && "/" \+ segments\.join\("/"\) === HEALTH_PATH', before_auth)
    # the key is used in exactly two places: the startup check and keyMatches
    assert [m.group(0) for m in re.finditer(r"config\.apiKey[^)\n]*", src)] == [
        "config.apiKey",
        "config.apiKey",
    ]
    assert 'keyMatches(req.headers.get("x-api-key"), config.apiKey)' in src


# ----------------------------------------------------------------------------- constant time


def key_matches_source() -> str:
    src = HANDLER.read_text()
    start = src.index("export function keyMatches(")
    end = src.index("\n}\n", start)
    return src[start : end + 2]


def test_key_comparison_is_constant_time_by_construction():
    fn = key_matches_source()
    # the loop runs over every byte of the expected key whatever was given (the time depends on
    # the expected key's length only), accumulating differences ...
    loop = re.search(r"for \(let i = 0; i < b\.length; i\+\+\) diff \|= \(a\[i\] \?\? 0\) \^ b\[i\];", fn)
    assert loop, fn
    assert "const b = utf8.encode(expected);" in fn and "a.length !== b.length" in fn
    # ... with no early exit and no direct string comparison
    assert (
        "break" not in fn
        and fn.count("return") == 1
        and fn.rstrip().endswith("return Promise.resolve(diff === 0);\n}")
    )
    for bad in (
        "given === expected",
        "expected === given",
        "given == expected",
        ".startsWith(",
        "localeCompare",
        "a[i] !== b[i]",
        "a[i] != b[i]",
    ):
        assert bad not in fn, bad


def test_wrong_key_timings_are_recorded_as_a_figure(router):
    """Figures only (no assertion): median 401 latency per kind of wrong key on GET /version."""
    k = router.key
    kinds = {
        "first char wrong": "#" + k[1:],
        "last char wrong": k[:-1] + "#",
        "prefix": k[:-1],
        "1 char": "x",
        "10x longer": k * 10,
    }
    conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=10)
    times: dict[str, list[float]] = {name: [] for name in kinds}
    try:
        for _ in range(300):
            for name, key in kinds.items():
                t = time.perf_counter()
                conn.request("GET", "/version", headers={"x-api-key": key})
                r = conn.getresponse()
                r.read()
                times[name].append(time.perf_counter() - t)
                assert r.status == 401
    finally:
        conn.close()
    med = {name: statistics.median(v) * 1e6 for name, v in times.items()}
    figure(
        "auth timing (median us of a 401 over 300 tries, loopback, no assertion): "
        + ", ".join(f"{n} {m:.0f}" for n, m in med.items())
    )


# ----------------------------------------------------------------------------- secrets in logs and bodies


@pytest.fixture(scope="module")
def secret_pg():
    """A dedicated cluster with a distinctive password (it gets paused)."""
    with LocalPostgres(DEBIAN_BIN, password="pw-" + secrets.token_hex(12)) as pg:
        yield pg


def raw(r: requests.Response) -> str:
    return "\n".join(f"{k}: {v}" for k, v in r.headers.items()) + "\n" + r.text


def leaks(text: str, secrets_: list[str]) -> list[str]:
    return [s for s in secrets_ if s and s in text]


def test_no_secret_in_log_or_error_bodies(secret_pg):
    dsn = new_database(secret_pg)
    migrations.apply(dsn)
    password = secret_pg.password
    key = "key-" + secrets.token_urlsafe(24)
    secret_list = [key, dsn, password, quote(password, safe=""), dsn.split("@")[0], "postgresql://"]
    router = Router(dsn, key)
    answers: list[requests.Response] = []
    raw_answers: list[tuple[int, str, str]] = []
    try:
        s = router.session()
        u = router.url
        send = lambda m, p, **kw: answers.append(s.request(m, u + p, timeout=30, **kw)) or answers[-1]  # noqa: E731

        # bad input and client errors
        assert send("POST", "/flows/F", json={"user_name": "u"}).status_code == 200
        assert send("POST", "/flows/F", json={"user_name": "u"}).status_code == 409
        assert send("POST", "/flows/F/run", data=b"{not json").status_code == 400
        assert send("POST", "/flows/F/run", data=b"\xff\xfe").status_code == 400
        assert send("POST", "/flows/F/run", data="[" * 100 + "]" * 100).status_code == 400
        assert send("POST", "/flows/F/run", json={"run_number": "123"}).status_code == 400
        assert send("POST", "/flows/F/run", data=b"x" * (4 * 1024 * 1024 + 10)).status_code == 413
        for path in ["/flows/F/runs/%ZZ", "/flows/F/runs/a%00b", "/flows/F/runs/%ED%A0%80", "/flows/../ping"]:
            conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=30)
            try:  # sent as is (requests would re-encode or resolve these paths)
                conn.request("GET", path, headers={"x-api-key": key})
                resp = conn.getresponse()
                text = resp.read().decode(errors="replace")
                raw_answers.append((resp.status, "\n".join(f"{k}: {v}" for k, v in resp.getheaders()), text))
            finally:
                conn.close()
            assert raw_answers[-1][0] == 400, raw_answers[-1]
        assert send("GET", "/flows/Nope").status_code == 404
        assert send("GET", "/flows/F/runs/999/steps/s/tasks/1").status_code == 404
        assert send("GET", "/no/such/route").status_code == 404
        assert send("DELETE", "/flows/F").status_code == 405
        for name in ["missing", "wrong", "prefix"]:
            answers.append(requests.get(u + "/ping", **wrong_keys(key)[name], timeout=10))
            assert answers[-1].status_code == 401

        # an internal error: the operation's function is gone
        q(dsn, "alter function mfs_api.flows_list(jsonb, jsonb) rename to flows_list_gone")
        r = send("GET", "/flows")
        assert r.status_code == 500 and "internal error" in r.json()["message"]
        q(dsn, "alter function mfs_api.flows_list_gone(jsonb, jsonb) rename to flows_list")

        # a database outage
        secret_pg.pause()
        try:
            for m, p in [("GET", "/ping"), ("GET", "/flows/F"), ("POST", "/flows/G")]:
                r = send(m, p, json={} if m == "POST" else None)
                assert r.status_code == 503 and r.headers.get("retry-after"), (r.status_code, r.text)
        finally:
            secret_pg.resume()
        deadline = time.monotonic() + 30
        while send("GET", "/ping").status_code != 200:
            assert time.monotonic() < deadline, answers[-1].text
            time.sleep(0.5)
    finally:
        router.stop()
    log = router.log_text()
    assert "database unavailable" in log and "internal error" in log, log[-2000:]

    # a router given a wrong password, and one given an unreachable database
    bad_pw = "wrong-" + secrets.token_hex(10)
    bad_dsn = dsn.replace(f":{password}@", f":{bad_pw}@")
    closed = f"postgresql://postgres:{password}@127.0.0.1:{free_port()}/postgres"
    logs = [log]
    for target, expect in [(bad_dsn, 500), (closed, 503)]:
        r2 = Router(target, key)
        try:
            for p in ["/ping", "/flows"]:
                a = r2.session().get(r2.url + p, timeout=30)
                answers.append(a)
                assert a.status_code == expect, (target == bad_dsn, a.status_code, a.text)
        finally:
            r2.stop()
        logs.append(r2.log_text())
    everything = secret_list + [bad_pw, bad_dsn, closed]
    for a in answers:
        assert leaks(raw(a), everything) == [], (
            a.request.method,
            a.request.url[:80],
            a.status_code,
            a.text[:300],
        )
        if a.status_code >= 400:
            assert_json_message(a, a.status_code)
    for status, headers, text in raw_answers:
        assert leaks(headers + "\n" + text, everything) == [], text
    for text in logs:
        assert leaks(text, everything) == [], text[-3000:]
    figure(
        f"secrets: {len(answers) + len(raw_answers)} answers (statuses {sorted({a.status_code for a in answers})}) and "
        f"{len(logs)} router logs ({sum(len(t) for t in logs)} bytes) hold no key, password or DSN"
    )


# ----------------------------------------------------------------------------- python -m mfs local


def test_mfs_local_key_file_is_0600_and_the_key_is_never_printed(tmp_path):
    data_dir = tmp_path / "local"
    port, db_port = free_port(), free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", METAFLOW_HOME=str(tmp_path / "mfhome"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mfs",
            "local",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--db-port",
            str(db_port),
            "--postgres",
            "debian",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, lines = read_until(proc, "Ctrl-C stops", 180)
        assert "ready in" in out
        key_file = data_dir / "api-key"
        st = key_file.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        key = key_file.read_text().strip()
        assert len(key) >= 32
        assert key not in out  # it prints $(cat <file>), not the key
        assert f"METAFLOW_SERVICE_AUTH_KEY=$(cat {key_file})" in out
        assert (
            requests.get(f"http://127.0.0.1:{port}/ping", headers={"x-api-key": key}, timeout=10).status_code
            == 200
        )
        assert requests.get(f"http://127.0.0.1:{port}/ping", timeout=10).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    rest = drain(lines)
    assert proc.returncode == 0, rest[-2000:]
    assert "Traceback" not in rest
    assert not port_open(port) and not port_open(db_port)
    assert key not in rest


AUDIT = r"""
import os, stat, sys
from pathlib import Path
os.umask(0o022)   # the usual default
seen = []
def hook(event, args):
    if event == "os.chmod" and isinstance(args[0], (str, bytes, os.PathLike)):  # fchmod passes an fd
        p = Path(args[0])
        if p.name == "api-key" and p.exists():
            seen.append(stat.S_IMODE(p.stat().st_mode))
sys.addaudithook(hook)
import mfs.local_postgres
class Stop(Exception): pass
def start(self): raise Stop()   # stop right after the key file is written
mfs.local_postgres.LocalPostgres.start = start
from mfs.__main__ import main
try:
    main(["local", "--data-dir", sys.argv[1], "--postgres", "debian"])
except Stop:
    pass
print("modes before chmod:", seen)
print("final:", oct(stat.S_IMODE((Path(sys.argv[1]) / "api-key").stat().st_mode)))
"""


def test_mfs_local_key_file_is_never_readable_by_others(tmp_path):
    """The key file must be created 0600, not created with the umask's mode and chmod-ed after:
    in between, any local user may open it (and keep reading through that descriptor)."""
    res = subprocess.run(
        [sys.executable, "-c", AUDIT, str(tmp_path / "d")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "final: 0o600" in res.stdout
    modes = re.search(r"modes before chmod: \[(.*)\]", res.stdout).group(1)
    before = [int(m) for m in modes.split(",") if m.strip()]
    assert all(m & 0o077 == 0 for m in before), (
        f"the key file existed with mode {', '.join(oct(m) for m in before)} before it was chmod-ed to 0600"
    )


# ----------------------------------------------------------------------------- Supabase's roles

ROLES = ["anon", "authenticated", "service_role"]
SUPABASE_ROLES_SQL = """
create role anon nologin noinherit;
create role authenticated nologin noinherit;
create role service_role nologin noinherit bypassrls;
create role authenticator login noinherit password '{pw}';
grant anon, authenticated, service_role to authenticator;
"""
# what Supabase sets up in every project database (supabase/postgres initial schema)
SUPABASE_DB_SQL = """
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
"""


@pytest.fixture(scope="module")
def supabase_dbs():
    """A dedicated cluster (roles are cluster-wide) with three databases:
    'after'  - migrated before the Supabase roles existed, Supabase's grants applied after;
    'before' - Supabase's roles and default privileges first, then the migrations;
    'only0001' - like 'before' but with 0001 only (shows the default privileges do grant)."""
    with LocalPostgres(DEBIAN_BIN) as pg:
        after = new_database(pg)
        migrations.apply(after)
        assert not q(after, "select rolname from pg_roles where rolname = any($1)", ROLES)
        pw = secrets.token_hex(12)
        ex(pg.dsn, SUPABASE_ROLES_SQL.format(pw=pw))
        ex(after, SUPABASE_DB_SQL)
        before, only0001 = new_database(pg), new_database(pg)
        for d in (before, only0001):
            ex(d, SUPABASE_DB_SQL)
        migrations.apply(before)
        one = Path(tempfile.mkdtemp(prefix="mfs-sql-0001-"))
        shutil.copy(ROOT / "sql" / "0001_metaflow_tables.sql", one)
        try:
            migrations.apply(only0001, one)
        finally:
            shutil.rmtree(one)
        as_login = lambda d: d.replace("postgres:" + pg.password + "@", "authenticator:" + pw + "@")  # noqa: E731
        yield {
            "after": (after, as_login(after)),
            "before": (before, as_login(before)),
            "only0001": (only0001, as_login(only0001)),
        }


def test_supabase_default_privileges_would_expose_the_tables_without_0008(supabase_dbs):
    admin, _ = supabase_dbs["only0001"]
    rows = q(
        admin,
        "select bool_and(has_table_privilege('anon', 'public.' || t, 'select')) from unnest($1::text[]) t",
        TABLES,
    )
    assert rows[0][0] is True  # the test setup is realistic: 0008 has something to undo


def ex(dsn: str, sql: str) -> None:
    """Runs a script of several statements."""

    async def go():
        con = await asyncpg.connect(dsn)
        try:
            await con.execute(sql)
        finally:
            await con.close()

    run_sync(go())


def objects(admin: str):
    cols = {
        r[0]: r[1]
        for r in q(
            admin,
            "select distinct on (table_name) table_name, column_name "
            "from information_schema.columns where table_schema = 'public' "
            "order by table_name, ordinal_position",
        )
    }
    fns = q(
        admin,
        """select p.oid::regprocedure::text sig, n.nspname || '.' || p.proname fn,
                             coalesce((select string_agg('null::' || format_type(t, null), ', ' order by i)
                                         from unnest(p.proargtypes) with ordinality a(t, i)), '') args,
                             p.prorettype = 'trigger'::regtype is_trigger
                        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                       where n.nspname in ('mfs', 'mfs_api') and p.prokind = 'f'""",
    )
    seqs = [
        r[0]
        for r in q(
            admin,
            "select schemaname || '.' || sequencename from pg_sequences "
            "where schemaname in ('public', 'mfs', 'mfs_api')",
        )
    ]
    # tables and views (mfs.quota_usage is a view over mfs.quota_slots since 0020)
    mfs_tables = [
        r[0]
        for r in q(
            admin,
            "select schemaname || '.' || tablename from pg_tables "
            "where schemaname in ('mfs', 'mfs_api') union all "
            "select schemaname || '.' || viewname from pg_views "
            "where schemaname in ('mfs', 'mfs_api')",
        )
    ]
    return cols, fns, seqs, mfs_tables


@pytest.mark.parametrize("db", ["before", "after"])
@pytest.mark.parametrize("role", ROLES)
def test_supabase_roles_cannot_touch_the_data_or_the_api(supabase_dbs, db, role):
    admin, login = supabase_dbs[db]
    cols, fns, seqs, mfs_tables = objects(admin)
    assert set(TABLES) <= set(cols) and len(fns) >= 60 and len(seqs) >= 3 and "mfs.quota_usage" in mfs_tables
    assert any(f["fn"] == "mfs_api.call" for f in fns)

    statements = []
    for t in TABLES:
        c = cols[t]
        statements += [
            f"select * from public.{t}",
            f"insert into public.{t} default values",
            f"update public.{t} set {c} = {c}",
            f"delete from public.{t}",
            f"truncate public.{t}",
            f"select count(*) from public.{t}",
        ]
    statements += [f"select nextval('{s}')" for s in seqs] + [f"select last_value from {s}" for s in seqs]
    for t in mfs_tables:
        statements += [f"select * from {t}", f"delete from {t}"]
    statements += [f"select {f['fn']}({f['args']})" for f in fns if not f["is_trigger"]]
    statements += [
        "select * from mfs_api.call('default', 'ping', '{}', '{}')",
        "select mfs_api.set_quota_limits('default', null, null)",
    ]

    async def go():
        con = await asyncpg.connect(login)
        allowed, other = [], []
        try:
            assert await con.fetchval("select current_user") == "authenticator"
            await con.execute(f"set role {role}")
            assert await con.fetchval("select current_user") == role
            for sql in statements:
                try:
                    await con.execute(sql)
                    allowed.append(sql)
                except asyncpg.PostgresError as e:
                    if e.sqlstate != "42501":
                        other.append((sql, e.sqlstate, str(e)))
            return allowed, other
        finally:
            await con.close()

    allowed, other = run_sync(go())
    assert allowed == [] and other == [], (allowed[:10], other[:10])

    # the same by the catalog, and the second line of defence: row level security on
    privs = q(
        admin,
        """
        select 'table ' || t from unnest($2::text[]) t
         where has_table_privilege($1, 'public.' || t, 'select, insert, update, delete, truncate, references, trigger')
        union all
        select 'function ' || p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname in ('mfs', 'mfs_api') and has_function_privilege($1, p.oid, 'execute')
        union all
        select 'schema ' || s from unnest(array['mfs', 'mfs_api']) s
         where has_schema_privilege($1, s, 'usage') or has_schema_privilege($1, s, 'create')
        union all
        select 'sequence ' || s from (select (schemaname || '.' || sequencename) s from pg_sequences
                                       where schemaname in ('public', 'mfs', 'mfs_api')) x
         where has_sequence_privilege($1, s, 'usage, select, update')
        union all
        select 'no rls ' || c.relname from pg_class c
         where c.relnamespace = 'public'::regnamespace and c.relname = any($2::text[]) and not c.relrowsecurity
    """,
        role,
        TABLES,
    )
    assert [r[0] for r in privs] == []
    figure(f"supabase roles: {role} on the '{db}' database: {len(statements)} statements, all 42501")
