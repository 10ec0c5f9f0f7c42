"""The router on Google Cloud Run (`pulumi-gcp`), child resources of `MetadataCompute`.

No container is built: the service runs the public Deno image and reads the router's source
from a private Cloud Storage bucket mounted as a volume (Cloud Run gen2 GCS volumes), so the
user needs no Docker daemon and no Cloud Build. The database URL and API key live in Secret
Manager and reach the container as secret environment variables. `min_instance_count=0` scales
to zero; the endpoint is publicly routable but the router answers 401 to any request without
the `x-api-key` (only its health route is open).
"""

from __future__ import annotations

import pulumi

from mfs.router import SECRET_VARS, router_env

from .providers.supabase_api import router_files

# Cloud Run's container contract: listen on all interfaces at $PORT, which the platform sets
# (PORT is a reserved name: a service may not set it, only choose it through `ports`)
CONTAINER_PORT = 8080
MOUNT = "/router"


def container_env(database_url, api_key, quota_scope: str, database: str = "") -> dict:
    """The container's environment; its SECRET_VARS come from Secret Manager."""
    return {
        "HOST": "0.0.0.0",
        **router_env(database_url, api_key, quota_scope, database=database),
        "DENO_DIR": "/tmp/deno",
    }


def cloud_run_service(name, s, names, database_url, api_key, quota_scope, parent) -> pulumi.Output:
    import pulumi_gcp as gcp

    child = pulumi.ResourceOptions(parent=parent)
    project, region = s.gcp_project, s.gcp_region
    apis = [
        gcp.projects.Service(
            f"{name}-api-{api.split('.')[0]}",
            project=project,
            service=api,
            disable_on_destroy=False,
            opts=child,
        )
        for api in (
            "run.googleapis.com",
            "secretmanager.googleapis.com",
            "storage.googleapis.com",
            "iam.googleapis.com",
        )
    ]
    after_apis = pulumi.ResourceOptions(parent=parent, depends_on=apis)
    account = gcp.serviceaccount.Account(
        f"{name}-sa",
        project=project,
        account_id=names.name("run", max_len=30),
        display_name="metaflow-serverless router",
        opts=after_apis,
    )  # a fresh project: IAM API first
    member = pulumi.Output.concat("serviceAccount:", account.email)

    source = gcp.storage.Bucket(
        f"{name}-source",
        project=project,
        location=region,
        uniform_bucket_level_access=True,
        force_destroy=True,
        opts=after_apis,
    )
    objects = [
        gcp.storage.BucketObject(
            f"{name}-src-{path.replace('/', '-')}",
            bucket=source.name,
            name=path,
            content=data.decode("utf-8"),
            opts=child,
        )
        for path, data in router_files().items()
    ]
    grants = [
        gcp.storage.BucketIAMMember(
            f"{name}-source-read",
            bucket=source.name,
            role="roles/storage.objectViewer",
            member=member,
            opts=child,
        )
    ]

    env, env_secrets = container_env(database_url, api_key, quota_scope, s.database), {}
    for var, value in [(var, env.pop(var)) for var in SECRET_VARS]:
        slug = var.lower().replace("_", "-")
        secret = gcp.secretmanager.Secret(
            f"{name}-{slug}",
            project=project,
            secret_id=names.name(slug),
            replication={"auto": {}},
            opts=after_apis,
        )
        version = gcp.secretmanager.SecretVersion(
            f"{name}-{slug}-v", secret=secret.id, secret_data=pulumi.Output.secret(value), opts=child
        )
        grants.append(
            gcp.secretmanager.SecretIamMember(
                f"{name}-{slug}-read",
                project=project,
                secret_id=secret.secret_id,
                role="roles/secretmanager.secretAccessor",
                member=member,
                opts=child,
            )
        )
        env_secrets[var] = (secret, version)

    envs = [
        {"name": var, "value_source": {"secret_key_ref": {"secret": sec.secret_id, "version": ver.version}}}
        for var, (sec, ver) in env_secrets.items()
    ]
    envs += [{"name": k, "value": v} for k, v in env.items()]
    service = gcp.cloudrunv2.Service(
        f"{name}-service",
        project=project,
        location=region,
        name=names.name("router", max_len=49),
        ingress="INGRESS_TRAFFIC_ALL",
        deletion_protection=False,
        template={
            "service_account": account.email,
            "execution_environment": "EXECUTION_ENVIRONMENT_GEN2",
            "scaling": {"min_instance_count": 0, "max_instance_count": 2},
            "volumes": [{"name": "router", "gcs": {"bucket": source.name, "read_only": True}}],
            "containers": [
                {
                    "image": s.router_image,
                    "commands": ["deno"],
                    "args": [
                        "run",
                        "--allow-net",
                        "--allow-env",
                        "--allow-read",
                        "--allow-write=/tmp",
                        f"{MOUNT}/main.ts",
                    ],
                    "envs": envs,
                    "ports": {"container_port": CONTAINER_PORT},
                    "volume_mounts": [{"name": "router", "mount_path": MOUNT}],
                    "resources": {"cpu_idle": True, "limits": {"cpu": "1", "memory": "512Mi"}},
                }
            ],
        },
        opts=pulumi.ResourceOptions(parent=parent, depends_on=apis + objects + grants),
    )
    gcp.cloudrunv2.ServiceIamMember(
        f"{name}-public",
        project=project,
        location=region,
        name=service.name,
        role="roles/run.invoker",
        member="allUsers",
        opts=child,
    )
    return service.uri
