"""The run page's reads, answered from one service request: the page asks for the run, its steps,
tasks, parameters (the `_parameters` artifacts), one artifact and the start-step metadata, each
once or twice, at once; /ui/flows/F/runs/R/view (sql/0050) returns all of them, and the service
memo (service.py) shares that one reply among the page's requests."""

from __future__ import annotations

import re

RUN_PATH = re.compile(r"^(/ui/flows/[^/]+/runs/[^/]+)(/steps|/tasks|/artifacts|/metadata)?$")
# (path suffix, query) of a read -> the part of the view reply that answers it
PARTS = {
    ("", ()): "run",
    ("/steps", ()): "steps",
    ("/tasks", (("_limit", "1000"), ("_page", "1"))): "tasks",
    ("/artifacts", (("step_name", "_parameters"),)): "parameters",
    ("/artifacts", (("_limit", "1"), ("_page", "1"))): "first_artifact",
    ("/metadata", (("_limit", "1000"), ("_page", "1"), ("step_name", "start"))): "start_metadata",
}


def view_read(path: str, query: dict) -> tuple[str, str] | None:
    """(the view's path, the part) when the run view answers this read, else None."""
    m = RUN_PATH.match(path)
    if not m:
        return None
    part = PARTS.get((m.group(2) or "", tuple(sorted(query.items()))))
    return (m.group(1) + "/view", part) if part else None
