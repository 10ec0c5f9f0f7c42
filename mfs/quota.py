"""`python -m mfs quota`: a scope's usage this month and the database size against its limits
(sql/0006_quota.sql, sql/0040_size_guard.sql); sets the limits it is given, leaves the others."""

from __future__ import annotations

import json
from typing import Optional, Union

from .aio import run_sync
from .db import connect

UNLIMITED = "none"  # a limit given as `none` on the command line: no limit
Limit = Optional[Union[int, str]]  # None = leave as it is


def _merged(given: Limit, current: Optional[int]) -> Optional[int]:
    if given is None:
        return current
    return None if given == UNLIMITED else int(given)


def show_and_set(
    dsn: str,
    scope: str,
    max_requests: Limit = None,
    max_egress_bytes: Limit = None,
    max_database_bytes: Limit = None,
    warn_percent: Optional[int] = None,
) -> str:
    """Applies the limits given, measures the database size now, and returns the report."""

    async def go():
        con = await connect(dsn)
        try:
            async with con.transaction():
                row = await con.fetchrow(
                    "select max_requests, max_egress_bytes, max_database_bytes "
                    "from mfs.quota_limits where scope = $1",
                    scope,
                )
                cur = dict(row) if row else {}
                if max_requests is not None or max_egress_bytes is not None:
                    await con.execute(
                        "select mfs_api.set_quota_limits($1, $2, $3)",
                        scope,
                        _merged(max_requests, cur.get("max_requests")),
                        _merged(max_egress_bytes, cur.get("max_egress_bytes")),
                    )
                if max_database_bytes is not None or warn_percent is not None:
                    await con.execute(
                        "select mfs_api.set_storage_limit($1, $2, $3)",
                        scope,
                        _merged(max_database_bytes, cur.get("max_database_bytes")),
                        warn_percent,
                    )
            await con.execute("select mfs.refresh_database_size()")
            return json.loads(await con.fetchval("select mfs_api.get_usage($1)::text", scope))
        finally:
            await con.close()

    return report(run_sync(go()))


def megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def report(usage: dict) -> str:
    """The usage JSON, then what it means in one line per budget, and the warning if any."""
    lines = [json.dumps(usage, indent=2), ""]

    def budget(name: str, used: int, limit: Optional[int], unit=lambda n: f"{n:,}") -> str:
        if limit is None:
            return f"{name}: {unit(used)} (no limit)"
        return f"{name}: {unit(used)} of {unit(limit)} ({100 * used // max(limit, 1)}%)"

    month = f"this month ({usage['month']}, resets {usage['resets_at']})"
    lines.append(budget(f"requests {month}", usage["requests"], usage["max_requests"]))
    lines.append(
        budget(f"egress {month}", usage["egress_bytes"], usage["max_egress_bytes"], lambda n: f"{n:,} bytes")
    )
    lines.append(
        budget(
            f"database size (measured {usage['database_measured_at']})",
            usage["database_bytes"],
            usage["max_database_bytes"],
            megabytes,
        )
    )
    if usage.get("warning"):
        lines.append(f"warning: {usage['warning']}")
    return "\n".join(lines)
