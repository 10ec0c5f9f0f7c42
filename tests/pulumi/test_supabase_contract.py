"""The Supabase providers' requests, validated against Supabase's published OpenAPI document
by a local stand-in server (see supabase_standin.py): create, update and delete of the project,
the storage bucket and the Edge Function with its secrets."""

import pytest

from components.providers.supabase_api import (
    SupabaseBucketProvider,
    SupabaseFunctionProvider,
    SupabaseProjectProvider,
    router_files,
)
from supabase_standin import ANON, REF, SERVICE, supabase_standin

TOKEN = "sbp_" + "0" * 40


@pytest.fixture
def api():
    server = supabase_standin()
    yield server
    server.close()


def test_project_lifecycle_conforms_to_the_openapi_document(api):
    p = SupabaseProjectProvider()
    props = {
        "name": "mfs",
        "organization": "my-org",
        "region": "us-east-1",
        "instance_size": "",
        "api_url": api.url,
        "access_token": TOKEN,
        "db_pass": "pw-secret",
        "poll": 0.01,
        "retry_backoff": 0.01,
    }
    created = p.create(props)
    assert created.id == REF
    # session pooler on 5432 (session locks, IPv4), never the transaction port 6543
    assert created.outs["db_url"] == (
        f"postgresql://postgres.{REF}:pw-secret@"
        "aws-0-us-east-1.pooler.supabase.com:5432/postgres?sslmode=require"
    )
    p.delete(created.id, created.outs)
    assert api.errors == []
    assert ("POST", "/v1/projects") in api.calls
    assert ("DELETE", f"/v1/projects/{REF}") in api.calls
    assert api.calls.count(("GET", f"/v1/projects/{REF}")) >= 2  # polled until healthy


def test_bucket_and_function_conform_to_the_openapi_document(api):
    SupabaseProjectProvider().create(
        {
            "name": "mfs",
            "organization": "my-org",
            "access_token": TOKEN,
            "db_pass": "pw",
            "poll": 0.01,
            "api_url": api.url,
        }
    )
    base = {"ref": REF, "api_url": api.url, "access_token": TOKEN, "retry_backoff": 0.01}
    b = SupabaseBucketProvider()
    bucket = b.create(
        {**base, "bucket": "metaflow-data", "drop_data": True, "storage_url": f"{api.root}/storage/v1"}
    )
    assert bucket.outs["endpoint"] == f"https://{REF}.supabase.co/storage/v1/s3"
    # Supabase's session-token S3 auth: ref / anon key / service-role JWT
    assert (bucket.outs["access_key_id"], bucket.outs["secret_access_key"], bucket.outs["session_token"]) == (
        REF,
        ANON,
        SERVICE,
    )
    assert api.state["buckets"] == {"metaflow-data": 0}
    api.state["buckets"]["metaflow-data"] = 3  # artifacts in it: emptied, then deleted
    b.delete(bucket.id, bucket.outs)
    assert api.state["buckets"] == {}
    assert ("POST", "/storage/v1/bucket/metaflow-data/empty") in api.calls

    f = SupabaseFunctionProvider()
    secrets = {"METADATA_API_KEY": "k", "QUOTA_SCOPE": "default", "PATH_PREFIX": "/metadata-router"}
    fn = f.create({**base, "slug": "metadata-router", "secrets": secrets, "source_hash": "h"})
    assert fn.outs["url"] == f"https://{REF}.supabase.co/functions/v1/metadata-router"
    fewer = {k: v for k, v in secrets.items() if k != "PATH_PREFIX"}
    f.update(fn.id, fn.outs, {**base, "slug": "metadata-router", "secrets": fewer, "source_hash": "h2"})
    f.delete(fn.id, {**fn.outs, "secret_names": sorted(fewer)})
    assert api.errors == []
    deploy = api.bodies[("POST", f"/v1/projects/{REF}/functions/deploy")]
    assert b'"entrypoint_path": "main.ts"' in deploy
    for name in router_files():
        assert f'filename="{name}"'.encode() in deploy
    assert ("DELETE", f"/v1/projects/{REF}/secrets") in api.calls
    assert ("PATCH", f"/v1/projects/{REF}/config/storage") in api.calls


def test_the_stand_in_rejects_what_the_spec_rejects(api):
    import requests

    bad = requests.post(
        f"{api.url}/v1/projects",
        json={"name": "x"},  # no db_pass / org
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert bad.status_code == 400 and api.errors


def test_the_function_bundle_holds_only_the_routers_own_source():
    """npm ci (run by .ci/run for the Worker tools) fills worker/node_modules with .ts/.json files:
    none of them may go into the Edge Function upload or its source hash."""
    from components.providers.supabase_api import router_files

    files = router_files()
    assert {"main.ts", "handler.ts", "routes.ts"} <= set(files)
    assert not [name for name in files if "node_modules" in name or "/dist/" in name]
