"""Diagnostic behind a finding of figure 1: how much of mfs_api.call's throughput the quota
charge costs. At concurrency 16, times the cheapest operation (ping) as
  A) mfs_api.call('default', 'ping', ...)      -- dispatch + mfs.charge (one hot ledger row until
                                                  sql/0020; since then 16 slot rows, no limit set)
  B) mfs.dispatch('ping', ...)                 -- the same operation without the charge
  C) A with synchronous_commit = off           -- the charge without waiting for the WAL flush
alternating, medians over rounds.

    python bench/quota_contention.py [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg

import common
from common import median

VARIANTS = {
    "A call (with charge)": ("select status, body from mfs_api.call('default', 'ping', '{}', null)", None),
    "B dispatch (no charge)": ("select (r).status from (select mfs.dispatch('ping', '{}', null) r) x", None),
    "C call, synchronous_commit=off": (
        "select status, body from mfs_api.call('default', 'ping', '{}', null)",
        "set synchronous_commit = off",
    ),
}


async def run(dsn, rounds, seconds, concurrency):
    pools = {}
    for name, (_, setup) in VARIANTS.items():

        async def init(con, setup=setup):
            if setup:
                await con.execute(setup)

        pools[name] = await asyncpg.create_pool(dsn, min_size=10, max_size=10, init=init)
    res = {n: [] for n in VARIANTS}
    for i in range(rounds):
        names = list(VARIANTS) if i % 2 == 0 else list(reversed(VARIANTS))
        for name in names:
            sql = VARIANTS[name][0]
            pool = pools[name]
            n = 0
            deadline = time.perf_counter() + seconds

            async def worker():
                nonlocal n
                while time.perf_counter() < deadline:
                    await pool.fetchrow(sql)
                    n += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            res[name].append(n / (time.perf_counter() - t0))
            common.log(f"round {i + 1} {name}: {res[name][-1]:.0f}/s")
    for p in pools.values():
        await p.close()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    pg = common.start_postgres()
    try:
        dsn = common.new_database(pg)
        res = common.run_sync(run(dsn, args.rounds, args.seconds, args.concurrency))
    finally:
        pg.stop()
    print(
        f"\n## Quota charge contention (ping, concurrency {args.concurrency}, pool 10, "
        f"{args.rounds} rounds x {args.seconds:.0f} s)\n"
    )
    print("| variant | statements/s (median) |")
    print("|---|---|")
    for name, v in res.items():
        print(f"| {name} | {median(v):.0f} |")
    common.save_json("quota_contention.json", res)


if __name__ == "__main__":
    main()
