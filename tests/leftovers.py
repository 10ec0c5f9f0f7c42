"""Processes a test run leaves behind, found by a marker in their environment.

Every process the suite starts (Postgres through pg_ctl, routers, SeaweedFS, workerd, Metaflow
runs) inherits `MFS_RUN_MARKER` from the run's environment, whatever user it runs as and
whoever its parent is now. At the end, any process still carrying the marker is a leftover.
`python tests/leftovers.py` (run by .ci/run after pytest) lists them, stops them and exits 1.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

MARKER = "MFS_RUN_MARKER"


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return pids


def find(marker: str) -> dict[int, str]:
    """{pid: command line} of the running processes whose environment holds `marker`, other than
    this process and its ancestors."""
    needle = f"{MARKER}={marker}".encode()
    mine, found = _ancestors(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(") ", 1)[1][0] == "Z":
                continue  # exited, waiting for its parent to reap it
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        found[int(entry.name)] = cmd.strip()[:200]
    return found


def stop_all(pids, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL what is left after `grace` seconds (SeaweedFS ignores SIGTERM)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.1)


def report_and_stop(marker: str, out=print) -> int:
    """Lists and stops the leftovers; returns how many there were."""
    left = find(marker)
    if left:
        out(f"LEFTOVER PROCESSES of this test run ({len(left)}), stopping them:")
        for pid, cmd in sorted(left.items()):
            out(f"  {pid}: {cmd}")
        stop_all(list(left))
    return len(left)


if __name__ == "__main__":
    marker = os.environ.get(MARKER)
    if not marker:
        sys.exit(f"set {MARKER} to the marker the test run was started with")
    sys.exit(1 if report_and_stop(marker) else 0)
