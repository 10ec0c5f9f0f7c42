"""Every stack's program under mocks: the resource graph, provider per layer, secrets, wiring."""

import pytest

from harness import D, EXPECTED, SECRETS, is_secret, run_program

T = "metaflow-serverless:index:"
COMPONENTS = ("Database", "ObjectStore", "MetadataCompute", "QuotaGuard")


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def stack_run(request):
    return request.param, run_program(request.param, SECRETS)


def leaked(value, inside_secret=False):
    """Plain strings found outside any secret wrapper."""
    if is_secret(value):
        return []
    if isinstance(value, dict):
        return [s for v in value.values() for s in leaked(v)]
    if isinstance(value, list):
        return [s for v in value for s in leaked(v)]
    return [value] if isinstance(value, str) else []


def test_components_are_typed_and_parent_every_backend_resource(stack_run):
    stack, run = stack_run
    for name in COMPONENTS:
        comp = run.one(T + name)
        assert comp.parent.split("::")[-1] == f"metaflow-serverless-{stack}"
        assert not comp.custom
    for comp_name, child_types in EXPECTED[stack].items():
        comp = run.one(T + comp_name)
        for type_ in child_types:
            children = run.by_type(type_)
            assert children, f"{stack}: no {type_}"
            assert all(c.parent == comp.urn for c in children), f"{type_} not under {comp_name}"
    quota = run.one(T + "QuotaGuard")
    assert [r.parent for r in run.by_type(D + "mfs:QuotaLimits")] == [quota.urn]


def test_every_custom_resource_has_a_component_or_is_stack_level_on_purpose(stack_run):
    _, run = stack_run
    top_level = {
        r.type for r in run.resources if r.custom and r.parent.split("::")[2] == "pulumi:pulumi:Stack"
    }
    # the name suffix is shared by every component's names
    assert top_level <= {D + "mfs:MetaflowConfig", D + "mfs:RandomSecret", D + "mfs:RandomSuffix"}


def test_no_secret_value_is_stored_in_plain_text(stack_run):
    stack, run = stack_run
    for r in run.resources:
        plain = " ".join(leaked({k: v for k, v in r.inputs.items() if k != "__provider"}))
        for key, value in SECRETS.items():
            assert value not in plain, f"{stack}: {key} in plain inputs of {r.type} {r.name}"
    assert run.outputs["metaflow_config"]["secret"]
    for name, out in run.outputs.items():
        if name != "metaflow_config":
            assert not any(v in str(out["value"]) for v in SECRETS.values()), name


def test_generated_secrets_are_marked_secret_for_the_engine(stack_run):
    _, run = stack_run
    expect = {
        "RandomSecret": {"value"},
        "MetaflowConfig": {"config_json", "files"},
        "LocalPostgres": {"url"},
        "LocalS3": {"access_key_id", "secret_access_key"},
        "supabase:Project": {"db_url", "db_pass"},
        "neon:Project": {"db_url"},
        "b2:Bucket": {"access_key_id", "secret_access_key"},
    }
    for r in run.resources:
        for suffix, outs in expect.items():
            if r.type.endswith(suffix):
                assert outs <= set(r.secret_outputs), (r.type, r.secret_outputs)


def test_the_metaflow_profile_is_the_stack_and_holds_the_keys_metaflow_reads(stack_run):
    stack, run = stack_run
    cfg = run.one(D + "mfs:MetaflowConfig")
    assert cfg.plain["profile"] == stack
    assert is_secret(cfg.inputs["values"])
    values = cfg.plain["values"]
    assert values["METAFLOW_DEFAULT_METADATA"] == "service"
    assert values["METAFLOW_DEFAULT_DATASTORE"] == "s3"
    assert values["METAFLOW_SERVICE_AUTH_KEY"] == SECRETS["apiKey"]
    assert values["METAFLOW_SERVICE_URL"] == run.outputs["service_url"]["value"]
    assert values["METAFLOW_DATASTORE_SYSROOT_S3"] == run.outputs["datastore_sysroot"]["value"]
    assert "aws_secret_access_key" in values["METAFLOW_DATATOOLS_CLIENT_PARAMS"]
    assert run.outputs["metaflow_profile"]["value"] == stack
    assert f"METAFLOW_PROFILE={stack}" in run.outputs["run_a_flow"]["value"]


def test_quota_limits_come_from_config_and_compute_waits_for_them(stack_run):
    stack, run = stack_run
    from harness import stack_config

    cfg = stack_config(stack, SECRETS)
    limits = run.one(D + "mfs:QuotaLimits").plain
    assert limits["max_requests"] == int(cfg["metaflow-serverless:quotaMaxRequests"])
    assert limits["max_egress_bytes"] == int(cfg["metaflow-serverless:quotaMaxEgressBytes"])
    assert limits["scope"] == cfg["metaflow-serverless:quotaScope"]
    compute = run.one(T + "MetadataCompute")
    # depends_on a component expands to its children: the limits row is written first
    assert any(d.endswith("mfs:QuotaLimits::quota-limits") for d in compute.dependencies)
    assert run.outputs["quota"]["value"]["max_requests_per_month"] == limits["max_requests"]


def test_migrations_and_quota_use_the_database_url_secretly(stack_run):
    _, run = stack_run
    schema = run.one(D + "mfs:SchemaMigrations")
    quota = run.one(D + "mfs:QuotaLimits")
    assert is_secret(schema.inputs["dsn"]) and is_secret(quota.inputs["dsn"])
    assert schema.plain["dsn"] == quota.plain["dsn"]
    assert schema.plain["migrations"] and schema.plain["migrations"] == sorted(schema.plain["migrations"])


def test_the_stack_tells_how_to_open_the_ui_over_its_profile(stack_run):
    stack, run = stack_run
    assert run.outputs["metaflow_profile"]["value"] == stack
    assert run.outputs["open_the_ui"]["value"].startswith(f"METAFLOW_PROFILE={stack} python -m mfs ui")
