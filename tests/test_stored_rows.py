"""Stored rows as the official service stores them (issue 12, item 7). The same requests the
Metaflow client sends are replayed; each stored row is compared, column by column, with the row
the official service writes for them (its create handlers: json.dumps of absent tags is JSON
null, psycopg2 turns a Python list into a Postgres array, one insert and one timestamp per row,
a step's run_id is str(run_number), documented defaults for absent fields)."""

import json

from testkit import q


def rows(dsn, table, cols):
    return [dict(r) for r in q(dsn, f"select {cols} from public.{table} order by 1, 2")]


def test_rows_match_what_the_official_service_stores(api, migrated_db):
    u = api.base
    api.post(f"{u}/flows/F", json={"user_name": "u"})  # no tags at all
    r = api.post(f"{u}/flows/F/run", json={"user_name": "u", "tags": None, "system_tags": ["user:u"]}).json()[
        "run_number"
    ]
    api.post(f"{u}/flows/F/runs/{r}/steps/start/step", json={"system_tags": ["user:u"]})  # no user_name
    t = api.post(f"{u}/flows/F/runs/{r}/steps/start/task", json={"user_name": "u"}).json()["task_id"]
    base = f"{u}/flows/F/runs/{r}/steps/start/tasks/{t}"
    api.post(
        f"{base}/metadata",
        json=[
            {
                "field_name": "attempt",
                "value": "0",
                "type": "attempt",
                "user_name": "u",
                "tags": ["attempt_id:0"],
            },
            {"field_name": "foreach-stack", "value": ["items=2"], "type": "foreach-stack", "user_name": "u"},
            {"field_name": "odd", "value": ["a b", "c,d", 'e"f', 3], "type": "x"},
            {"field_name": "no-type", "value": "v"},
        ],
    )
    api.post(
        f"{base}/artifact",
        json=[
            {
                "name": n,
                "location": f"/ds/{n}",
                "ds_type": "local",
                "sha": n,
                "type": "metaflow.artifact",
                "content_type": "gzip+pickle-v4",
                "user_name": "u",
                "attempt_id": 0,
            }
            for n in ("a", "b", "c")
        ]
        + [{"name": "bare", "location": "/ds/bare", "ds_type": "local"}],
    )

    assert rows(migrated_db, "flows_v3", "flow_id, tags, system_tags") == [
        {"flow_id": "F", "tags": "null", "system_tags": "null"}
    ]
    assert rows(migrated_db, "runs_v3", "run_number, run_id, tags, system_tags") == [
        {"run_number": r, "run_id": None, "tags": "null", "system_tags": json.dumps(["user:u"])}
    ]
    assert rows(migrated_db, "steps_v3", "step_name, run_id, user_name, tags") == [
        {"step_name": "start", "run_id": str(r), "user_name": "", "tags": "null"}
    ]
    assert rows(migrated_db, "tasks_v3", "task_id, run_id, tags, system_tags") == [
        {"task_id": t, "run_id": None, "tags": "null", "system_tags": "null"}
    ]
    md = {
        m["field_name"]: m
        for m in rows(migrated_db, "metadata_v3", "field_name, value, type, tags, system_tags, ts_epoch")
    }
    assert md["attempt"]["tags"] == json.dumps(["attempt_id:0"]) and md["attempt"]["system_tags"] == "null"
    assert md["foreach-stack"]["value"] == "{items=2}"
    assert md["odd"]["value"] == '{"a b","c,d","e\\"f",3}'  # Postgres array quoting
    assert md["no-type"]["type"] == " "
    stamps = [md[f]["ts_epoch"] for f in ("attempt", "foreach-stack", "odd", "no-type")]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4  # one stamp per row, in batch order
    arts = {
        a["name"]: a
        for a in rows(migrated_db, "artifact_v3", "name, sha, type, content_type, user_name, ts_epoch, tags")
    }
    assert [arts[n]["ts_epoch"] for n in ("a", "b", "c", "bare")] == sorted(
        {arts[n]["ts_epoch"] for n in arts}
    )
    assert {k: arts["bare"][k] for k in ("sha", "type", "content_type", "user_name", "tags")} == {
        "sha": " ",
        "type": " ",
        "content_type": " ",
        "user_name": " ",
        "tags": "null",
    }

    # replies are unchanged: absent tags read as lists, list values as the stored text
    assert api.get(f"{u}/flows/F").json()["tags"] == []
    assert api.get(f"{u}/flows/F/runs/{r}").json()["tags"] == []
    assert api.get(f"{base}").json()["system_tags"] == ["user:u"]  # the run's
    assert api.patch(f"{u}/flows/F/runs/{r}/tag/mutate", json={"tags_to_add": ["x"]}).json() == {
        "tags": ["x"]
    }
    reply = {m["field_name"]: m for m in api.get(f"{base}/metadata").json()}
    assert reply["foreach-stack"]["value"] == "{items=2}" and reply["no-type"]["tags"] == []
