"""2. Fuzzing every route of openapi.yaml against a live router and database.

Requests are generated with hypothesis from the OpenAPI document (paths, methods, path and
query parameters, request bodies) plus hostile variants: malformed percent-encoding, `..`
and `.` segments, NUL, lone surrogates, SQL and quote characters, very long ids, huge and
deeply nested bodies, invalid UTF-8 and invalid JSON. They go out over a raw HTTP/1.1
connection (http.client), so nothing normalises the path on the way.

Asserted for every request: no 5xx; every 4xx has a JSON body {"message": str}; and after
every rejected request (4xx) the six Metaflow tables are unchanged (fingerprint: row count and
newest xmin of each table, taken after every request; plus a full md5 digest around phases
that only send requests that must be rejected). Each phase is a test of its own on one seeded
router and database; within a phase, failures are collected (not raised at once) so that one
run reports every distinct problem.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import itertools
import json
import re
import secrets
import time
from urllib.parse import quote

import asyncpg
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mfs import migrations
from testkit import Router, new_database
from .kit import OPENAPI, TABLES, digest, figure

pytestmark = pytest.mark.long

FINGERPRINT_SQL = " union all ".join(
    f"select '{t}', count(*), coalesce(max(xmin::text::bigint), 0) from public.{t}" for t in TABLES
)

WEIRD_SEGMENTS = [
    "..",
    ".",
    "%2e%2e",
    "%2E%2e",
    ".%2e",
    "%2e",
    "%00",
    "a%00b",
    "%ZZ",
    "%",
    "%F",
    "%FF",
    "%C3%28",
    "%ED%A0%80",
    "%F0%9F%92%A5",
    "'",
    '"',
    "''",
    "%22%27",
    "';drop table flows_v3;--",
    "1;select pg_sleep(1)",
    "$$",
    "\\",
    "%5C",
    "NaN",
    "-1",
    "0",
    "00",
    "1.5",
    "1e3",
    "+1",
    "99999999999999999999",
    "999999999999999999",
    "9223372036854775808",
    "\u0661\u0662",
    "ﬁ",
    "\U0001f4a5",
    "a" * 255,
    "a" * 256,
    "a" * 5000,
    "%2F",
    "%3F",
    "%23",
    "%25",
    "%2525",
    "%20",
    "null",
    "undefined",
    "{}",
    "[]",
    "__proto__",
    "constructor",
    "\u202e",
    "\ufeff",
    "\t",
]


def enc(s: str, raw_quotes: bool) -> str:
    """Percent-encode a segment; keep quote characters raw half of the time."""
    if "%" in s and re.fullmatch(r"(%[0-9A-Za-z]{0,2}|[^%])*", s) and s in WEIRD_SEGMENTS:
        return s  # deliberately (mal)formed percent-encoding, sent as is
    return quote(s, safe="'\"$;!*()" if raw_quotes else "")


class Fuzzer:
    def __init__(self, router, dsn):
        self.router, self.dsn = router, dsn
        self.host, self.port = "127.0.0.1", router.port
        self.conn = None
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self.failures: dict[str, str] = {}
        self.loop = asyncio.new_event_loop()
        self.db = self.loop.run_until_complete(asyncpg.connect(dsn))
        self.last = self.fingerprint()
        self.rejected_checked = 0

    def close(self):
        self.loop.run_until_complete(self.db.close())
        self.loop.close()
        if self.conn:
            self.conn.close()

    def fingerprint(self):
        return tuple(tuple(r) for r in self.loop.run_until_complete(self.db.fetch(FINGERPRINT_SQL)))

    def fail(self, kind: str, detail: str):
        self.failures.setdefault(kind, detail[:600])

    def send(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        hdrs = {"x-api-key": self.router.key, **(headers or {})}
        if body is not None:
            hdrs.setdefault("content-type", "application/json")
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                status = resp.status
                if resp.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                break
            except (http.client.HTTPException, ConnectionError, OSError) as e:
                if self.conn:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    self.fail(f"connection error {type(e).__name__}", f"{method} {path[:200]}")
                    return None
        self.sent += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        what = f"{method} {path[:300]} body={body[:200] if body else body!r} -> {status} {data[:300]!r}"
        if status >= 500:
            self.fail(f"{status} {data[:120]!r}", what)
        if 400 <= status < 500 and method != "HEAD":
            try:
                msg = json.loads(data)["message"]
                assert isinstance(msg, str) and msg
            except Exception:
                self.fail(f"non-JSON {status}", what)
        now = self.fingerprint()
        if 400 <= status < 500:
            self.rejected_checked += 1
            if now != self.last:
                self.fail(f"data changed by a rejected request ({status})", what + f" {self.last} -> {now}")
        self.last = now
        return status, data


# ---------------------------------------------------------------------------- strategies
def json_values(max_leaves=20):
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=40)
        | st.sampled_from(["", "'", '"', "\\", "\u202e", "a" * 300, "attempt_id:0", "user:x"])
    )
    return st.recursive(
        scalars,
        lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=10), c, max_size=5),
        max_leaves=max_leaves,
    )


names = st.text(min_size=1, max_size=40) | st.sampled_from(WEIRD_SEGMENTS)
tag_lists = st.lists(st.text(max_size=30), max_size=5) | json_values(5)


def object_create():
    return st.fixed_dictionaries(
        {},
        optional={
            "user_name": json_values(3),
            "tags": tag_lists,
            "system_tags": tag_lists,
            "run_number": json_values(3) | names,
            "task_id": json_values(3) | names,
            "extra": json_values(5),
        },
    )


def md_row():
    return st.fixed_dictionaries(
        {},
        optional={
            "field_name": names | json_values(3),
            "value": json_values(5),
            "type": names | json_values(2),
            "user_name": json_values(2),
            "tags": tag_lists,
            "system_tags": tag_lists,
        },
    )


def art_row():
    return st.fixed_dictionaries(
        {},
        optional={
            "name": names | json_values(2),
            "location": names | json_values(2),
            "ds_type": names | json_values(2),
            "sha": json_values(2),
            "type": json_values(2),
            "content_type": json_values(2),
            "attempt_id": st.integers(-5, 70000)
            | json_values(2)
            | st.sampled_from(["0", "1", "x", "01", "99999"]),
            "user_name": json_values(2),
            "tags": tag_lists,
            "system_tags": tag_lists,
        },
    )


def body_for(op_id: str):
    if op_id in ("metadata_create",):
        return st.lists(md_row(), max_size=6) | json_values()
    if op_id in ("artifact_create",):
        return st.lists(art_row(), max_size=6) | json_values()
    if op_id == "run_tag_mutate":
        return (
            st.fixed_dictionaries({}, optional={"tags_to_add": tag_lists, "tags_to_remove": tag_lists})
            | json_values()
        )
    return object_create() | json_values()


def cursor_values():
    raw = st.sampled_from(
        [
            '[1, "x"]',
            "[1, 1]",
            "[1e400, 1]",
            '["a", 1]',
            "[1, 1, 1]",
            "[1.5, 1.5]",
            "[99999999999999999999999, 1]",
            '[1, "\\u0000"]',
            "[1, 1e400]",
            "{}",
            "null",
            '[1, "\\ud800"]',
            "[-1, -9223372036854775809]",
        ]
    )
    return (
        raw.map(lambda s: base64.urlsafe_b64encode(s.encode()).decode())
        | st.text(max_size=30)
        | st.sampled_from(["%00", "%FF", "====", "", "!!"])
    )


QUERY_VALUES = {
    "_limit": st.sampled_from(
        ["0", "1", "2", "500", "501", "-1", "abc", "1.5", "", "99999999999", "%00", " 1"]
    ),
    "_cursor": cursor_values(),
    "metadata_field_name": names | st.sampled_from(["attempt", "%00"]),
    "pattern": st.sampled_from(
        [
            "(",
            "[",
            "*",
            "a{99999}",
            "\\",
            "(?<=a)b",
            "^.*$",
            ".*",
            "(a|b)*c",
            "[[:alpha:]]",
            "\\1",
            "(?P<n>x)",
            "%00",
            "a{1,1000}{1,1000}",
        ]
    )
    | st.text(max_size=20),
}


class Spec:
    def __init__(self, seeds):
        doc = yaml.safe_load(OPENAPI.read_text())
        comp = doc["components"]["parameters"]
        self.ops = []
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method in ("parameters",):
                    continue
                params = [
                    comp[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
                    for p in item.get("parameters", []) + op.get("parameters", [])
                ]
                self.ops.append(
                    {
                        "path": path,
                        "method": method.upper(),
                        "id": op["operationId"],
                        "query": [p["name"] for p in params if p["in"] == "query"],
                        "body": "requestBody" in op,
                    }
                )
        self.seeds = seeds

    def segment(self, name):
        good = st.sampled_from(self.seeds[name]) if name in self.seeds else st.nothing()
        return st.one_of(good, good, good, names, st.sampled_from(WEIRD_SEGMENTS))


@st.composite
def spec_request(draw, spec: Spec):
    op = draw(st.sampled_from(spec.ops))
    raw_quotes = draw(st.booleans())
    path = re.sub(r"\{(\w+)\}", lambda m: enc(draw(spec.segment(m.group(1))), raw_quotes), op["path"])
    method = draw(st.sampled_from([op["method"]] * 8 + ["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"]))
    qs = []
    for name in op["query"] + draw(
        st.lists(st.sampled_from(["_limit", "x", "_cursor", "pattern"]), max_size=1)
    ):
        if draw(st.booleans()):
            v = draw(QUERY_VALUES.get(name, st.text(max_size=10)))
            # a value that is already percent-encoded goes as it is; anything a client could not
            # put on the request line (control characters, spaces) is encoded like the rest
            raw = v.startswith("%") and v.isascii() and v.isprintable() and " " not in v
            qs.append(f"{name}={v if raw else quote(v, safe='')}")
    if qs:
        path += "?" + "&".join(qs)
    body = None
    if method in ("POST", "PATCH", "PUT") and draw(st.integers(0, 9)) > 0:
        body = json.dumps(draw(body_for(op["id"])), ensure_ascii=draw(st.booleans())).encode(
            "utf-8", "surrogatepass"
        )
    return method, path, body


@st.composite
def garbage_path(draw, spec: Spec):
    """Paths that must not match any route with usable ids: every one must be a 4xx."""
    op = draw(st.sampled_from(spec.ops))
    segs = op["path"].strip("/").split("/")
    # one placeholder is a segment the router must refuse (or the path gets a bogus shape)
    holes = [i for i, s in enumerate(segs) if s.startswith("{")]
    kind = draw(st.integers(0, 4))
    out = [draw(st.sampled_from(spec.seeds.get(s[1:-1], ["x"]))) if s.startswith("{") else s for s in segs]
    if kind == 0 and holes:
        out[draw(st.sampled_from(holes))] = draw(
            st.sampled_from(["%00", "%ZZ", "%FF", "%ED%A0%80", "%C3%28", "%", "a%00b"])
        )
    elif kind == 1:
        # (only segments no route accepts: a plain word could complete a real route, e.g. /flows/zzz)
        out.insert(draw(st.integers(0, len(out))), draw(st.sampled_from(["", "%2e", ".", "%00"])))
    elif kind == 2:
        out.append(draw(st.sampled_from(["%00", "..%2f..", "%FF", "%2e%2e"])))
    elif kind == 3 and holes:
        out[draw(st.sampled_from(holes))] = "a" * draw(st.integers(256, 3000))
    else:
        out = [draw(st.text(min_size=1, max_size=8).map(lambda s: quote(s, safe=""))) for _ in out] + ["x%00"]
    method = draw(st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE"]))
    return method, "/" + "/".join(out), None


def hostile_bodies():
    """Bodies that must all be refused by any POST/PATCH route."""
    deep = lambda d, o, c: (o * d + c * d).encode()
    return [
        deep(33, "[", "]"),
        deep(100, "[", "]"),
        deep(10_000, "[", "]"),
        deep(200_000, "[", "]"),
        ('{"a":' * 33 + "1" + "}" * 33).encode(),
        ('{"a":' * 50_000 + "1" + "}" * 50_000).encode(),
        b'{"tags": ["\\u0000"]}',
        b'[{"field_name": "x\\u0000", "value": "v"}]',
        b'{"user_name": "a\\u0000b"}',
        b"\xff\xfe{}",
        b'{"a": "\xc3\x28"}',
        b"\xed\xa0\x80",
        b"{",
        b"[",
        b'{"a":}',
        b"NaN",
        b"Infinity",
        b"{'a': 1}",
        b'{"a": 1} trailing',
        b"\x00",
        b"\x00{}",
        b"[1,]",
        b'{"a":1,}',
        b"01",
        b"--1",
        b" " * 10 + b"{",
        b'"unterminated',
        b"\\",
        b"\xef\xbb\xbf{}",
        b"[" + b"1," * (2 * 1024 * 1024) + b"1]",  # > 4 MiB
        b'"' + b"a" * (4 * 1024 * 1024 + 10) + b'"',
    ]


def hostile_for(op_id: str) -> list[bytes]:
    """Well-formed JSON that the given operation must refuse (400)."""
    common = [
        b'{"tags": "notalist"}',
        b'{"tags": [1, 2]}',
        b'{"system_tags": {"a": 1}}',
        b'{"user_name": {}}',
        b'{"user_name": ["x"]}',
        b"[]",
        b"1",
        b'"str"',
        b"true",
        b'{"tags": ["\\ud800"]}',
        b'{"user_name": "' + b"u" * 300 + b'"}',
        b'{"tags": [null]}',
    ]
    if op_id == "metadata_create":
        return [
            b"{}",
            b'[{"value": "v"}]',
            b'[{"field_name": "f"}]',
            b'[{"field_name": "f", "value": null}]',
            b"[1]",
            b'[{"field_name": "f", "value": "v"}, 2]',
            b'[{"field_name": {}, "value": "v"}]',
            b'[{"field_name": "f", "value": "v", "tags": "x"}]',
            b'[{"field_name": "f", "value": "\\ud800"}]',
            b'[{"field_name": "f", "value": "v", "user_name": "' + b"u" * 300 + b'"}]',
            b"null",
        ]
    if op_id == "artifact_create":
        ok = '"name": "n", "location": "l", "ds_type": "local"'
        return [
            b"{}",
            b'[{"name": "n"}]',
            ('[{%s, "attempt_id": -1}]' % ok).encode(),
            ('[{%s, "attempt_id": 99999}]' % ok).encode(),
            ('[{%s, "attempt_id": "x"}]' % ok).encode(),
            ('[{%s, "attempt_id": 1.5}]' % ok).encode(),
            ('[{%s, "attempt_id": 40000}]' % ok).encode(),
            ('[{%s, "tags": 3}]' % ok).encode(),
            ('[{"name": "' + "n" * 300 + '", "location": "l", "ds_type": "d"}]').encode(),
            ("[{%s}, 5]" % ok).encode(),
            b"null",
        ]
    if op_id == "run_tag_mutate":
        return [
            b'{"tags_to_add": "x"}',
            b'{"tags_to_remove": [1]}',
            b'{"tags_to_add": [{}]}',
            b"[]",
            b"7",
            b'{"tags_to_remove": ["user:u"]}',
        ]
    if op_id == "run_create":
        return common + [
            b'{"run_number": "123"}',
            b'{"run_number": 5}',
            b'{"run_number": {}}',
            b'{"run_number": "' + b"r" * 300 + b'"}',
        ]
    if op_id == "task_create":
        return common + [
            b'{"task_id": "123"}',
            b'{"task_id": 7}',
            b'{"task_id": []}',
            b'{"task_id": "' + b"t" * 300 + b'"}',
        ]
    if op_id in ("flow_create", "step_create"):
        return common
    return []


# ---------------------------------------------------------------------------- the phases
def seed(api):
    u = api.base
    assert api.post(f"{u}/flows/Seed", json={"user_name": "u", "system_tags": ["user:u"]}).status_code == 200
    r1 = api.post(
        f"{u}/flows/Seed/run", json={"user_name": "u", "tags": ["keep"], "system_tags": ["user:u"]}
    ).json()["run_number"]
    assert (
        api.post(
            f"{u}/flows/Seed/run", json={"run_number": "argo-seed", "system_tags": ["user:u"]}
        ).status_code
        == 200
    )
    tasks = []
    for r in (r1, "argo-seed"):
        assert api.post(f"{u}/flows/Seed/runs/{r}/steps/start/step", json={}).status_code == 200
        t = api.post(f"{u}/flows/Seed/runs/{r}/steps/start/task", json={}).json()["task_id"]
        assert (
            api.post(f"{u}/flows/Seed/runs/{r}/steps/start/task", json={"task_id": "t-seed"}).status_code
            == 200
        )
        for tid in (t, "t-seed"):
            base = f"{u}/flows/Seed/runs/{r}/steps/start/tasks/{tid}"
            assert (
                api.post(
                    base + "/metadata",
                    json=[
                        {"field_name": "attempt", "value": "0", "type": "attempt", "tags": ["attempt_id:0"]}
                    ],
                ).status_code
                == 200
            )
            assert (
                api.post(
                    base + "/artifact",
                    json=[{"name": "x", "location": "/l", "ds_type": "local", "sha": "s", "attempt_id": 0}],
                ).status_code
                == 200
            )
        tasks.append(t)
    return {
        "flow_id": ["Seed"],
        "run_number": [str(r1), "argo-seed"],
        "step_name": ["start"],
        "task_id": [str(t) for t in tasks] + ["t-seed"],
        "name": ["x", "_task_ok"],
        "attempt_id": ["0", "1"],
    }


class Campaign:
    """One router and database for the whole module, seeded once; each test is one phase and
    checks its own requests (the Fuzzer's failures are reset between phases)."""

    def __init__(self, pg):
        self.dsn = new_database(pg)
        migrations.apply(self.dsn)
        self.router = Router(self.dsn, secrets.token_urlsafe(24))
        api = self.router.session()
        api.base = self.router.url
        self.seeds = seed(api)
        self.spec = Spec(self.seeds)
        self.fz = Fuzzer(self.router, self.dsn)

    def close(self):
        self.fz.close()
        self.router.stop()

    def run(self, phase: str, send_all) -> int:
        """Runs one phase; asserts every request got an answer, no failure was found and the
        router logged no internal error. Returns how many requests were sent."""
        fz, offset, sent, started = self.fz, len(self.router.log_text()), self.fz.sent, time.monotonic()
        fz.failures = {}
        attempted = send_all()
        n, elapsed = fz.sent - sent, time.monotonic() - started
        figure(
            f"fuzz {phase}: {n} requests in {elapsed:.0f}s; statuses so far {dict(sorted(fz.statuses.items()))}"
        )
        assert not fz.failures, f"fuzzing ({phase}) found problems:\n" + "\n".join(
            f"* {k}: {v}" for k, v in fz.failures.items()
        )
        assert n == attempted, f"{attempted - n} of {attempted} requests got no answer"
        log = self.router.log_text()[offset:]
        assert "internal error" not in log, log[-2000:]
        return n


@pytest.fixture(scope="module")
def campaign(pg15):
    c = Campaign(pg15)
    yield c
    c.close()


CFG = dict(
    deadline=None,
    database=None,
    derandomize=False,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def generated(strategy, examples: int, send) -> int:
    """Sends `examples` requests drawn from `strategy`; returns how many were drawn."""
    drawn = []

    @settings(max_examples=examples, **CFG)
    @given(strategy)
    def each(req):
        drawn.append(1)
        send(req)

    each()
    assert len(drawn) >= examples, f"hypothesis drew {len(drawn)} of {examples} requests"
    return len(drawn)


def test_generated_requests_of_every_documented_operation(campaign):
    assert campaign.run(
        "spec-driven", lambda: generated(spec_request(campaign.spec), 6000, lambda r: campaign.fz.send(*r))
    )


def refused(campaign, what: str, req) -> None:
    res = campaign.fz.send(*req)
    if res and res[0] < 400:
        campaign.fz.fail(f"{what} accepted", f"{req[0]} {req[1][:200]} {(req[2] or b'')[:120]!r} -> {res}")


def test_garbage_paths_are_refused_and_change_no_stored_row(campaign):
    before = digest(campaign.dsn)
    campaign.run(
        "garbage paths",
        lambda: generated(garbage_path(campaign.spec), 1500, lambda r: refused(campaign, "garbage path", r)),
    )
    assert digest(campaign.dsn) == before


def test_every_weird_segment_in_every_parameter(campaign):
    seeds, fz = campaign.seeds, campaign.fz

    def send_all():
        n = 0
        for op in campaign.spec.ops:
            for hole in re.findall(r"\{(\w+)\}", op["path"]):
                for weird, raw in itertools.product(WEIRD_SEGMENTS, (False, True)):
                    path = re.sub(
                        r"\{(\w+)\}",
                        lambda m: enc(weird, raw)
                        if m.group(1) == hole
                        else quote(seeds[m.group(1)][0], safe=""),
                        op["path"],
                    )
                    body = (
                        b"{}"
                        if op["method"] in ("POST", "PATCH")
                        and op["id"] not in ("metadata_create", "artifact_create")
                        else (b"[]" if op["method"] == "POST" else None)
                    )
                    fz.send(op["method"], path, body)
                    n += 1
        return n

    assert campaign.run("weird segments", send_all) > 1000


def test_hostile_bodies_are_refused_and_change_no_stored_row(campaign):
    before = digest(campaign.dsn)

    def send_all():
        n = 0
        for op in campaign.spec.ops:
            if op["method"] not in ("POST", "PATCH"):
                continue
            path = re.sub(r"\{(\w+)\}", lambda m: campaign.seeds[m.group(1)][0], op["path"])
            bodies = hostile_bodies()
            if op["id"] not in ("run_heartbeat", "task_heartbeat"):
                bodies += hostile_for(op["id"])
            for b in bodies:
                refused(campaign, f"hostile body of {op['id']}", (op["method"], path, b))
                n += 1
        return n

    assert campaign.run("hostile bodies", send_all) > 100
    assert digest(campaign.dsn) == before


def test_generated_bodies_of_every_write_operation(campaign):
    seeds = campaign.seeds
    writes = [op for op in campaign.spec.ops if op["method"] in ("POST", "PATCH")]

    def send(arg):
        op, body, which = arg
        path = re.sub(
            r"\{(\w+)\}",
            lambda m: quote(seeds[m.group(1)][which % len(seeds[m.group(1)])], safe=""),
            op["path"],
        )
        campaign.fz.send(op["method"], path, json.dumps(body).encode())

    strategy = st.sampled_from(writes).flatmap(
        lambda op: st.tuples(st.just(op), body_for(op["id"]), st.sampled_from([0, 1, 2]))
    )
    assert campaign.run("write bodies", lambda: generated(strategy, 2500, send))
