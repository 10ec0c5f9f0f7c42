"""Figure 6: database statements per API request. Replays one recorded Metaflow run through the
real router against a fresh database on a Postgres started with pg_stat_statements, then counts
the top-level statements the router sent (pg_stat_statements.track=top: what crossed the wire)
and, in a second pass with track=all, the nested statements the procedures ran inside them.

    python bench/statements.py [--width 10]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import aiohttp
import asyncpg

import common
from replay import http_sender, program_from_records, replay_once


async def one_pass(pg, dsn, dbname, program, track, flow):
    admin = await asyncpg.connect(pg.dsn)
    await admin.execute("create extension if not exists pg_stat_statements")
    await admin.execute(f"alter database \"{dbname}\" set pg_stat_statements.track = '{track}'")
    router = common.Router(dsn)  # fresh router: its connection set-up is counted too
    try:
        await admin.execute("select pg_stat_statements_reset()")
        async with aiohttp.ClientSession() as s:
            sent = await replay_once(program, http_sender(s, router.url, router.key), flow)
        rows = await admin.fetch(
            """select s.query, s.calls, s.toplevel from pg_stat_statements s
                 join pg_database d on d.oid = s.dbid
                 join pg_roles r on r.oid = s.userid
                where d.datname = $1 order by s.calls desc""",
            dbname,
        )
    finally:
        router.stop()
        await admin.close()
    return sent, rows


async def bench(pg, program, dbname, dsn):
    top_sent, top = await one_pass(pg, dsn, dbname, program, "top", "StmtTop")
    all_sent, nested = await one_pass(pg, dsn, dbname, program, "all", "StmtAll")
    con = await asyncpg.connect(dsn)
    usage = await con.fetch("select * from mfs.quota_usage")
    await con.close()
    return top_sent, top, all_sent, nested, usage


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=10)
    args = ap.parse_args()
    pg = common.start_postgres()
    try:
        records = common.record_run(pg, args.width, Path(tempfile.mkdtemp(prefix="mfs-bench-rec-")))
        program = program_from_records(records)
        dsn = common.new_database(pg, "bench_statements")
        top_sent, top, all_sent, nested, usage = common.run_sync(bench(pg, program, "bench_statements", dsn))
    finally:
        pg.stop()
    n_req = sum(top_sent.values())
    print(
        f"\n## Figure 6: statements per API request (one recorded {args.width}-wide foreach run "
        f"replayed through the router, {n_req} API requests)\n"
    )
    print("Top-level statements received by Postgres from the router (pg_stat_statements.track=top):\n")
    print("| calls | statement |")
    print("|---|---|")
    total = 0
    for r in top:
        total += r["calls"]
        q = " ".join(r["query"].split())
        print(f"| {r['calls']} | `{q[:140]}` |")
    print(f"\n**{total} statements for {n_req} API requests = {total / n_req:.3f} per request**")
    nested_calls = sum(r["calls"] for r in nested if not r["toplevel"])
    n_all = sum(all_sent.values())
    print(
        f"\nInside those, with track=all: {nested_calls} nested statements for {n_all} requests "
        f"({nested_calls / n_all:.1f} per request) run inside the one round trip's plpgsql "
        f"(never on the wire)."
    )
    print("\nquota ledger after both passes (requests counted by mfs.charge):", [dict(r) for r in usage])
    common.save_json(
        "fig6_statements.json",
        dict(requests=n_req, top=[dict(r) for r in top], nested_calls=nested_calls, sent=top_sent),
    )


if __name__ == "__main__":
    main()
