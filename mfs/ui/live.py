"""The UI's websocket (`/ws`): "__ping__" is answered "__pong__"; {"type": "SUBSCRIBE", "uuid",
"resource", "since"} starts pushing {"type": "INSERT"|"UPDATE", "uuid", "resource", "data"} for
that resource's rows (UNSUBSCRIBE stops it). No database triggers: each subscription polls the
resource through this server's own API (hence the service) every `interval` seconds and sends
what appeared or changed since its previous poll; `since` (unix seconds, on a resubscribe) also
replays rows created after it."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
from aiohttp import web

log = logging.getLogger("mfs.ui")
ID_FIELDS = ("flow_id", "run_number", "step_name", "task_id", "attempt_id", "id", "name")


def row_key(row) -> str:
    if not isinstance(row, dict):
        return json.dumps(row, sort_keys=True)
    return json.dumps([row.get(k) for k in ID_FIELDS])


def rows_of(body) -> list:
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, list):
        return data
    return [data] if isinstance(data, dict) else []


async def _poll(ws: web.WebSocketResponse, app, uuid: str, resource: str, since, interval: float):
    url = f"http://127.0.0.1:{app['port']}{app['api_prefix']}{resource}"
    seen: dict[str, str] = {}
    first = True
    async with aiohttp.ClientSession(headers={"Host": f"127.0.0.1:{app['port']}"}) as http:
        while not ws.closed:
            try:
                async with http.get(url) as resp:
                    body = await resp.json(content_type=None) if resp.status == 200 else None
            except (aiohttp.ClientError, ValueError, OSError):
                body = None
            for row in rows_of(body) if body else []:
                key, text = row_key(row), json.dumps(row, sort_keys=True)
                old = seen.get(key)
                seen[key] = text
                if first:
                    new_since = since and isinstance(row, dict) and (row.get("ts_epoch") or 0) >= since * 1000
                    if not new_since:
                        continue
                    kind = "INSERT"
                elif old is None:
                    kind = "INSERT"
                elif old != text:
                    kind = "UPDATE"
                else:
                    continue
                await ws.send_json({"type": kind, "uuid": uuid, "resource": resource, "data": row})
            first = False
            await asyncio.sleep(interval)


async def websocket(request: web.Request):
    ws = web.WebSocketResponse(heartbeat=None)
    await ws.prepare(request)
    app = request.app
    subs: dict[str, asyncio.Task] = {}
    try:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            if msg.data == "__ping__":
                await ws.send_str("__pong__")
                continue
            try:
                m = json.loads(msg.data)
                kind, uuid = m.get("type"), str(m.get("uuid"))
            except (ValueError, AttributeError):
                continue
            if kind == "SUBSCRIBE" and isinstance(m.get("resource"), str) and m["resource"].startswith("/"):
                if uuid in subs:
                    subs.pop(uuid).cancel()
                since = m.get("since") if isinstance(m.get("since"), (int, float)) else None
                subs[uuid] = asyncio.create_task(
                    _poll(ws, app, uuid, m["resource"], since, app["ws_interval"])
                )
            elif kind == "UNSUBSCRIBE" and uuid in subs:
                subs.pop(uuid).cancel()
    finally:
        for t in subs.values():
            t.cancel()
        await asyncio.gather(*subs.values(), return_exceptions=True)
    return ws
