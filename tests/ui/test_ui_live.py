"""Live updates on the UI's websocket: a new run and a task finishing reach a subscribed socket
(the poller asks the service what changed since its cursor, sql/0050 ui_changes, and reads again
only the subscriptions it concerns); the cursor read of the service itself."""

import asyncio
import json
import time

import aiohttp
import requests

from testkit import run_sync

FLOW = "UiLiveFlow"


async def next_event(ws, uuid: str, match, timeout: float = 30) -> dict:
    """The first pushed event of subscription `uuid` for which match(event) is true."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no matching event for {uuid} within {timeout}s"
        msg = await ws.receive(timeout=left)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        event = json.loads(msg.data)
        if event.get("uuid") == uuid and match(event):
            return event


def subscribe(uuid: str, resource: str) -> str:
    return json.dumps({"type": "SUBSCRIBE", "uuid": uuid, "resource": resource})


def test_new_run_and_finished_task_are_pushed(ui_scene):
    api, base = ui_scene.router.session(), ui_scene.router.url
    ui = ui_scene.ui.url

    def post(path, body):
        r = api.post(base + path, json=body, timeout=30)
        assert r.status_code in (200, 201), (path, r.status_code, r.text)
        return r.json()

    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"{ui}/api/ws") as ws:
                await ws.send_str(subscribe("runs", "/runs?_order=-ts_epoch&_limit=30"))
                await asyncio.sleep(1.5)  # the first read: what is listed now is not pushed
                post(f"/flows/{FLOW}", {"user_name": "live"})
                run = await asyncio.to_thread(post, f"/flows/{FLOW}/run", {"user_name": "live"})
                run_id = str(run["run_number"])
                event = await next_event(ws, "runs", lambda e: e["data"].get("flow_id") == FLOW)
                assert event["type"] == "INSERT" and event["data"]["run_number"] == run_id
                assert {"status", "duration", "finished_at"} <= set(event["data"])

                rb = f"/flows/{FLOW}/runs/{run_id}/steps/start"
                post(rb + "/step", {"user_name": "live"})
                task = str(post(rb + "/task", {"user_name": "live"})["task_id"])
                post(
                    f"{rb}/tasks/{task}/metadata",
                    [{"field_name": "attempt", "value": "0", "type": "attempt", "tags": ["attempt_id:0"]}],
                )
                resource = f"/flows/{FLOW}/runs/{run_id}/tasks?_order=%2Bts_epoch&_limit=1000"
                await ws.send_str(subscribe("tasks", resource))
                await asyncio.sleep(1.5)
                post(
                    f"{rb}/tasks/{task}/metadata",
                    [
                        {
                            "field_name": "attempt_ok",
                            "value": "True",
                            "type": "internal_attempt_status",
                            "tags": ["attempt_id:0"],
                        }
                    ],
                )
                done = await next_event(ws, "tasks", lambda e: e["data"].get("task_id") == task)
                assert done["type"] == "UPDATE" and done["data"]["status"] == "completed"
                assert done["resource"] == resource and done["data"]["finished_at"] is not None

    run_sync(go())


def test_changes_since_a_cursor(ui_scene):
    api, base = ui_scene.router.session(), ui_scene.router.url
    first = api.get(base + "/ui/changes", timeout=30).json()
    assert first["runs"] == [] and set(first["cursor"]) == {"run_ts", "task_id", "metadata_id"}
    cursor = first["cursor"]
    assert api.get(base + "/ui/changes", params=cursor, timeout=30).json()["runs"] == []
    api.post(base + "/flows/UiCursorFlow", json={}, timeout=30)
    run = str(api.post(base + "/flows/UiCursorFlow/run", json={}, timeout=30).json()["run_number"])
    later = api.get(base + "/ui/changes", params=cursor, timeout=30).json()
    assert ["UiCursorFlow", run] in later["runs"] and later["cursor"]["run_ts"] > cursor["run_ts"]
    assert api.get(base + "/ui/changes", params=later["cursor"], timeout=30).json()["runs"] == []
    bad = api.get(base + "/ui/changes", params={"run_ts": "soon"}, timeout=30)
    assert bad.status_code == 400 and "run_ts" in bad.json()["message"]
    # the UI API over it: the browser never needs the key
    assert ui_scene.router.key not in requests.get(ui_scene.ui.url + "/api/runs", timeout=30).text
