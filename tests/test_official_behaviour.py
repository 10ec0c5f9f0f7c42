"""Details of the official metadata service (2.5.x) that its own API tests check and the
Metaflow client does not: reply shapes of batch POSTs, errors under missing parents, heartbeat
bookkeeping, system tags in tag mutation, latest-attempt artifact lists."""

import time

from testkit import make_task, q

NEED = {"message": "need to register run_id and task_id first"}


def test_batch_posts_answer_counts(api):
    r, t = make_task(api)
    base = f"{api.base}/flows/F/runs/{r}/steps/start/tasks/{t}"
    md = [{"field_name": "a", "value": "1", "type": "a"}, {"field_name": "b", "value": "2", "type": "b"}]
    assert api.post(f"{base}/metadata", json=md).json() == {"metadata_created": 2}
    assert api.post(f"{base}/metadata", json=md).json() == {"metadata_created": 2}  # duplicates are allowed
    art = [{"name": n, "location": "/x", "ds_type": "local", "sha": n, "attempt_id": 0} for n in ("A", "B")]
    assert api.post(f"{base}/artifact", json=art).json() == {"artifacts_created": 2}
    assert api.post(f"{base}/artifact", json=art).json() == {"artifacts_created": 0}
    assert api.post(f"{base}/artifact", json=[{**art[0], "attempt_id": 1}]).json() == {"artifacts_created": 1}


def test_batch_posts_under_missing_parents_are_400_need_to_register(api):
    r, t = make_task(api)
    rows = [{"field_name": "a", "value": "1", "type": "a"}]
    for path in (
        f"NoFlow/runs/{r}/steps/start/tasks/{t}",
        f"F/runs/999999/steps/start/tasks/{t}",
        f"F/runs/{r}/steps/nonexistent/tasks/{t}",
        f"F/runs/{r}/steps/start/tasks/999999",
    ):
        for what, body in (
            ("metadata", rows),
            ("artifact", [{"name": "x", "location": "l", "ds_type": "local"}]),
        ):
            res = api.post(f"{api.base}/flows/{path}/{what}", json=body)
            assert (res.status_code, res.json()) == (400, NEED), (path, what)


def test_lists_under_missing_parents_are_empty_and_single_gets_404(api):
    r, t = make_task(api)
    u = api.base
    for path in (
        "/flows/NoFlow/runs",
        "/flows/F/runs/999999/steps",
        f"/flows/F/runs/{r}/steps/nope/tasks",
        f"/flows/F/runs/{r}/steps/start/tasks/999999/metadata",
        f"/flows/F/runs/{r}/steps/start/tasks/999999/artifacts",
        "/flows/F/runs/999999/artifacts",
        f"/flows/F/runs/{r}/steps/nope/filtered_tasks",
    ):
        res = api.get(u + path)
        assert (res.status_code, res.json()) == (200, []), path
    for path in (
        "/flows/NoFlow",
        "/flows/F/runs/999999",
        f"/flows/F/runs/{r}/steps/nope",
        f"/flows/F/runs/{r}/steps/start/tasks/999999",
        f"/flows/F/runs/{r}/steps/start/tasks/{t}/artifacts/nope",
    ):
        assert api.get(u + path).status_code == 404, path
    # a bad id is still a 400 before anything is looked up
    assert api.get(f"{u}/flows/{'a' * 256}/runs").status_code == 400
    assert api.get(f"{u}/flows/F/runs/{r}/steps/{'a' * 256}/artifacts").status_code == 400
    assert api.get(f"{u}/flows/F/runs/{r}/steps/start/tasks/{t}/attempt/x/artifacts").status_code == 400


def test_heartbeat_capable_clients_start_with_a_heartbeat_and_tasks_keep_the_run_alive(api, migrated_db):
    u = api.base
    api.post(f"{u}/flows/H", json={})
    new = api.post(f"{u}/flows/H/run", json={"system_tags": ["metaflow_version:2.2.12"]}).json()
    old = api.post(f"{u}/flows/H/run", json={"system_tags": ["metaflow_version:2.0.5"]}).json()
    none = api.post(f"{u}/flows/H/run", json={}).json()
    assert (
        new["last_heartbeat_ts"] is not None
        and old["last_heartbeat_ts"] is None
        and none["last_heartbeat_ts"] is None
    )
    r = old["run_number"]
    api.post(f"{u}/flows/H/runs/{r}/steps/s/step", json={})
    task = api.post(
        f"{u}/flows/H/runs/{r}/steps/s/task", json={"system_tags": ["metaflow_version:2.19.39"]}
    ).json()
    assert task["last_heartbeat_ts"] is not None
    assert abs(api.get(f"{u}/flows/H/runs/{r}").json()["last_heartbeat_ts"] - time.time()) < 5  # seconds
    q(migrated_db, "update runs_v3 set last_heartbeat_ts = 1 where run_number = $1", r)
    assert (
        api.post(f"{u}/flows/H/runs/{r}/steps/s/tasks/{task['task_id']}/heartbeat", data="{}").status_code
        == 200
    )
    assert api.get(f"{u}/flows/H/runs/{r}").json()["last_heartbeat_ts"] > 1
    assert api.post(f"{u}/flows/H/runs/999999/heartbeat", data="{}").status_code == 404


