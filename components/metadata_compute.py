"""`MetadataCompute`: where the metadata router (`functions/metadata-router/`) runs.

Backends: `supabase-edge` (Edge Function deployed through the Management API with its secrets;
the platform gives it `SUPABASE_DB_URL`), `cloudflare-worker` (see `cloudflare_worker.py`),
`cloudrun` (see `cloud_run.py`), `render` (see `render.py`), `local` (the router as a local
Deno process). Every backend gets the same settings: database URL, API key and quota scope;
secrets stay secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from mfs.router import router_env
from .providers.local_router import LocalRouter
from .providers.supabase_api import SupabaseFunction
from .names import StackNames
from .settings import Settings

TYPE = "metaflow-serverless:index:MetadataCompute"
FUNCTION_SLUG = "metadata-router"
# each isolate holds at most this many connections; no prepared statements behind the pooler
EDGE_DB_SETTINGS = {"DB_PREPARE": "false", "DB_MAX_CONNECTIONS": "2"}


@dataclass
class MetadataComputeArgs:
    backend: str
    settings: Settings
    names: StackNames
    database_url: pulumi.Input[str]
    api_key: pulumi.Input[str]
    quota_scope: str
    supabase_ref: Optional[pulumi.Input[str]] = None
    serverless_database_url: Optional[pulumi.Input[str]] = None  # pooler; default database_url


class MetadataCompute(pulumi.ComponentResource):
    url: pulumi.Output[str]

    def __init__(self, name: str, args: MetadataComputeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TYPE, name, {}, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        self.backend = args.backend
        if args.backend == "supabase-edge":
            if args.supabase_ref is None:
                raise pulumi.RunError("compute=supabase-edge needs database=supabase")
            fn = SupabaseFunction(
                f"{name}-edge",
                ref=args.supabase_ref,
                slug=FUNCTION_SLUG,
                secrets={
                    # Supabase's advice for edge functions: the shared pooler in
                    # transaction mode, not the platform's direct SUPABASE_DB_URL
                    **router_env(
                        args.serverless_database_url or args.database_url,
                        args.api_key,
                        args.quota_scope,
                        f"/{FUNCTION_SLUG}",
                    ),
                    **EDGE_DB_SETTINGS,
                },
                access_token=s.require_secret("supabaseAccessToken"),
                opts=child,
            )
            self.url = fn.url
        elif args.backend == "cloudflare-worker":
            from .cloudflare_worker import worker

            self.url = worker(
                name,
                s,
                args.names,
                args.serverless_database_url or args.database_url,
                args.api_key,
                args.quota_scope,
                self,
            )
        elif args.backend == "cloudrun":
            from .cloud_run import cloud_run_service

            self.url = cloud_run_service(
                name, s, args.names, args.database_url, args.api_key, args.quota_scope, self
            )
        elif args.backend == "render":
            from .render import render_service

            self.url = render_service(name, s, args.database_url, args.api_key, args.quota_scope, self)
        else:
            router = LocalRouter(
                f"{name}-local",
                database_url=args.database_url,
                api_key=args.api_key,
                quota_scope=args.quota_scope,
                state_dir=f"{s.local_state_dir}/{s.stack}/router",
                port=s.local_router_port,
                opts=child,
            )
            self.url = router.url
        self.register_outputs({"url": self.url, "backend": self.backend})
