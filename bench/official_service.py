"""The official metadata service (Netflix/metaflow-service, a Python aiohttp + aiopg service) as a
benchmark peer: its own database on the same Postgres, its schema from its goose migration files,
its process from a checkout and a Python that has its requirements (aiohttp, aiopg,
psycopg2(-binary), boto3, packaging).

    python -m venv /tmp/official-venv && /tmp/official-venv/bin/pip install \\
        "aiohttp>=3.8.1,<4" aiopg packaging psycopg2-binary boto3
    git -C <mirror> archive HEAD services | tar -x -C /tmp/official
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import asyncpg
import requests

from common import OUT_DIR
from mfs.processes import free_port, stop_process


def goose_up_statements(text: str) -> list[str]:
    """The statements of a goose file's Up section, in order."""
    up = text.split("-- +goose Up", 1)[1].split("-- +goose Down", 1)[0]
    out, block = [], None
    loose = ""
    for line in up.splitlines(keepends=True):
        tag = line.strip()
        if tag == "-- +goose StatementBegin":
            block = ""
        elif tag == "-- +goose StatementEnd":
            out.append(block)
            block = None
        elif block is not None:
            block += line
        else:
            loose += line
            if tag.endswith(";"):
                out.append(loose)
                loose = ""
    return [s for s in out if re.sub(r"--[^\n]*", "", s).strip()]


async def apply_official_schema(dsn: str, repo: Path) -> int:
    """Applies every migration file in name order, one statement at a time (autocommit: some
    build indexes CONCURRENTLY); returns how many files."""
    files = sorted(
        (repo / "services" / "migration_service" / "migration_files").glob("*.sql"),
        key=lambda p: int(p.name.split("_", 1)[0]),
    )
    con = await asyncpg.connect(dsn)
    try:
        for f in files:
            for stmt in goose_up_statements(f.read_text()):
                await con.execute(stmt)
    finally:
        await con.close()
    return len(files)


class OfficialService:
    """`python -m services.metadata_service.server` on a free port of 127.0.0.1."""

    def __init__(self, dsn: str, repo: Path, python: str, pool_max: int = 10):
        self.port = free_port()
        self.key = "unused"  # the official service has no API key; the header is ignored
        env = dict(
            os.environ,
            MF_METADATA_DB_DSN=dsn,
            MF_METADATA_PORT=str(self.port),
            MF_METADATA_HOST="127.0.0.1",
            MF_METADATA_DB_POOL_MAX=str(pool_max),
            MF_METADATA_DB_POOL_MIN="1",
            LOGLEVEL="WARNING",
            PYTHONPATH=str(repo),
        )
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        self._log = open(OUT_DIR / f"official-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [python, "-m", "services.metadata_service.server"],
            cwd=repo,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(
                    f"the official service exited ({self.proc.returncode}): "
                    f"see {OUT_DIR}/official-{self.port}.log"
                )
            try:
                if requests.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the official service did not answer /ping within 60 s")
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc)
        if not self._log.closed:
            self._log.close()
