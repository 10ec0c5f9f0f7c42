"""The router's route table (functions/metadata-router/routes.ts) as data for Python: tests and
benchmarks read it from here. Deno evaluates the module, because query lists are built from
constants and helpers that a regex cannot follow."""

from __future__ import annotations

import functools
import json
import subprocess

from . import ROUTER_DIR
from .router import deno_binary


@functools.lru_cache(maxsize=1)
def route_table() -> tuple[dict, ...]:
    """Every entry of ROUTES in order: {method, pattern, op, query?, static?, ...}."""
    code = 'import { ROUTES } from "./routes.ts"; console.log(JSON.stringify(ROUTES));'
    out = subprocess.run(
        [deno_binary(), "eval", code], cwd=ROUTER_DIR, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return tuple(json.loads(out))
