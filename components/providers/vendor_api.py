"""`VendorApi`: the one HTTP client of the vendor providers (Neon, Supabase, Backblaze B2).

Every call has a timeout; 429 and 5xx answers and connection failures are retried with
exponential backoff (honouring `Retry-After`), except that a POST is retried only when the
vendor certainly did not act on it (429, or no connection made), since a create sent twice
could make two things. A 404 is `None` when the caller says the thing may be gone
(`absent_ok`), which is how refresh and delete of a vanished resource succeed. Errors carry
the vendor's message, never the request headers (they hold the credentials).
"""

from __future__ import annotations

import time
from typing import Any, Optional

RETRY_STATUS = (429, 500, 502, 503, 504)
IDEMPOTENT = ("GET", "HEAD", "PUT", "DELETE", "PATCH")


class VendorError(RuntimeError):
    def __init__(self, what: str, status: int, message: str):
        super().__init__(f"{what}: HTTP {status}: {message[:500]}")
        self.status = status


class VendorApi:
    def __init__(
        self,
        base: str,
        token: Optional[str] = None,
        *,
        timeout: float = 60,
        attempts: int = 5,
        backoff: float = 1.0,
        headers: Optional[dict] = None,
    ):
        import requests

        self.base = base.rstrip("/")
        self.timeout, self.attempts, self.backoff = timeout, attempts, backoff
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "metaflow-serverless-pulumi"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers.update(headers or {})

    def call(self, method: str, path: str, what: str, *, absent_ok: bool = False, **kwargs) -> Any:
        """The JSON answer (None when empty, or 404 with `absent_ok`); raises VendorError."""
        import requests

        url = path if path.startswith("http") else self.base + path
        for attempt in range(1, self.attempts + 1):
            try:
                resp = self.session.request(method, url, timeout=(10, self.timeout), **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                sent = not isinstance(exc, requests.ConnectTimeout) and "refused" not in str(exc)
                if attempt == self.attempts or (method == "POST" and sent):
                    raise VendorError(what, 0, f"no answer from {self.base}: {exc}") from None
                self._sleep(attempt, None)
                continue
            if resp.status_code == 404 and absent_ok:
                return None
            retry = resp.status_code == 429 or (resp.status_code in RETRY_STATUS and method in IDEMPOTENT)
            if retry and attempt < self.attempts:
                self._sleep(attempt, resp.headers.get("Retry-After"))
                continue
            if resp.status_code >= 300:
                raise VendorError(what, resp.status_code, resp.text)
            return resp.json() if resp.content else None
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: Optional[str]) -> None:
        delay = self.backoff * 2 ** (attempt - 1)
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 60.0))
        time.sleep(delay)


def wait_until(probe, what: str, timeout: float, poll: float):
    """`probe()` until it returns something other than None; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f}s")
        time.sleep(poll)
