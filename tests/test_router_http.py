"""The router over real HTTP: a real Deno process in front of a real, migrated PostgreSQL."""

import gzip
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from testkit import Router, make_task, q


def test_ping_answers_with_the_version_header(api):
    r = api.get(f"{api.base}/ping")
    assert r.status_code == 200
    assert r.headers["METADATA_SERVICE_VERSION"] == "2.5.1"


def test_health_probe_needs_no_key_but_everything_else_does(router, migrated_db):
    anon = requests.Session()
    assert anon.get(f"{router.url}/healthcheck").json()["status"] == "UP"
    for method, path in [
        ("GET", "/ping"),
        ("GET", "/flows"),
        ("POST", "/flows/X"),
        ("GET", "/usage"),
        ("PATCH", "/flows/X/runs/1/tag/mutate"),
        ("GET", "/nonexistent"),
    ]:
        for key in (None, "wrong-key", router.key + "x"):
            s = router.session(key)
            r = s.request(method, router.url + path, json={})
            assert r.status_code == 401, (method, path, key)
            assert "x-api-key" in r.json()["message"]
    # refused calls never reach the quota ledger
    assert q(migrated_db, "select count(*) from mfs.quota_usage")[0][0] == 0


def test_get_or_create_objects_and_conflicts(api):
    u = api.base
    assert api.get(f"{u}/flows/F").status_code == 404
    r, t = make_task(api)
    assert isinstance(r, int) and isinstance(t, int)
    again = api.post(f"{u}/flows/F", json={})
    assert again.status_code == 409 and "already exists" in again.json()["message"]
    run = api.get(f"{u}/flows/F/runs/{r}").json()
    assert run["tags"] == ["t1"] and run["system_tags"] == ["user:u"] and run["ts_epoch"] > 1e12
    # a second task without a task_id is never a conflict
    t2 = api.post(f"{u}/flows/F/runs/{r}/steps/start/task", json={}).json()["task_id"]
    assert t2 != t
    tasks = api.get(f"{u}/flows/F/runs/{r}/steps/start/tasks").json()
    assert sorted(x["task_id"] for x in tasks) == sorted([t, t2])


def test_client_chosen_string_ids(api):
    u = api.base
    r, _ = make_task(api, run_body={"run_number": "argo-abc", "user_name": "u", "system_tags": ["user:u"]})
    assert r == "argo-abc"
    assert api.post(f"{u}/flows/F/run", json={"run_number": "argo-abc"}).status_code == 409
    assert api.post(f"{u}/flows/F/run", json={"run_number": "123"}).status_code == 400
    t = api.post(f"{u}/flows/F/runs/argo-abc/steps/start/task", json={"task_id": "t-1a2b"}).json()
    assert t["task_id"] == "t-1a2b" and t["run_number"] == "argo-abc"
    dup = api.post(f"{u}/flows/F/runs/argo-abc/steps/start/task", json={"task_id": "t-1a2b"})
    assert dup.status_code == 409
    assert api.get(f"{u}/flows/F/runs/argo-abc/steps/start/tasks/t-1a2b").json()["task_id"] == "t-1a2b"


def test_heartbeats_answer_a_json_encoded_string_and_record_seconds(api, migrated_db):
    u = api.base
    r, t = make_task(api)
    for path in (f"/flows/F/runs/{r}/heartbeat", f"/flows/F/runs/{r}/steps/start/tasks/{t}/heartbeat"):
        resp = api.post(u + path, data=b"{}")
        assert resp.status_code == 200
        assert json.loads(resp.json()) == {"wait_time_in_seconds": 10}
    run_hb = q(migrated_db, "select last_heartbeat_ts from runs_v3")[0][0]
    task_hb = q(migrated_db, "select last_heartbeat_ts from tasks_v3")[0][0]
    now_s = q(migrated_db, "select extract(epoch from now())::bigint")[0][0]
    assert abs(run_hb - now_s) < 60 and abs(task_hb - now_s) < 60
    assert api.post(f"{u}/flows/F/runs/999/heartbeat", data=b"{}").status_code == 404


