"""Paging as the newest official service has it (issue 12, items 3 and 4): _limit above 500 is
clamped to 500; run metadata, run artifacts and step artifacts are paged like every other list
(newest first, X-Next-Cursor), and stay complete lists without _limit/_cursor."""

import pytest

from testkit import make_task, q


def walk(api, url, limit, **params):
    """Every page of a list: (rows in page order, page sizes)."""
    rows, sizes, cursor = [], [], None
    while True:
        page = api.get(url, params={**params, "_limit": limit, **({"_cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        rows += page.json()
        sizes.append(len(page.json()))
        cursor = page.headers.get("X-Next-Cursor")
        if not cursor:
            return rows, sizes


def test_limit_above_500_is_clamped(api, migrated_db):
    api.post(f"{api.base}/flows/F", json={})
    q(migrated_db, "insert into runs_v3 (flow_id, ts_epoch) select 'F', i from generate_series(1, 503) i")
    for limit in ("501", "100000", "9" * 30):
        page = api.get(f"{api.base}/flows/F/runs", params={"_limit": limit})
        assert page.status_code == 200 and len(page.json()) == 500, limit
        rest = api.get(
            f"{api.base}/flows/F/runs", params={"_limit": limit, "_cursor": page.headers["X-Next-Cursor"]}
        )
        assert [r["ts_epoch"] for r in rest.json()] == [3, 2, 1]
    assert len(api.get(f"{api.base}/flows", params={"_limit": 501}).json()) == 1
    for bad in ("0", "-1", "abc", "1.5", ""):
        reply = api.get(f"{api.base}/flows/F/runs", params={"_limit": bad})
        assert reply.status_code == 400 and "_limit" in reply.json()["message"], bad


@pytest.fixture
def run_with_two_steps(api, migrated_db):
    """Run r: steps start (tasks t1, t2) and end (t3); 3 metadata rows and artifacts x, y per
    task; t2 has a second attempt that stored only x (so its latest-attempt list is [x])."""
    u = api.base
    r, t1 = make_task(api)
    t2 = api.post(f"{u}/flows/F/runs/{r}/steps/start/task", json={}).json()["task_id"]
    api.post(f"{u}/flows/F/runs/{r}/steps/end/step", json={})
    t3 = api.post(f"{u}/flows/F/runs/{r}/steps/end/task", json={}).json()["task_id"]
    for step, t in (("start", t1), ("start", t2), ("end", t3)):
        base = f"{u}/flows/F/runs/{r}/steps/{step}/tasks/{t}"
        api.post(
            f"{base}/metadata", json=[{"field_name": f"m{i}", "value": str(i), "type": "x"} for i in range(3)]
        )
        api.post(
            f"{base}/artifact",
            json=[
                {"name": n, "location": f"/{t}/{n}", "ds_type": "local", "attempt_id": 0} for n in ("x", "y")
            ],
        )
    api.post(
        f"{u}/flows/F/runs/{r}/steps/start/tasks/{t2}/artifact",
        json=[{"name": "x", "location": f"/{t2}/x1", "ds_type": "local", "attempt_id": 1}],
    )
    # distinct, known times so that "newest first" is checkable
    q(migrated_db, "update artifact_v3 set ts_epoch = 1000 * task_id + attempt_id * 10 + ascii(name)")
    q(migrated_db, "update metadata_v3 set ts_epoch = 1000 + (id % 5)")  # ties broken by id
    return r, (t1, t2, t3)


def test_run_metadata_pages(api, run_with_two_steps):
    r, _ = run_with_two_steps
    url = f"{api.base}/flows/F/runs/{r}/metadata"
    complete = api.get(url)
    assert "X-Next-Cursor" not in complete.headers and len(complete.json()) == 9
    rows, sizes = walk(api, url, 4)
    assert sizes == [4, 4, 1]
    assert rows == complete.json()
    keys = [(m["ts_epoch"], m["id"]) for m in rows]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize("scope", ["run", "step"])
def test_run_and_step_artifacts_pages(api, run_with_two_steps, scope):
    r, (t1, t2, t3) = run_with_two_steps
    url = f"{api.base}/flows/F/runs/{r}" + ("/steps/start" if scope == "step" else "") + "/artifacts"
    complete = api.get(url).json()
    expected = {(t1, "x", 0), (t1, "y", 0), (t2, "x", 1)} | (
        {(t3, "x", 0), (t3, "y", 0)} if scope == "run" else set()
    )
    assert {(a["task_id"], a["name"], a["attempt_id"]) for a in complete} == expected
    rows, sizes = walk(api, url, 2)
    assert sizes == ([2, 2, 1] if scope == "run" else [2, 1])
    assert sorted(map(str, rows)) == sorted(map(str, complete))
    keys = [(a["ts_epoch"], a["task_id"], a["name"]) for a in rows]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize("path", ["metadata", "artifacts", "steps/start/artifacts"])
def test_bad_cursors_on_the_newly_paged_lists(api, run_with_two_steps, path):
    r, _ = run_with_two_steps
    url = f"{api.base}/flows/F/runs/{r}/{path}"
    # a cursor of another list's shape is refused too
    other = api.get(
        f"{api.base}/flows/F/runs/{r}/" + ("artifacts" if path == "metadata" else "metadata"),
        params={"_limit": 1},
    ).headers["X-Next-Cursor"]
    for cursor in ("garbage", other):
        reply = api.get(url, params={"_cursor": cursor})
        assert reply.status_code == 400 and "_cursor" in reply.json()["message"], cursor
