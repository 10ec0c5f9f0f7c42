"""Names that must be unique (B2 bucket names are global across Backblaze's customers; R2
buckets, GCP service accounts, secrets, Cloud Run services and Workers are per account) are
`<projectName>-<stack>-<suffix>`, the suffix random once per stack and kept in state."""

import re

from harness import SECRETS, run_program

SUFFIX = "a1b2c3"  # the harness's RandomSuffix output


def names_of(stack):
    run = run_program(stack, SECRETS)
    one = lambda t: run.one(t).plain  # noqa: E731
    return run, one


def test_b2_bucket_and_gcp_names_carry_project_stack_and_suffix():
    run, one = names_of("cockroach-b2")
    bucket = one("pulumi-python:dynamic/b2:Bucket")["bucket"]
    assert bucket == f"metaflow-serverless-cockroach-b2-{SUFFIX}"
    assert 6 <= len(bucket) <= 50 and re.fullmatch(r"[a-z0-9-]+", bucket)
    account = one("gcp:serviceaccount/account:Account")["accountId"]
    assert account.endswith(SUFFIX) and re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account)
    service = one("gcp:cloudrunv2/service:Service")["name"]
    assert service.endswith(SUFFIX) and len(service) <= 49 and "cockroach-b2" in service
    secret_ids = [r.plain["secretId"] for r in run.by_type("gcp:secretmanager/secret:Secret")]
    assert len(set(secret_ids)) == 2 and all(s.endswith(SUFFIX) for s in secret_ids)
    cluster = one("cockroach:index/cluster:Cluster")["name"]
    assert cluster.endswith(SUFFIX) and 6 <= len(cluster) <= 20


def test_two_stacks_in_one_account_do_not_collide():
    _, r2 = names_of("neon-r2")
    _, run_ = names_of("neon-render")
    assert (
        r2("cloudflare:index/r2Bucket:R2Bucket")["name"] != run_("cloudflare:index/r2Bucket:R2Bucket")["name"]
    )
    assert (
        r2("cloudflare:index/workersScript:WorkersScript")["scriptName"]
        == f"metaflow-serverless-neon-r2-router-{SUFFIX}"
    )


def test_an_explicit_bucket_name_is_kept():
    _, one = names_of("local")
    assert one("pulumi-python:dynamic/mfs:LocalS3")["bucket"] == "metaflow-local"
