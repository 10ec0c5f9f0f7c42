"""Issue 14: throughput of the per-task request mix before and after the slot ledger
(sql/0020_quota_slots.sql), side by side in one run on one Postgres.

Two databases on the same server: "before" migrated with the sql/ of a git revision (default:
the commit before 0020 was added), "after" with today's sql/. The router code is the same, so
each database gets its own router process. The mix is a real 10-wide foreach run recorded
through a proxy (step get-or-create, task create, metadata, ping, artifacts, heartbeats...),
replayed in copies under new flow names (bench/replay.py) by `concurrency` workers, either over
HTTP to a router or as the same mfs_api.call statement through an asyncpg pool ("direct").
Both scopes carry a quota (1e9 requests, 1e13 bytes: a limited scope, far from its limit, as
on a free plan) unless --unlimited. Every round runs the four variants, in a rotated order;
medians over rounds, ratios per round. pg_stat_statements (track=top) gives the statements and
the server execution time per request: everything that database ran during the phase ÷ the
requests answered (the time a statement waits for a lock counts; its commit's WAL flush does not).

With --official DIR --official-python PY the official service (bench/official_service.py) is a
fifth variant, on a third database with its own schema, same pool size.

    python bench/throughput.py [--rounds 3] [--seconds 8] [--concurrency 16,64] [--before REV]
                               [--official DIR --official-python PY]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import aiohttp
import asyncpg

import common
from common import log, median, pct
from replay import Replayer, direct_sender, http_sender, program_from_records

VARIANTS = ["router before", "router after", "direct before", "direct after"]
OFFICIAL = "official service"


def before_revision() -> str:
    added = subprocess.run(
        ["git", "log", "--format=%H", "--diff-filter=A", "-1", "--", "sql/0020_quota_slots.sql"],
        cwd=common.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return subprocess.run(
        ["git", "rev-parse", "--short", added + "^"],
        cwd=common.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def export_sql(rev: str, into: Path) -> list[str]:
    """sql/ as of git revision `rev`, written to `into`; returns the file names."""
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", rev, "sql/"],
        cwd=common.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for n in names:
        text = subprocess.run(
            ["git", "show", f"{rev}:{n}"], cwd=common.ROOT, capture_output=True, check=True
        ).stdout
        (into / Path(n).name).write_bytes(text)
    return [Path(n).name for n in names]


async def server_time(admin, db: str) -> tuple[int, float]:
    """Statements run and their total execution ms in database `db` since the last reset."""
    row = await admin.fetchrow(
        """select coalesce(sum(calls), 0)::bigint calls, coalesce(sum(total_exec_time), 0)::float8 ms
             from pg_stat_statements s join pg_database d on d.oid = s.dbid
            where d.datname = $1""",
        db,
    )
    return row["calls"], row["ms"]


async def bench(pg, dsns: dict, routers: dict, program, args, official=None) -> dict:
    admin = await asyncpg.connect(pg.dsn)
    await admin.execute("create extension if not exists pg_stat_statements")
    pools = {
        k: await asyncpg.create_pool(d, min_size=args.pool, max_size=args.pool)
        for k, d in dsns.items()
        if k != "official"
    }
    variants = VARIANTS + ([OFFICIAL] if official else [])
    out = {}
    for conc in args.concurrency:
        conn = aiohttp.TCPConnector(limit=conc, keepalive_timeout=60)
        session = aiohttp.ClientSession(connector=conn)
        senders = {f"router {k}": http_sender(session, r.url, r.key) for k, r in routers.items()}
        senders |= {f"direct {k}": direct_sender(pools[k]) for k in pools}
        if official:
            senders[OFFICIAL] = http_sender(session, official.url, official.key)
        replayer = Replayer(program, f"C{conc}x")
        for name in variants:  # warm-up: connections, prepared statements, plan caches
            await replayer.run(senders[name], conc, 2.0)
        rounds = []
        for i in range(args.rounds):
            order = variants[i % len(variants) :] + variants[: i % len(variants)]
            if i % 2:
                order.reverse()
            res = {}
            for name in order:
                db = dsns["official" if name == OFFICIAL else name.split()[1]].rsplit("/", 1)[1]
                await admin.execute("select pg_stat_statements_reset()")
                r = await replayer.run(senders[name], conc, args.seconds)
                calls, ms = await server_time(admin, db)
                r["statements_per_request"] = calls / max(r["requests"], 1)
                r["server_ms_per_request"] = ms / max(r["requests"], 1)
                res[name] = r
                log(
                    f"c{conc} round {i + 1} {name:16s}: {r['rps']:6.0f} req/s, {len(r['errors'])} 5xx, "
                    f"server {r['server_ms_per_request']:.2f} ms/request"
                )
            rounds.append(res)
        await session.close()
        out[conc] = rounds
    for p in pools.values():
        await p.close()
    await admin.close()
    return out


def report(out: dict, args, mix_n: int, tasks: int, rev: str) -> dict:
    print(f"\n## Throughput of the per-task mix, before ({rev}) and after the slot ledger\n")
    print(
        f"{mix_n}-request recording of a {args.width}-wide foreach run ({tasks} tasks), pool {args.pool}, "
        f"{args.rounds} rounds x {args.seconds:.0f} s per variant, "
        f"{'unlimited scope' if args.unlimited else 'limited scope far from its limit'}\n"
    )
    summary = {}
    for conc, rounds in out.items():
        variants = [v for v in VARIANTS + [OFFICIAL] if v in rounds[0]]
        med = {v: median([r[v]["rps"] for r in rounds]) for v in variants}
        ratio = {
            "router after / before": median(
                [r["router after"]["rps"] / r["router before"]["rps"] for r in rounds]
            ),
            "direct after / before": median(
                [r["direct after"]["rps"] / r["direct before"]["rps"] for r in rounds]
            ),
            "router / direct, before": median(
                [r["router before"]["rps"] / r["direct before"]["rps"] for r in rounds]
            ),
            "router / direct, after": median(
                [r["router after"]["rps"] / r["direct after"]["rps"] for r in rounds]
            ),
        }
        if OFFICIAL in variants:
            for side in ("before", "after"):
                ratio[f"router {side} / official"] = median(
                    [r[f"router {side}"]["rps"] / r[OFFICIAL]["rps"] for r in rounds]
                )
        print(f"### concurrency {conc}\n")
        print(
            "| variant | "
            + " | ".join(f"round {i + 1} req/s" for i in range(len(rounds)))
            + " | **median req/s** | p50 ms | p99 ms | statements/request | server ms/request | 5xx |"
        )
        print("|---|" + "---|" * (len(rounds) + 6))
        for v in variants:
            lat = [x for r in rounds for op in r[v]["latencies"].values() for x in op]
            print(
                f"| {v} | "
                + " | ".join(f"{r[v]['rps']:.0f}" for r in rounds)
                + f" | **{med[v]:.0f}** | {pct(lat, 0.5) * 1e3:.1f} | {pct(lat, 0.99) * 1e3:.1f} | "
                f"{median([r[v]['statements_per_request'] for r in rounds]):.2f} | "
                f"{median([r[v]['server_ms_per_request'] for r in rounds]):.2f} | "
                f"{sum(len(r[v]['errors']) for r in rounds)} |"
            )
        print()
        print("| ratio (median of per-round ratios) | value |")
        print("|---|---|")
        for k, x in ratio.items():
            print(f"| {k} | **{x:.2f}** |")
        print()
        summary[conc] = dict(
            median_rps=med,
            ratios=ratio,
            rounds=[
                {v: {k: x for k, x in r[v].items() if k != "latencies"} for v in variants} for r in rounds
            ],
        )
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each variant's phase")
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[16, 64])
    ap.add_argument(
        "--pool",
        type=int,
        default=10,
        help="DB connections, both for each router (DB_MAX_CONNECTIONS) and each asyncpg pool",
    )
    ap.add_argument("--width", type=int, default=10, help="foreach width of the recorded run")
    ap.add_argument("--before", help="git revision whose sql/ is 'before' (default: before 0020)")
    ap.add_argument("--unlimited", action="store_true", help="no quota limits on the scope")
    ap.add_argument(
        "--official", type=Path, help="checkout of Netflix/metaflow-service (its services/ folder)"
    )
    ap.add_argument("--official-python", default="python3", help="a Python with the official requirements")
    args = ap.parse_args()
    rev = args.before or before_revision()

    pg = common.start_postgres()
    routers, official = {}, None
    try:
        work = Path(tempfile.mkdtemp(prefix="mfs-bench-tp-"))
        records = common.record_run(pg, args.width, work)
        program = program_from_records(records)
        tasks = sum(1 for r in records if r["op"] == "task_create")
        before_sql = work / "sql-before"
        before_sql.mkdir()
        names = export_sql(rev, before_sql)
        log(f"before = {rev}: {len(names)} migrations, last {names[-1]}")
        dsns = {"before": common.new_database(pg, migrate=False), "after": common.new_database(pg)}
        common.migrations.apply(dsns["before"], sql_dir=before_sql)
        for dsn in dsns.values():  # (the official service has no quota)
            if not args.unlimited:
                common.run_sync(_set_limits(dsn))
        for k, dsn in dsns.items():
            routers[k] = common.Router(dsn, extra_env={"DB_MAX_CONNECTIONS": str(args.pool)})
        if args.official:
            from official_service import OfficialService, apply_official_schema

            dsns["official"] = common.new_database(pg, migrate=False)
            n = common.run_sync(apply_official_schema(dsns["official"], args.official))
            log(f"official schema: {n} migration files")
            official = OfficialService(dsns["official"], args.official, args.official_python, args.pool)
        out = common.run_sync(bench(pg, dsns, routers, program, args, official))
    finally:
        if official:
            official.stop()
        for r in routers.values():
            r.stop()
        pg.stop()
    summary = report(out, args, len(program), tasks, rev)
    common.save_json("throughput.json", dict(summary=summary, args=vars(args), before=rev))


async def _set_limits(dsn: str) -> None:
    con = await asyncpg.connect(dsn)
    try:
        await con.execute("select mfs_api.set_quota_limits('default', 1000000000, 10000000000000)")
    finally:
        await con.close()


if __name__ == "__main__":
    main()
