"""Dynamic provider `B2Bucket` over the Backblaze B2 native API (v3).

Why a dynamic provider: there is no maintained Python Pulumi package for B2 (the Terraform
provider would need the CLI's bridge). The native API can also mint an application key scoped
to the new bucket, so the stack needs only the account's master key and hands Metaflow a key
that can touch nothing else. The S3 endpoint comes from the authorization answer.
"""

from __future__ import annotations

from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

from ._util import check, http_session

AUTH_URL = "https://api.backblazeb2.com/b2api/v3/b2_authorize_account"
CAPABILITIES = ["listBuckets", "listFiles", "readFiles", "writeFiles", "deleteFiles"]


def _authorize(props):
    s = http_session()
    auth = check(s.get(props.get("auth_url") or AUTH_URL,
                       auth=(props["key_id"], props["application_key"])), "authorize")
    s.headers["Authorization"] = auth["authorizationToken"]
    storage = auth["apiInfo"]["storageApi"]
    return s, storage["apiUrl"] + "/b2api/v3", auth["accountId"], storage["s3ApiUrl"]


class B2BucketProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = [k for k in ("bucket",) if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces)

    def create(self, props):
        s, api, account, s3 = _authorize(props)
        bucket = check(s.post(f"{api}/b2_create_bucket", json={
            "accountId": account, "bucketName": props["bucket"], "bucketType": "allPrivate"}),
            "create bucket")
        key = check(s.post(f"{api}/b2_create_key", json={
            "accountId": account, "capabilities": CAPABILITIES, "bucketId": bucket["bucketId"],
            "keyName": f"metaflow-{props['bucket']}"[:100]}), "create key")
        return CreateResult(bucket["bucketId"], {
            **props, "bucket_id": bucket["bucketId"], "endpoint": s3,
            "access_key_id": key["applicationKeyId"], "secret_access_key": key["applicationKey"]})

    def delete(self, id_, props):
        s, api, account, _ = _authorize(props)
        check(s.post(f"{api}/b2_delete_key", json={"applicationKeyId": props["access_key_id"]}),
              "delete key")
        if props.get("drop_data"):  # B2 refuses to delete a bucket that still holds files
            check(s.post(f"{api}/b2_delete_bucket", json={"accountId": account, "bucketId": id_}),
                  "delete bucket")


class B2Bucket(Resource, module="b2", name="Bucket"):
    endpoint: pulumi.Output[str]
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]

    def __init__(self, name: str, bucket: str, key_id, application_key, drop_data: bool = False,
                 opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["access_key_id", "secret_access_key"]))
        super().__init__(B2BucketProvider(), name, {
            "bucket": bucket, "drop_data": drop_data,
            "key_id": pulumi.Output.secret(key_id),
            "application_key": pulumi.Output.secret(application_key),
            "bucket_id": None, "endpoint": None,
            "access_key_id": None, "secret_access_key": None}, opts)
