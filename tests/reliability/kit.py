"""Helpers of the reliability and security campaign (issue 5): stored-data digests, measured
figures, the route table in OpenAPI style, and the foreach runs that the fault, concurrency and
crash tests start and check."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from testkit import Router, client, new_database, q, run_sync  # testkit first: it puts the repo on sys.path
from mfs import ROUTER_DIR, migrations
from mfs.local_postgres import LocalPostgres

OPENAPI = ROUTER_DIR / "openapi.yaml"
HERE = Path(__file__).resolve().parent
FIGURES = Path("/tmp/reliability/figures.md")

TABLES = ["flows_v3", "runs_v3", "steps_v3", "tasks_v3", "metadata_v3", "artifact_v3"]
DIGEST_SQL = " union all ".join(
    f"select '{t}', count(*), coalesce(md5(string_agg(x::text, '|' order by x::text)), '') from public.{t} x"
    for t in TABLES
)


def digest(dsn: str) -> dict:
    """{table: (rows, md5 of all rows)} of the six Metaflow tables."""
    return {r[0]: (r[1], r[2]) for r in q(dsn, DIGEST_SQL)}


def figure(line: str) -> None:
    """Appends a measured figure to /tmp/reliability/figures.md (and prints it)."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES.open("a") as f:
        f.write(f"- {line}\n")
    print(line)


def parse_routes() -> list[tuple[str, str]]:
    """(METHOD, /openapi/{style}) of every entry of ROUTES in routes.ts, as the router reads it."""
    from mfs.routes import route_table

    return [(r["method"], re.sub(r":(\w+)", r"{\1}", r["pattern"])) for r in route_table()]


def migrated(pg: LocalPostgres) -> str:
    dsn = new_database(pg)
    migrations.apply(dsn)
    return dsn


SLOW_FLOW = HERE / "flows" / "slow_foreach_flow.py"
STEPS = ["_parameters", "start", "each", "join", "end"]


def pg_down(pg, mode: str) -> None:
    """Stops the server keeping its data: 'immediate' (crash-like) or 'fast' (clean)."""
    if mode == "immediate":
        pg.pause()
    else:
        pg._run(str(pg.bin_dir / "pg_ctl"), "-D", str(pg.data_dir), "-m", mode, "-w", "stop", check=False)


def count_or_none(dsn: str, sql: str, *args):
    """One value, or None when the database cannot be reached within 3 s."""

    async def go():
        con = await asyncpg.connect(dsn, timeout=3)
        try:
            return await con.fetchval(sql, *args, timeout=5)
        finally:
            await con.close()

    try:
        return run_sync(go())
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return None


def router_log_since(router: Router, offset: int) -> str:
    return router.log_text()[offset:]


