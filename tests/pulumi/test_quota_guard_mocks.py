"""QuotaGuard's database size limit and retention policy (issue 16): under mocks, what each stack
writes; for real, the RetentionPolicy provider storing and applying a policy."""

import time

import pytest

from harness import run_program
from test_stacks_mocks import D, SECRETS

LIMITS = D + "mfs:QuotaLimits"
RETENTION = D + "mfs:RetentionPolicy"


@pytest.mark.parametrize(
    "stack, size",
    [
        ("supabase-free", 500 * 1000**2),
        ("neon-r2", 512 * 1024**2),
        ("cockroach-b2", 10 * 1024**3),
        ("local", None),
    ],
)
def test_the_size_limit_defaults_to_the_vendors_free_plan(stack, size):
    run = run_program(stack, SECRETS)
    limits = run.one(LIMITS).plain
    assert limits.get("max_database_bytes") == size
    assert limits["database_warn_percent"] == 80
    summary = run.outputs["quota"]["value"]
    assert summary["max_database_bytes"] == size and summary["database_warn_percent"] == 80


def test_the_size_limit_and_threshold_come_from_config():
    run = run_program(
        "supabase-free", {**SECRETS, "maxDatabaseBytes": 123_456_789, "databaseWarnPercent": 90}
    )
    assert run.one(LIMITS).plain["max_database_bytes"] == 123_456_789
    assert run.one(LIMITS).plain["database_warn_percent"] == 90
    unlimited = run_program("supabase-free", {**SECRETS, "maxDatabaseBytes": -1})
    assert unlimited.one(LIMITS).plain.get("max_database_bytes") is None


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"maxDatabaseBytes": -5}, "maxDatabaseBytes=-5"),
        ({"databaseWarnPercent": 0}, "databaseWarnPercent=0"),
        ({"retentionKeepDays": -1}, "retentionKeepDays=-1"),
    ],
)
def test_bad_guard_settings_are_refused_with_the_key(cfg, message):
    with pytest.raises(Exception, match=message):
        run_program("local", {**SECRETS, **cfg})


def test_no_retention_policy_by_default():
    run = run_program("supabase-free", SECRETS)
    policy = run.one(RETENTION)
    assert policy.plain.get("keep_days") is None and policy.plain.get("keep_runs") is None
    assert policy.plain["keep_tag"] == "keep"
    assert policy.parent == run.one("metaflow-serverless:index:QuotaGuard").urn
    assert "no retention policy" in run.outputs["quota"]["value"]["retention"]["schedule"]


def test_the_retention_policy_comes_from_config_and_says_what_to_schedule():
    run = run_program(
        "neon-r2", {**SECRETS, "retentionKeepDays": 30, "retentionKeepRuns": 50, "retentionKeepTag": "prod"}
    )
    policy = run.one(RETENTION)
    assert (policy.plain["keep_days"], policy.plain["keep_runs"], policy.plain["keep_tag"]) == (
        30,
        50,
        "prod",
    )
    assert policy.plain["dsn"] == run.one(LIMITS).plain["dsn"]  # the same database, secretly
    retention = run.outputs["quota"]["value"]["retention"]
    assert retention["keep_days"] == 30 and "python -m mfs retain" in retention["schedule"]
    # '' keeps no tag
    assert run_program("local", {**SECRETS, "retentionKeepTag": ""}).one(RETENTION).plain["keep_tag"] == ""


def test_the_retention_provider_stores_and_applies_the_policy(empty_db):
    """For real: a policy of 10 days deletes the older of two finished runs at create, stores
    the policy where `mfs retain` finds it; an update to no policy removes it."""
    import asyncpg

    from components.providers._util import run_async
    from components.providers.retention_policy import RetentionPolicyProvider
    from mfs import migrations

    migrations.apply(empty_db)
    now_ms = int(time.time() * 1000)

    async def sql(query, *args):
        con = await asyncpg.connect(empty_db)
        try:
            return await con.fetch(query, *args)
        finally:
            await con.close()

    run_async(sql("insert into public.flows_v3 (flow_id, ts_epoch) values ('F', 0)"))
    for age_days in (20, 1):
        run_async(
            sql(
                "insert into public.runs_v3 (flow_id, ts_epoch, last_heartbeat_ts) values ('F', $1, 1)",
                now_ms - age_days * 86_400_000,
            )
        )
    provider = RetentionPolicyProvider()
    props = {"dsn": empty_db, "keep_days": 10, "keep_runs": None, "keep_tag": "keep"}
    created = provider.create(props)
    assert created.outs["runs_deleted_at_deploy"] == 1
    left = run_async(sql("select ts_epoch from public.runs_v3"))
    assert len(left) == 1 and left[0][0] > now_ms - 2 * 86_400_000
    stored = run_async(sql("select keep_days, keep_runs, keep_tag from mfs.retention_policy"))
    assert [tuple(r) for r in stored] == [(10, None, "keep")]
    assert provider.diff("x", created.outs, {**props, "keep_days": 5}).changes
    assert not provider.diff("x", created.outs, props).changes
    off = provider.update("x", created.outs, {**props, "keep_days": None})
    assert off.outs["runs_deleted_at_deploy"] == 0
    assert run_async(sql("select count(*) from mfs.retention_policy"))[0][0] == 0
