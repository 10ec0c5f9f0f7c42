"""Fixtures and helpers of the reliability and security campaign (issue 5).

The shared fixtures (pg15, migrated_db, router, ...) come from tests/conftest.py; this file
adds dedicated PostgreSQL clusters for tests that stop the server or create cluster-wide
roles, so that they never disturb the shared pg15."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import ROOT, Router, new_database, q, run_sync  # noqa: F401  (re-exported to the campaign tests)
from mfs import migrations
from mfs.local_postgres import LocalPostgres
from mfs.postgres_binaries import DEBIAN_BIN

ROUTER_DIR = ROOT / "functions" / "metadata-router"
OPENAPI = ROUTER_DIR / "openapi.yaml"
FLOWS = ROOT / "tests" / "flows"
HERE = Path(__file__).resolve().parent
FIGURES = Path("/tmp/reliability/figures.md")

TABLES = ["flows_v3", "runs_v3", "steps_v3", "tasks_v3", "metadata_v3", "artifact_v3"]
DIGEST_SQL = " union all ".join(
    f"select '{t}', count(*), coalesce(md5(string_agg(x::text, '|' order by x::text)), '') from public.{t} x"
    for t in TABLES
)


def digest(dsn: str) -> dict:
    """{table: (rows, md5 of all rows)} of the six Metaflow tables."""
    return {r[0]: (r[1], r[2]) for r in q(dsn, DIGEST_SQL)}


def figure(line: str) -> None:
    """Appends a measured figure to /tmp/reliability/figures.md (and prints it)."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES.open("a") as f:
        f.write(f"- {line}\n")
    print(line)


def parse_routes() -> list[tuple[str, str]]:
    """(METHOD, /openapi/{style}) of every entry of ROUTES in routes.ts, as the router reads it."""
    from mfs.routes import route_table

    return [(r["method"], re.sub(r":(\w+)", r"{\1}", r["pattern"])) for r in route_table()]


@pytest.fixture(scope="module")
def private_pg():
    """A PostgreSQL cluster of the module's own (may be paused, gets its own roles)."""
    with LocalPostgres(DEBIAN_BIN) as pg:
        yield pg


def fresh_db(pg: LocalPostgres) -> str:
    return new_database(pg)


def migrated(pg: LocalPostgres) -> str:
    dsn = new_database(pg)
    migrations.apply(dsn)
    return dsn


def run_flow_cmd(flow: str, *args: str) -> list[str]:
    return [sys.executable, str(FLOWS / flow), "--no-pylint", *args]


def client_json(env: dict, code: str, timeout: int = 300):
    import json
    import textwrap

    script = "import json\nfrom metaflow import *\n" + textwrap.dedent(code)
    res = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])
