"""The start-step metadata of listed runs, kept for a short while: the home page asks for it once
per run row (and the live updates again), and the runs list brings it along in the same service
request (/ui/runs/view, sql/0050), so those per-row calls need no service request of their own."""

from __future__ import annotations

import time

TTL_S = 30.0  # a list re-read (every live update of the home page) refreshes it
PAGE_ROWS = 1000  # /ui/runs/view sends up to 1001 rows: 1001 means more, not cached


class StartMetadata:
    def __init__(self, ttl_s: float = TTL_S):
        self.ttl_s = ttl_s
        self._rows: dict[tuple[str, str], tuple[float, list]] = {}

    def fill(self, runs: list, start_metadata: list) -> None:
        now = time.monotonic()
        if len(self._rows) > 5000:
            self._rows = {k: v for k, v in self._rows.items() if now - v[0] < self.ttl_s}
        for run, rows in zip(runs, start_metadata):
            if isinstance(rows, list) and len(rows) <= PAGE_ROWS:
                self._rows[(str(run.get("flow_id")), str(run.get("run_number")))] = (now, rows)

    def get(self, flow_id: str, run: str, max_age_s: float | None = None):
        """The rows, or None when not listed within max_age_s (default: the TTL)."""
        hit = self._rows.get((flow_id, run))
        if hit and time.monotonic() - hit[0] < min(self.ttl_s, max_age_s or self.ttl_s):
            return [dict(r) for r in hit[1]]
        return None
