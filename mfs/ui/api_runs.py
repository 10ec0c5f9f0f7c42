"""Runs of the UI: the home page list (filters, grouping, ordering, pages), one run, its
parameters, steps, metadata and artifacts, and its DAG (the `_graph_info` artifact as the
official UI backend returns it)."""

from __future__ import annotations

import json

from aiohttp import web

from .envelope import error, guarded, page_params, reply, service_page
from .service import fresh_reads, path_of

# filters the home page sends that the service's /ui/runs applies (the rest is the UI's own)
RUN_QUERY = (
    "_order",
    "_group",
    "_group_limit",
    "flow_id",
    "run_number",
    "status",
    "user",
    "user_name",
    "_tags",
    "_tags:any",
    "_tags:all",
    "ts_epoch:ge",
    "ts_epoch:le",
    "ts_epoch:gt",
    "ts_epoch:lt",
    "ts_epoch",
    "flow_id:eq",
    "flow_id:ne",
    "status:eq",
    "status:ne",
    "user:eq",
    "user:ne",
    "run_number:eq",
)


def run_path(request: web.Request) -> str:
    m = request.match_info
    return path_of("flows", m["flow_id"], "runs", m["run_number"])


async def runs_page(app, query: dict) -> tuple[list, int, bool]:
    """A page of the runs list for the query of the UI: (runs, page, has_next)."""
    try:
        page = max(int(query.get("_page", 1)), 1)
    except ValueError:
        page = 1
    try:
        limit = max(min(int(query.get("_limit", 30)), 1000), 1)
    except ValueError:
        limit = 30
    params = {k: v for k, v in query.items() if k in RUN_QUERY}
    # the list and each run's start-step metadata (asked for per row next) in one request
    view = await app["service"].get("/ui/runs/view", {**params, "_limit": limit, "_page": page})
    rows = view["runs"]
    app["start_metadata"].fill(rows, view["start_metadata"])
    group = params.get("_group")
    if not group:
        return rows[:limit], page, len(rows) > limit
    seen = []
    for r in rows:
        if r.get(group) not in seen:
            seen.append(r.get(group))
    keep = set(map(json.dumps, seen[:limit]))
    return [r for r in rows if json.dumps(r.get(group)) in keep], page, len(seen) > limit


@guarded
async def runs(request: web.Request):
    data, page, has_next = await runs_page(request.app, dict(request.query))
    return reply(request, data, page=page, has_next=has_next)


@guarded
async def flow_runs(request: web.Request):
    data, page, has_next = await runs_page(
        request.app, {**request.query, "flow_id": request.match_info["flow_id"]}
    )
    return reply(request, data, page=page, has_next=has_next)


@guarded
async def flows(request: web.Request):
    rows = await request.app["service"].get("/flows")
    return reply(request, rows)


@guarded
async def flow(request: web.Request):
    row = await request.app["service"].get(path_of("flows", request.match_info["flow_id"]))
    return reply(request, row)


@guarded
async def run(request: web.Request):
    return reply(request, await request.app["service"].get("/ui" + run_path(request)))


@guarded
async def steps(request: web.Request):
    rows = await request.app["service"].get("/ui" + run_path(request) + "/steps")
    if request.query.get("_order", "").startswith("-"):
        rows.reverse()
    page, limit = page_params(request, 1000)
    return reply(
        request, rows[(page - 1) * limit : page * limit], page=page, has_next=len(rows) > page * limit
    )


@guarded
async def step(request: web.Request):
    rows = await request.app["service"].get("/ui" + run_path(request) + "/steps")
    found = [r for r in rows if r["step_name"] == request.match_info["step_name"]]
    return reply(request, found[0]) if found else error(404, "step not found")


def metadata_filters(request: web.Request) -> dict:
    q = request.query
    params = {k: q[k] for k in ("step_name", "field_name") if q.get(k)}
    if "attempt_id:is" in q or "attempt_id" in q:
        params["attempt_id"] = q.get("attempt_id", q.get("attempt_id:is"))
    return params


@guarded
async def run_metadata(request: web.Request):
    q, m = request.query, request.match_info
    if (
        set(q) <= {"step_name", "_page", "_limit"}
        and q.get("step_name") == "start"
        and q.get("_page", "1") == "1"
    ):
        # a live update's read takes them only from the list read of the same poll
        rows = request.app["start_metadata"].get(
            m["flow_id"], m["run_number"], max_age_s=1.0 if fresh_reads.get() else None
        )
        page, limit = page_params(request, 1000)
        if rows is not None and len(rows) <= limit:  # the runs list brought them moments ago
            return reply(request, rows, page=1, has_next=False)
    data, page, has_next = await service_page(
        request, "/ui" + run_path(request) + "/metadata", metadata_filters(request), 1000
    )
    return reply(request, data, page=page, has_next=has_next)


@guarded
async def run_artifacts(request: web.Request):
    params = {k: request.query[k] for k in ("step_name", "name") if request.query.get(k)}
    data, page, has_next = await service_page(request, "/ui" + run_path(request) + "/artifacts", params, 1000)
    return reply(request, data, page=page, has_next=has_next)


async def parameters_task_artifacts(request: web.Request) -> list:
    return await request.app["service"].get(
        "/ui" + run_path(request) + "/artifacts", {"step_name": "_parameters"}
    )


def display(value) -> str:
    return (
        value
        if isinstance(value, str)
        else json.dumps(value, default=str)
        if isinstance(value, (list, dict))
        else str(value)
    )


@guarded
async def parameters(request: web.Request):
    """{name: {"value": text}} from the artifacts of the run's _parameters task."""
    ds = request.app["datastore"]
    out = {}
    for a in await parameters_task_artifacts(request):
        if a["name"].startswith("_") or a["name"] == "name":
            continue
        value, why = await ds.artifact_value_async(a["flow_id"], a["location"], a.get("sha"))
        out[a["name"]] = {"value": display(value) if why is None else f"<{why}>"}
    return reply(request, out)


@guarded
async def dag(request: web.Request):
    """The run's DAG: the `_graph_info` artifact of its _parameters task, as recorded by Metaflow."""
    found = [a for a in await parameters_task_artifacts(request) if a["name"] == "_graph_info"]
    if not found:
        return error(404, "this run has no _graph_info artifact (yet)", "dag-not-found")
    value, why = await request.app["datastore"].artifact_value_async(
        found[-1]["flow_id"], found[-1]["location"], found[-1].get("sha")
    )
    if why:
        return error(500, f"the DAG of this run could not be read: {why}", "dag-unreadable")
    return reply(request, value)


def routes(add) -> None:
    run_r = "/flows/{flow_id}/runs/{run_number}"
    add("/runs", runs)
    add("/flows", flows)
    add("/flows/{flow_id}", flow)
    add("/flows/{flow_id}/runs", flow_runs)
    add(run_r, run)
    add(run_r + "/parameters", parameters)
    add(run_r + "/dag", dag)
    add(run_r + "/steps", steps)
    add(run_r + "/steps/{step_name}", step)
    add(run_r + "/metadata", run_metadata)
    add(run_r + "/artifacts", run_artifacts)
