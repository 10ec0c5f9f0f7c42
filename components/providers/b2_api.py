"""Dynamic provider `B2Bucket` over the Backblaze B2 native API (v3).

Why a dynamic provider: there is no maintained Python Pulumi package for B2 (the Terraform
provider would need the CLI's bridge). The native API can also mint an application key scoped
to the new bucket, so the stack needs only the account's master key and hands Metaflow a key
that can touch nothing else. The S3 endpoint comes from the authorization answer.

B2 bucket names are global across all customers: the program passes a name with a stable
random suffix (components/names.py). A key that cannot be made removes the bucket just made, so
a retry starts clean. Delete removes the bucket's files (every version) and the bucket before
the key, so a failed delete can be retried with the state as it is.
"""

from __future__ import annotations

from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from .vendor_api import VendorApi

AUTH_URL = "https://api.backblazeb2.com/b2api/v3/b2_authorize_account"
CAPABILITIES = ["listBuckets", "listFiles", "readFiles", "writeFiles", "deleteFiles"]
OUTPUTS = ("bucket_id", "endpoint", "access_key_id", "secret_access_key")


def _authorize(props):
    """(api client, account id, S3 endpoint) for the master key in `props`."""
    backoff = float(props.get("retry_backoff", 1.0))
    auth = VendorApi("", backoff=backoff).call(
        "GET",
        props.get("auth_url") or AUTH_URL,
        "authorize",
        auth=(props["key_id"], props["application_key"]),
    )
    storage = auth["apiInfo"]["storageApi"]
    api = VendorApi(
        storage["apiUrl"] + "/b2api/v3",
        backoff=backoff,
        headers={"Authorization": auth["authorizationToken"]},
    )
    return api, auth["accountId"], storage["s3ApiUrl"]


def _bucket(api, account, name) -> Optional[dict]:
    found = api.call(
        "POST", "/b2_list_buckets", "list buckets", json={"accountId": account, "bucketName": name}
    )["buckets"]
    return found[0] if found else None


def _empty(api, bucket_id) -> None:
    start = {}
    while True:
        page = api.call(
            "POST",
            "/b2_list_file_versions",
            "list files",
            json={"bucketId": bucket_id, "maxFileCount": 1000, **start},
        )
        for f in page["files"]:
            api.call(
                "POST",
                "/b2_delete_file_version",
                "delete file",
                absent_ok=True,
                json={"fileName": f["fileName"], "fileId": f["fileId"]},
            )
        if not page.get("nextFileName"):
            return
        start = {"startFileName": page["nextFileName"], "startFileId": page.get("nextFileId")}


def _delete_key(api, key_id) -> None:
    try:
        api.call("POST", "/b2_delete_key", "delete key", json={"applicationKeyId": key_id})
    except Exception as exc:  # B2 answers 400 bad_request for a key that no longer exists
        if getattr(exc, "status", 0) not in (400, 404):
            raise


class B2BucketProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = [k for k in ("bucket",) if olds.get(k) != news.get(k)]
        changed = replaces + [
            k for k in ("drop_data", "key_id", "application_key", "auth_url") if olds.get(k) != news.get(k)
        ]
        return DiffResult(changes=bool(changed), replaces=replaces)

    def create(self, props):
        api, account, s3 = _authorize(props)
        bucket = _bucket(api, account, props["bucket"])  # left by an interrupted create
        made = bucket is None
        if made:
            bucket = api.call(
                "POST",
                "/b2_create_bucket",
                "create bucket",
                json={"accountId": account, "bucketName": props["bucket"], "bucketType": "allPrivate"},
            )
        try:
            key = api.call(
                "POST",
                "/b2_create_key",
                "create key",
                json={
                    "accountId": account,
                    "capabilities": CAPABILITIES,
                    "bucketId": bucket["bucketId"],
                    "keyName": f"metaflow-{props['bucket']}"[:100],
                },
            )
        except BaseException:  # the bucket (empty: just made) must not be orphaned
            if made:
                api.call(
                    "POST",
                    "/b2_delete_bucket",
                    "delete half-made bucket",
                    absent_ok=True,
                    json={"accountId": account, "bucketId": bucket["bucketId"]},
                )
            raise
        return CreateResult(
            bucket["bucketId"],
            {
                **props,
                "bucket_id": bucket["bucketId"],
                "endpoint": s3,
                "access_key_id": key["applicationKeyId"],
                "secret_access_key": key["applicationKey"],
            },
        )

    def read(self, id_, props):
        api, account, _ = _authorize(props)
        if _bucket(api, account, props["bucket"]) is None:
            return ReadResult(None, {})
        return ReadResult(id_, props)

    def update(self, _id, olds, news):  # credentials or drop_data: nothing to do at the vendor
        return UpdateResult({**news, **{k: olds[k] for k in OUTPUTS if k in olds}})

    def delete(self, id_, props):
        api, account, _ = _authorize(props)
        if props.get("drop_data") and _bucket(api, account, props["bucket"]) is not None:
            _empty(api, id_)  # B2 refuses to delete a bucket that still holds files
            api.call(
                "POST",
                "/b2_delete_bucket",
                "delete bucket",
                absent_ok=True,
                json={"accountId": account, "bucketId": id_},
            )
        _delete_key(api, props["access_key_id"])


class B2Bucket(Resource, module="b2", name="Bucket"):
    endpoint: pulumi.Output[str]
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        bucket,
        key_id,
        application_key,
        drop_data: bool = False,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["access_key_id", "secret_access_key"])
        )
        super().__init__(
            B2BucketProvider(),
            name,
            {
                "bucket": bucket,
                "drop_data": drop_data,
                "key_id": pulumi.Output.secret(key_id),
                "application_key": pulumi.Output.secret(application_key),
                "bucket_id": None,
                "endpoint": None,
                "access_key_id": None,
                "secret_access_key": None,
            },
            opts,
        )
