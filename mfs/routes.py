"""The router's route table (functions/metadata-router/routes.ts) as data for Python: tests and
benchmarks read it from here. Deno evaluates the module, because query lists are built from
constants and helpers that a regex cannot follow."""

from __future__ import annotations

import functools
import json
import subprocess
from urllib.parse import unquote

from . import ROUTER_DIR
from .router import deno_binary


@functools.lru_cache(maxsize=1)
def route_table() -> tuple[dict, ...]:
    """Every entry of ROUTES in order: {method, pattern, op, query?, static?, ...}."""
    return tuple(_deno_json('import { ROUTES } from "./routes.ts"; console.log(JSON.stringify(ROUTES));'))


def _deno_json(code: str, *args: str):
    """What `code` prints, evaluated by Deno in the router's folder with `args`, as JSON."""
    out = subprocess.run(
        [deno_binary(), "eval", code, *args],
        cwd=ROUTER_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return json.loads(out)


def match_requests(requests: list[tuple[str, str]]) -> list[dict | None]:
    """What the router's own matchRoute (routes.ts) makes of each (method, path): {op, params} of
    the route, or None; one Deno evaluation for the whole list (the benchmarks' recordings)."""
    segments = [[unquote(s) for s in path.split("?")[0].strip("/").split("/") if s] for _, path in requests]
    code = (
        'import { matchRoute } from "./routes.ts";'
        "const reqs = JSON.parse(Deno.args[0]);"
        "console.log(JSON.stringify(reqs.map(([m, segs]) => {"
        "  const r = matchRoute(m, segs);"
        '  return r.kind === "route" ? { op: r.route.op, params: r.params } : null;'
        "})));"
    )
    return _deno_json(code, json.dumps([[m, segs] for (m, _), segs in zip(requests, segments)]))
