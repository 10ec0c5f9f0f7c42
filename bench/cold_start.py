"""Figure 5: cold start. Process start (Popen of `deno run ... functions/metadata-router/main.ts`)
to the first HTTP 200 from GET /ping (which goes through the database: mfs_api.call), and to the
first 200 from /healthcheck (no database), over several rounds; medians. Deno's module cache is
warm (one untimed start first), as on a deployed function. A Cloudflare Worker entry is
measured under workerd only if the repository has one.

    python bench/cold_start.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import time

import common
from common import ROOT, median, pct
from mfs.local_postgres import free_port
from mfs.router import router_command


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


def one_start(dsn: str, path: str) -> float:
    key = secrets.token_urlsafe(16)
    port = free_port()
    env = dict(os.environ, DATABASE_URL=dsn, METADATA_API_KEY=key, PORT=str(port))
    t0 = time.perf_counter()
    proc = subprocess.Popen(router_command(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def worker_entries() -> list[str]:
    found = []
    for p in ROOT.rglob("*"):
        if any(x in p.parts for x in (".git", "node_modules", "bench")):
            continue
        if p.name in ("wrangler.toml", "wrangler.json", "wrangler.jsonc") or p.name.endswith(".capnp"):
            found.append(str(p.relative_to(ROOT)))
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    pg = common.start_postgres()
    try:
        dsn = common.new_database(pg)
        one_start(dsn, "/ping")  # warm Deno's module cache
        res = {"/ping": [], "/healthcheck": []}
        for i in range(args.rounds):
            for path in (("/ping", "/healthcheck") if i % 2 == 0 else ("/healthcheck", "/ping")):
                res[path].append(one_start(dsn, path))
    finally:
        pg.stop()
    deno_v = subprocess.run([router_command()[0], "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"\n## Figure 5: cold start ({deno_v}, {args.rounds} rounds, module cache warm)\n")
    print("| first 200 from | median ms | min ms | max ms |")
    print("|---|---|---|---|")
    for path, v in res.items():
        print(f"| {path} | {median(v) * 1e3:.0f} | {min(v) * 1e3:.0f} | {max(v) * 1e3:.0f} |")
    entries = worker_entries()
    print("\nworkerd: " + (f"Worker config found ({', '.join(entries)}) but not measured here"
                           if entries else "the repository has no Cloudflare Worker entry "
                           "(no wrangler.toml / workerd config), so there is nothing to run under workerd"))
    common.save_json("fig5_cold_start.json", dict(results=res, deno=deno_v, worker_entries=entries))


if __name__ == "__main__":
    main()
