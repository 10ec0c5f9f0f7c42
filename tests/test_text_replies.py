"""The complete runs list is built as JSON text (sql/0031): its reply is byte for byte the one
the jsonb path wrote (jsonb_agg of mfs.run_json, cast to text), on runs holding every awkward
value a run can hold; paged and filtered lists still agree with it."""

from __future__ import annotations

import json

import pytest

from mfs import migrations
from testkit import new_database, q

FLOW = "TextFlow"

# (run_id, user_name, ts_epoch, last_heartbeat_ts, tags, system_tags): tags and system tags as
# jsonb text, None for SQL null
RUNS = [
    (None, "alice", 1000, 5, '["a", "b"]', '["user:alice", "runtime:dev"]'),
    (None, None, 2000, None, None, None),  # no user, no tags at all
    (None, "bob", 2000, 7, "null", "null"),  # JSON null tags (as the official service stores them)
    ("named-run", "carol", 3000, 9, "[]", '["user:someone-else"]'),  # a client-chosen run id
    (
        'quo"te\\back',
        "Zoë 日本",
        4000,
        11,
        '["é", "🚀", "tab\\tnew\\nline", "ctl\\u0001", "sep\\u2028", "quo\\"te", "back\\\\slash"]',
        '["user:Zoë 日本", "metaflow_version:2.19"]',
    ),
    (None, "dave\n", 5000, 12, '[1, 2.50, true, null, {"k": {"z": 1, "a": [1e3]}}]', '["user:dave\\n"]'),
    (None, "eve", 5000, None, '["same ts as the run before"]', '{"not": "a list"}'),
    (None, "", 6000, 0, '[""]', '["user:"]'),
]

OLD_COMPLETE_LIST = """
    select coalesce(jsonb_agg(mfs.run_json(r) order by r.ts_epoch desc, r.run_number desc), '[]')::text
      from public.runs_v3 r where r.flow_id = $1
"""


def call(dsn: str, op: str, args: dict, scope: str = "text") -> tuple[int, str, str | None]:
    (row,) = q(
        dsn,
        "select status, body, next_cursor from mfs_api.call($1, $2, $3::text::jsonb, null)",
        scope,
        op,
        json.dumps(args),
    )
    return row["status"], row["body"], row["next_cursor"]


@pytest.fixture
def db(any_pg) -> str:
    dsn = new_database(any_pg)
    migrations.apply(dsn)
    q(dsn, "insert into public.flows_v3 (flow_id, user_name, ts_epoch) values ($1, 'u', 1)", FLOW)
    q(dsn, "insert into public.flows_v3 (flow_id, user_name, ts_epoch) values ('EmptyFlow', 'u', 1)")
    for run_id, user, ts, hb, tags, sys_tags in RUNS:
        q(
            dsn,
            "insert into public.runs_v3 (flow_id, run_id, user_name, ts_epoch, last_heartbeat_ts, tags, system_tags)"
            " values ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)",
            FLOW,
            run_id,
            user,
            ts,
            hb,
            tags,
            sys_tags,
        )
    return dsn


def test_the_complete_list_is_the_jsonb_paths_text_byte_for_byte(db):
    (ref,) = q(db, OLD_COMPLETE_LIST, FLOW)
    status, body, cursor = call(db, "runs_list", {"flow_id": FLOW})
    assert (status, cursor) == (200, None)
    assert body == ref[0]
    runs = json.loads(body)
    assert len(runs) == len(RUNS)
    # the awkward values made it through as values
    named = next(r for r in runs if r["run_number"] == 'quo"te\\back')
    assert named["user"] == "Zoë 日本" and "🚀" in named["tags"] and "sep\u2028" in named["tags"]
    bare = next(r for r in runs if r["run_number"] == 2)
    assert bare["tags"] == [] and bare["system_tags"] == [] and bare["user"] is None
    assert bare["user_name"] is None and bare["last_heartbeat_ts"] is None
    # the jsonb operation (for callers of mfs.dispatch) answers the same value
    (jb,) = q(db, "select (mfs_api.runs_list($1::jsonb, null)).body::text", json.dumps({"flow_id": FLOW}))
    assert jb[0] == ref[0]


def test_empty_and_missing_flows_list_nothing(db):
    assert call(db, "runs_list", {"flow_id": "EmptyFlow"}) == (200, "[]", None)
    assert call(db, "runs_list", {"flow_id": "NoSuchFlow"}) == (200, "[]", None)


def test_pages_and_filters_agree_with_the_complete_list(db):
    complete = json.loads(call(db, "runs_list", {"flow_id": FLOW})[1])
    pages, cursor = [], None
    while True:
        args = {"flow_id": FLOW, "_limit": "3", **({"_cursor": cursor} if cursor else {})}
        status, body, cursor = call(db, "runs_list", args)
        assert status == 200
        pages += json.loads(body)
        if cursor is None:
            break
    assert pages == complete
    status, body, _ = call(db, "runs_list", {"flow_id": FLOW, "user:eq": "alice"})
    assert status == 200 and json.loads(body) == [r for r in complete if r["user"] == "alice"]
    # a bad filter is still refused, whatever path answers the plain list
    status, body, _ = call(db, "runs_list", {"flow_id": FLOW, "ts_epoch:ge": "soon"})
    assert status == 400 and "message" in json.loads(body)


def test_an_egress_saving_of_this_month_is_taken_off_the_count(db):
    """The router's `_egress_saved` argument (sql/0031): of the database's month it is taken off
    the request's count; of another month, or malformed, it is ignored; it reaches no operation."""
    (month,) = q(db, "select to_char(mfs.current_month(), 'YYYY-MM')")
    month = month[0]

    def used(scope):
        rows = q(db, "select egress_bytes from mfs.quota_usage where scope = $1", scope)
        return rows[0][0] if rows else 0

    _, body, _ = call(db, "runs_list", {"flow_id": FLOW}, scope="plain")
    size = len(body.encode())
    assert used("plain") == size
    _, body2, _ = call(db, "runs_list", {"flow_id": FLOW, "_egress_saved": f"{month}:1000"}, scope="saved")
    assert body2 == body  # the argument is no filter
    assert used("saved") == size - 1000
    # a saving larger than the reply: the count goes down by it (it was counted before)
    call(db, "ping", {"_egress_saved": f"{month}:{size}"}, scope="saved")
    assert used("saved") == size - 1000 - size + len('"pong"')
    for stale in ["1999-01:500", f"{month}:12x", f"{month}", "500", f"{month}:1234567890123456789"]:
        before = used("other")
        call(db, "ping", {"_egress_saved": stale}, scope="other")
        assert used("other") == before + len('"pong"'), stale
