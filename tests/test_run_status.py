"""mfs.run_status(run): the one definition of a run's status (completed / failed / running),
by the official rule: the end step's latest attempt_ok decides; an end step retried after a
failed attempt is running; without a verdict the run's heartbeat decides against a cutoff
(360 s by default) from mfs.clock()."""

from datetime import datetime, timezone

import asyncpg
import pytest

from testkit import q, run_sync

NOW = 1_800_000_000  # seconds; the clock is set to this instant
MS = NOW * 1000


def statuses(dsn: str, clock_s: int, cutoff: int | None = None) -> dict:
    async def go():
        con = await asyncpg.connect(dsn)
        try:
            await con.execute(f"set mfs.now = '{datetime.fromtimestamp(clock_s, timezone.utc).isoformat()}'")
            arg = "" if cutoff is None else f", {cutoff}"
            rows = await con.fetch(f"select r.run_id, mfs.run_status(r{arg}) from public.runs_v3 r")
            return dict(rows)
        finally:
            await con.close()

    return run_sync(go())


@pytest.fixture
def runs(migrated_db):
    """Runs named after their situation; metadata rows written as the client writes them."""
    dsn = migrated_db
    q(dsn, "insert into flows_v3 (flow_id, ts_epoch) values ('F', 1)")
    cases = {  # run_id: (last_heartbeat_ts, [(step, field, value, ts_epoch ms)])
        "ok": (NOW - 10_000, [("end", "attempt", "0", MS - 5), ("end", "attempt_ok", "True", MS - 4)]),
        "failed-end": (NOW, [("end", "attempt", "0", MS - 5), ("end", "attempt_ok", "False", MS - 4)]),
        "end-retrying": (
            NOW - 10_000,
            [("end", "attempt_ok", "False", MS - 4), ("end", "attempt", "1", MS - 3)],
        ),
        "retried-then-ok": (
            None,
            [
                ("end", "attempt_ok", "False", MS - 4),
                ("end", "attempt", "1", MS - 3),
                ("end", "attempt_ok", "True", MS - 2),
            ],
        ),
        "old-retry-row": (NOW, [("end", "attempt", "1", MS - 9), ("end", "attempt_ok", "False", MS - 4)]),
        "beat-at-cutoff": (NOW - 360, []),
        "beat-past-cutoff": (NOW - 361, []),
        "beat-from-the-future": (NOW + 30, []),
        "no-heartbeat": (None, []),
        "other-step-failed": (NOW - 5, [("start", "attempt_ok", "False", MS - 4)]),
        "unreadable-verdict": (NOW - 5, [("end", "attempt_ok", "maybe", MS - 4)]),
    }
    for i, (run_id, (hb, rows)) in enumerate(cases.items(), start=1):
        q(
            dsn,
            "insert into runs_v3 (flow_id, run_number, run_id, ts_epoch, last_heartbeat_ts) values ('F', $1, $2, 1, $3)",
            i,
            run_id,
            hb,
        )
        for step, field, value, ts in rows:
            q(
                dsn,
                """insert into metadata_v3 (flow_id, run_number, step_name, task_id, field_name, value, type, ts_epoch)
                      values ('F', $1, $2, 7, $3, $4, $3, $5)""",
                i,
                step,
                field,
                value,
                ts,
            )
    return dsn


def test_the_status_rule(runs):
    assert statuses(runs, NOW) == {
        "ok": "completed",  # a verdict beats an old heartbeat
        "failed-end": "failed",  # and a fresh one
        "end-retrying": "running",  # the end step failed and is being retried
        "retried-then-ok": "completed",  # the latest verdict counts
        "old-retry-row": "failed",  # only an attempt after the failed verdict is a retry
        "beat-at-cutoff": "running",
        "beat-past-cutoff": "failed",
        "beat-from-the-future": "running",  # distance, not age: clock skew does not fail a run
        "no-heartbeat": "failed",
        "other-step-failed": "running",  # only the end step's verdict counts
        "unreadable-verdict": "running",  # no verdict: the heartbeat decides
    }


def test_the_cutoff_is_a_parameter_and_time_moves(runs):
    later = statuses(runs, NOW + 100)
    assert later["beat-at-cutoff"] == "failed" and later["beat-from-the-future"] == "running"
    assert later["ok"] == "completed"
    wide = statuses(runs, NOW + 100, cutoff=3600)
    assert wide["beat-at-cutoff"] == "running" and wide["beat-past-cutoff"] == "running"
    assert wide["no-heartbeat"] == "failed"
