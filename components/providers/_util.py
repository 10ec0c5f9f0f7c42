"""Helpers shared by the dynamic providers: async calls, local-process refresh and port diffs
(vendor HTTP: vendor_api.py; local processes: mfs/processes.py)."""

from __future__ import annotations

from mfs import REPO_ROOT  # noqa: F401 (the providers take it from here)
from mfs.aio import run_sync


run_async = run_sync  # the providers' name for it


def process_read(id_, props, program: str):
    """Refresh of a local process: present while its pid runs `program`, else gone."""
    from pulumi.dynamic import ReadResult

    from mfs.processes import command_name, pid_alive

    pid = int(props.get("pid") or 0)
    if pid and pid_alive(pid) and command_name(pid) == program:
        return ReadResult(id_, props)
    return ReadResult(None, {})


def settings_update(olds: dict, news: dict):
    """An update that changes only how delete behaves (drop_data): the state takes the new
    inputs and keeps every output (the bound port too, where the request was 0)."""
    from pulumi.dynamic import UpdateResult

    return UpdateResult({**olds, **{k: v for k, v in news.items() if k != "port"}})


def port_changed(olds: dict, news: dict) -> bool:
    """Whether a requested port differs from the state's. The state holds the port actually
    bound; a request of 0 (any free port) is satisfied by whichever was bound."""
    wanted = int(news.get("port") or 0)
    return wanted != 0 and wanted != int(olds.get("port") or 0)
