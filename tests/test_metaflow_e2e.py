"""End to end: the real `metaflow` package, METAFLOW_DEFAULT_METADATA=service, through the
real Deno router into a real PostgreSQL. Client API reads run in a child process so each test
has its own Metaflow configuration."""

import time

import pytest

from testkit import client, metaflow_env, q, run_flow


@pytest.fixture
def env(router, tmp_path):
    return metaflow_env(router, tmp_path)


def test_linear_flow_and_client_reads(env, router):
    run_flow(env, "linear_flow.py", "run", "--tag", "mine")
    got = client(
        env,
        """
        run = Flow('LinearFlow').latest_run
        t = run['end'].task
        print(json.dumps({'id': run.id, 'ok': run.successful, 'finished': run.finished, 'y': run.data.y,
                          'x': t['x'].data, 'tags': sorted(run.tags), 'user_tags': sorted(run.user_tags),
                          'parents': [p.pathspec for p in t.parent_tasks],
                          'attempt': t.metadata_dict.get('attempt'), 'steps': sorted(s.id for s in run)}))
    """,
    )
    assert got["ok"] is True and got["finished"] is True and got["y"] == 2 and got["x"] == 1
    assert "mine" in got["user_tags"] and "user:tester" in got["tags"]
    assert got["attempt"] == "0" and got["steps"] == ["end", "start"]
    assert got["parents"] == [f"LinearFlow/{got['id']}/start/{got['parents'][0].split('/')[-1]}"]
    # namespaces are applied by the client from the system tags the service keeps
    seen = client(
        env,
        """
        namespace('user:tester'); a = len(list(Flow('LinearFlow').runs()))
        namespace('user:someone-else')
        try:
            Flow('LinearFlow'); b = 'visible'
        except MetaflowNamespaceMismatch:
            b = 'hidden'
        print(json.dumps([a, b]))
    """,
    )
    assert seen == [1, "hidden"]


def test_branch_flow(env):
    run_flow(env, "branch_flow.py", "run")
    assert client(env, "print(json.dumps(Flow('BranchFlow').latest_run.data.vs))") == ["a", "b"]


def test_foreach_and_nested_foreach(env):
    run_flow(env, "foreach_flow.py", "run", "--n", "4")
    run_flow(env, "nested_foreach_flow.py", "run")
    got = client(
        env,
        """
        f = Flow('ForeachFlow').latest_run
        n = Flow('NestedForeachFlow').latest_run
        print(json.dumps([f.data.total, len(list(f['each'])), n.data.all, len(list(n['inner_step']))]))
    """,
    )
    assert got == [0 + 1 + 4 + 9, 4, ["a1", "a2", "b1", "b2"], 4]


def test_retry_latest_and_per_attempt_reads(env):
    run_flow(env, "retry_flow.py", "run", "--with", "retry:times=1,minutes_between_retries=0")
    got = client(
        env,
        """
        run = Flow('RetryFlow').latest_run
        t = run['flaky'].task
        t0 = Task(t.pathspec, attempt=0)
        print(json.dumps({'ok': run.successful, 'latest': t['attempt_seen'].data, 'latest_ok': t.successful,
                          'current_attempt': t.current_attempt, 'a0': t0['attempt_seen'].data,
                          'a0_ok': t0.successful}))
    """,
    )
    assert got == {"ok": True, "latest": 1, "latest_ok": True, "current_attempt": 1, "a0": 0, "a0_ok": False}


def test_resume_after_a_failure(env, router):
    failing = dict(env, BRANCH_FLOW_FAIL="1")
    res = run_flow(failing, "branch_flow.py", "run", check=False)
    assert res.returncode != 0
    run_flow(env, "branch_flow.py", "resume")
    got = client(
        env,
        """
        runs = list(Flow('BranchFlow').runs())
        latest = Flow('BranchFlow').latest_run
        print(json.dumps([len(runs), latest.successful, latest.data.vs, latest['a'].task.origin_pathspec is not None]))
    """,
    )
    assert got == [2, True, ["a", "b"], True]


