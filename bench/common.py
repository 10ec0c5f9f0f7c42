"""Shared benchmark plumbing: a Postgres with pg_stat_statements, fresh migrated databases, the
real Deno router, the route table of routes.ts (for recording and replaying a Metaflow run; the recording
proxy is tests/testkit.py's), and small statistics helpers. Nothing here asserts timings."""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from mfs import migrations  # noqa: E402
from mfs.aio import run_sync  # noqa: E402,F401 (the benchmarks call common.run_sync)
from mfs.local_postgres import LocalPostgres  # noqa: E402
from mfs.postgres_binaries import DEBIAN_BIN  # noqa: E402
from mfs.routes import match_requests  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from testkit import RecordingProxy, Router, metaflow_env  # noqa: E402,F401 (the benchmarks use them as common.*)

BENCH_DIR = Path(__file__).resolve().parent
FLOW_FILE = BENCH_DIR / "flows" / "foreach_flow.py"
OUT_DIR = Path(os.environ.get("MFS_BENCH_OUT", "/tmp/bench"))
CALL_SQL = "select status, body, next_cursor from mfs_api.call($1, $2, $3::text::jsonb, $4::text::jsonb)"


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- Postgres


class BenchPostgres(LocalPostgres):
    """LocalPostgres (Debian 15 by default) started with pg_stat_statements preloaded."""

    extra_opts = (
        "-c shared_preload_libraries=pg_stat_statements "
        "-c pg_stat_statements.track=top -c pg_stat_statements.max=10000 "
        "-c track_io_timing=on"
    )

    def resume(self) -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} "
            f"-c max_connections=200 -c fsync=on {self.extra_opts}"
        )
        res = self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-o",
            opts,
            "-l",
            str(self.data_dir / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
            check=False,
        )
        if res.returncode != 0:
            logf = self.data_dir / "server.log"
            tail = logf.read_text()[-2000:] if logf.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {res.stderr.strip()}\n{tail}")


def start_postgres(bin_dir: Path = DEBIAN_BIN) -> BenchPostgres:
    return BenchPostgres(bin_dir).start()


def new_database(pg: LocalPostgres, name: Optional[str] = None, migrate: bool = True) -> str:
    dsn = pg.create_database(name or f"bench_{secrets.token_hex(4)}")
    if migrate:
        migrations.apply(dsn)
    return dsn


# ---------------------------------------------------------------- routes.ts


def load_routes() -> list[dict]:
    """The route table of routes.ts, as Deno evaluates it (query lists are built from constants
    and helpers): [{method, pattern, op, query, static, parts}], in order."""
    from mfs.routes import route_table

    table = route_table()
    return [
        dict(
            method=r["method"],
            pattern=r["pattern"],
            op=r["op"],
            query=r.get("query", []),
            static=bool(r.get("static")),
            parts=r["pattern"].split("/")[1:],
        )
        for r in table
    ]


ROUTES = load_routes()


def build_path(route: dict, params: dict) -> str:
    return "/" + "/".join(str(params[p[1:]]) if p.startswith(":") else p for p in route["parts"])


# ---------------------------------------------------------------- Metaflow


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by one process, from /proc."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def postgres_cpu(pg: LocalPostgres) -> float:
    """CPU seconds of the postmaster and its live children (backends, walwriter, ...)."""
    try:
        master = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError):
        return 0.0
    total = proc_cpu(master)
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(f[1]) == master:
                total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_flow(env: dict, width: int, cwd: Path, extra: tuple = ()) -> float:
    """Runs the benchmark flow; returns its wall time in seconds (raises on failure)."""
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, str(FLOW_FILE), "--no-pylint", "run", "--width", str(width), *extra],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"flow failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return dt


# ---------------------------------------------------------------- recording proxy


def record_run(pg: LocalPostgres, width: int, workdir: Path) -> list[dict]:
    """Runs the benchmark flow once against router-behind-a-recorder; returns the records
    annotated with op and params."""
    dsn = new_database(pg)
    router = Router(dsn)
    try:
        proxy = RecordingProxy(router.url)
        env = metaflow_env(router, workdir, url=proxy.url)
        run_flow(env, width, workdir)
        time.sleep(0.5)
        recs = list(proxy.records)
    finally:
        router.stop()
    for r, m in zip(recs, match_requests([(r["method"], r["path"]) for r in recs])):
        r["op"] = m["op"] if m else None
        r["params"] = m["params"] if m else {}
    return recs


# ---------------------------------------------------------------- statistics


def pct(values, q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def save_json(name: str, data) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    p = OUT_DIR / name
    p.write_text(json.dumps(data, indent=2, default=str))
    return p
