"""Cards of a task: the list ({id, hash, type}), each card's HTML and each card's data, read from
the card root of the datastore (files `cards/<type>-[<id>-]<hash>.html` and
`runtime/<type>-[<id>-]<hash>.data.json`)."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from .envelope import error, guarded, reply


def _pathspec(request: web.Request) -> list[str]:
    m = request.match_info
    return [m["flow_id"], m["run_number"], m["step_name"], m["task_id"]]


def _parse(name: str, suffix: str = ".html"):
    parts = name[: -len(suffix)].split("-")
    if len(parts) == 2:
        return {"type": parts[0], "id": None, "hash": parts[1]}
    if len(parts) == 3:
        return {"type": parts[0], "id": parts[1], "hash": parts[2]}
    return None


@guarded
async def cards(request: web.Request):
    names = await asyncio.to_thread(request.app["datastore"].card_files, _pathspec(request))
    data = [c for c in map(_parse, names) if c]
    return reply(request, data)


@guarded
async def card(request: web.Request):
    ds, want = request.app["datastore"], request.match_info["hash"]
    names = await asyncio.to_thread(ds.card_files, _pathspec(request))
    for name in names:
        c = _parse(name)
        if c and c["hash"] == want:
            html = await asyncio.to_thread(ds.card_file, _pathspec(request), name)
            if html is not None:
                return web.Response(body=html, content_type="text/html")
    return error(404, "card not found")


@guarded
async def card_data(request: web.Request):
    """The data file of the card with this hash, as the official UI backend replies:
    {"data": <the file's JSON>, "id", "type"}; 404 {"error": ...} until the task wrote one (the
    UI asks again)."""
    ds, want = request.app["datastore"], request.match_info["hash"]
    names = await asyncio.to_thread(ds.card_data_files, _pathspec(request))
    for name in names:
        c = _parse(name, ".data.json")
        if c and c["hash"] == want:
            raw = await asyncio.to_thread(ds.card_file, _pathspec(request), name, "runtime")
            try:
                data = json.loads(raw) if raw is not None else None
            except ValueError:
                data = None
            if data is not None:
                return web.json_response({"data": data, "id": c["id"], "type": c["type"]})
    message = "card data not found for task"
    return web.json_response({"error": message, "message": message}, status=404)


def routes(add) -> None:
    task_r = "/flows/{flow_id}/runs/{run_number}/steps/{step_name}/tasks/{task_id}"
    add(task_r + "/cards", cards)
    add(task_r + "/cards/{hash}", card)
    add(task_r + "/cards/{hash}/data", card_data)
