"""The supabase-free Edge Function's database settings under a fan-out: the platform may run
many isolates at once, each with its own pool. Ten router instances with the function's
secrets exactly as the stack registers them (DB_PREPARE, DB_MAX_CONNECTIONS, PATH_PREFIX; the
transaction-pooler URL replaced by a local database) behind a round-robin front, three
concurrent Metaflow runs of a 100-way foreach, and a Postgres with max_connections = 60, the
free tier's order of magnitude: every run completes and the server's client connections,
sampled throughout, stay within the limit (and within instances x pool size)."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from harness import SECRETS, run_program
from mfs import migrations
from mfs.local_postgres import LocalPostgres
from mfs.processes import free_port, stop_process
from mfs.router import start_router
from testkit import ROOT, q

INSTANCES = 10
MAX_CONNECTIONS = 60
RUNS, FANOUT = 3, 100


class RoundRobin:
    """One URL for several router instances, as the platform's front is for its isolates."""

    def __init__(self, ports: list[int]):
        self.count = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _forward(self):
                outer.count += 1
                port = ports[outer.count % len(ports)]
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                resp = requests.request(
                    self.command,
                    f"http://127.0.0.1:{port}{self.path}",
                    data=body,
                    headers=headers,
                    timeout=120,
                    stream=True,
                )
                data = resp.raw.read()
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class ConnectionSampler:
    """The peak number of client connections to the server, sampled every 0.2 s."""

    def __init__(self, dsn: str):
        self.peak, self.dsn, self.stop = 0, dsn, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.2):
            n = q(self.dsn, "select count(*) from pg_stat_activity where backend_type = 'client backend'")[0][
                0
            ]
            self.peak = max(self.peak, n)

    def close(self) -> int:
        self.stop.set()
        self.thread.join(10)
        return self.peak


@pytest.mark.timeout(1800)
def test_fan_out_stays_within_the_free_tier_connection_limit(tmp_path):
    fn = run_program("supabase-free", SECRETS).one("pulumi-python:dynamic/supabase:Function")
    env = {k: v for k, v in fn.plain["secrets"].items() if k != "DATABASE_URL"}
    assert env["DB_PREPARE"] == "false" and int(env["DB_MAX_CONNECTIONS"]) * INSTANCES < 40

    debian = Path("/usr/lib/postgresql/15/bin")
    with LocalPostgres(debian, settings={"max_connections": MAX_CONNECTIONS}) as pg:
        dsn = pg.create_database("edge_fanout")
        migrations.apply(dsn)
        procs, logs, ports = [], [], []
        front = sampler = None
        try:
            for i in range(INSTANCES):
                log = open(tmp_path / f"router-{i}.log", "wb")
                logs.append(log)
                ports.append(free_port())
                procs.append(
                    (
                        start_router(
                            dsn,
                            env["METADATA_API_KEY"],
                            ports[-1],
                            quota_scope=env["QUOTA_SCOPE"],
                            path_prefix=env["PATH_PREFIX"],
                            extra_env=env,
                            stdout=log,
                            stderr=log,
                        )
                    )
                )
            front = RoundRobin(ports)
            sampler = ConnectionSampler(dsn)
            mf = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOW_")}
            mf.update(
                METAFLOW_HOME=str(tmp_path / "mf"),
                METAFLOW_DEFAULT_METADATA="service",
                METAFLOW_SERVICE_URL=f"http://127.0.0.1:{front.port}{env['PATH_PREFIX']}",
                METAFLOW_SERVICE_AUTH_KEY=env["METADATA_API_KEY"],
                METAFLOW_DEFAULT_DATASTORE="local",
                USERNAME="tester",
                METAFLOW_DATASTORE_SYSROOT_LOCAL=str(tmp_path / "datastore"),
            )
            flow = ROOT / "tests" / "flows" / "foreach_flow.py"
            runs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        str(flow),
                        "--no-pylint",
                        "run",
                        "--n",
                        str(FANOUT),
                        "--max-workers",
                        "8",
                    ],
                    env=mf,
                    cwd=tmp_path,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for _ in range(RUNS)
            ]
            try:
                outputs = [r.communicate(timeout=1500)[0] for r in runs]
            finally:
                for r in runs:
                    stop_process(r)
            peak = sampler.close()
            print(
                f"peak client connections: {peak} (limit {MAX_CONNECTIONS}); "
                f"requests through the front: {front.count}"
            )
            assert all(r.returncode == 0 for r in runs), [o[-2000:] for o in outputs]
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    (
                        "import json\nfrom metaflow import Flow, namespace\nnamespace(None)\n"
                        "runs = list(Flow('ForeachFlow'))\n"
                        "print(json.dumps([[r.successful, len(list(r['each']))] for r in runs]))"
                    ),
                ],
                env=mf,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stderr[-2000:]
            assert json.loads(done.stdout.splitlines()[-1]) == [[True, FANOUT]] * RUNS
            # the routers' pools (plus this test's sampler) bound the connections
            assert peak <= INSTANCES * int(env["DB_MAX_CONNECTIONS"]) + 2 <= MAX_CONNECTIONS
            for log in logs:
                log.flush()
            text = "".join(
                (tmp_path / f"router-{i}.log").read_text(errors="replace") for i in range(INSTANCES)
            )
            assert "too many clients" not in text and "remaining connection slots" not in text
        finally:
            if sampler:
                sampler.close()
            if front:
                front.close()
            for proc in procs:
                stop_process(proc)
            for log in logs:
                log.close()