def test_metadata_and_artifacts_per_attempt(api):
    u = api.base
    r, t = make_task(api)
    base = f"{u}/flows/F/runs/{r}/steps/start/tasks/{t}"
    md = [
        {"field_name": "attempt", "value": "0", "type": "attempt", "tags": ["attempt_id:0"]},
        {"field_name": "foreach-stack", "value": [{"a": 1}], "type": "foreach-stack"},
    ]
    assert api.post(f"{base}/metadata", json=md).status_code == 200
    art = lambda a, sha: {
        "name": "x",
        "location": f"/ds/{sha}",
        "ds_type": "local",
        "sha": sha,
        "type": "metaflow.artifact",
        "content_type": "gzip+pickle-v4",
        "attempt_id": a,
    }
    assert (
        api.post(f"{base}/artifact", json=[art(0, "s0"), {**art(0, "s0"), "name": "only0"}]).status_code
        == 200
    )
    assert api.get(f"{base}/artifacts/x").json()["sha"] == "s0"
    # attempt 1 starts: latest reads no longer show attempt 0's artifacts
    api.post(
        f"{base}/metadata",
        json=[{"field_name": "attempt", "value": "1", "type": "attempt", "tags": ["attempt_id:1"]}],
    )
    assert api.get(f"{base}/artifacts/x").status_code == 404
    api.post(f"{base}/artifact", json=[art(1, "s1")])
    assert api.get(f"{base}/artifacts/x").json()["sha"] == "s1"
    assert [a["name"] for a in api.get(f"{base}/artifacts").json()] == ["x"]
    assert api.get(f"{base}/artifacts/x/attempt/0").json()["sha"] == "s0"
    assert sorted(a["name"] for a in api.get(f"{base}/attempt/0/artifacts").json()) == ["only0", "x"]
    assert api.get(f"{base}/artifacts/x/attempt/7").status_code == 404
    assert api.get(f"{base}/artifacts/x/attempt/-1").status_code == 400
    rows = api.get(f"{base}/metadata").json()
    assert len(rows) == 3 and {m["field_name"] for m in rows} == {"attempt", "foreach-stack"}
    assert json.loads([m for m in rows if m["field_name"] == "foreach-stack"][0]["value"]) == [{"a": 1}]


def test_filtered_tasks(api):
    u = api.base
    r, t = make_task(api)
    t2 = api.post(f"{u}/flows/F/runs/{r}/steps/start/task", json={}).json()["task_id"]
    for task, v in ((t, "apple"), (t2, "banana")):
        api.post(
            f"{u}/flows/F/runs/{r}/steps/start/tasks/{task}/metadata",
            json=[{"field_name": "fruit", "value": v, "type": "x"}],
        )
    f = f"{u}/flows/F/runs/{r}/steps/start/filtered_tasks"
    assert api.get(f, params={"metadata_field_name": "fruit", "pattern": "^(?:apple)$"}).json() == [
        f"F/{r}/start/{t}"
    ]
    assert api.get(f, params={"metadata_field_name": "fruit", "pattern": "an"}).json() == [
        f"F/{r}/start/{t2}"
    ]
    assert len(api.get(f).json()) == 2
    bad = api.get(f, params={"metadata_field_name": "fruit", "pattern": "("})
    assert bad.status_code == 400 and "regular expression" in bad.json()["message"]


def test_tag_mutation_protects_system_tags_and_is_safe_concurrently(api):
    u = api.base
    r, _ = make_task(api)
    m = f"{u}/flows/F/runs/{r}/tag/mutate"
    res = api.patch(m, json={"tags_to_add": ["a", "b"], "tags_to_remove": ["t1"]})
    assert res.status_code == 200 and res.json() == {"tags": ["a", "b"]}
    assert api.patch(m, json={"tags_to_remove": ["user:u"]}).status_code == 422
    assert api.patch(m, json={"tags_to_add": "notalist"}).status_code == 400
    with ThreadPoolExecutor(16) as ex:
        codes = list(ex.map(lambda i: api.patch(m, json={"tags_to_add": [f"c{i}"]}).status_code, range(40)))
    assert codes == [200] * 40
    tags = api.get(f"{u}/flows/F/runs/{r}").json()["tags"]
    assert set(tags) == {"a", "b"} | {f"c{i}" for i in range(40)}
    # steps and tasks show the run's current tags
    assert set(api.get(f"{u}/flows/F/runs/{r}/steps/start").json()["tags"]) == set(tags)


def test_cursor_pagination_is_opt_in_and_newest_first(api):
    u = api.base
    api.post(f"{u}/flows/F", json={})
    made = [api.post(f"{u}/flows/F/run", json={}).json()["run_number"] for _ in range(7)]
    full = api.get(f"{u}/flows/F/runs")
    assert "X-Next-Cursor" not in full.headers and len(full.json()) == 7
    seen, cursor = [], None
    while True:
        page = api.get(f"{u}/flows/F/runs", params={"_limit": 3, **({"_cursor": cursor} if cursor else {})})
        assert page.status_code == 200 and len(page.json()) <= 3
        seen += [x["run_number"] for x in page.json()]
        cursor = page.headers.get("X-Next-Cursor")
        if not cursor:
            break
    assert seen == list(reversed(made))
    assert api.get(f"{u}/flows/F/runs", params={"_limit": 0}).status_code == 400
    assert api.get(f"{u}/flows/F/runs", params={"_cursor": "garbage"}).status_code == 400


