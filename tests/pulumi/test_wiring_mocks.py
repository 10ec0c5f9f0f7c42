"""Per-backend wiring under mocks: what each compute gets, data retention, config errors."""

import pytest

from harness import D, SECRETS, is_secret, run_program


def test_local_router_gets_the_database_url_key_and_scope():
    run = run_program("local", SECRETS)
    router = run.one(D + "mfs:LocalRouter")
    assert is_secret(router.inputs["database_url"]) and is_secret(router.inputs["api_key"])
    # the fake LocalPostgres url, passed through the schema-applied Database.url
    assert router.plain["database_url"] == "postgresql://postgres:pw@127.0.0.1:5432/postgres"
    assert router.plain["api_key"] == SECRETS["apiKey"]
    assert router.plain["quota_scope"] == "default"
    assert run.one(D + "mfs:MetaflowConfig").plain["write_default"] == "never"


def test_generated_api_key_when_none_is_configured():
    cfg = {k: v for k, v in SECRETS.items() if k != "apiKey"}
    run = run_program("local", cfg)
    key = run.one(D + "mfs:RandomSecret")
    assert "value" in key.secret_outputs
    assert run.one(D + "mfs:LocalRouter").plain["api_key"] == "fake-generated-secret"


def test_supabase_function_gets_key_scope_and_prefix_as_secrets():
    run = run_program("supabase-free", {**SECRETS, "quotaScope": "team-a"})
    fn = run.one(D + "supabase:Function")
    assert is_secret(fn.inputs["secrets"]) and is_secret(fn.inputs["access_token"])
    # the transaction pooler (port 6543), no prepared statements, two connections per isolate
    assert fn.plain["secrets"] == {
        "METADATA_API_KEY": SECRETS["apiKey"],
        "QUOTA_SCOPE": "team-a",
        "PATH_PREFIX": "/metadata-router",
        "DATABASE_URL": "postgresql://u:p@pooler:6543/postgres",
        "DB_PREPARE": "false",
        "DB_MAX_CONNECTIONS": "2",
    }
    assert "pooler_url" in run.one(D + "supabase:Project").secret_outputs
    project = run.one(D + "supabase:Project")
    assert fn.plain["ref"] == run.one(D + "supabase:Bucket").plain["ref"] == "abcdefghijklmnopqrst"
    assert project.plain["organization"] == "your-org-slug"
    assert run.one(D + "mfs:QuotaLimits").plain["scope"] == "team-a"


@pytest.mark.parametrize("drop", [False, True])
def test_vendor_data_is_retained_on_destroy_unless_opted_in(drop):
    run = run_program("supabase-free", {**SECRETS, "dropDataOnDestroy": drop})
    assert run.one(D + "supabase:Project").retain_on_delete is (not drop)
    assert run.one(D + "mfs:SchemaMigrations").plain["drop_on_destroy"] is drop
    assert run.one(D + "supabase:Bucket").plain["drop_data"] is drop


def test_worker_bindings_carry_the_database_url_and_key_as_secrets():
    run = run_program("neon-r2", SECRETS)
    script = run.one("cloudflare:index/workersScript:WorkersScript")
    assert is_secret(script.inputs["bindings"])  # the whole list, as it holds secrets
    bindings = {b["name"]: b for b in script.plain["bindings"]}
    # Neon's pooler host, as Neon advises for serverless clients (the Worker: no prepare, max 1)
    assert bindings["DATABASE_URL"] == {
        "type": "secret_text",
        "name": "DATABASE_URL",
        "text": "postgresql://u:p@ep-1-pooler.neon.example/neondb",
    }
    assert bindings["METADATA_API_KEY"]["text"] == SECRETS["apiKey"]
    assert run.one("cloudflare:index/r2Bucket:R2Bucket").retain_on_delete
    direct = run_program("neon-r2", {**SECRETS, "neonPooledForWorker": False})
    bindings = {
        b["name"]: b for b in direct.one("cloudflare:index/workersScript:WorkersScript").plain["bindings"]
    }
    assert bindings["DATABASE_URL"]["text"] == "postgresql://u:p@pooler:5432/postgres"


