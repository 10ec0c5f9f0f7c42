"""The small endpoints every UI page calls (features, version, links, notifications, plugins)
and the autocomplete lists of the filter boxes."""

from __future__ import annotations

import os
import re

from aiohttp import web

from .envelope import guarded

VERSION = "mfs-ui 1"


async def features(request: web.Request):
    """FEATURE_* environment variables as booleans, as the official UI backend serves them."""
    out = {
        k: v.lower() not in ("0", "false", "no", "")
        for k, v in os.environ.items()
        if k.startswith("FEATURE_")
    }
    return web.json_response(out)


async def version(request: web.Request):
    return web.Response(text=VERSION)


async def links(request: web.Request):
    return web.json_response([])


async def notifications(request: web.Request):
    return web.json_response([])


async def plugins(request: web.Request):
    return web.json_response([])


def _contains(request: web.Request, field: str) -> str:
    q = request.query
    if f"{field}:co" in q:
        return q[f"{field}:co"]
    if f"{field}:re" in q:  # the UI's "project:.*X.*" style: the literal text it wraps
        return re.sub(r"\.\*", "", q[f"{field}:re"])
    return q.get(field, "")


def _autocomplete(kind: str, field: str):
    @guarded
    async def handler(request: web.Request):
        m = request.match_info
        try:
            limit = max(min(int(request.query.get("_limit", 5)), 100), 1)
        except ValueError:
            limit = 5
        params = {"contains": _contains(request, field), "_limit": limit}
        params.update({k: m[k] for k in ("flow_id", "run_number") if k in m})
        values = await request.app["service"].get(f"/ui/autocomplete/{kind}", params)
        return web.json_response({"status": 200, "data": values})

    handler.__name__ = f"autocomplete_{kind}"
    return handler


def routes(add) -> None:
    add("/features", features)
    add("/version", version)
    add("/links", links)
    add("/notifications", notifications)
    add("/plugin", plugins)
    add("/plugins", plugins)
    add("/flows/autocomplete", _autocomplete("flows", "flow_id"))
    add("/tags/autocomplete", _autocomplete("tags", "tag"))
    add("/flows/{flow_id}/runs/autocomplete", _autocomplete("runs", "run"))
    add("/flows/{flow_id}/runs/{run_number}/steps/autocomplete", _autocomplete("steps", "step_name"))
