"""`ObjectStore`: the S3-compatible bucket Metaflow's datastore writes artifacts to.

Backends: Supabase Storage (bucket via the project's SQL endpoint; S3 access keys are created
by hand in the dashboard, Supabase has no API for them, and are passed as secrets), Cloudflare
R2 (`pulumi-cloudflare` bucket; the R2 S3 token is likewise passed as secrets), Backblaze B2
(dynamic provider that also mints a key scoped to the bucket), and `local` (SeaweedFS process
with generated credentials). Credentials are secret outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from .providers.b2_api import B2Bucket
from .providers.local_s3 import LocalS3
from .providers.supabase_api import SupabaseBucket
from .r2_credentials import r2_credentials
from .names import StackNames
from .settings import Settings

TYPE = "metaflow-serverless:index:ObjectStore"


@dataclass
class ObjectStoreArgs:
    backend: str
    settings: Settings
    names: StackNames
    supabase_ref: Optional[pulumi.Input[str]] = None


class ObjectStore(pulumi.ComponentResource):
    def __init__(self, name: str, args: ObjectStoreArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TYPE, name, {}, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        keep = pulumi.ResourceOptions(parent=self, retain_on_delete=not s.drop_data_on_destroy)
        self.backend = args.backend
        bucket_name = s.bucket_name or args.names.name(max_len=50)  # B2: 6-50, R2: 3-63
        self.bucket = pulumi.Output.from_input(bucket_name)
        self.region = s.s3_region or "us-east-1"
        self.session_token = None  # only for S3 session-token auth
        if args.backend == "supabase":
            if args.supabase_ref is None:
                raise pulumi.RunError("objectStore=supabase needs database=supabase")
            bucket = SupabaseBucket(
                f"{name}-supabase",
                ref=args.supabase_ref,
                bucket=bucket_name,
                drop_data=s.drop_data_on_destroy,
                access_token=s.require_secret("supabaseAccessToken"),
                opts=child,
            )
            self.endpoint = bucket.endpoint
            self.region = s.s3_region or s.region or "us-east-1"
            # Supabase's session-token S3 auth (ref / anon key / service-role JWT), unless the
            # user gave dashboard-made S3 keys
            if s.secret("s3AccessKeyId") is not None:
                self.access_key_id = s.require_secret("s3AccessKeyId")
                self.secret_access_key = s.require_secret("s3SecretAccessKey")
            else:
                self.access_key_id = bucket.access_key_id
                self.secret_access_key = bucket.secret_access_key
                self.session_token = bucket.session_token
        elif args.backend == "r2":
            import pulumi_cloudflare as cloudflare

            bucket = cloudflare.R2Bucket(
                f"{name}-r2", account_id=s.cloudflare_account_id, name=bucket_name, opts=keep
            )
            self.bucket = bucket.name
            self.endpoint = pulumi.Output.from_input(
                f"https://{s.cloudflare_account_id}.r2.cloudflarestorage.com"
            )
            self.region = s.s3_region or "auto"
            if s.secret("s3AccessKeyId") is not None:  # the user's own R2 token, if given
                self.access_key_id = s.require_secret("s3AccessKeyId")
                self.secret_access_key = s.require_secret("s3SecretAccessKey")
            else:
                self.access_key_id, self.secret_access_key = r2_credentials(
                    f"{name}-r2", s.cloudflare_account_id, bucket.name, child
                )
        elif args.backend == "b2":
            bucket = B2Bucket(
                f"{name}-b2",
                bucket=bucket_name,
                key_id=s.require_secret("b2ApplicationKeyId"),
                application_key=s.require_secret("b2ApplicationKey"),
                drop_data=s.drop_data_on_destroy,
                opts=keep,
            )
            self.endpoint = bucket.endpoint
            self.region = s.s3_region or s.b2_region
            self.access_key_id = bucket.access_key_id
            self.secret_access_key = bucket.secret_access_key
        else:
            server = LocalS3(
                f"{name}-local",
                state_dir=f"{s.local_state_dir}/{s.stack}/s3",
                bucket=bucket_name,
                port=s.local_s3_port,
                drop_data=s.drop_data_on_destroy,
                opts=child,
            )
            self.endpoint = server.endpoint
            self.access_key_id = server.access_key_id
            self.secret_access_key = server.secret_access_key
        self.access_key_id = pulumi.Output.secret(self.access_key_id)
        self.secret_access_key = pulumi.Output.secret(self.secret_access_key)
        self.sysroot = pulumi.Output.concat("s3://", self.bucket, "/metaflow")
        self.register_outputs(
            {
                "bucket": self.bucket,
                "endpoint": self.endpoint,
                "access_key_id": self.access_key_id,
                "secret_access_key": self.secret_access_key,
            }
        )
