"""The Metaflow client configuration a stack produces (keys from shared/CONTRACT.md)."""

from __future__ import annotations

import json

import pulumi


def profile_values(service_url, api_key, store) -> pulumi.Output:
    """The config JSON dict: service metadata + S3 datastore, S3 creds in the one key Metaflow
    reads them from (`METAFLOW_DATATOOLS_CLIENT_PARAMS`)."""

    def build(a):
        url, key, bucket, endpoint, key_id, secret, region, token = a
        client = {"aws_access_key_id": key_id, "aws_secret_access_key": secret, "region_name": region}
        if token:  # S3 session-token auth (Supabase Storage)
            client["aws_session_token"] = token
        return {
            "METAFLOW_DEFAULT_METADATA": "service",
            "METAFLOW_SERVICE_URL": url,
            "METAFLOW_SERVICE_AUTH_KEY": key,
            "METAFLOW_DEFAULT_DATASTORE": "s3",
            "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{bucket}/metaflow",
            "METAFLOW_DATATOOLS_S3ROOT": f"s3://{bucket}/data",
            "METAFLOW_S3_ENDPOINT_URL": endpoint,
            "METAFLOW_DATATOOLS_CLIENT_PARAMS": json.dumps(client),
        }

    return pulumi.Output.secret(
        pulumi.Output.all(
            service_url,
            api_key,
            store.bucket,
            store.endpoint,
            store.access_key_id,
            store.secret_access_key,
            store.region,
            store.session_token or "",
        ).apply(build)
    )
