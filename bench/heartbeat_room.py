"""Figure 4b: what task heartbeats cost in bytes, with and without room on the pages
(sql/0042_heartbeat_room.sql). One database per variant: 2,000 runs, the last 20 running with
50 tasks each; then ROUNDS rounds of one heartbeat per task (each also moves its run's), with a
plain VACUUM every 50 rounds as autovacuum would; sizes of runs_v3 and tasks_v3 (heap + TOAST +
indexes) before and after, and the share of updates PostgreSQL made in place (HOT).

    python bench/heartbeat_room.py [--rounds 300]
"""

from __future__ import annotations

import argparse

import common
from testkit import q

VARIANTS = {"fillfactor 100 (PostgreSQL's default)": 100, "fillfactor 80 (sql/0042)": 80}
CALL = "select mfs_api.call('d', $1, $2::jsonb, $3::jsonb)"


def one(pg, fillfactor: int, rounds: int) -> dict:
    dsn = common.new_database(pg)
    for t in ("runs_v3", "tasks_v3"):
        q(dsn, f"alter table public.{t} set (fillfactor = {fillfactor})")
    q(dsn, CALL, "flow_create", '{"flow_id": "F"}', '{"user_name": "u"}')
    tags = '{"user_name": "u", "system_tags": ["user:u", "runtime:dev", "python_version:3.11.7"]}'
    q(
        dsn,
        "select mfs_api.call('d', 'run_create', '{\"flow_id\": \"F\"}', $1::jsonb) from generate_series(1, 2000)",
        tags,
    )
    q(
        dsn,
        "select mfs_api.call('d', 'step_create', jsonb_build_object('flow_id', 'F', 'run_number', r::text, "
        "'step_name', 's'), '{}') from generate_series(1981, 2000) r",
    )
    q(
        dsn,
        "select mfs_api.call('d', 'task_create', jsonb_build_object('flow_id', 'F', 'run_number', r::text, "
        "'step_name', 's'), '{}') from generate_series(1981, 2000) r, generate_series(1, 50)",
    )
    size = "select pg_total_relation_size('public.runs_v3') + pg_total_relation_size('public.tasks_v3')"
    before = q(dsn, size)[0][0]
    for i in range(rounds):
        q(
            dsn,
            "select mfs_api.call('d', 'task_heartbeat', jsonb_build_object('flow_id', 'F', 'run_number', "
            "t.run_number::text, 'step_name', 's', 'task_id', t.task_id::text), '{}') from public.tasks_v3 t",
        )
        if i % 50 == 49:
            q(dsn, "vacuum public.runs_v3")
            q(dsn, "vacuum public.tasks_v3")
    q(dsn, "vacuum public.runs_v3")
    q(dsn, "vacuum public.tasks_v3")
    after = q(dsn, size)[0][0]
    hot = q(
        dsn,
        "select sum(n_tup_hot_upd)::float / sum(n_tup_upd) from pg_stat_user_tables "
        "where relname in ('runs_v3', 'tasks_v3')",
    )[0][0]
    return dict(before=before, after=after, hot=hot)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    pg = common.start_postgres()
    try:
        res = {name: one(pg, ff, args.rounds) for name, ff in VARIANTS.items()}
    finally:
        pg.stop()
    print(f"\n## Figure 4b: {args.rounds} heartbeats of each of 1,000 running tasks (20 runs of 2,000)\n")
    print("| pages | runs_v3 + tasks_v3 before | after | growth per task | updates in place (HOT) |")
    print("|---|---|---|---|---|")
    for name, r in res.items():
        print(
            f"| {name} | {r['before']:,} | {r['after']:,} | {(r['after'] - r['before']) / 1000:,.0f} | {r['hot']:.1%} |"
        )
    common.save_json("fig4b_heartbeat_room.json", res)


if __name__ == "__main__":
    main()
