"""Figure 4: free-tier capacity. Runs the benchmark foreach flow (default 100 wide = 103 tasks
+ the _parameters task) once against a fresh database through the router, then reports
database bytes per task (pg_total_relation_size of the six tables, heap + TOAST + indexes,
growth over the freshly migrated database), and requests and egress bytes per task from the
quota ledger mfs.quota_usage (egress = reply bodies the router sent; HTTP headers measured
separately), and the tasks that fit Supabase's free plan: 500 MB database (cumulative: what is
kept), 500,000 function invocations and 5 GiB egress per month.

    python bench/capacity.py [--width 100]
"""

from __future__ import annotations

import argparse
import socket
import tempfile
from pathlib import Path

import asyncpg

import common

TABLES = ["flows_v3", "runs_v3", "steps_v3", "tasks_v3", "metadata_v3", "artifact_v3"]
FREE = dict(db_bytes=500 * 1000**2, invocations=500_000, egress_bytes=5 * 1024**3)


async def sizes(dsn: str) -> dict:
    con = await asyncpg.connect(dsn)
    out = {}
    for t in TABLES:
        rel = f"public.{t}"
        heap = await con.fetchval(
            "select pg_relation_size($1::regclass) + "
            "coalesce(pg_total_relation_size(nullif(reltoastrelid, 0)), 0) "
            "from pg_class where oid = $1::regclass",
            rel,
        )
        idx = await con.fetch(
            "select indexrelid::regclass::text as name, pg_relation_size(indexrelid) as bytes "
            "from pg_index where indrelid = $1::regclass",
            rel,
        )
        rows = await con.fetchval(f"select count(*) from {rel}")
        out[t] = dict(
            total=await con.fetchval("select pg_total_relation_size($1::regclass)", rel),
            heap=heap,
            rows=rows,
            indexes={r["name"]: r["bytes"] for r in idx},
        )
    await con.close()
    return out


async def ledger(dsn: str):
    con = await asyncpg.connect(dsn)
    rows = [dict(r) for r in await con.fetch("select * from mfs.quota_usage")]
    await con.close()
    return rows


def header_bytes(url: str, key: str) -> int:
    """Bytes of the status line and headers of a typical reply (keep-alive)."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"GET /ping HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
    return data.index(b"\r\n\r\n") + 4


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=100)
    args = ap.parse_args()
    pg = common.start_postgres()
    try:
        dsn = common.new_database(pg)
        before = common.run_sync(sizes(dsn))
        router = common.Router(dsn)
        try:
            work = Path(tempfile.mkdtemp(prefix="mfs-bench-cap-"))
            common.run_flow(common.metaflow_env(router, work), args.width, work)
            hdr = header_bytes(router.url, router.key)
        finally:
            router.stop()
        common.run_sync(_vacuum(dsn))
        after = common.run_sync(sizes(dsn))
        usage = common.run_sync(ledger(dsn))
        # what `mfs retain --vacuum-full` makes of the same rows (tables rewritten, indexes rebuilt)
        common.run_sync(_vacuum(dsn, full=True))
        compacted = common.run_sync(sizes(dsn))
    finally:
        pg.stop()
    tasks = after["tasks_v3"]["rows"]
    requests = sum(u["requests"] for u in usage) - 1  # the header probe's /ping
    egress = sum(u["egress_bytes"] for u in usage) - len('"pong"')
    grown = {t: after[t]["total"] - before[t]["total"] for t in TABLES}
    db_per_task = sum(grown.values()) / tasks
    req_per_task = requests / tasks
    eg_per_task = egress / tasks
    eg_hdr_per_task = (egress + requests * hdr) / tasks
    fit = dict(
        db=FREE["db_bytes"] / db_per_task,
        invocations=FREE["invocations"] / req_per_task,
        egress=FREE["egress_bytes"] / eg_per_task,
        egress_hdr=FREE["egress_bytes"] / eg_hdr_per_task,
    )
    limiting = min(
        ("database (500 MB, kept)", fit["db"]),
        ("invocations (500k/month)", fit["invocations"]),
        ("egress (5 GiB/month)", fit["egress"]),
        key=lambda x: x[1],
    )
    print(
        f"\n## Figure 4: free-tier capacity (one {args.width}-wide foreach run: {tasks} tasks, "
        f"{requests} requests)\n"
    )
    print("| table | rows | rows/task | heap+toast bytes | index bytes | total growth | bytes/task |")
    print("|---|---|---|---|---|---|---|")
    for t in TABLES:
        a, b = after[t], before[t]
        ib = sum(a["indexes"].values()) - sum(b["indexes"].values())
        print(
            f"| {t} | {a['rows']} | {a['rows'] / tasks:.1f} | {a['heap'] - b['heap']} | {ib} | {grown[t]} | "
            f"{grown[t] / tasks:.0f} |"
        )
    print(f"| **all six** | | | | | {sum(grown.values())} | **{db_per_task:.0f}** |")
    big = sorted(
        (
            (n, after[t]["indexes"][n] - before[t]["indexes"].get(n, 0))
            for t in TABLES
            for n in after[t]["indexes"]
        ),
        key=lambda x: -x[1],
    )[:6]
    print("\nlargest indexes (growth, bytes): " + ", ".join(f"{n} {b}" for n, b in big))
    print(
        f"\nper task: {db_per_task:.0f} DB bytes, {req_per_task:.2f} requests, {eg_per_task:.0f} egress bytes "
        f"(reply bodies, quota ledger; {eg_hdr_per_task:.0f} with {hdr}-byte HTTP headers per reply)\n"
    )
    print("| Supabase free plan | per task | tasks that fit |")
    print("|---|---|---|")
    print(
        f"| database 500 MB (kept, not monthly) | {db_per_task / 1024:.1f} KiB | {fit['db']:,.0f} tasks stored |"
    )
    print(
        f"| 500,000 invocations / month | {req_per_task:.1f} requests | {fit['invocations']:,.0f} tasks/month |"
    )
    print(
        f"| 5 GiB egress / month | {eg_per_task / 1024:.1f} KiB ({eg_hdr_per_task / 1024:.1f} KiB with headers) | "
        f"{fit['egress']:,.0f} ({fit['egress_hdr']:,.0f}) tasks/month |"
    )
    print(f"\nlimiting: {limiting[0]} at {limiting[1]:,.0f} tasks")
    packed = sum(compacted[t]["total"] - before[t]["total"] for t in TABLES) / tasks
    print(
        f"\nafter VACUUM FULL (`mfs retain --vacuum-full`): {packed:.0f} DB bytes per task, "
        f"{FREE['db_bytes'] / packed:,.0f} tasks in 500 MB"
    )
    common.save_json(
        "fig4_capacity.json",
        dict(
            before=before,
            after=after,
            compacted=compacted,
            usage=usage,
            tasks=tasks,
            requests=requests,
            egress=egress,
            header_bytes=hdr,
            per_task=dict(
                db=db_per_task, requests=req_per_task, egress=eg_per_task, egress_hdr=eg_hdr_per_task
            ),
            fit=fit,
            limiting=limiting,
        ),
    )


async def _vacuum(dsn, full: bool = False):
    con = await asyncpg.connect(dsn)
    await con.execute("checkpoint")
    await con.execute("vacuum full analyze" if full else "vacuum analyze")
    await con.close()


if __name__ == "__main__":
    main()
