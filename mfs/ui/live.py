"""The UI's websocket (`/ws`): "__ping__" is answered "__pong__"; {"type": "SUBSCRIBE", "uuid",
"resource", "since"} starts pushing {"type": "INSERT"|"UPDATE", "uuid", "resource", "data"} for
that resource's rows (UNSUBSCRIBE stops it).

No database triggers and no re-reading of every subscription every few seconds: one poller for
all sockets asks the service what changed since its cursor (/ui/changes, sql/0050: new runs, new
tasks, new metadata rows, by index-backed high-water marks) every `interval` seconds, and only the
subscriptions whose run (or list of runs) changed are read again, through this server's own API,
and diffed against what was sent. Changes no row records (a heartbeat going stale turns a run
failed) are caught by re-reading every subscription every `refresh` seconds. `since` (unix
seconds, on a resubscribe) replays rows created after it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp import web

from .service import ServiceError

log = logging.getLogger("mfs.ui")
ID_FIELDS = ("flow_id", "run_number", "step_name", "task_id", "attempt_id", "id", "name")
FRESH_HEADER = "x-mfs-ui-live"  # reads of the poller: past the service memo (service.fresh_reads)


def row_key(row) -> str:
    if not isinstance(row, dict):
        return json.dumps(row, sort_keys=True)
    return json.dumps([row.get(k) for k in ID_FIELDS])


def rows_of(body) -> list:
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, list):
        return data
    return [data] if isinstance(data, dict) else []


@dataclass(frozen=True)
class Scope:
    """What a resource shows: "runs" (a runs list, of one flow or all), "run" (one run's rows,
    or one task's when `task` is set) or "other" (re-read on the refresh only)."""

    kind: str
    flow: str | None = None
    run: str | None = None
    task: tuple[str, str] | None = None  # (step_name, task)

    @staticmethod
    def of(resource: str) -> "Scope":
        parts = [unquote(p) for p in urlsplit(resource).path.split("/") if p]
        if parts in (["runs"], ["flows"]):
            return Scope("runs")
        if len(parts) in (2, 3) and parts[0] == "flows" and parts[2:] in ([], ["runs"]):
            return Scope("runs", flow=parts[1])
        if len(parts) >= 4 and parts[0] == "flows" and parts[2] == "runs":
            task = (
                (parts[5], parts[7])
                if len(parts) >= 8 and parts[4] == "steps" and parts[6] == "tasks"
                else None
            )
            return Scope("run", flow=parts[1], run=parts[3], task=task)
        return Scope("other")

    def changed(self, runs: set, tasks: set) -> bool:
        if self.kind == "runs":
            return any(self.flow in (None, f) for f, _ in runs)
        if self.kind == "run":
            if self.task:
                return (self.flow, self.run, *self.task) in tasks
            return (self.flow, self.run) in runs
        return False


@dataclass
class Subscription:
    ws: web.WebSocketResponse
    uuid: str
    resource: str
    since: float | None
    scope: Scope
    seen: dict = field(default_factory=dict)
    read_at: float = 0.0
    primed: bool = False


class Live:
    """The subscriptions of every socket and the one poller that serves them."""

    def __init__(self, app: web.Application, interval: float = 2.0, refresh: float = 30.0):
        self.app, self.interval, self.refresh = app, interval, refresh
        self.subs: dict[tuple[int, str], Subscription] = {}
        self.cursor: dict | None = None
        self._poller: asyncio.Task | None = None
        self._http: aiohttp.ClientSession | None = None
        self._first_reads: set[asyncio.Task] = set()
        self.polls = 0  # service requests the poller made (for tests and the benchmark)

    async def close(self) -> None:
        pending = [t for t in [self._poller, *self._first_reads] if t]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._http:
            await self._http.close()

    def subscribe(self, ws, uuid: str, resource: str, since) -> None:
        sub = Subscription(ws, uuid, resource, since, Scope.of(resource))
        self.subs[(id(ws), uuid)] = sub
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        task = asyncio.create_task(self._read(sub))  # the first read: what is there now, `since` replayed
        self._first_reads.add(task)
        task.add_done_callback(self._first_reads.discard)

    def unsubscribe(self, ws, uuid: str) -> None:
        self.subs.pop((id(ws), uuid), None)

    def drop(self, ws) -> None:
        for key in [k for k, s in self.subs.items() if s.ws is ws]:
            del self.subs[key]

    async def _changes(self) -> tuple[set, set]:
        """Runs {(flow, run)} and tasks {(flow, run, step, task)} changed since the cursor."""
        runs, tasks = set(), set()
        while True:
            self.polls += 1
            body = await self.app["service"].get("/ui/changes", self.cursor or {})
            first, self.cursor = self.cursor is None, body["cursor"]
            runs.update(tuple(r) for r in body["runs"])
            tasks.update(tuple(t) for t in body["tasks"])
            if first or not body.get("more"):
                return runs, tasks

    async def _poll(self) -> None:
        while self.subs:
            try:
                runs, tasks = await self._changes()
            except (ServiceError, KeyError, TypeError) as e:
                log.warning("live updates: %s", getattr(e, "message", e))
                runs = tasks = set()
            now = time.monotonic()
            for sub in list(self.subs.values()):
                if sub.ws.closed:
                    self.drop(sub.ws)
            # lists first: their reads refresh what per-run reads are answered from
            due = [
                s
                for s in self.subs.values()
                if s.primed and (s.scope.changed(runs, tasks) or now - s.read_at >= self.refresh)
            ]
            due.sort(key=lambda s: s.scope.kind != "runs")
            for sub in due:
                await self._read(sub)
            await asyncio.sleep(self.interval)
        self.cursor = None  # idle: the next subscriber starts from what is there then

    async def _read(self, sub: Subscription) -> None:
        """Reads the resource and sends its new and changed rows. The first read (at subscribe
        time, when the page has just read the same) may be answered by the service memo."""
        app = self.app
        if self._http is None:
            self._http = aiohttp.ClientSession(headers={"Host": f"127.0.0.1:{app['port']}"})
        url = f"http://127.0.0.1:{app['port']}{app['api_prefix']}{sub.resource}"
        sub.read_at = time.monotonic()
        try:
            async with self._http.get(url, headers={FRESH_HEADER: "1"} if sub.primed else None) as resp:
                body = await resp.json(content_type=None) if resp.status == 200 else None
        except (aiohttp.ClientError, ValueError, OSError):
            return
        if body is None:
            return
        for row in rows_of(body):
            key, text = row_key(row), json.dumps(row, sort_keys=True)
            old = sub.seen.get(key)
            sub.seen[key] = text
            if not sub.primed:
                since = sub.since
                if not (since and isinstance(row, dict) and (row.get("ts_epoch") or 0) >= since * 1000):
                    continue
                kind = "INSERT"
            elif old is None:
                kind = "INSERT"
            elif old != text:
                kind = "UPDATE"
            else:
                continue
            if sub.ws.closed:
                return
            try:
                await sub.ws.send_json(
                    {"type": kind, "uuid": sub.uuid, "resource": sub.resource, "data": row}
                )
            except (ConnectionResetError, RuntimeError):
                self.drop(sub.ws)
                return
        sub.primed = True


async def websocket(request: web.Request):
    ws = web.WebSocketResponse(heartbeat=None)
    await ws.prepare(request)
    live: Live = request.app["live"]
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
                since = m.get("since") if isinstance(m.get("since"), (int, float)) else None
                live.subscribe(ws, uuid, m["resource"], since)
            elif kind == "UNSUBSCRIBE":
                live.unsubscribe(ws, uuid)
    finally:
        live.drop(ws)
    return ws