def wait_for_tasks(
    dsn: str, flow: str, step: str, at_least: int, proc: subprocess.Popen, timeout: float = 600
) -> int:
    """Polls tasks_v3 until `at_least` tasks of `step` exist (the run is mid-way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (code {proc.returncode}) before the fault was injected")
        n = (
            count_or_none(
                dsn, "select count(*) from tasks_v3 where flow_id = $1 and step_name = $2", flow, step
            )
            or 0
        )
        if n >= at_least:
            return n
        time.sleep(0.2)
    raise AssertionError(f"fewer than {at_least} {step} tasks after {timeout}s")


def start_flow(env: dict, flow_file: Path, log: Path, *args: str) -> subprocess.Popen:
    out = open(log, "wb")
    try:
        return subprocess.Popen(
            [sys.executable, str(flow_file), "--no-pylint", "run", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    finally:
        out.close()  # the child holds its own descriptor


def finish_flow(proc: subprocess.Popen, log: Path, timeout: float) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"the run did not end within {timeout}s:\n{log.read_text()[-4000:]}")
    assert proc.returncode == 0, f"the run failed (code {proc.returncode}):\n{log.read_text()[-4000:]}"


def check_foreach_run(
    dsn: str,
    env: dict,
    flow: str,
    n: int,
    fanout_step: str = "each",
    value_artifact: str = "sq",
    total=None,
    replies_cut: int = 0,
) -> dict:
    """Asserts that the single run of `flow` (start -> foreach of n -> join -> end) is stored
    exactly once, and that the Client API sees exactly what the database holds. Returns the
    per-task shapes (metadata and artifacts of a foreach task) for comparisons across runs.

    replies_cut: how many requests may have been cut after their commit (router SIGKILLed
    mid-run). The client retries a cut request, and the Metaflow API has no idempotency key (nor
    does the official service): a cut system-metadata POST, the batch the client sends twice per
    task anyway, may then be stored a third time. Allowed for at most that many tasks, one whole
    batch each; nothing else may differ."""
    runs = q(dsn, "select run_number, run_id from runs_v3 where flow_id = $1", flow)
    assert len(runs) == 1, runs
    steps = q(dsn, "select step_name, count(*) from steps_v3 where flow_id = $1 group by 1", flow)
    expected_steps = [s if s != "each" else fanout_step for s in STEPS]
    assert {r[0]: r[1] for r in steps} == {s: 1 for s in expected_steps}
    tasks = q(dsn, "select step_name, count(*) from tasks_v3 where flow_id = $1 group by 1", flow)
    assert {r[0]: r[1] for r in tasks} == {s: (n if s == fanout_step else 1) for s in expected_steps}
    # every task (but _parameters, registered by the client without it) has exactly one 'attempt'
    attempts = q(
        dsn,
        """select t.step_name, count(m.*) from tasks_v3 t
                           left join metadata_v3 m on m.flow_id = t.flow_id and m.run_number = t.run_number
                                and m.task_id = t.task_id and m.field_name = 'attempt'
                          where t.flow_id = $1 group by t.task_id, t.step_name""",
        flow,
    )
    assert len(attempts) == n + 4
    assert sorted({r[1] for r in attempts if r[0] != "_parameters"}) == [1], attempts
    attempt_values = q(
        dsn,
        """select distinct value from metadata_v3
                                where flow_id = $1 and field_name = 'attempt'""",
        flow,
    )
    assert [r[0] for r in attempt_values] == ["0"]
    # The client posts system metadata twice per task (runtime at task creation, then the task
    # process): duplicates of those are legitimate; what a fault or a race must not do is lose
    # or repeat rows for some tasks only: all n foreach tasks hold the same multiset of fields.
    shapes = q(
        dsn,
        """select task_id, string_agg(field_name || '=' || c, ',' order by field_name)
                         from (select task_id, field_name, count(*) c from metadata_v3
                                where flow_id = $1 and step_name = $2 group by 1, 2) f
                        group by task_id""",
        flow,
        fanout_step,
    )
    counts = {t: {f: int(c) for f, c in (x.split("=") for x in shape.split(","))} for t, shape in shapes}
    assert len(counts) == n
    each_counts = {f: min(c[f] for c in counts.values()) for f in next(iter(counts.values()))}
    twice = {f for f, c in each_counts.items() if c == 2}  # the batch the client posts twice
    retried = 0
    for c in counts.values():
        assert c.keys() == each_counts.keys(), (c, each_counts)
        extra = {f for f in c if c[f] != each_counts[f]}
        if extra:  # one whole batch stored once more, only where a reply may have been cut
            retried += 1
            assert extra == twice and all(c[f] == 3 for f in extra), (c, each_counts)
    assert retried <= replies_cut, {s for _, s in shapes}
    art_shapes = q(
        dsn,
        """select task_id, string_agg(name || '@' || attempt_id || '=' || c, ',' order by name)
                             from (select task_id, name, attempt_id, count(*) c from artifact_v3
                                    where flow_id = $1 and step_name = $2 group by 1, 2, 3) a
                            group by task_id""",
        flow,
        fanout_step,
    )
    assert len(art_shapes) == n and len({r[1] for r in art_shapes}) == 1, {r[1] for r in art_shapes}
    art_shape = art_shapes[0][1]
    assert f"{value_artifact}@0=1" in art_shape.split(",") and "_task_ok@0=1" in art_shape.split(","), (
        art_shape
    )
    # the single tasks: one of each artifact per attempt, and their metadata not repeated
    # beyond what a foreach task has (a repeated POST would show up as a count above it)
    dup_art = q(
        dsn,
        """select step_name, task_id, name, attempt_id, count(*) from artifact_v3
                         where flow_id = $1 group by 1, 2, 3, 4 having count(*) > 1""",
        flow,
    )
    assert dup_art == []
    single = q(
        dsn,
        """select step_name, field_name, count(*) from metadata_v3
                        where flow_id = $1 and step_name in ('start', 'join', 'end')
                        group by 1, 2""",
        flow,
    )
    for step, field, c in single:
        if field in each_counts:
            assert c == each_counts[field] or (replies_cut and field in twice and c == 3), (step, field, c)
    db_meta = q(
        dsn, "select count(*) from metadata_v3 where flow_id = $1 and step_name = $2", flow, fanout_step
    )[0][0]
    # (the Client API lists a task's artifacts without the internal '_'-prefixed ones)
    db_art = q(
        dsn,
        r"""select count(*) from artifact_v3
                         where flow_id = $1 and step_name = $2 and name not like '\_%'""",
        flow,
        fanout_step,
    )[0][0]
    # cross-check with what the Client API reports for the run
    seen = client(
        env,
        f"""
        run = Flow({flow!r}).latest_run
        each = list(run[{fanout_step!r}])
        print(json.dumps({{'ok': run.successful, 'finished': run.finished,
                          'runs': len(list(Flow({flow!r}).runs())),
                          'steps': {{s.id: len(list(s)) for s in run}},
                          'metadata': sum(len(t.metadata) for t in each),
                          'artifacts': sum(len(list(t)) for t in each),
                          'attempts': sorted(set(t.metadata_dict.get('attempt') for t in each)),
                          'total': run.data.total}}))
    """,
        timeout=600,
    )
    assert seen["ok"] is True and seen["finished"] is True and seen["runs"] == 1
    assert seen["steps"] == {s: (n if s == fanout_step else 1) for s in expected_steps if s != "_parameters"}
    assert seen["metadata"] == db_meta and seen["artifacts"] == db_art
    assert seen["attempts"] == ["0"]
    if total is not None:
        assert seen["total"] == total
    return {
        "metadata": ",".join(f"{f}={c}" for f, c in sorted(each_counts.items())),
        "artifacts": art_shape,
        "metadata_rows": db_meta,
        "artifact_rows": db_art,
    }


N = 20
WORKERS = 4
SLEEP = "1"


def expected_total(n: int) -> int:
    return sum(i * i for i in range(n))