def test_adding_a_system_tag_is_silently_skipped(api):
    r, _ = make_task(api)  # the run has system tag user:u
    res = api.patch(f"{api.base}/flows/F/runs/{r}/tag/mutate", json={"tags_to_add": ["user:u", "mine"]})
    assert res.status_code == 200 and "user:u" not in res.json()["tags"] and "mine" in res.json()["tags"]


def test_step_and_run_artifact_lists_show_each_tasks_latest_attempt(api):
    r, t = make_task(api)
    t2 = api.post(f"{api.base}/flows/F/runs/{r}/steps/start/task", json={}).json()["task_id"]
    row = lambda name, a: {
        "name": name,
        "location": "/x",
        "ds_type": "local",
        "sha": f"{name}{a}",
        "attempt_id": a,
    }
    base = f"{api.base}/flows/F/runs/{r}/steps/start/tasks"
    api.post(f"{base}/{t}/artifact", json=[row("A", 0), row("B", 0), row("A", 1)])
    api.post(f"{base}/{t2}/artifact", json=[row("C", 0)])
    for path in (f"/flows/F/runs/{r}/artifacts", f"/flows/F/runs/{r}/steps/start/artifacts"):
        res = api.get(api.base + path)
        assert res.status_code == 200, res.text
        got = sorted((a["task_id"], a["name"], a["attempt_id"]) for a in res.json())
        assert got == sorted([(t, "A", 1), (t2, "C", 0)]), path


def test_filtered_tasks_with_a_pattern_alone_searches_every_field(api):
    r, t = make_task(api)
    t2 = api.post(f"{api.base}/flows/F/runs/{r}/steps/start/task", json={}).json()["task_id"]
    base = f"{api.base}/flows/F/runs/{r}/steps/start"
    api.post(f"{base}/tasks/{t}/metadata", json=[{"field_name": "field_b", "value": "value_b", "type": "x"}])
    api.post(
        f"{base}/tasks/{t2}/metadata", json=[{"field_name": "field_a", "value": "not_value_a", "type": "x"}]
    )
    assert api.get(f"{base}/filtered_tasks", params={"pattern": "value_b"}).json() == [f"F/{r}/start/{t}"]
    assert api.get(f"{base}/filtered_tasks", params={"pattern": "value_"}).json() == [
        f"F/{r}/start/{t}",
        f"F/{r}/start/{t2}",
    ]


def test_filtered_tasks_without_parameters_lists_the_tasks_that_have_metadata(api):
    r, t = make_task(api)
    quiet = api.post(f"{api.base}/flows/F/runs/{r}/steps/start/task", json={}).json()["task_id"]
    named = api.post(f"{api.base}/flows/F/runs/{r}/steps/start/task", json={"task_id": "t-named"}).json()[
        "task_id"
    ]
    base = f"{api.base}/flows/F/runs/{r}/steps/start"
    for task in (t, named):
        api.post(f"{base}/tasks/{task}/metadata", json=[{"field_name": "f", "value": "v", "type": "x"}])
    # the official service answers from the metadata table: a task without metadata is not listed
    assert api.get(f"{base}/filtered_tasks").json() == [f"F/{r}/start/{t}", f"F/{r}/start/t-named"]
    assert f"F/{r}/start/{quiet}" not in api.get(f"{base}/filtered_tasks", params={"pattern": ""}).json()


def test_steps_show_run_number_as_a_string_tasks_as_an_integer(api):
    r, t = make_task(api)
    u = api.base
    assert isinstance(r, int)
    created = api.post(f"{u}/flows/F/runs/{r}/steps/end/step", json={}).json()
    steps = [
        created,
        api.get(f"{u}/flows/F/runs/{r}/steps/start").json(),
        *api.get(f"{u}/flows/F/runs/{r}/steps").json(),
        *api.get(f"{u}/flows/F/runs/{r}/steps", params={"_limit": 1}).json(),
    ]
    assert len(steps) == 5 and all(s["run_number"] == str(r) for s in steps), steps
    assert api.get(f"{u}/flows/F/runs/{r}/steps/start/tasks/{t}").json()["run_number"] == r
    assert api.get(f"{u}/flows/F/runs/{r}/steps/start/tasks").json()[0]["run_number"] == r
    # a client-chosen run id was already a string, and stays the same
    api.post(f"{u}/flows/F/run", json={"run_number": "argo-7"})
    assert api.post(f"{u}/flows/F/runs/argo-7/steps/s/step", json={}).json()["run_number"] == "argo-7"
