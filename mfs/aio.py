"""Running a coroutine from synchronous code."""

from __future__ import annotations

import asyncio
import concurrent.futures


def run_sync(coro):
    """Runs `coro` to completion on a private event loop in a worker thread, so that it works
    whether or not the caller's thread already runs a loop (Pulumi providers, pytest plugins);
    the loop is closed afterwards."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
