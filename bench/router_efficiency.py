"""Figure 1: router efficiency. Requests/s through the Deno router over HTTP (keep-alive aiohttp
client) ÷ requests/s of the same mfs_api.call statements sent by a pooled asyncpg client, same
database, same concurrency, same pool size, same request mix: a real Metaflow run recorded
through a proxy, replayed (run and task ids remapped) in copies under new flow names. Rounds
alternate the order (AB, BA, ...); the ratio is the median of per-round ratios.

    python bench/router_efficiency.py [--rounds 5] [--seconds 10] [--concurrency 16] [--pool 10]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import aiohttp
import asyncpg

import common
from common import log, median, pct
from replay import Replayer, direct_sender, http_sender, program_from_records


def mix_table(records) -> list[tuple[str, int]]:
    return collections.Counter(r["op"] for r in records if r.get("op")).most_common()


async def bench(dsn: str, router: common.Router, program, args) -> dict:
    pool = await asyncpg.create_pool(dsn, min_size=args.pool, max_size=args.pool)
    conn = aiohttp.TCPConnector(limit=args.concurrency, keepalive_timeout=60)
    session = aiohttp.ClientSession(connector=conn)
    replayer = Replayer(program, "Load")
    senders = {"router": http_sender(session, router.url, router.key), "direct": direct_sender(pool)}
    # warm-up: connections, prepared statements, JIT
    for name, send in senders.items():
        await replayer.run(send, args.concurrency, 2.0)
    rounds = []
    for i in range(args.rounds):
        order = ["router", "direct"] if i % 2 == 0 else ["direct", "router"]
        res = {}
        for name in order:
            res[name] = await replayer.run(senders[name], args.concurrency, args.seconds)
            log(
                f"round {i + 1} {name:6s}: {res[name]['rps']:7.0f} req/s "
                f"({res[name]['requests']} req, {len(res[name]['errors'])} 5xx, "
                f"client cpu {res[name]['client_cpu_s']:.1f}s)"
            )
        res["ratio"] = res["router"]["rps"] / res["direct"]["rps"]
        log(f"round {i + 1} ratio {res['ratio']:.3f}")
        rounds.append(res)
    await session.close()
    await pool.close()
    return dict(rounds=rounds)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each A or B phase")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument(
        "--pool",
        type=int,
        default=10,
        help="DB connections, both for the router (DB_MAX_CONNECTIONS) and asyncpg",
    )
    ap.add_argument("--width", type=int, default=10, help="foreach width of the recorded run")
    args = ap.parse_args()

    pg = common.start_postgres()
    try:
        work = Path(tempfile.mkdtemp(prefix="mfs-bench-rec-"))
        records = common.record_run(pg, args.width, work)
        common.save_json("recorded_run.json", records)
        program = program_from_records(records)
        tasks = sum(1 for r in records if r["op"] == "task_create")
        dsn = common.new_database(pg)
        router = common.Router(dsn, extra_env={"DB_MAX_CONNECTIONS": str(args.pool)})
        try:
            out = common.run_sync(bench(dsn, router, program, args))
        finally:
            router.stop()
    finally:
        pg.stop()

    rounds = out["rounds"]
    ratio = median([r["ratio"] for r in rounds])
    lat = {name: collections.defaultdict(list) for name in ("router", "direct")}
    for r in rounds:
        for name in lat:
            for op, v in r[name]["latencies"].items():
                lat[name][op].extend(v)
    mix = mix_table(records)
    print(
        f"\n## Figure 1: router efficiency (concurrency {args.concurrency}, pool {args.pool}, "
        f"{args.rounds} rounds x {args.seconds:.0f} s each side)\n"
    )
    print(
        f"recorded mix: one run of the {args.width}-wide foreach flow, {len(program)} requests, {tasks} tasks"
    )
    print("| op | share |")
    print("|---|---|")
    for op, n in mix:
        print(f"| {op} | {n} ({100 * n / len(program):.0f}%) |")
    print()
    print("| round | router req/s | direct asyncpg req/s | ratio |")
    print("|---|---|---|---|")
    for i, r in enumerate(rounds):
        print(f"| {i + 1} | {r['router']['rps']:.0f} | {r['direct']['rps']:.0f} | {r['ratio']:.3f} |")
    print(
        f"| **median** | {median([r['router']['rps'] for r in rounds]):.0f} | "
        f"{median([r['direct']['rps'] for r in rounds]):.0f} | **{ratio:.3f}** |"
    )
    errs = sum(len(r[n]["errors"]) for r in rounds for n in ("router", "direct"))
    print(f"\n5xx replies during measurement: {errs}")
    cpu = {
        n: sum(r[n]["client_cpu_s"] for r in rounds) / sum(r[n]["requests"] for r in rounds) * 1e6
        for n in ("router", "direct")
    }
    print(
        f"load-generator CPU per request: router (aiohttp) {cpu['router']:.0f} us, "
        f"direct (asyncpg) {cpu['direct']:.0f} us (same 2 cores as router and Postgres)\n"
    )
    print("| op | n | router p50 ms | router p99 ms | direct p50 ms | direct p99 ms |")
    print("|---|---|---|---|---|---|")
    for op, _ in mix:
        a, b = lat["router"].get(op, []), lat["direct"].get(op, [])
        print(
            f"| {op} | {len(a)} | {pct(a, 0.5) * 1e3:.2f} | {pct(a, 0.99) * 1e3:.2f} | "
            f"{pct(b, 0.5) * 1e3:.2f} | {pct(b, 0.99) * 1e3:.2f} |"
        )
    summary = dict(
        ratio=ratio,
        rounds=[
            {
                k: (v if k == "ratio" else {x: y for x, y in v.items() if x != "latencies"})
                for k, v in r.items()
            }
            for r in rounds
        ],
        mix=mix,
        args=vars(args),
    )
    common.save_json("fig1_router_efficiency.json", summary)


if __name__ == "__main__":
    main()