def test_orchestrator_style_string_run_and_task_ids(env, migrated_db):
    """init/step as Argo or Step Functions run them: client-chosen string ids throughout."""
    run_id = "argo-linear-7f3a"
    run_flow(env, "linear_flow.py", "init", "--run-id", run_id, "--task-id", "t-params")
    run_flow(
        env,
        "linear_flow.py",
        "step",
        "start",
        "--run-id",
        run_id,
        "--task-id",
        "t-start",
        "--input-paths",
        f"{run_id}/_parameters/t-params",
    )
    run_flow(
        env,
        "linear_flow.py",
        "step",
        "end",
        "--run-id",
        run_id,
        "--task-id",
        "t-end",
        "--input-paths",
        f"{run_id}/start/t-start",
    )
    got = client(
        env,
        f"""
        run = Run('LinearFlow/{run_id}')
        print(json.dumps([run.successful, run.data.y, run['start'].task.id, run['end'].task['x'].data,
                          [p.pathspec for p in run['end'].task.parent_tasks]]))
    """,
    )
    assert got == [True, 2, "t-start", 1, [f"LinearFlow/{run_id}/start/t-start"]]
    rows = q(migrated_db, "select run_id, count(*) from runs_v3 where flow_id = 'LinearFlow' group by run_id")
    assert [(r[0], r[1]) for r in rows] == [(run_id, 1)]
    names = q(migrated_db, "select task_name from tasks_v3 where run_id = $1 order by task_name", run_id)
    assert [r[0] for r in names] == ["t-end", "t-params", "t-start"]


def test_tag_mutation_from_the_client(env):
    run_flow(env, "linear_flow.py", "run", "--tag", "old")
    got = client(
        env,
        """
        run = Flow('LinearFlow').latest_run
        run.add_tag('added'); run.remove_tag('old'); run.replace_tag('added', 'replaced')
        run = Run(run.pathspec)
        print(json.dumps(sorted(run.user_tags)))
    """,
    )
    assert got == ["replaced"]


def test_heartbeats_are_recorded_in_seconds_while_a_step_sleeps(env, migrated_db):
    started = time.time()
    run_flow(env, "linear_flow.py", "run", "--sleep", "14")
    run_hb = q(migrated_db, "select last_heartbeat_ts from runs_v3 where flow_id = 'LinearFlow'")[0][0]
    task_hb = q(migrated_db, "select max(last_heartbeat_ts) from tasks_v3 where step_name = 'start'")[0][0]
    for hb in (run_hb, task_hb):
        assert hb is not None and started - 5 <= hb <= time.time() + 5  # seconds, not milliseconds


def test_foreach_of_64_with_16_workers_stores_everything_exactly_once(env, migrated_db):
    run_flow(env, "foreach_flow.py", "run", "--n", "64", "--max-workers", "16")
    assert client(env, "print(json.dumps(Flow('ForeachFlow').latest_run.data.total))") == sum(
        i * i for i in range(64)
    )
    tasks = q(migrated_db, "select step_name, count(*) n from tasks_v3 group by step_name")
    assert dict((r[0], r[1]) for r in tasks) == {
        "_parameters": 1,
        "start": 1,
        "each": 64,
        "join": 1,
        "end": 1,
    }
    # every task registered its attempt once, and no metadata row or artifact is duplicated
    # (the _parameters task is registered by the client without an 'attempt' row, as with the official service)
    attempts = q(
        migrated_db,
        """select t.step_name, count(m.*) from tasks_v3 t
                                   left join metadata_v3 m on m.task_id = t.task_id and m.field_name = 'attempt'
                                  where t.flow_id = 'ForeachFlow' group by t.task_id, t.step_name""",
    )
    assert sorted(set(r[1] for r in attempts if r[0] != "_parameters")) == [1] and len(attempts) == 68
    # The client itself posts system metadata twice per task (runtime at task creation, then the task
    # process), so duplicates are legitimate; what concurrency must not do is lose or repeat a row for
    # some tasks only: all 64 foreach tasks hold the same multiset of metadata fields.
    shapes = q(
        migrated_db,
        """select task_id, string_agg(field_name || '=' || n, ',' order by field_name) shape
                                 from (select task_id, field_name, count(*) n from metadata_v3
                                        where step_name = 'each' group by 1, 2) f group by task_id""",
    )
    assert len(shapes) == 64 and len(set(r[1] for r in shapes)) == 1, set(r[1] for r in shapes)
    per_task = q(
        migrated_db,
        """select count(*) filter (where name = 'sq'), count(*) filter (where name = '_task_ok')
                                   from artifact_v3 where step_name = 'each'""",
    )
    assert tuple(per_task[0]) == (64, 64)
    # and the client sees exactly what the database holds
    seen = client(
        env, "print(json.dumps(sum(len(t.metadata) for t in Flow('ForeachFlow').latest_run['each'])))"
    )
    assert seen == q(migrated_db, "select count(*) from metadata_v3 where step_name = 'each'")[0][0]
