"""Helpers the tests share: real PostgreSQL databases, the real Deno router as a process, the
environment for real Metaflow runs. (A module of its own, not conftest.py: tests/pulumi has a
conftest too, and `from conftest import` would pick either.)"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import queue
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import asyncpg
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mfs.aio import run_sync  # noqa: E402,F401 (the tests import it from here)
from mfs.local_postgres import LocalPostgres  # noqa: E402
from mfs.processes import free_port, stop_process  # noqa: E402
from mfs.router import start_router  # noqa: E402

_db_counter = itertools.count()


def q(dsn: str, sql: str, *args):
    """Runs one query on a database and returns its rows."""

    async def go():
        con = await asyncpg.connect(dsn)
        try:
            return await con.fetch(sql, *args)
        finally:
            await con.close()

    return run_sync(go())


def new_database(pg: LocalPostgres) -> str:
    return pg.create_database(f"t{os.getpid()}_{next(_db_counter)}")


class Router:
    """A running router process for a database; `url`, `key`, `restart()`, `stop()`."""

    def __init__(self, dsn: str, key: str, prefix: str = "", scope: str = "default"):
        self.dsn, self.key, self.prefix, self.scope = dsn, key, prefix, scope
        self.port = free_port()
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"router-{self.port}.log"
        self.proc = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def start(self) -> None:
        self._log = open(self.log_path, "ab")
        self.proc = start_router(
            self.dsn,
            self.key,
            self.port,
            quota_scope=self.scope,
            path_prefix=self.prefix,
            stdout=self._log,
            stderr=self._log,
        )

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def session(self, key: str | None = "__default__") -> requests.Session:
        s = requests.Session()
        k = self.key if key == "__default__" else key
        if k is not None:
            s.headers["x-api-key"] = k
        return s


def metaflow_env(router: Router, tmp_path: Path) -> dict:
    """Environment for a real Metaflow run against the router (local datastore)."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("METAFLOW_"):
            del env[k]
    home = tmp_path / "mfhome"
    home.mkdir(exist_ok=True)
    env.update(
        METAFLOW_HOME=str(home),
        METAFLOW_DEFAULT_METADATA="service",
        METAFLOW_SERVICE_URL=router.url,
        METAFLOW_SERVICE_AUTH_KEY=router.key,
        METAFLOW_DEFAULT_DATASTORE="local",
        METAFLOW_DATASTORE_SYSROOT_LOCAL=str(tmp_path / "datastore"),
        USERNAME="tester",
        PYTHONUNBUFFERED="1",
    )
    return env


FLOWS = ROOT / "tests" / "flows"


def run_flow(env, flow, *args, check=True, cwd=None):
    cmd = [sys.executable, str(FLOWS / flow), "--no-pylint", *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=cwd)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def client(env, code, timeout=300):
    """Runs Client API code in a child process; it prints one JSON value, returned here."""
    script = (
        "import json\nfrom metaflow import *\nfrom metaflow.exception import MetaflowNamespaceMismatch\n"
        + textwrap.dedent(code)
    )
    res = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def make_task(api, flow="F", run_body=None):
    u = api.base
    assert (
        api.post(f"{u}/flows/{flow}", json={"user_name": "u", "system_tags": ["user:u"]}).status_code == 200
    )
    run = api.post(
        f"{u}/flows/{flow}/run",
        json=run_body or {"user_name": "u", "tags": ["t1"], "system_tags": ["user:u"]},
    ).json()
    r = run["run_number"]
    assert api.post(f"{u}/flows/{flow}/runs/{r}/steps/start/step", json={"user_name": "u"}).status_code == 200
    task = api.post(f"{u}/flows/{flow}/runs/{r}/steps/start/task", json={"user_name": "u"}).json()
    return r, task["task_id"]


def read_until(proc: subprocess.Popen, needle: str, timeout: float) -> tuple[str, "queue.Queue"]:
    """Reads the process's output (in a thread) until `needle`; the queue gets the rest."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(l) for l in iter(proc.stdout.readline, "")] + [lines.put(None)], daemon=True
    ).start()
    out, deadline = "", time.monotonic() + timeout
    while needle not in out:
        left = deadline - time.monotonic()
        assert left > 0, f"no {needle!r} within {timeout}s (rc={proc.poll()}):\n{out[-3000:]}"
        try:
            line = lines.get(timeout=min(left, 1))
        except queue.Empty:
            continue
        assert line is not None, f"the process ended (rc={proc.wait()}) before {needle!r}:\n{out[-3000:]}"
        out += line
    return out, lines


def drain(lines: "queue.Queue") -> str:
    out = ""
    while (line := lines.get(timeout=30)) is not None:
        out += line
    return out


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class RecordingProxy:
    """An HTTP proxy in front of the router that records every request and its reply:
    {method, path, query, body, status, reply}. Runs its own event loop in a thread."""

    def __init__(self, target: str):
        self.target = target
        self.port = free_port()
        self.records: list[dict] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        self._ready.wait(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _main(self):
        import aiohttp
        from aiohttp import web

        async def handle(req: web.Request):
            body = await req.read()
            headers = {k: v for k, v in req.headers.items() if k.lower() not in ("host", "content-length")}
            async with self.session.request(
                req.method, self.target + req.rel_url.path_qs, data=body if body else None, headers=headers
            ) as r:
                reply = await r.read()
                self.records.append(
                    dict(
                        method=req.method,
                        path=req.rel_url.path,
                        query=dict(req.rel_url.query),
                        body=body.decode() or None,
                        status=r.status,
                        reply=reply.decode(errors="replace"),
                        t=time.time(),
                    )
                )
                out_headers = {
                    k: v
                    for k, v in r.headers.items()
                    if k.lower()
                    not in ("content-length", "transfer-encoding", "content-encoding", "connection")
                }
                return web.Response(status=r.status, body=reply, headers=out_headers)

        async def main():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.session = aiohttp.ClientSession()
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()
            await self.session.close()

        asyncio.run(main())

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
