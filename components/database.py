"""`Database`: a Postgres the metadata service runs on, with this checkout's schema applied.

One backend per stack (`database` config): Supabase project, Neon project, CockroachDB
serverless cluster (`pulumiverse-cockroach`, a maintained bridged provider), an existing URL
(`postgres`), or `local` (a real Postgres server process). Every backend ends in the same
`SchemaMigrations` child, so `url` is only known once the schema is in place. With
`dropDataOnDestroy` off, the vendor project is retained on `pulumi destroy` (removed from the
state, left running with its data) and the schema is not dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from .providers.local_postgres import LocalPostgres
from .providers.neon_api import NeonProject
from .providers.schema_migrations import SchemaMigrations
from .providers.secret_key import RandomSecret
from .providers.supabase_api import SupabaseProject
from .names import StackNames
from .settings import Settings

TYPE = "metaflow-serverless:index:Database"


@dataclass
class DatabaseArgs:
    backend: str
    settings: Settings
    names: StackNames


class Database(pulumi.ComponentResource):
    url: pulumi.Output[str]
    """Session-capable connection URL (secret)."""
    supabase_ref: Optional[pulumi.Output[str]] = None

    def __init__(self, name: str, args: DatabaseArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TYPE, name, {}, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        keep = pulumi.ResourceOptions(parent=self, retain_on_delete=not s.drop_data_on_destroy)
        self.backend = args.backend
        self.supabase_ref = None
        self.supabase_url = None
        self.pooled_url = None  # a pooler URL for serverless clients, where the vendor has one
        if args.backend == "supabase":
            db_pass = s.secret("supabaseDbPassword") or RandomSecret(f"{name}-password", 24, child).value
            project = SupabaseProject(
                f"{name}-supabase",
                project_name=s.project_name,
                organization=s.supabase_organization,
                region=s.region,
                access_token=s.require_secret("supabaseAccessToken"),
                db_pass=db_pass,
                instance_size=s.supabase_instance_size,
                opts=keep,
            )
            raw_url, self.supabase_ref, self.supabase_url = project.db_url, project.ref, project.url
            self.pooled_url = project.pooler_url  # transaction mode: for the Edge Function
        elif args.backend == "neon":
            project = NeonProject(
                f"{name}-neon",
                project_name=s.project_name,
                region=s.region,
                org_id=s.neon_org_id,
                api_key=s.require_secret("neonApiKey"),
                opts=keep,
            )
            raw_url, self.pooled_url = project.db_url, project.pooled_url
        elif args.backend == "cockroach":
            raw_url = self._cockroach(name, s, args.names, keep, child)
        elif args.backend == "postgres":
            raw_url = s.require_secret("databaseUrl")
        else:
            pg = LocalPostgres(
                f"{name}-local",
                state_dir=f"{s.local_state_dir}/{s.stack}/postgres",
                port=s.local_postgres_port,
                drop_data=s.drop_data_on_destroy,
                opts=child,
            )
            raw_url = pg.url
        self.schema = SchemaMigrations(
            f"{name}-schema", dsn=raw_url, drop_on_destroy=s.drop_data_on_destroy, opts=child
        )
        self.url = self._after_schema(raw_url)
        if self.pooled_url is not None:
            self.pooled_url = self._after_schema(self.pooled_url)
        self.register_outputs({"url": self.url, "backend": self.backend, "migrations": self.schema.applied})

    def _after_schema(self, url) -> pulumi.Output:
        """`url`, known only once the schema is in place (secret)."""
        return pulumi.Output.secret(pulumi.Output.all(url, self.schema.applied).apply(lambda a: a[0]))

    def _cockroach(self, name, s: Settings, names: StackNames, keep, child):
        import pulumiverse_cockroach as cockroach

        cluster = cockroach.Cluster(
            f"{name}-cockroach",
            name=names.name(max_len=20),
            cloud_provider=s.cockroach_cloud_provider,
            plan="BASIC",
            regions=[{"name": s.region or "us-east-1"}],
            serverless={"usage_limits": {"request_unit_limit": 50_000_000, "storage_mib_limit": 10_240}}
            if not s.cockroach_spend_limit
            else {"spend_limit": s.cockroach_spend_limit},
            opts=keep,
        )
        password = RandomSecret(f"{name}-password", 24, child).value
        # the user and database hold the data too: kept with the cluster unless dropDataOnDestroy
        user = cockroach.SqlUser(
            f"{name}-user", cluster_id=cluster.id, name="metaflow", password=password, opts=keep
        )
        db = cockroach.Database(f"{name}-db", cluster_id=cluster.id, name="metaflow", opts=keep)
        return pulumi.Output.secret(
            pulumi.Output.format(
                "postgresql://{0}:{1}@{2}:26257/{3}?sslmode=verify-full",
                user.name,
                password,
                cluster.regions[0].sql_dns,
                db.name,
            )
        )
