"""The UI backend API of `mfs ui` over real runs: reply shapes and values the official UI reads
(envelope, run statuses, task attempts, DAG, logs, cards, autocomplete, websocket)."""

import json
import time

import aiohttp
import requests

from testkit import run_sync


def get(scene, path, **params):
    r = requests.get(f"{scene.ui.url}/api{path}", params=params, timeout=30)
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    return r.json()


def run_of(scene, flow):
    return get(scene, "/runs", flow_id=flow)["data"][0]


def test_runs_list_envelope_and_statuses(ui_scene):
    body = get(ui_scene, "/runs", _order="-ts_epoch", _limit=30, _group_limit=31, _page=1)
    assert set(body) >= {"data", "status", "links", "pages", "query"}
    assert body["status"] == 200 and body["pages"]["self"] == 1 and body["links"]["next"] is None
    status = {r["flow_id"]: r["status"] for r in body["data"]}
    assert status == {"UiDemoFlow": "completed", "UiFailFlow": "failed", "UiSlowFlow": "running"}
    demo = next(r for r in body["data"] if r["flow_id"] == "UiDemoFlow")
    assert (
        demo["finished_at"] > demo["ts_epoch"] and demo["duration"] == demo["finished_at"] - demo["ts_epoch"]
    )
    assert demo["user"] == "tester" and "user:tester" in demo["system_tags"]
    slow = next(r for r in body["data"] if r["flow_id"] == "UiSlowFlow")
    assert slow["finished_at"] is None and slow["duration"] > 0
    # newest first
    assert [r["ts_epoch"] for r in body["data"]] == sorted(
        (r["ts_epoch"] for r in body["data"]), reverse=True
    )


def test_runs_filters_groups_and_pages(ui_scene):
    only = get(ui_scene, "/runs", status="completed,failed")["data"]
    assert {r["flow_id"] for r in only} == {"UiDemoFlow", "UiFailFlow"}
    assert [r["flow_id"] for r in get(ui_scene, "/runs", status="running")["data"]] == ["UiSlowFlow"]
    assert get(ui_scene, "/runs", user="null")["data"] == []
    assert len(get(ui_scene, "/runs", user="tester")["data"]) == 3
    assert [r["flow_id"] for r in get(ui_scene, "/runs", _tags="user:tester", _order="+flow_id")["data"]] == [
        "UiDemoFlow",
        "UiFailFlow",
        "UiSlowFlow",
    ]
    p1 = get(ui_scene, "/runs", _limit=2, _page=1)
    p2 = get(ui_scene, "/runs", _limit=2, _page=2)
    assert len(p1["data"]) == 2 and p1["pages"]["next"] == 2 and "_page=2" in p1["links"]["next"]
    assert len(p2["data"]) == 1 and p2["pages"]["next"] is None
    assert {r["flow_id"] for r in p1["data"] + p2["data"]} == {"UiDemoFlow", "UiFailFlow", "UiSlowFlow"}
    grouped = get(ui_scene, "/runs", _group="flow_id", _limit=2, _group_limit=7)
    assert [r["flow_id"] for r in grouped["data"]] == ["UiDemoFlow", "UiFailFlow"] and grouped["pages"][
        "next"
    ] == 2
    r = requests.get(f"{ui_scene.ui.url}/api/runs", params={"status": "bogus"}, timeout=30)
    assert r.status_code == 400 and "status" in r.json()["message"]


def test_run_page_data(ui_scene):
    run = run_of(ui_scene, "UiDemoFlow")
    base = f"/flows/UiDemoFlow/runs/{run['run_number']}"
    assert get(ui_scene, base)["data"]["status"] == "completed"
    assert get(ui_scene, base + "/parameters")["data"] == {"n": {"value": "3"}}
    steps = get(ui_scene, base + "/steps", _order="+ts_epoch", _limit=1000)["data"]
    assert [s["step_name"] for s in steps] == ["_parameters", "start", "each", "join", "flaky", "end"] or [
        s["step_name"] for s in steps if s["step_name"] != "_parameters"
    ] == ["start", "each", "join", "flaky", "end"]
    assert all(s["duration"] is not None and s["duration"] >= 0 for s in steps)
    tasks = get(ui_scene, base + "/tasks", _order="+ts_epoch", _limit=1000, postprocess="false")["data"]
    by_step = {}
    for t in tasks:
        by_step.setdefault(t["step_name"], []).append(t)
    assert len(by_step["each"]) == 3 and all(t["status"] == "completed" for t in by_step["each"])
    flaky = sorted(by_step["flaky"], key=lambda t: t["attempt_id"])
    assert [(t["attempt_id"], t["status"]) for t in flaky] == [(0, "failed"), (1, "completed")]
    assert all(t["duration"] > 0 and t["finished_at"] >= t["started_at"] for t in flaky)
    dag = get(ui_scene, base + "/dag")["data"]
    assert set(dag["steps"]) == {"start", "each", "join", "flaky", "end"}
    assert dag["steps"]["start"]["type"] == "split-foreach" and dag["steps"]["start"]["next"] == ["each"]
    assert dag["steps"]["join"]["type"] == "join" and "graph_structure" in dag
    md = get(ui_scene, base + "/metadata", step_name="start")["data"]
    assert md and all(m["step_name"] == "start" for m in md)


