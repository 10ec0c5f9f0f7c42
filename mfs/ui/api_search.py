"""Search within a run (the run page's search box, shown when the UI's search feature is on): the
websocket `/search/flows/F/runs/R?key=K[&value=V]&scope=ARTIFACT,FOREACH_VARIABLE`, which sends
{"event": {"type": "result", "matches": [...]}} per scope as the official UI backend does, and the
artifact-name autocomplete of the box.

ARTIFACT: the tasks having an artifact named K; with a value, those whose artifact value (its text,
lower-cased) contains V, or equals it when V is "quoted"; an artifact that cannot be read is
listed with searchable false and the reason. FOREACH_VARIABLE: the tasks whose foreach-stack
metadata holds K (or K=V)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import unquote_plus

from aiohttp import web

from .api_runs import run_path
from .envelope import guarded
from .service import ServiceError

SCOPES = ("ARTIFACT", "FOREACH_VARIABLE")
READERS = 8  # artifact values read at once


def decoded(value: str | None) -> str | None:
    """The UI encodes some values more than once (as the official backend undoes: 3 rounds)."""
    if not value:
        return None
    for _ in range(3):
        value = unquote_plus(value)
    return value


def term_of(value: str) -> tuple[str, str]:
    """("eq", text) for a "quoted" term, else ("co", text)."""
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return "eq", value[1:-1]
    return "co", value


def task_fields(row: dict, *extra: str) -> dict:
    return {k: row[k] for k in ("flow_id", "run_number", "step_name", "task_id", *extra) if k in row}


async def artifact_matches(request: web.Request, key: str, value: str | None) -> list:
    rows = await request.app["service"].get(
        "/ui" + run_path(request) + "/artifacts", {"name": key, "_limit": 1000}
    )
    if value is None:
        return [{**task_fields(a), "searchable": True} for a in rows]
    op, term = term_of(value)
    term = term.lower()
    ds, gate = request.app["datastore"], asyncio.Semaphore(READERS)

    async def one(a):
        async with gate:
            content, why = await ds.artifact_value_async(a["flow_id"], a["location"], a.get("sha"))
        if why is not None:
            return {
                **task_fields(a),
                "searchable": False,
                "error": {"id": "artifact-unreadable", "detail": why},
            }
        text = str(content).lower()
        if (text == term) if op == "eq" else (term in text):
            return {**task_fields(a), "searchable": True, "error": None}
        return None

    return [m for m in await asyncio.gather(*map(one, rows)) if m]


async def foreach_matches(request: web.Request, key: str, value: str | None) -> list:
    rows = await request.app["service"].get(
        "/ui" + run_path(request) + "/metadata", {"field_name": "foreach-stack", "_limit": 1000}
    )
    wanted = f"{key}={value}" if value else key
    return [{**task_fields(m, "value"), "searchable": True} for m in rows if wanted in str(m.get("value"))]


async def search(request: web.Request):
    q = request.query
    scopes = [s for s in (decoded(q.get("scope")) or "ARTIFACT").split(",") if s in SCOPES]
    key, value = decoded(q.get("key")), decoded(q.get("value"))
    ws = web.WebSocketResponse(heartbeat=None)
    await ws.prepare(request)
    if not key:
        await ws.send_json(
            {
                "event": {
                    "type": "error",
                    "message": "search needs key=<artifact or foreach variable name>",
                    "id": "search-needs-key",
                    "traceback": None,
                    "key": None,
                }
            }
        )
        await ws.close()
        return ws
    found, seen = [], set()
    for scope in scopes:
        try:
            matches = await (artifact_matches if scope == "ARTIFACT" else foreach_matches)(
                request, key, value
            )
        except ServiceError as e:
            await ws.send_json(
                {
                    "event": {
                        "type": "error",
                        "message": e.message,
                        "id": "search-failed",
                        "traceback": None,
                        "key": None,
                    }
                }
            )
            break
        for m in matches:  # one result per task over the scopes
            task = f"{m.get('step_name')}/{m.get('task_id')}"
            if task not in seen:
                seen.add(task)
                found.append(m)
        if ws.closed:
            break
        await ws.send_str(json.dumps({"event": {"type": "result", "matches": found}}))
    await ws.close()
    return ws


@guarded
async def artifact_names(request: web.Request):
    q = request.query
    try:
        limit = max(min(int(q.get("_limit", 5)), 100), 1)
    except ValueError:
        limit = 5
    text = q.get("name:co") or q.get("name") or ""
    names = await request.app["service"].get(
        "/ui" + run_path(request) + "/artifact_names", {"contains": text, "_limit": limit}
    )
    return web.json_response({"status": 200, "data": names})


def routes(add) -> None:
    run_r = "/flows/{flow_id}/runs/{run_number}"
    add("/search" + run_r, search)
    add(run_r + "/search", search)  # the official backend's older path
    add(run_r + "/artifacts/autocomplete", artifact_names)
