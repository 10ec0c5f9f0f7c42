"""S3 credentials for an R2 bucket, minted with the stack (`pulumi-cloudflare`).

Cloudflare derives R2's S3 credentials from an API token: access key id = the token's id,
secret access key = the SHA-256 (hex) of the token's value. The token is an account token whose
one policy allows reading and writing objects of this bucket only (permission groups looked up
by name, so no id is hard-coded).
"""

from __future__ import annotations

import hashlib
import json

import pulumi

PERMISSIONS = ("Workers R2 Storage Bucket Item Read", "Workers R2 Storage Bucket Item Write")


def r2_credentials(name: str, account_id: str, bucket, opts: pulumi.ResourceOptions):
    """(access_key_id, secret_access_key) Outputs, both secret."""
    import pulumi_cloudflare as cloudflare

    groups = [
        cloudflare.get_account_api_token_permission_groups_list_output(
            account_id=account_id, name=perm
        ).results.apply(lambda r: {"id": r[0].id})
        for perm in PERMISSIONS
    ]
    resources = pulumi.Output.from_input(bucket).apply(
        lambda b: json.dumps({f"com.cloudflare.edge.r2.bucket.{account_id}_default_{b}": "*"})
    )
    token = cloudflare.AccountToken(
        f"{name}-token",
        account_id=account_id,
        name=pulumi.Output.concat(bucket, "-metaflow"),
        policies=[{"effect": "allow", "permission_groups": groups, "resources": resources}],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["value"])),
    )
    secret = token.value.apply(lambda v: hashlib.sha256(v.encode()).hexdigest())
    return pulumi.Output.secret(token.id), pulumi.Output.secret(secret)
