"""Tasks of the UI: a run's tasks (one row per attempt, with status and duration), a step's
tasks, one task (its newest attempt), its attempts, metadata and artifacts. Statuses come from
the service (sql/0030); `postprocess=true` settles "unknown" ones from the `_task_ok` artifact."""

from __future__ import annotations

from aiohttp import web

from .api_runs import display, run_path
from .envelope import error, guarded, reply, service_page


async def settle_unknown(app, rows: list, read: bool = True) -> list:
    """An attempt that finished without attempt_ok metadata: its `_task_ok` artifact decides
    (read=False: left "unknown", as the UI asks again with postprocess=true)."""
    ds = app["datastore"]
    for r in rows:
        sha = r.pop("task_ok_sha", None)
        if read and r.get("status") == "unknown" and r.get("task_ok"):
            value, why = await ds.artifact_value_async(r["flow_id"], r["task_ok"], sha)
            if why is None:
                r["status"] = "completed" if value else "failed"
    return rows


async def task_rows(request: web.Request, params: dict, default_limit: int = 1000):
    q = request.query
    if q.get("taskId") or q.get("task_id"):
        params["task_id"] = q.get("taskId") or q.get("task_id")
    if q.get("step_name") and "step_name" not in params:
        params["step_name"] = q["step_name"]
    if q.get("attempt_id", "").isdigit():
        params["attempt_id"] = q["attempt_id"]
    rows, page, has_next = await service_page(
        request, "/ui" + run_path(request) + "/tasks", params, default_limit
    )
    rows = await settle_unknown(request.app, rows, read=q.get("postprocess") == "true")
    if q.get("_order", "").startswith("-"):
        rows.reverse()
    return rows, page, has_next


@guarded
async def run_tasks(request: web.Request):
    rows, page, has_next = await task_rows(request, {})
    return reply(request, rows, page=page, has_next=has_next)


@guarded
async def step_tasks(request: web.Request):
    rows, page, has_next = await task_rows(request, {"step_name": request.match_info["step_name"]})
    return reply(request, rows, page=page, has_next=has_next)


async def attempts_of(request: web.Request) -> list:
    m = request.match_info
    rows = await request.app["service"].get(
        "/ui" + run_path(request) + "/tasks",
        {"step_name": m["step_name"], "task_id": m["task_id"], "_limit": 1000},
    )
    return await settle_unknown(request.app, rows)


@guarded
async def task(request: web.Request):
    rows = await attempts_of(request)
    if not rows:
        return error(404, "task not found")
    want = request.query.get("attempt_id")
    if want and want.isdigit():
        rows = [r for r in rows if r["attempt_id"] == int(want)] or rows
    return reply(request, max(rows, key=lambda r: r["attempt_id"]))


@guarded
async def attempts(request: web.Request):
    rows = sorted(await attempts_of(request), key=lambda r: r["attempt_id"])
    return reply(request, rows)


@guarded
async def task_metadata(request: web.Request):
    m, q = request.match_info, request.query
    params = {"step_name": m["step_name"], "task_id": m["task_id"]}
    if "attempt_id:is" in q or "attempt_id" in q:
        params["attempt_id"] = q.get("attempt_id", q.get("attempt_id:is"))
    rows, page, has_next = await service_page(request, "/ui" + run_path(request) + "/metadata", params, 1000)
    return reply(request, rows, page=page, has_next=has_next)


@guarded
async def task_artifacts(request: web.Request):
    m, q = request.match_info, request.query
    params = {"step_name": m["step_name"], "task_id": m["task_id"]}
    if q.get("attempt_id", "").isdigit():
        params["attempt_id"] = q["attempt_id"]
    rows, page, has_next = await service_page(request, "/ui" + run_path(request) + "/artifacts", params, 50)
    if q.get("postprocess") == "true":
        ds = request.app["datastore"]
        for a in rows:
            value, why = await ds.artifact_value_async(a["flow_id"], a["location"], a.get("sha"))
            a["content"] = display(value) if why is None else None
    return reply(request, rows, page=page, has_next=has_next)


def routes(add) -> None:
    run_r = "/flows/{flow_id}/runs/{run_number}"
    task_r = run_r + "/steps/{step_name}/tasks/{task_id}"
    add(run_r + "/tasks", run_tasks)
    add(run_r + "/steps/{step_name}/tasks", step_tasks)
    add(task_r, task)
    add(task_r + "/attempts", attempts)
    add(task_r + "/metadata", task_metadata)
    add(task_r + "/artifacts", task_artifacts)
