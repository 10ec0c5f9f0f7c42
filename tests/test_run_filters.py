"""Run list filters of the newest official service (issue 12, item 1): status, user, user_name,
ts_epoch and _tags in the `field:op=v1,v2` grammar, combined with each other and with paging;
bad filters are a 400 with a message; with no filter and no paging the complete plain list."""

import time

import pytest

from testkit import q


@pytest.fixture
def runs(api, migrated_db):
    """Five runs of flow F: {run_number: (user, tags, ts_epoch, status)}."""
    u = api.base
    assert api.post(f"{u}/flows/F", json={}).status_code == 200
    plan = {
        1: ("alice", ["a"], 1000, "completed"),
        2: ("bob", ["a", "b"], 2000, "failed"),
        3: ("alice", ["b"], 3000, "running"),
        4: (None, [], 4000, "failed"),  # carol, without the user:carol system tag
        5: ("alice", ["a", "b", "c"], 5000, "running"),
    }
    for n, (user, tags, ts, status) in plan.items():
        body = {"user_name": user or "carol", "tags": tags, "system_tags": [f"user:{user}"] if user else []}
        assert api.post(f"{u}/flows/F/run", json=body).json()["run_number"] == n
        if status in ("completed", "failed"):
            # the end step's verdict, as the client registers it
            api.post(f"{u}/flows/F/runs/{n}/steps/end/step", json={})
            t = api.post(f"{u}/flows/F/runs/{n}/steps/end/task", json={}).json()["task_id"]
            ok = api.post(
                f"{u}/flows/F/runs/{n}/steps/end/tasks/{t}/metadata",
                json=[
                    {
                        "field_name": "attempt_ok",
                        "value": str(status == "completed"),
                        "type": "internal_attempt_status",
                        "tags": ["attempt_id:0"],
                    }
                ],
            )
            assert ok.status_code == 200
        now_s = int(time.time())  # now, not at import: a long suite would make "running" stale
        q(
            migrated_db,
            "update runs_v3 set ts_epoch = $2, last_heartbeat_ts = $3 where run_number = $1",
            n,
            ts,
            now_s if status == "running" else now_s - 3600,
        )
    return plan


def numbers(reply):
    assert reply.status_code == 200, reply.text
    return [r["run_number"] for r in reply.json()]


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"status:eq": "running"}, [5, 3]),
        ({"status": "running"}, [5, 3]),  # a plain field means eq
        ({"status:eq": "completed,failed"}, [4, 2, 1]),  # values are OR-ed
        ({"status:ne": "failed"}, [5, 3, 1]),
        ({"user:eq": "alice"}, [5, 3, 1]),
        ({"user": "carol"}, []),  # user_name without the system tag is no owner
        ({"user:eq": "null"}, [4]),
        ({"user:ne": "alice"}, [2]),
        ({"user_name:eq": "carol"}, [4]),
        ({"ts_epoch:ge": "2000", "ts_epoch:lt": "5000"}, [4, 3, 2]),
        ({"ts_epoch:gt": "4000"}, [5]),
        ({"ts_epoch:le": "1000"}, [1]),
        ({"ts_epoch": "3000"}, [3]),
        ({"_tags:any": "b,c"}, [5, 3, 2]),
        ({"_tags:all": "a,b"}, [5, 2]),
        ({"_tags": "a,b"}, [5, 2]),  # _tags alone means all
        ({"_tags:any": "user:bob"}, [2]),  # system tags count too
        ({"user:eq": "alice", "status:eq": "running", "_tags:all": "c"}, [5]),
        ({"foo": "bar", "status:eq": "completed"}, [1]),  # unknown plain parameters are ignored
    ],
)
def test_filters(api, runs, params, expected):
    reply = api.get(f"{api.base}/flows/F/runs", params=params)
    assert numbers(reply) == expected
    has_status = any(k.split(":")[0] == "status" for k in params)
    for r in reply.json():
        assert r["user"] == runs[r["run_number"]][0]
        if has_status:
            assert r["status"] == runs[r["run_number"]][3]  # the derived status comes along
        else:
            assert "status" not in r


def test_no_filter_is_the_complete_plain_list(api, runs):
    reply = api.get(f"{api.base}/flows/F/runs", params={"foo": "bar"})
    assert numbers(reply) == [5, 4, 3, 2, 1] and "X-Next-Cursor" not in reply.headers


def test_filters_page_with_limit_and_cursor(api, runs):
    seen, cursor, pages = [], None, 0
    while True:
        params = {
            "user:eq": "alice",
            "_tags:any": "a,b",
            "_limit": 1,
            **({"_cursor": cursor} if cursor else {}),
        }
        page = api.get(f"{api.base}/flows/F/runs", params=params)
        seen += numbers(page)
        pages += 1
        cursor = page.headers.get("X-Next-Cursor")
        if not cursor:
            break
    assert seen == [5, 3, 1] and pages == 3
    # a cursor carries on the same walk with another filter too: older runs only
    first = api.get(f"{api.base}/flows/F/runs", params={"status:eq": "running", "_limit": 1})
    assert numbers(first) == [5]
    rest = api.get(
        f"{api.base}/flows/F/runs",
        params={"status:eq": "running,failed", "_cursor": first.headers["X-Next-Cursor"]},
    )
    assert numbers(rest) == [4, 3, 2]


def test_a_filter_alone_gives_pages_of_50(api, migrated_db):
    api.post(f"{api.base}/flows/G", json={})
    q(
        migrated_db,
        """insert into runs_v3 (flow_id, ts_epoch, system_tags, user_name)
                      select 'G', 1000 + i, '["user:u"]', 'u' from generate_series(1, 60) i""",
    )
    page = api.get(f"{api.base}/flows/G/runs", params={"user:eq": "u"})
    assert len(page.json()) == 50 and page.headers.get("X-Next-Cursor")
    rest = api.get(
        f"{api.base}/flows/G/runs", params={"user:eq": "u", "_cursor": page.headers["X-Next-Cursor"]}
    )
    assert len(rest.json()) == 10 and "X-Next-Cursor" not in rest.headers
    assert len(api.get(f"{api.base}/flows/G/runs").json()) == 60


@pytest.mark.parametrize(
    "query,says",
    [
        ("status:eq=bogus", "unsupported status filter: bogus"),
        ("status:eq=running,bogus", "unsupported status filter: bogus"),
        ("status:eq=", "needs a value"),
        ("ts_epoch:ge=abc", "expected integer epoch milliseconds, got 'abc'"),
        ("ts_epoch:ge=1.5", "expected integer epoch milliseconds"),
        ("ts_epoch:lt=null", "cannot compare with null"),
        ("ts_epoch:ge=1&ts_epoch:ge=2", "more than once"),
        ("status:xx=running", "unsupported filter status:xx"),
        ("user:co=al", "unsupported filter user:co"),
        ("_tags:likeany=a", "unsupported filter _tags:likeany"),
        ("ts_epoch:=1", "unsupported filter ts_epoch:"),
        ("run_id=x", "filtering on run_id is not supported"),
        ("tags:eq=a", "filtering on tags is not supported"),
        ("last_heartbeat_ts:ge=1", "filtering on last_heartbeat_ts is not supported"),
        ("status:eq=running&_cursor=garbage", "_cursor"),
        ("user:eq=alice&_limit=0", "_limit"),
    ],
)
def test_bad_filters_are_400_with_a_message(api, runs, query, says):
    reply = api.get(f"{api.base}/flows/F/runs?{query}")
    assert reply.status_code == 400, reply.text
    assert says in reply.json()["message"]
