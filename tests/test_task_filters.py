"""Task list filters of the newest official service (issue 12, item 2): ts_epoch and user_name
in the `field:op=v1,v2` grammar, with paging; bad filters are a 400."""

import pytest

from testkit import make_task, q


@pytest.fixture
def step_tasks(api, migrated_db):
    """Step start of run r with six tasks: ts_epoch 1000..6000, users a, b, a, b, a, none."""
    r, first = make_task(api)
    ids = [first] + [
        api.post(f"{api.base}/flows/F/runs/{r}/steps/start/task", json={}).json()["task_id"] for _ in range(5)
    ]
    for i, t in enumerate(ids):
        q(
            migrated_db,
            "update tasks_v3 set ts_epoch = $2, user_name = $3 where task_id = $1",
            t,
            1000 * (i + 1),
            [None, "a", "b"][0 if i == 5 else 1 + i % 2],
        )
    return f"{api.base}/flows/F/runs/{r}/steps/start/tasks", ids


def ts(reply):
    assert reply.status_code == 200, reply.text
    return [t["ts_epoch"] for t in reply.json()]


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"ts_epoch:ge": "2000", "ts_epoch:le": "4000"}, [4000, 3000, 2000]),
        ({"ts_epoch:gt": "5000"}, [6000]),
        ({"ts_epoch:lt": "2000"}, [1000]),
        ({"ts_epoch": "3000,5000"}, [5000, 3000]),
        ({"user_name:eq": "a"}, [5000, 3000, 1000]),
        ({"user_name": "b", "ts_epoch:ge": "3000"}, [4000]),
        ({"user_name:ne": "a"}, [4000, 2000]),
        ({"user_name:eq": "null"}, [6000]),
        ({"whatever": "x"}, [6000, 5000, 4000, 3000, 2000, 1000]),
    ],
)
def test_task_filters(api, step_tasks, params, expected):
    url, _ = step_tasks
    reply = api.get(url, params=params)
    assert ts(reply) == expected
    assert all(t["tags"] == ["t1"] for t in reply.json())  # the run's tags, as on the plain list


def test_task_filters_page(api, step_tasks):
    url, ids = step_tasks
    seen, cursor = [], None
    while True:
        page = api.get(
            url, params={"user_name:eq": "a,b", "_limit": 2, **({"_cursor": cursor} if cursor else {})}
        )
        seen += ts(page)
        cursor = page.headers.get("X-Next-Cursor")
        if not cursor:
            break
    assert seen == [5000, 4000, 3000, 2000, 1000]
    plain = api.get(url)
    assert "X-Next-Cursor" not in plain.headers and len(plain.json()) == 6


@pytest.mark.parametrize(
    "query,says",
    [
        ("ts_epoch:ge=soon", "expected integer epoch milliseconds"),
        ("ts_epoch:gt=", "needs a value"),
        ("user_name:co=a", "unsupported filter user_name:co"),
        ("task_name=x", "filtering on task_name is not supported"),
        ("last_heartbeat_ts:ge=1", "filtering on last_heartbeat_ts is not supported"),
        ("user_name=a&user_name=b", "more than once"),
        ("status:eq=running", None),  # not a task filter: ignored
    ],
)
def test_bad_task_filters(api, step_tasks, query, says):
    url, _ = step_tasks
    reply = api.get(f"{url}?{query}")
    if says is None:
        assert reply.status_code == 200 and len(reply.json()) == 6
    else:
        assert reply.status_code == 400 and says in reply.json()["message"], reply.text
