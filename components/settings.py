"""The stack's settings, read once from Pulumi config (typed in Pulumi.yaml) and the environment.

Non-secret values come from `stacks/Pulumi.<stack>.yaml` with the defaults of `Pulumi.yaml`.
Secrets come from `pulumi config set --secret <key>` or, when unset, from the environment
variable named beside each key below; either way they are returned as secret Outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import yaml

# the defaults are written once, in Pulumi.yaml (the CLI applies them too)
DEFAULTS = {
    key: spec.get("default")
    for key, spec in yaml.safe_load((Path(__file__).resolve().parent.parent / "Pulumi.yaml").read_text())[
        "config"
    ].items()
}

# secret config key -> environment variable read when the key is unset
SECRET_ENV = {
    "apiKey": "MFS_METADATA_API_KEY",
    "databaseUrl": "MFS_DATABASE_URL",
    "supabaseAccessToken": "SUPABASE_ACCESS_TOKEN",
    "supabaseDbPassword": "SUPABASE_DB_PASSWORD",
    "neonApiKey": "NEON_API_KEY",
    "b2ApplicationKeyId": "B2_APPLICATION_KEY_ID",
    "b2ApplicationKey": "B2_APPLICATION_KEY",
    "s3AccessKeyId": "MFS_S3_ACCESS_KEY_ID",
    "s3SecretAccessKey": "MFS_S3_SECRET_ACCESS_KEY",
    "renderApiKey": "RENDER_API_KEY",
}

DATABASES = ("supabase", "neon", "cockroach", "postgres", "local")
OBJECT_STORES = ("supabase", "r2", "b2", "local")
COMPUTES = ("supabase-edge", "cloudflare-worker", "cloudrun", "render", "local")


@dataclass(frozen=True)
class Settings:
    stack: str
    database: str
    object_store: str
    compute: str
    project_name: str
    region: str
    supabase_organization: str
    supabase_instance_size: str
    neon_org_id: str
    neon_pooled_for_worker: bool
    cockroach_cloud_provider: str
    cockroach_spend_limit: int
    bucket_name: str
    s3_region: str
    b2_region: str
    cloudflare_account_id: str
    cloudflare_workers_subdomain: str
    gcp_project: str
    gcp_region: str
    router_image: str
    render_owner_id: str
    render_region: str
    render_plan: str
    quota_scope: str
    quota_max_requests: int
    quota_max_egress_bytes: int
    max_database_bytes: int
    database_warn_percent: int
    retention_keep_days: int
    retention_keep_runs: int
    retention_keep_tag: str
    drop_data_on_destroy: bool
    write_default_config: str
    metaflow_home: str
    local_state_dir: str
    local_postgres_port: int
    local_s3_port: int
    local_router_port: int

    def secret(self, key: str) -> Optional[pulumi.Output]:
        """The secret `key` (config first, then its environment variable), or None if unset."""
        value = pulumi.Config().get_secret(key)
        if value is not None:
            return value
        env = os.environ.get(SECRET_ENV[key])
        return pulumi.Output.secret(env) if env else None

    def require_secret(self, key: str) -> pulumi.Output:
        value = self.secret(key)
        if value is None:
            raise pulumi.RunError(
                f"missing secret {key}: run `pulumi config set --secret {key} ...` or set {SECRET_ENV[key]}"
            )
        return value


def _choice(cfg: pulumi.Config, key: str, allowed: tuple[str, ...]) -> str:
    value = cfg.get(key) or DEFAULTS[key]
    if value not in allowed:
        raise pulumi.RunError(f"config {key}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _bool(cfg: pulumi.Config, key: str) -> bool:
    return bool(DEFAULTS[key] if cfg.get(key) is None else cfg.get_bool(key))


def load() -> Settings:
    cfg = pulumi.Config()
    s = lambda k: cfg.get(k) or DEFAULTS[k] or ""  # noqa: E731
    i = lambda k: int(cfg.get_int(k) if cfg.get(k) is not None else DEFAULTS[k])  # noqa: E731
    write_default = _choice(cfg, "writeDefaultConfig", ("always", "if-missing", "never"))
    return Settings(
        stack=pulumi.get_stack(),
        database=_choice(cfg, "database", DATABASES),
        object_store=_choice(cfg, "objectStore", OBJECT_STORES),
        compute=_choice(cfg, "compute", COMPUTES),
        project_name=s("projectName"),
        region=s("region"),
        supabase_organization=s("supabaseOrganization"),
        supabase_instance_size=s("supabaseInstanceSize"),
        neon_org_id=s("neonOrgId"),
        neon_pooled_for_worker=_bool(cfg, "neonPooledForWorker"),
        cockroach_cloud_provider=s("cockroachCloudProvider"),
        cockroach_spend_limit=i("cockroachSpendLimit"),
        bucket_name=s("bucketName"),
        s3_region=s("s3Region"),
        b2_region=s("b2Region"),
        cloudflare_account_id=s("cloudflareAccountId"),
        cloudflare_workers_subdomain=s("cloudflareWorkersSubdomain"),
        gcp_project=s("gcpProject"),
        gcp_region=s("gcpRegion"),
        router_image=s("routerImage"),
        render_owner_id=s("renderOwnerId"),
        render_region=s("renderRegion"),
        render_plan=s("renderPlan"),
        quota_scope=s("quotaScope"),
        quota_max_requests=i("quotaMaxRequests"),
        quota_max_egress_bytes=i("quotaMaxEgressBytes"),
        max_database_bytes=i("maxDatabaseBytes"),
        database_warn_percent=i("databaseWarnPercent"),
        retention_keep_days=i("retentionKeepDays"),
        retention_keep_runs=i("retentionKeepRuns"),
        # '' is a value here (no keep tag), not "unset"
        retention_keep_tag=DEFAULTS["retentionKeepTag"]
        if cfg.get("retentionKeepTag") is None
        else cfg.get("retentionKeepTag"),
        drop_data_on_destroy=_bool(cfg, "dropDataOnDestroy"),
        write_default_config=write_default,
        metaflow_home=s("metaflowHome"),
        local_state_dir=s("localStateDir"),
        local_postgres_port=i("localPostgresPort"),
        local_s3_port=i("localS3Port"),
        local_router_port=i("localRouterPort"),
    )