@pytest.mark.parametrize(
    "method,path,body,status",
    [
        ("POST", "/flows/F", "{not json", 400),
        ("POST", "/flows/F", "[1,2]", 400),
        ("POST", "/flows/F", json.dumps({"tags": "x"}), 400),
        ("POST", "/flows/" + "x" * 300, "{}", 400),
        ("POST", "/flows/F", "[" * 5000 + "]" * 5000, 400),
        ("POST", "/flows/F", json.dumps({"user_name": "a\u0000b"}), 400),
        ("POST", "/flows/F", '{"tags": ["\\ud800"]}', 400),  # lone surrogate: jsonb cannot hold it
        ("POST", "/flows/F", '{"a\\u0000": 1}', 400),  # NUL in a key
        ("POST", "/flows/F", b"\xef\xbb\xbf{}", 400),  # byte-order mark is not JSON
        ("GET", "/flows?_limit=%00", None, 400),  # NUL in a query parameter
        ("GET", "/flows/F/runs/1/steps/s/tasks/1/artifacts/x/attempt/abc", None, 400),
        ("GET", "/no/such/route", None, 404),
        ("DELETE", "/flows/F", None, 405),
        ("POST", "/flows/F/runs/1/steps/s/tasks/1/metadata", json.dumps([{"value": "v"}]), 400),
    ],
)
def test_bad_input_gets_a_json_4xx(api, method, path, body, status):
    r = api.request(method, api.base + path, data=body)
    assert r.status_code == status, r.text
    assert isinstance(r.json()["message"], str)


def test_too_large_body_is_413(api):
    r = api.post(f"{api.base}/flows/F", data=b'{"x": "' + b"a" * (5 * 1024 * 1024) + b'"}')
    assert r.status_code == 413 and "exceeds" in r.json()["message"]


def test_path_prefix(migrated_db):
    router = Router(migrated_db, "key", prefix="/functions/v1/metadata-router")
    try:
        s = router.session()
        assert s.get(f"{router.url}/ping").status_code == 200
        assert s.post(f"{router.url}/flows/P", json={}).status_code == 200
        assert s.get(f"{router.url}/flows").json()[0]["flow_id"] == "P"
    finally:
        router.stop()


def test_usage_route_counts_this_month(api):
    for _ in range(3):
        api.get(f"{api.base}/ping")
    usage = api.get(f"{api.base}/usage").json()
    # the usage shown was read before this request itself was counted
    assert usage["requests"] == 3 and usage["egress_bytes"] > 0 and usage["month"] and usage["resets_at"]


@pytest.mark.parametrize(
    "path,says",
    [
        ("/flows/%ZZ", "percent-encoding"),
        ("/usage/%2e", "'.'"),  # a URL parser would silently resolve these to /usage
        ("/flows/F/runs/%2E%2e/steps", "'..'"),
        ("/flows/F/./runs", "'.'"),
        ("/usage/", "empty"),
        (
            "/flows/..%2f..",
            "'/'",
        ),  # an id with a '/' would break pathspecs             # no trailing-slash aliases (the official service has none)
    ],
)
def test_malformed_and_dot_segment_paths_are_400(router, path, says):
    import http.client

    con = http.client.HTTPConnection("127.0.0.1", router.port, timeout=10)
    con.request("GET", path, headers={"x-api-key": router.key})  # http.client sends the path untouched
    resp = con.getresponse()
    assert resp.status == 400 and says in json.loads(resp.read())["message"]


def test_large_replies_are_gzipped_for_clients_that_accept_it(api):
    u = api.base
    assert api.post(f"{u}/flows/GzipFlow", json={"user_name": "u"}).status_code == 200
    for _ in range(20):
        assert (
            api.post(
                f"{u}/flows/GzipFlow/run", json={"user_name": "u", "system_tags": ["user:u"]}
            ).status_code
            == 200
        )
    plain = api.get(f"{u}/flows/GzipFlow/runs", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and len(plain.content) >= 1024
    assert plain.headers["vary"] == "accept-encoding"
    # as the Metaflow client asks (requests' default header): gzip on the wire, same JSON
    raw = api.get(f"{u}/flows/GzipFlow/runs", headers={"Accept-Encoding": "gzip, deflate"}, stream=True)
    wire = raw.raw.read(decode_content=False)
    assert raw.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(wire)) == plain.json()
    assert len(wire) * 4 < len(plain.content)
    refused = api.get(f"{u}/flows/GzipFlow/runs", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in refused.headers
    small = api.get(f"{u}/flows/GzipFlow", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # under 1 KiB: not worth it
