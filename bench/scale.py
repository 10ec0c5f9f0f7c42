"""Figure 3: scale. Generates (in SQL, generate_series) one flow with 10,000 runs holding
--tasks tasks (default 100,000; --full 1,000,000), 10 metadata rows and 3 artifacts per task,
then times every read route the client uses through mfs_api.call on one pooled asyncpg
connection (the database side of a request; --router adds the same requests over HTTP), on
random targets, and records the nested plans of each route with auto_explain
(log_analyze, log_buffers, log_nested_statements), flagging any Seq Scan on the six tables.

    python bench/scale.py [--full] [--samples 300] [--router] [--list-samples 100]

It also times the complete runs list of the 10,000-run flow (what `Flow(...).latest_run`
reads) built the old way (a jsonb per run, aggregated, cast to text: sql/0014) and the new way
(JSON text, sql/0031), alternating, in one run, and over HTTP through the router with and
without gzip: latency, bytes on the wire and bytes the quota counted per reply.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time

import asyncpg

import common
from common import CALL_SQL, log, median, pct

TABLES = ["flows_v3", "runs_v3", "steps_v3", "tasks_v3", "metadata_v3", "artifact_v3"]
FIELDS = [
    "attempt",
    "origin-run-id",
    "ds-root",
    "runtime",
    "user-name",
    "log_location_stdout",
    "log_location_stderr",
    "foreach-stack",
    "attempt-ok",
    "attempt-done",
]
ARTIFACTS = ["_task_ok", "_success", "name"]
FLOW = "ScaleFlow"


async def generate(dsn: str, n_tasks: int, n_runs: int):
    tpr = max(2, n_tasks // n_runs)
    con = await asyncpg.connect(dsn)
    await con.execute("set synchronous_commit = off; set maintenance_work_mem = '512MB'")
    idx = await con.fetch(
        """select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as def
             from pg_index i join pg_class c on c.oid = i.indrelid
            where c.relname = any($1) and c.relnamespace = 'public'::regnamespace
              and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid)""",
        TABLES,
    )
    for r in idx:
        await con.execute(f"drop index {r['name']}")
    sys_tags = '["user:bench", "runtime:dev", "metaflow_version:2.19.39", "python_version:3.11.7"]'
    t0 = time.perf_counter()
    await con.execute(f"""
        insert into public.flows_v3 values ('{FLOW}', 'bench', 1700000000000, '[]', '{sys_tags}');
        insert into public.runs_v3 (flow_id, run_number, user_name, ts_epoch, last_heartbeat_ts, tags, system_tags)
        select '{FLOW}', g, 'bench', 1700000000000 + g * 60000, 1700000000 + g * 60, '[]', '{sys_tags}'
          from generate_series(1, {n_runs}) g;
        select setval(pg_get_serial_sequence('public.runs_v3', 'run_number'), {n_runs});
        insert into public.steps_v3 (flow_id, run_number, step_name, user_name, ts_epoch, tags, system_tags)
        select '{FLOW}', g, s, 'bench', 1700000000000 + g * 60000, '[]', '{sys_tags}'
          from generate_series(1, {n_runs}) g, unnest(array['start', 'work']) s;
        insert into public.tasks_v3 (flow_id, run_number, step_name, task_id, user_name, ts_epoch,
                                     last_heartbeat_ts, tags, system_tags)
        select '{FLOW}', (i - 1) / {tpr} + 1, case when (i - 1) % {tpr} = 0 then 'start' else 'work' end, i,
               'bench', 1700000000000 + i * 10, 1700000000 + i, '[]', '{sys_tags}'
          from generate_series(1, {n_runs * tpr}) i;
        select setval(pg_get_serial_sequence('public.tasks_v3', 'task_id'), {n_runs * tpr});
    """)
    fields = "array[" + ",".join(f"'{f}'" for f in FIELDS) + "]"
    await con.execute(f"""
        insert into public.metadata_v3 (flow_id, run_number, step_name, task_id, field_name, value, type,
                                        user_name, ts_epoch, tags, system_tags)
        select t.flow_id, t.run_number, t.step_name, t.task_id, ({fields})[j],
               case ({fields})[j] when 'attempt' then '0' when 'attempt-ok' then 'True'
                    when 'foreach-stack' then '[{{"step": "start", "index": ' || (t.task_id % {tpr}) || '}}]'
                    else 'value-' || t.task_id || '-' || j end,
               ({fields})[j], 'bench', t.ts_epoch + j, '["attempt_id:0"]', '{sys_tags}'
          from public.tasks_v3 t, generate_series(1, 10) j
    """)
    arts = "array[" + ",".join(f"'{a}'" for a in ARTIFACTS) + "]"
    await con.execute(f"""
        insert into public.artifact_v3 (flow_id, run_number, step_name, task_id, name, location, ds_type,
                                        sha, type, content_type, user_name, attempt_id, ts_epoch, tags, system_tags)
        select t.flow_id, t.run_number, t.step_name, t.task_id, ({arts})[j],
               '/ds/{FLOW}/data/' || md5(t.task_id || '-' || j), 'local', md5(t.task_id || '-' || j),
               'metaflow.artifact', 'pickle-v4', 'bench', 0, t.ts_epoch + 5, '[]', '{sys_tags}'
          from public.tasks_v3 t, generate_series(1, 3) j
    """)
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    for r in idx:
        await con.execute(r["def"])
    index_s = time.perf_counter() - t1
    await con.execute("vacuum analyze")
    counts = {t: await con.fetchval(f"select count(*) from public.{t}") for t in TABLES}
    size = await con.fetchval(
        "select pg_size_pretty(sum(pg_total_relation_size(('public.' || t)::regclass))) "
        "from unnest($1::text[]) t",
        TABLES,
    )
    await con.close()
    return dict(tasks_per_run=tpr, counts=counts, load_s=load_s, index_s=index_s, size=size)


def requests_for(n_runs: int, tpr: int, rng: random.Random):
    """(route label, op, args) samplers for every read route the client uses."""

    def task():
        run = rng.randint(1, n_runs)
        i = rng.randint(1, tpr - 1)
        return run, (run - 1) * tpr + 1 + i

    def a_task():
        run, t = task()
        return dict(flow_id=FLOW, run_number=str(run), step_name="work", task_id=str(t))

    return [
        (
            "GET /flows/{F}/runs (flow with 10,000 runs, complete list)",
            "runs_list",
            lambda: dict(flow_id=FLOW),
        ),
        (
            "GET /flows/{F}/runs/{R}",
            "run_get",
            lambda: dict(flow_id=FLOW, run_number=str(rng.randint(1, n_runs))),
        ),
        (
            "GET .../runs/{R}/steps",
            "steps_list",
            lambda: dict(flow_id=FLOW, run_number=str(rng.randint(1, n_runs))),
        ),
        (
            "GET .../steps/{S}",
            "step_get",
            lambda: dict(flow_id=FLOW, run_number=str(rng.randint(1, n_runs)), step_name="work"),
        ),
        (
            "GET .../steps/{S}/tasks",
            "tasks_list",
            lambda: dict(flow_id=FLOW, run_number=str(rng.randint(1, n_runs)), step_name="work"),
        ),
        ("GET .../tasks/{T}", "task_get", a_task),
        ("GET .../tasks/{T}/metadata", "metadata_list", a_task),
        ("GET .../tasks/{T}/artifacts (latest attempt)", "artifacts_list", a_task),
        ("GET .../tasks/{T}/artifacts/{name}", "artifact_get", lambda: dict(a_task(), name="_task_ok")),
        (
            "GET .../tasks/{T}/attempt/0/artifacts",
            "artifacts_attempt_list",
            lambda: dict(a_task(), attempt_id="0"),
        ),
        (
            "GET .../steps/{S}/filtered_tasks?metadata_field_name=foreach-stack&pattern=...",
            "filtered_tasks",
            lambda: dict(
                flow_id=FLOW,
                run_number=str(rng.randint(1, n_runs)),
                step_name="work",
                metadata_field_name="foreach-stack",
                pattern='"index": 3\\b',
            ),
        ),
        (
            "GET .../runs/{R}/metadata",
            "run_metadata_list",
            lambda: dict(flow_id=FLOW, run_number=str(rng.randint(1, n_runs))),
        ),
    ] + filters_and_pages(n_runs, tpr, rng)


def filters_and_pages(n_runs: int, tpr: int, rng: random.Random):
    """Issue 12: each list filter and each newly paged list, a page of 50. The generated runs have
    no end step and old heartbeats, so every run is 'failed': status:eq=running matches nothing
    and must look at every run (the worst case)."""
    page = dict(_limit="50")
    run_ms = lambda: 1700000000000 + rng.randint(1, n_runs) * 60000  # noqa: E731
    a_run = lambda: dict(flow_id=FLOW, run_number=str(rng.randint(1, n_runs)))  # noqa: E731

    def window():
        lo = run_ms()
        return {"ts_epoch:ge": str(lo), "ts_epoch:lt": str(lo + 3_600_000)}

    def task_window():
        run = rng.randint(1, n_runs)
        lo = 1700000000000 + ((run - 1) * tpr + rng.randint(0, tpr - 1)) * 10
        return dict(
            flow_id=FLOW,
            run_number=str(run),
            step_name="work",
            **{"ts_epoch:ge": str(lo)},
            **{"user_name:eq": "bench"},
            **page,
        )

    return [
        (
            "runs?status:eq=failed&_limit=50 (every run matches)",
            "runs_list",
            lambda: dict(flow_id=FLOW, **{"status:eq": "failed"}, **page),
        ),
        (
            "runs?status:eq=running&_limit=50 (no run matches: all 10,000 looked at)",
            "runs_list",
            lambda: dict(flow_id=FLOW, **{"status:eq": "running"}, **page),
        ),
        (
            "runs?user:eq=bench&_limit=50",
            "runs_list",
            lambda: dict(flow_id=FLOW, **{"user:eq": "bench"}, **page),
        ),
        (
            "runs?ts_epoch:ge=..&ts_epoch:lt=.. (1 hour, 60 runs)&_limit=50",
            "runs_list",
            lambda: dict(flow_id=FLOW, **window(), **page),
        ),
        (
            "runs?_tags:any=runtime:dev,x&_limit=50",
            "runs_list",
            lambda: dict(flow_id=FLOW, **{"_tags:any": "runtime:dev,x"}, **page),
        ),
        (
            "runs?_tags:all=nope&_limit=50 (no run matches)",
            "runs_list",
            lambda: dict(flow_id=FLOW, **{"_tags:all": "nope"}, **page),
        ),
        ("tasks?ts_epoch:ge=..&user_name:eq=bench&_limit=50", "tasks_list", task_window),
        ("runs/{R}/metadata?_limit=50", "run_metadata_list", lambda: dict(a_run(), **page)),
        ("runs/{R}/artifacts?_limit=50", "run_artifacts_list", lambda: dict(a_run(), **page)),
        (
            "runs/{R}/steps/work/artifacts?_limit=50",
            "run_artifacts_list",
            lambda: dict(a_run(), step_name="work", **page),
        ),
    ]


async def measure(dsn: str, reqs, samples: int, router=None):
    con = await asyncpg.connect(dsn)
    out = {}
    session = None
    if router:
        import aiohttp

        session = aiohttp.ClientSession()
    for label, op, make in reqs:
        lat, http_lat, statuses, sizes = [], [], set(), []
        for i in range(samples):
            args = make()
            t0 = time.perf_counter()
            row = await con.fetchrow(CALL_SQL, "bench", op, json.dumps(args), None)
            lat.append(time.perf_counter() - t0)
            statuses.add(row["status"])
            sizes.append(len(row["body"]))
            if session is not None:
                # the route of this op whose path parameters the args hold (run and step artifacts share an op)
                route = max(
                    (
                        r
                        for r in common.ROUTES
                        if r["op"] == op
                        and r["method"] == "GET"
                        and all(p[1:] in args for p in r["parts"] if p.startswith(":"))
                    ),
                    key=lambda r: len(r["parts"]),
                )
                url = (
                    router.url
                    + "/"
                    + "/".join(str(args[p[1:]]) if p.startswith(":") else p for p in route["parts"])
                )
                q = {k: v for k, v in args.items() if f":{k}" not in route["parts"]}
                t0 = time.perf_counter()
                async with session.get(url, params=q or None, headers={"x-api-key": router.key}) as r:
                    await r.read()
                http_lat.append(time.perf_counter() - t0)
        out[label] = dict(
            op=op,
            p50=pct(lat, 0.5),
            p99=pct(lat, 0.99),
            statuses=sorted(statuses),
            bytes=median(sizes),
            http_p50=pct(http_lat, 0.5),
            http_p99=pct(http_lat, 0.99),
        )
        log(
            f"{op:24s} p50 {out[label]['p50'] * 1e3:6.2f} ms  p99 {out[label]['p99'] * 1e3:6.2f} ms  {sorted(statuses)}"
        )
    if session:
        await session.close()
    await con.close()
    return out


# the complete runs list as sql/0014 built it, and as sql/0031 does
OLD_COMPLETE_LIST = (
    "select coalesce(jsonb_agg(mfs.run_json(r) order by r.ts_epoch desc, r.run_number desc), '[]')::text"
    " from public.runs_v3 r where r.flow_id = $1"
)
NEW_COMPLETE_LIST = "select mfs.runs_complete_text($1)"


async def complete_list(dsn: str, samples: int, router) -> dict:
    """The complete runs list: old and new SQL build and the whole mfs_api.call, alternating
    (same bytes checked), then over HTTP without and with gzip (wire bytes, and what the quota
    counted per reply: a gzip block followed by one ping that carries its last saving)."""
    import aiohttp

    con = await asyncpg.connect(dsn)
    ways = {
        "before: a jsonb per run, aggregated, cast to text (sql/0014)": (OLD_COMPLETE_LIST, [FLOW]),
        "after: built as JSON text (sql/0031)": (NEW_COMPLETE_LIST, [FLOW]),
        "after: the whole request, mfs_api.call": (
            CALL_SQL,
            ["bench", "runs_list", json.dumps({"flow_id": FLOW}), None],
        ),
    }
    lat = {k: [] for k in ways}
    bodies = {}
    for _ in range(samples):
        for k, (sql, params) in ways.items():
            t0 = time.perf_counter()
            row = await con.fetchrow(sql, *params)
            lat[k].append(time.perf_counter() - t0)
            bodies[k] = row[1] if len(row) > 1 else row[0]
    if len(set(bodies.values())) != 1:
        raise SystemExit("the complete list's bytes differ between the old and the new build")
    sql_res = {
        k: dict(p50=pct(v, 0.5), p99=pct(v, 0.99), bytes=len(bodies[k].encode())) for k, v in lat.items()
    }

    async def counted() -> int:
        return await con.fetchval(
            "select coalesce(sum(egress_bytes), 0) from mfs.quota_usage where scope = 'benchhttp'"
        )

    http_res = {}
    headers = {"x-api-key": router.key}
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        for enc in ["identity", "gzip, deflate"]:
            before = await counted()
            times, wire = [], []
            for _ in range(max(10, samples // 5)):
                t0 = time.perf_counter()
                async with session.get(
                    f"{router.url}/flows/{FLOW}/runs", headers={**headers, "Accept-Encoding": enc}
                ) as r:
                    data = await r.read()
                    assert r.status == 200
                times.append(time.perf_counter() - t0)
                wire.append(len(data))
            # one small request, which hands over the last reply's saving
            async with session.get(
                f"{router.url}/ping", headers={**headers, "Accept-Encoding": "identity"}
            ) as r:
                ping = len(await r.read())
            http_res[enc] = dict(
                p50=pct(times, 0.5),
                p99=pct(times, 0.99),
                wire=median(wire),
                counted=(await counted() - before - ping) / len(wire),
            )
    await con.close()
    return dict(sql=sql_res, http=http_res, samples=samples)


def print_complete_list(res: dict, n_runs: int) -> None:
    sql, http = res["sql"], res["http"]
    print(
        f"\n### The complete runs list of the {n_runs:,}-run flow ({res['samples']} rounds, the three SQL ways "
        "alternating on one connection; identical bytes checked)\n"
    )
    print("| build | p50 ms | p99 ms | reply bytes |\n|---|---|---|---|")
    for k, r in sql.items():
        print(f"| {k} | {r['p50'] * 1e3:.1f} | {r['p99'] * 1e3:.1f} | {r['bytes']:,} |")
    old, new = list(sql.values())[:2]
    print(
        f"\nnew / old build: p50 {new['p50'] / old['p50']:.2f}, p99 {new['p99'] / old['p99']:.2f}; "
        f"whole call / old build: p50 {list(sql.values())[2]['p50'] / old['p50']:.2f}\n"
    )
    print("| over HTTP, Accept-Encoding | p50 ms | p99 ms | bytes on the wire | quota counts per reply |")
    print("|---|---|---|---|---|")
    for enc, r in http.items():
        print(
            f"| {enc} | {r['p50'] * 1e3:.1f} | {r['p99'] * 1e3:.1f} | {r['wire']:,.0f} | {r['counted']:,.0f} |"
        )
    plain, zipped = http["identity"], http["gzip, deflate"]
    print(
        f"\ngzip: {zipped['wire'] / plain['wire']:.1%} of the bytes on the wire, "
        f"{zipped['counted'] / plain['counted']:.1%} counted by the quota"
    )


async def explain(dsn: str, reqs) -> dict:
    con = await asyncpg.connect(dsn)
    plans = {}
    notices: list[str] = []
    con.add_log_listener(lambda c, m: notices.append(m.message))
    await con.execute(
        "load 'auto_explain'; set auto_explain.log_min_duration = 0; "
        "set auto_explain.log_analyze = on; set auto_explain.log_buffers = on; "
        "set auto_explain.log_nested_statements = on; set auto_explain.log_level = notice; "
        "set auto_explain.log_timing = on"
    )
    for label, op, make in reqs:
        notices.clear()
        await con.fetchrow(CALL_SQL, "bench", op, json.dumps(make()), None)
        await asyncio.sleep(0.05)
        text = "\n\n".join(notices)
        seq = sorted(set(re.findall(r"Seq Scan on (\w+)", text)) & set(TABLES))
        used = sorted(
            set(
                re.findall(
                    r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)", text
                )
            )
        )
        plans[label] = dict(op=op, seq_scans=seq, indexes=used, text=text)
    await con.close()
    return plans


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="1,000,000 tasks / 10,000,000 metadata rows")
    ap.add_argument("--tasks", type=int, help="number of tasks (default 100,000; --full 1,000,000)")
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--router", action="store_true", help="also time each request over HTTP")
    ap.add_argument("--list-samples", type=int, default=100, help="rounds of the complete-list comparison")
    args = ap.parse_args()
    n_tasks = args.tasks or (1_000_000 if args.full else 100_000)
    pg = common.start_postgres()
    router = None
    try:
        dsn = common.new_database(pg)
        log(f"generating {n_tasks} tasks in {args.runs} runs ...")
        gen = common.run_sync(generate(dsn, n_tasks, args.runs))
        log(f"generated {gen}")
        reqs = requests_for(args.runs, gen["tasks_per_run"], random.Random(7))
        if args.router:
            router = common.Router(dsn)
        res = common.run_sync(measure(dsn, reqs, args.samples, router))
        plans = common.run_sync(explain(dsn, requests_for(args.runs, gen["tasks_per_run"], random.Random(8))))
        list_router = common.Router(dsn, extra_env={"QUOTA_SCOPE": "benchhttp"})
        try:
            listed = common.run_sync(complete_list(dsn, args.list_samples, list_router))
        finally:
            list_router.stop()
    finally:
        if router:
            router.stop()
        pg.stop()
    c = gen["counts"]
    print(
        f"\n## Figure 3: scale ({c['tasks_v3']:,} tasks, {c['metadata_v3']:,} metadata rows, "
        f"{c['artifact_v3']:,} artifacts, {c['runs_v3']:,} runs of one flow, "
        f"{gen['tasks_per_run']} tasks per run; {gen['size']} in the six tables; "
        f"load {gen['load_s']:.0f} s + indexes {gen['index_s']:.0f} s)\n"
    )
    print(
        f"{args.samples} sequential requests per route, random targets, one connection, "
        "timed around `select ... from mfs_api.call(...)`"
        + (" and over HTTP through the router" if args.router else "")
        + ".\n"
    )
    hdr = (
        "| route | op | p50 ms | p99 ms |"
        + (" HTTP p50 ms | HTTP p99 ms |" if args.router else "")
        + " reply bytes | ≤ 20 ms p99 | seq scan | indexes used (auto_explain) |"
    )
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for label, r in res.items():
        p = plans[label]
        extra = f" {r['http_p50'] * 1e3:.2f} | {r['http_p99'] * 1e3:.2f} |" if args.router else ""
        print(
            f"| `{label}` | {r['op']} | {r['p50'] * 1e3:.2f} | {r['p99'] * 1e3:.2f} |{extra} {r['bytes']:.0f} | "
            f"{'yes' if r['p99'] <= 0.020 else '**NO**'} | {', '.join(p['seq_scans']) or 'none'} | "
            f"{', '.join(p['indexes'])} |"
        )
    print_complete_list(listed, c["runs_v3"])
    common.OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = common.OUT_DIR / ("fig3_plans_full.txt" if args.full else "fig3_plans.txt")
    path.write_text("\n\n".join(f"===== {label} ({p['op']})\n{p['text']}" for label, p in plans.items()))
    print(f"\nfull EXPLAIN (ANALYZE, BUFFERS) of every nested statement: {path}")
    common.save_json(
        "fig3_scale_full.json" if args.full else "fig3_scale.json",
        dict(
            gen=gen,
            results=res,
            complete_list=listed,
            plans={k: {x: y for x, y in v.items() if x != "text"} for k, v in plans.items()},
        ),
    )


if __name__ == "__main__":
    main()
