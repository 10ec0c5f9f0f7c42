"""The deployed metadata router, as `mfs ui` calls it: HTTP GET with the x-api-key header (the key
stays in this process; the browser never sees it), JSON replies, errors as ServiceError carrying
the router's status and message. Counts the requests it makes (per view, for the benchmarks).

Identical GETs within `memo_s` seconds share one service request (the UI asks for the same run,
parameters and artifacts several times per view, often at once); reads made for the live
updates (`fresh_reads` set) always go to the service."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import sys
import time
from typing import Optional
from urllib.parse import quote

import aiohttp

from .run_view import view_read


# set while serving a read of the live updates: it must see the service's newest rows
fresh_reads: contextvars.ContextVar[bool] = contextvars.ContextVar("fresh_reads", default=False)


class ServiceError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def path_of(*segments: str) -> str:
    """A path from ids: each segment percent-encoded (ids may hold any character but '/')."""
    return "".join("/" + quote(str(s), safe="") for s in segments)


class Service:
    def __init__(self, url: str, api_key: Optional[str], timeout: float = 30, memo_s: float = 2.0):
        self.url = url.rstrip("/")
        self._headers = {"x-api-key": api_key} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: Optional[aiohttp.ClientSession] = None
        self.requests = 0
        self.memo_s = memo_s
        self.trace = os.environ.get("MFS_UI_TRACE", "") not in ("", "0")  # see server.trace
        self._memo: dict[str, tuple[float, asyncio.Future]] = {}

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)

    async def close(self) -> None:
        if self._session:
            await self._session.close()

    async def get(self, path: str, params: Optional[dict] = None):
        """GET path?params from the router; the decoded JSON body (a copy: callers may change it)."""
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        view = view_read(path, query)
        if view:  # one of the run page's reads: the run view brings them all
            return (await self.get(view[0]))[view[1]]
        key = json.dumps([path, sorted(query.items())])
        now = time.monotonic()
        hit = self._memo.get(key)
        if hit and now - hit[0] < self.memo_s and not fresh_reads.get():
            return json.loads(await asyncio.shield(hit[1]))
        if len(self._memo) > 512:
            self._memo = {k: v for k, v in self._memo.items() if now - v[0] < self.memo_s}
        future = asyncio.get_running_loop().create_future()
        self._memo[key] = (now, future)
        try:
            text = json.dumps(await self._get(path, query))
        except asyncio.CancelledError:
            self._memo.pop(key, None)
            future.cancel()
            raise
        except Exception as e:
            self._memo.pop(key, None)
            future.set_exception(e)
            future.exception()  # retrieved: waiters re-raise it, no "never retrieved" warning
            raise
        future.set_result(text)
        return json.loads(text)

    async def _get(self, path: str, query: dict):
        self.requests += 1
        if self.trace:
            print(f"mfs-ui service GET {path} {query}", file=sys.stderr, flush=True)
        try:
            async with self._session.get(self.url + path, params=query) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise ServiceError(
                503, f"the metadata service at {self.url} is unreachable ({type(e).__name__})"
            ) from None
        try:
            body = json.loads(text) if text else None
        except ValueError:
            raise ServiceError(
                502, f"the metadata service answered {status} with a body that is not JSON"
            ) from None
        if status >= 400:
            message = body.get("message") if isinstance(body, dict) else None
            if status == 401:
                message = (
                    "the metadata service refused the API key (check METAFLOW_SERVICE_AUTH_KEY / the profile)"
                )
            raise ServiceError(status, message or f"the metadata service answered {status}")
        return body
