"""The router as a Cloudflare Worker (`pulumi-cloudflare`), child resources of `MetadataCompute`.

The bundle is built on the deploying machine by `python -m mfs worker-bundle` (a
`pulumi-command` local command running esbuild from npm, no Docker) from the Worker entry
`functions/metadata-router/worker/worker.ts`, which wraps the web-standard handler of
`handler.ts`; the tests run the same bundle under workerd.
The database URL and API key are `secret_text` bindings; the script is enabled on the
account's workers.dev subdomain.
"""

from __future__ import annotations

import pulumi

from mfs.router import SECRET_VARS, router_env
from mfs.worker import COMPATIBILITY_DATE  # the date the tests run workerd with


def worker(name, s, names, database_url, api_key, quota_scope, parent) -> pulumi.Output:
    import pulumi_cloudflare as cloudflare
    from pulumi_command import local

    child = pulumi.ResourceOptions(parent=parent)
    source_hash = _source_hash()
    bundle = local.Command(
        f"{name}-bundle",
        # no `dir`: the command runs in the project directory, and an absolute path in the
        # inputs would show as a change in a preview from any other checkout
        create="python -m mfs worker-bundle",
        triggers=[source_hash],
        logging="stderr",
        opts=child,
    )
    script_name = names.name("router")
    script = cloudflare.WorkersScript(
        f"{name}-worker",
        account_id=s.cloudflare_account_id,
        script_name=script_name,
        content=bundle.stdout,
        main_module="worker.js",
        compatibility_date=COMPATIBILITY_DATE,
        compatibility_flags=["nodejs_compat"],
        bindings=[
            {"type": "secret_text" if var in SECRET_VARS else "plain_text", "name": var, "text": value}
            for var, value in router_env(database_url, api_key, quota_scope).items()
        ],
        opts=child,
    )
    cloudflare.WorkersScriptSubdomain(
        f"{name}-subdomain",
        account_id=s.cloudflare_account_id,
        script_name=script.script_name,
        enabled=True,
        opts=child,
    )
    return pulumi.Output.concat(
        "https://", script.script_name, ".", s.cloudflare_workers_subdomain, ".workers.dev"
    )


def _source_hash() -> str:
    from .providers.supabase_api import router_hash

    return router_hash()