def test_task_page_data_and_logs(ui_scene):
    run = run_of(ui_scene, "UiDemoFlow")
    tasks = get(ui_scene, f"/flows/UiDemoFlow/runs/{run['run_number']}/steps/flaky/tasks")["data"]
    task_id = tasks[0]["task_id"]
    base = f"/flows/UiDemoFlow/runs/{run['run_number']}/steps/flaky/tasks/{task_id}"
    attempts = get(ui_scene, base + "/attempts", postprocess="true")["data"]
    assert [(a["attempt_id"], a["status"]) for a in attempts] == [(0, "failed"), (1, "completed")]
    assert get(ui_scene, base)["data"]["attempt_id"] == 1
    for n in (0, 1):
        out = get(ui_scene, base + "/logs/out", attempt_id=n, _limit=1000, _page=1, _order="+row")
        lines = [r["line"] for r in out["data"]]
        assert f"flaky attempt {n} says hello on stdout" in lines, lines
        assert out["data"][0]["row"] == 0 and out["data"][0]["timestamp"] > 0
        err = get(ui_scene, base + "/logs/err", attempt_id=n, _limit=1000, _page=1, _order="-row")
        assert any(f"flaky attempt {n} complains on stderr" in r["line"] for r in err["data"])
        rows = [r["row"] for r in err["data"]]
        assert rows == sorted(rows, reverse=True)
    # the error of attempt 0 is in its stderr; paging splits the lines
    err0 = get(ui_scene, base + "/logs/err", attempt_id=0, _limit=1000)["data"]
    assert any("attempt 0 fails on purpose" in r["line"] for r in err0)
    page1 = get(ui_scene, base + "/logs/err", attempt_id=0, _limit=2, _page=1, _order="+row")
    assert [r["row"] for r in page1["data"]] == [0, 1] and page1["pages"]["last"] == -(len(err0) // -2)
    # reading does not consume: twice the same
    assert get(ui_scene, base + "/logs/err", attempt_id=0, _limit=1000)["data"] == err0
    dl = requests.get(f"{ui_scene.ui.url}/api{base}/logs/out/download", params={"attempt_id": 1}, timeout=30)
    assert dl.status_code == 200 and "flaky attempt 1 says hello on stdout" in dl.text
    assert "attachment" in dl.headers["Content-Disposition"]
    md = get(ui_scene, base + "/metadata", _limit=100, attempt_id=0)["data"]
    assert md and {m["attempt_id"] for m in md} == {0}
    arts = get(ui_scene, base + "/artifacts", attempt_id=1, postprocess="true", _limit=50)["data"]
    assert {a["name"] for a in arts} >= {"_task_ok", "total"}
    assert next(a for a in arts if a["name"] == "total")["content"] == "5"


def test_running_task_and_its_logs(ui_scene):
    run = run_of(ui_scene, "UiSlowFlow")
    tasks = get(ui_scene, f"/flows/UiSlowFlow/runs/{run['run_number']}/tasks")["data"]
    wait = next(t for t in tasks if t["step_name"] == "wait")
    assert wait["status"] == "running" and wait["finished_at"] is None
    out = get(
        ui_scene,
        f"/flows/UiSlowFlow/runs/{run['run_number']}/steps/wait/tasks/{wait['task_id']}/logs/out",
        attempt_id=0,
    )
    assert out["data"] == [] or all("line" in r for r in out["data"])


def test_card_list_and_html(ui_scene):
    run = run_of(ui_scene, "UiDemoFlow")
    start = get(ui_scene, f"/flows/UiDemoFlow/runs/{run['run_number']}/steps/start/tasks")["data"][0]
    base = f"/flows/UiDemoFlow/runs/{run['run_number']}/steps/start/tasks/{start['task_id']}"
    cards = get(ui_scene, base + "/cards")["data"]
    assert len(cards) == 1 and cards[0]["type"] == "default" and cards[0]["hash"]
    html = requests.get(
        f"{ui_scene.ui.url}/api{base}/cards/{cards[0]['hash']}", params={"embed": "true"}, timeout=30
    )
    assert (
        html.status_code == 200
        and html.headers["Content-Type"].startswith("text/html")
        and "<html" in html.text.lower()
    )
    # the card's data file (Metaflow's runtime/<type>-<hash>.data.json), in the official shape
    data = requests.get(
        f"{ui_scene.ui.url}/api{base}/cards/{cards[0]['hash']}/data",
        params={"invalidate": "true"},
        timeout=30,
    )
    assert data.status_code == 200, data.text
    body = data.json()
    assert body["type"] == "default" and body["id"] is None and "reload_token" in body["data"]
    missing = requests.get(f"{ui_scene.ui.url}/api{base}/cards/0123abcd/data", timeout=30)
    assert missing.status_code == 404 and "not found" in missing.json()["error"]


def test_autocomplete_and_small_endpoints(ui_scene):
    assert get(ui_scene, "/flows/autocomplete", **{"_limit": 5, "flow_id:co": "fail"}) == {
        "status": 200,
        "data": ["UiFailFlow"],
    }
    assert "user:tester" in get(ui_scene, "/tags/autocomplete", **{"_limit": 5, "tag:co": "teste"})["data"]
    run = run_of(ui_scene, "UiDemoFlow")
    assert get(
        ui_scene, f"/flows/UiDemoFlow/runs/{run['run_number']}/steps/autocomplete", **{"step_name:co": "fla"}
    )["data"] == ["flaky"]
    assert isinstance(get(ui_scene, "/features"), dict)
    assert get(ui_scene, "/plugin") == [] and get(ui_scene, "/links") == []
    assert requests.get(f"{ui_scene.ui.url}/api/version", timeout=10).text


def test_index_static_and_safety(ui_scene):
    html = requests.get(f"{ui_scene.ui.url}/flows/UiDemoFlow", timeout=10)
    assert html.status_code == 200 and 'window.METAFLOW_SERVICE="/api"' in html.text
    assert ui_scene.router.key not in html.text
    js = requests.get(f"{ui_scene.ui.url}/asset-manifest.json", timeout=10)
    assert js.status_code == 200 and "main.js" in js.text
    for bad in ("/..%2f..%2fetc/passwd", "/static/..%2f..%2f..%2fetc%2fpasswd"):
        r = requests.get(ui_scene.ui.url + bad, timeout=10)
        assert "root:" not in r.text
    evil = requests.get(f"{ui_scene.ui.url}/api/runs", headers={"Host": "evil.example:80"}, timeout=10)
    assert evil.status_code == 403
    traversal = requests.get(
        f"{ui_scene.ui.url}/api/flows/UiDemoFlow/runs/1/steps/..%2F..%2F/tasks/1/logs/out", timeout=10
    )
    assert traversal.status_code in (400, 404)
    # nothing the browser can fetch carries the key
    for path in ("/api/runs", "/api/features"):
        assert ui_scene.router.key not in requests.get(ui_scene.ui.url + path, timeout=10).text


def test_websocket_ping_and_pushed_rows(ui_scene):
    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"{ui_scene.ui.url}/api/ws") as ws:
                await ws.send_str("__ping__")
                assert (await ws.receive(timeout=5)).data == "__pong__"
                await ws.send_str(
                    json.dumps(
                        {
                            "type": "SUBSCRIBE",
                            "uuid": "u1",
                            "resource": "/runs?_limit=30",
                            "since": int(time.time()) - 3600,
                        }
                    )
                )
                got = []
                deadline = time.monotonic() + 20
                while len(got) < 3 and time.monotonic() < deadline:
                    msg = await ws.receive(timeout=20)
                    got.append(json.loads(msg.data))
                return got

    got = run_sync(go())
    assert {m["type"] for m in got} == {"INSERT"} and {m["uuid"] for m in got} == {"u1"}
    assert {m["data"]["flow_id"] for m in got} == {"UiDemoFlow", "UiFailFlow", "UiSlowFlow"}


