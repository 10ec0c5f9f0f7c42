"""The deployed metadata router, as `mfs ui` calls it: HTTP GET with the x-api-key header (the key
stays in this process; the browser never sees it), JSON replies, errors as ServiceError carrying
the router's status and message. Counts the requests it makes (per view, for the benchmarks)."""

from __future__ import annotations

import json
from typing import Optional
from urllib.parse import quote

import aiohttp


class ServiceError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def path_of(*segments: str) -> str:
    """A path from ids: each segment percent-encoded (ids may hold any character but '/')."""
    return "".join("/" + quote(str(s), safe="") for s in segments)


class Service:
    def __init__(self, url: str, api_key: Optional[str], timeout: float = 30):
        self.url = url.rstrip("/")
        self._headers = {"x-api-key": api_key} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: Optional[aiohttp.ClientSession] = None
        self.requests = 0

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)

    async def close(self) -> None:
        if self._session:
            await self._session.close()

    async def get(self, path: str, params: Optional[dict] = None):
        """GET path?params from the router; the decoded JSON body."""
        self.requests += 1
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
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
