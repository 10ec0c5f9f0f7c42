"""metaflow-serverless: a shared Metaflow metadata service on free-tier serverless providers.

The stack's config (`stacks/Pulumi.<stack>.yaml`, typed in `Pulumi.yaml`) picks one backend per
layer; this program wires Database -> QuotaGuard -> MetadataCompute, ObjectStore beside them,
and writes the Metaflow profile for the stack.
"""

import pulumi

from components import (
    Database,
    DatabaseArgs,
    MetadataCompute,
    MetadataComputeArgs,
    ObjectStore,
    ObjectStoreArgs,
    QuotaGuard,
    QuotaGuardArgs,
    settings,
)
from components.metaflow_profile import profile_values
from components.quota_guard import Retention, database_size_limit
from components.names import StackNames
from components.providers.metaflow_config import MetaflowConfig
from components.providers.secret_key import RandomSecret

s = settings.load()
names = StackNames(s)

api_key = s.secret("apiKey") or RandomSecret("metadata-api-key", 32).value
db = Database("database", DatabaseArgs(backend=s.database, settings=s, names=names))
store = ObjectStore(
    "object-store",
    ObjectStoreArgs(backend=s.object_store, settings=s, names=names, supabase_ref=db.supabase_ref),
)
quota = QuotaGuard(
    "quota",
    QuotaGuardArgs(
        database_url=db.url,
        scope=s.quota_scope,
        max_requests=s.quota_max_requests,
        max_egress_bytes=s.quota_max_egress_bytes,
        max_database_bytes=database_size_limit(s.database, s.max_database_bytes),
        database_warn_percent=s.database_warn_percent,
        retention=Retention.from_config(s.retention_keep_days, s.retention_keep_runs, s.retention_keep_tag),
    ),
)
# serverless routers (Worker, Edge Function) connect through the vendor's pooler where it has one
use_pooler = db.pooled_url is not None and (s.database != "neon" or s.neon_pooled_for_worker)
serverless_url = db.pooled_url if use_pooler else db.url
compute = MetadataCompute(
    "metadata",
    MetadataComputeArgs(
        backend=s.compute,
        settings=s,
        database_url=db.url,
        serverless_database_url=serverless_url,
        api_key=api_key,
        quota_scope=s.quota_scope,
        names=names,
        supabase_ref=db.supabase_ref,
    ),
    opts=pulumi.ResourceOptions(depends_on=[quota]),
)

values = profile_values(compute.url, api_key, store)
profile = MetaflowConfig(
    "metaflow-config",
    profile=s.stack,
    values=values,
    write_default=s.write_default_config,
    metaflow_home=s.metaflow_home,
)

pulumi.export("service_url", compute.url)
pulumi.export("metaflow_profile", s.stack)
pulumi.export("bucket", store.bucket)
pulumi.export("datastore_sysroot", store.sysroot)
pulumi.export("quota", quota.summary)
pulumi.export("migrations", db.schema.applied)
pulumi.export("metaflow_config", pulumi.Output.secret(profile.config_json))
pulumi.export("run_a_flow", f"METAFLOW_PROFILE={s.stack} python your_flow.py run")
pulumi.export("open_the_ui", f"METAFLOW_PROFILE={s.stack} python -m mfs ui   # then http://127.0.0.1:8083/")