def test_search_in_a_run(ui_scene):
    oldest = get(ui_scene, "/runs", flow_id="UiDemoFlow")["data"][-1]  # the run with n=3
    run = oldest["run_number"]
    names = get(
        ui_scene, f"/flows/UiDemoFlow/runs/{run}/artifacts/autocomplete", **{"_limit": 5, "name:co": "SQ"}
    )
    assert names["data"] == ["sq"]

    async def search(**params):
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(
                f"{ui_scene.ui.url}/api/search/flows/UiDemoFlow/runs/{run}", params=params
            ) as ws:
                events = []
                async for msg in ws:
                    events.append(json.loads(msg.data)["event"])
                return events

    every = run_sync(search(key="sq", scope="ARTIFACT"))
    assert [e["type"] for e in every] == ["result"]
    assert len(every[0]["matches"]) == 3 and {m["step_name"] for m in every[0]["matches"]} == {"each"}
    exact = run_sync(search(key="sq", value='"4"', scope="ARTIFACT"))[-1]["matches"]
    assert len(exact) == 1 and exact[0]["searchable"] is True and exact[0]["error"] is None
    assert run_sync(search(key="sq", value="7", scope="ARTIFACT"))[-1]["matches"] == []
    assert run_sync(search(key="nope", scope="ARTIFACT,FOREACH_VARIABLE"))[-1]["matches"] == []
