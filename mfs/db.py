"""Connecting to the service's Postgres, with one clear error when it cannot be reached."""

from __future__ import annotations

import asyncio

import asyncpg


class DatabaseUnreachable(RuntimeError):
    """The database did not answer, or refused the login."""


async def connect(dsn: str) -> asyncpg.Connection:
    try:
        # statement_cache_size=0: works through PgBouncer-style poolers too.
        return await asyncpg.connect(dsn, statement_cache_size=0, timeout=30)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as e:
        raise DatabaseUnreachable(f"cannot connect to the database: {e.__class__.__name__}: {e}") from e
