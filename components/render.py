"""The router as a Render web service (`pulumi-render`), child resources of `MetadataCompute`.

No image of our own: the service runs the public Deno image (`routerImage`), and the router
reaches it as one file, the bundle of `python -m mfs deno-bundle` (built on the deploying
machine by a `pulumi-command` local command), delivered as a Render secret file, which Render
mounts at `/etc/secrets/<name>`. Render's container contract: listen on 0.0.0.0 and on `$PORT`
(Render's default for web services is 10000; it is set here so the command and environment
below are the whole contract). The database URL and API key are env values of the service,
secret in Pulumi's state; the health check is `/healthcheck`, which touches no database.

`start_command()` and `container_env()` are what Render runs; the tests run exactly these with a
local Deno binary, the bundle in a folder standing in for `/etc/secrets`, and a free port.
"""

from __future__ import annotations

import pulumi

from mfs.deno_bundle import RUN_FLAGS
from mfs.router import router_env

SECRETS_DIR = "/etc/secrets"  # where Render mounts a service's secret files
BUNDLE_FILE = "metadata-router.js"
PORT = "10000"  # Render's default $PORT for web services
HEALTH_PATH = "/healthcheck"


def start_command(deno: str = "deno", secrets_dir: str = SECRETS_DIR) -> list[str]:
    """The container's command: the image's deno running the bundle, fetching nothing."""
    return [deno, *RUN_FLAGS, f"{secrets_dir}/{BUNDLE_FILE}"]


def container_env(database_url, api_key, quota_scope: str, database: str = "") -> dict:
    """The service's environment (values may be Outputs; the first two are secrets)."""
    return {
        "HOST": "0.0.0.0",
        "PORT": PORT,
        **router_env(database_url, api_key, quota_scope, database=database),
    }


def render_service(name, s, database_url, api_key, quota_scope, parent) -> pulumi.Output:
    import pulumi_render as render
    from pulumi_command import local
    from pulumi_render.services import WebServiceDetailsCreatePlan

    from .providers.supabase_api import router_hash

    paid = [p.value for p in WebServiceDetailsCreatePlan]
    if s.render_plan not in paid:
        raise pulumi.RunError(
            f"renderPlan={s.render_plan!r}: pulumi-render creates only {', '.join(paid)} "
            "(Render's API creates no free instance); see docs/STACKS.md, neon-render"
        )
    if not s.render_owner_id:
        raise pulumi.RunError("compute=render needs renderOwnerId (your Render workspace id)")
    provider = render.Provider(
        f"{name}-render", api_key=s.require_secret("renderApiKey"), opts=pulumi.ResourceOptions(parent=parent)
    )
    child = pulumi.ResourceOptions(parent=parent)
    bundle = local.Command(
        f"{name}-deno-bundle",
        create="python -m mfs deno-bundle",  # no `dir`: see cloudflare_worker.py
        triggers=[router_hash()],
        logging="stderr",
        opts=child,
    )
    env = container_env(database_url, api_key, quota_scope, s.database)
    service = render.services.WebService(
        f"{name}-service",
        name=f"{s.project_name}-router",
        owner_id=s.render_owner_id,
        image=render.services.ImageArgs(image_path=s.router_image, owner_id=s.render_owner_id),
        env_vars=[render.services.EnvVarInputArgs(key=k, value=v) for k, v in env.items()],
        secret_files=[render.services.SecretFileInputArgs(name=BUNDLE_FILE, content=bundle.stdout)],
        service_details=render.services.WebServiceDetailsCreateArgs(
            runtime=render.services.WebServiceDetailsCreateRuntime.IMAGE,
            plan=s.render_plan,
            region=s.render_region,
            num_instances=1,
            health_check_path=HEALTH_PATH,
            env_specific_details=render.services.EnvSpecificDetailsCreateArgs(
                docker_command=" ".join(start_command())
            ),
        ),
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, additional_secret_outputs=["envVars"]),
    )
    return service.service_details.apply(lambda d: d.url)
