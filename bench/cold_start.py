"""Figure 5: cold start. Process start (Popen of `deno run ... functions/metadata-router/main.ts`)
to the first HTTP 200 from GET /ping (which goes through the database: mfs_api.call), and to the
first 200 from /healthcheck (no database), over several rounds; medians. Deno's module cache is
warm (one untimed start first), as on a deployed function. The same for the Cloudflare Worker
bundle (`functions/metadata-router/worker/`) under a local workerd, the bundle built beforehand
(as on a deployed Worker), alternating with Deno in each round.

    python bench/cold_start.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import time

import common
from common import median
from mfs.processes import free_port
from mfs.router import router_command
from mfs.worker import BIN, WorkerdRouter


def http_get(port: int, path: str, key: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]) if data else 0


def deno_start(dsn: str, key: str, port: int) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=dsn, METADATA_API_KEY=key, PORT=str(port))
    return subprocess.Popen(router_command(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def workerd_start(dsn: str, key: str, port: int) -> subprocess.Popen:
    w = WorkerdRouter(dsn, key, port)  # bundles and writes the config: not part of the timing
    started_at = time.perf_counter()
    proc = subprocess.Popen(w.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.started_at, proc.cleanup = started_at, w.dir
    return proc


def one_start(dsn: str, path: str, runtime=deno_start) -> float:
    key = secrets.token_urlsafe(16)
    port = free_port()
    t0 = time.perf_counter()
    proc = runtime(dsn, key, port)
    t0 = getattr(proc, "started_at", t0)  # workerd: the clock starts after the bundle was built
    try:
        while True:
            try:
                if http_get(port, path, key) == 200:
                    return time.perf_counter() - t0
            except (ConnectionRefusedError, ConnectionResetError):
                pass
            if proc.poll() is not None:
                raise RuntimeError("the router exited")
            if time.perf_counter() - t0 > 60:
                raise RuntimeError("no 200 within 60 s")
            time.sleep(0.002)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(getattr(proc, "cleanup", "") or "/nonexistent", ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    pg = common.start_postgres()
    runtimes = {"deno": deno_start, "workerd": workerd_start}
    try:
        dsn = common.new_database(pg)
        for runtime in runtimes.values():
            one_start(dsn, "/ping", runtime)  # warm module caches, install the bundle tools
        res = {(name, path): [] for name in runtimes for path in ("/ping", "/healthcheck")}
        for i in range(args.rounds):
            order = list(res) if i % 2 == 0 else list(reversed(res))
            for name, path in order:
                res[(name, path)].append(one_start(dsn, path, runtimes[name]))
    finally:
        pg.stop()
    deno_v = subprocess.run([router_command()[0], "--version"], capture_output=True, text=True).stdout.split(
        "\n"
    )[0]
    workerd_v = subprocess.run(
        [str(BIN / "workerd"), "--version"], capture_output=True, text=True
    ).stdout.strip()
    print(f"\n## Figure 5: cold start ({deno_v}; {workerd_v}; {args.rounds} rounds, module cache warm)\n")
    print("| runtime | first 200 from | median ms | min ms | max ms |")
    print("|---|---|---|---|---|")
    for (name, path), v in res.items():
        print(f"| {name} | {path} | {median(v) * 1e3:.0f} | {min(v) * 1e3:.0f} | {max(v) * 1e3:.0f} |")
    common.save_json(
        "fig5_cold_start.json",
        dict(results={f"{n} {p}": v for (n, p), v in res.items()}, deno=deno_v, workerd=workerd_v),
    )


if __name__ == "__main__":
    main()