def test_cloud_run_scales_to_zero_reads_secrets_from_secret_manager_and_builds_nothing():
    run = run_program("cockroach-b2", SECRETS)
    service = run.one("gcp:cloudrunv2/service:Service").plain
    template = service["template"]
    assert template["scaling"]["minInstanceCount"] == 0
    container = template["containers"][0]
    assert container["image"].startswith("docker.io/denoland/deno")
    envs = {e["name"]: e for e in container["envs"]}
    assert "valueSource" in envs["DATABASE_URL"] and "valueSource" in envs["METADATA_API_KEY"]
    versions = run.by_type("gcp:secretmanager/secretVersion:SecretVersion")
    assert len(versions) == 2 and all(is_secret(v.inputs["secretData"]) for v in versions)
    assert run.one("gcp:cloudrunv2/serviceIamMember:ServiceIamMember").plain["member"] == "allUsers"
    assert not any("docker" in r.type or "cloudbuild" in r.type for r in run.resources)
    url = run.one("cockroach:index/sqlUser:SqlUser")
    assert is_secret(url.inputs["password"])


def test_a_missing_secret_names_the_key_and_its_environment_variable():
    cfg = {k: v for k, v in SECRETS.items() if k != "neonApiKey"}
    with pytest.raises(Exception, match="neonApiKey.*NEON_API_KEY"):
        run_program("neon-r2", cfg)


def test_an_unknown_backend_is_refused():
    with pytest.raises(Exception, match="database='mysql'"):
        run_program("local", {"database": "mysql"})


def test_supabase_storage_needs_a_supabase_database():
    with pytest.raises(Exception, match="objectStore=supabase needs database=supabase"):
        run_program("local", {"objectStore": "supabase", **SECRETS})


def test_supabase_without_s3_keys_uses_session_token_credentials_in_one_up():
    """Supabase's session-token S3 auth: access key = ref, secret = anon key, session token = the
    service-role JWT (outputs of the bucket), passed to Metaflow as `aws_session_token`."""
    import json

    cfg = {k: v for k, v in SECRETS.items() if not k.startswith("s3")}
    run = run_program("supabase-free", cfg)
    bucket = run.one(D + "supabase:Bucket")
    assert {"secret_access_key", "session_token"} <= set(bucket.secret_outputs)
    params = json.loads(run.one(D + "mfs:MetaflowConfig").plain["values"]["METAFLOW_DATATOOLS_CLIENT_PARAMS"])
    assert params == {
        "aws_access_key_id": "B2K",
        "aws_secret_access_key": "B2S",
        "region_name": "us-east-1",
        "aws_session_token": "JWT",
    }


def test_r2_credentials_are_minted_from_a_bucket_scoped_token():
    import hashlib
    import json

    cfg = {k: v for k, v in SECRETS.items() if not k.startswith("s3")}
    run = run_program("neon-r2", cfg)
    token = run.one("cloudflare:index/accountToken:AccountToken")
    assert "value" in token.secret_outputs
    policy = token.plain["policies"][0]
    bucket = run.one("cloudflare:index/r2Bucket:R2Bucket").plain["name"]
    assert json.loads(policy["resources"]) == {
        f"com.cloudflare.edge.r2.bucket.your-cloudflare-account-id_default_{bucket}": "*"
    }
    assert [g["id"] for g in policy["permissionGroups"]] == ["pg-read", "pg-write"]
    params = json.loads(run.one(D + "mfs:MetaflowConfig").plain["values"]["METAFLOW_DATATOOLS_CLIENT_PARAMS"])
    # access key id = the token's id, secret = SHA-256 of the token's value
    assert params["aws_access_key_id"] == "object-store-r2-token-id"
    assert params["aws_secret_access_key"] == hashlib.sha256(b"r2-token-value").hexdigest()


def test_cockroach_keeps_user_and_database_unless_drop_data():
    kept = run_program("cockroach-b2", SECRETS)
    for t in (
        "cockroach:index/cluster:Cluster",
        "cockroach:index/sqlUser:SqlUser",
        "cockroach:index/database:Database",
    ):
        assert kept.one(t).retain_on_delete, t
    dropped = run_program("cockroach-b2", {**SECRETS, "dropDataOnDestroy": True})
    assert not dropped.one("cockroach:index/database:Database").retain_on_delete


def test_a_fresh_gcp_project_gets_the_iam_api_before_the_service_account():
    run = run_program("cockroach-b2", SECRETS)
    apis = {r.urn: r.plain["service"] for r in run.by_type("gcp:projects/service:Service")}
    assert "iam.googleapis.com" in apis.values()
    account = run.one("gcp:serviceaccount/account:Account")
    assert set(apis) <= set(account.dependencies)
