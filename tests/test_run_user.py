"""Every run object carries `user`, the verified owner as the official service reports it:
user_name when the run has the system tag user:<user_name>, else null (issue 18)."""

from testkit import q


def test_every_run_reply_has_the_verified_owner(api, migrated_db):
    u = api.base
    assert api.post(f"{u}/flows/F", json={}).status_code == 200
    bodies = {
        "alice": {"user_name": "alice", "system_tags": ["user:alice", "metaflow_version:2.12.0"]},
        None: {"user_name": "sfn-scheduler", "system_tags": ["runtime:step-functions"]},
        "mismatch": {"user_name": "bob", "system_tags": ["user:carol"]},  # tag names someone else
        "untagged": {"user_name": "dave", "tags": ["user:dave"]},  # a user tag is not proof
        "nameless": {"system_tags": ["user:erin"]},
    }
    expected = {"alice": "alice", None: None, "mismatch": None, "untagged": None, "nameless": None}
    created = {}
    for label, body in bodies.items():
        reply = api.post(f"{u}/flows/F/run", json=body)
        assert reply.status_code == 200
        created[label] = reply.json()
        assert "user" in created[label] and created[label]["user"] == expected[label], (label, created[label])
    chosen = api.post(
        f"{u}/flows/F/run", json={"run_number": "argo-1", "user_name": "frank", "system_tags": ["user:frank"]}
    ).json()
    assert chosen["user"] == "frank"
    expected_by_run = {r["run_number"]: expected[label] for label, r in created.items()}
    expected_by_run["argo-1"] = "frank"

    for label, run in created.items():
        assert api.get(f"{u}/flows/F/runs/{run['run_number']}").json()["user"] == expected[label]
    assert api.get(f"{u}/flows/F/runs/argo-1").json()["user"] == "frank"
    for params in ({}, {"_limit": 2}):
        seen, cursor = {}, None
        while True:
            page = api.get(f"{u}/flows/F/runs", params={**params, **({"_cursor": cursor} if cursor else {})})
            seen.update({r["run_number"]: r["user"] for r in page.json()})
            cursor = page.headers.get("X-Next-Cursor")
            if not cursor:
                break
        assert seen == expected_by_run, params
    # a derived value: nothing new is stored
    assert [
        c
        for (c,) in q(
            migrated_db,
            "select column_name from information_schema.columns "
            "where table_name = 'runs_v3' and column_name = 'user'",
        )
    ] == []
