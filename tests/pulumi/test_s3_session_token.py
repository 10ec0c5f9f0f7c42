"""Supabase Storage's session-token S3 auth reaches S3 through Metaflow's datastore: a real flow
run (local metadata, S3 datastore) with the client parameters exactly as the supabase-free
stack writes them into the profile (`aws_access_key_id`, `aws_secret_access_key`,
`aws_session_token`, `region_name` in METAFLOW_DATATOOLS_CLIENT_PARAMS), against a local S3
server (SeaweedFS, through LocalS3) behind a recording proxy: every request Metaflow sends must
carry the session token (signed), and the artifacts must land in the bucket.

What is not shown here: that Supabase accepts the service-role JWT as the session token; that is
Supabase's documented behaviour (docs/STACKS.md), not something a local server can check."""

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import requests

from components.providers.local_s3 import LocalS3Provider
from harness import ROOT, SECRETS, run_program

TOKEN = "eyJhbGciOiJIUzI1NiJ9.service-role.jwt"


class SessionTokenS3:
    """An S3 endpoint with session-token auth, as Supabase Storage offers it: every request must
    be SigV4-signed with (access key, secret, session token), the token itself sent in
    X-Amz-Security-Token and covered by the signature; it is then forwarded, re-signed with the
    backing server's plain keys, to a local S3 server (SeaweedFS treats any session token as
    one of its own STS tokens, so it cannot be the endpoint itself)."""

    def __init__(self, backend: dict, key: str, secret: str, token: str):
        self.checked = 0
        self.refused: list = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                why = outer.verify(
                    self.command, self.path, dict(self.headers.items()), body, key, secret, token
                )
                if why:
                    outer.refused.append(f"{self.command} {self.path}: {why}")
                    return self._reply(403, {}, b"<Error><Code>AccessDenied</Code></Error>")
                outer.checked += 1
                resp = outer.forward(backend, self.command, self.path, dict(self.headers.items()), body)
                self._reply(resp.status_code, resp.headers, resp.content)

            def _reply(self, status, headers, data):
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in (
                        "transfer-encoding",
                        "connection",
                        "content-length",
                        "content-encoding",
                    ):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def verify(method, path, headers, body, key, secret, token) -> str:
        """Why the request is refused ('' = accepted): SigV4 recomputed with the session token."""
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        lower = {k.lower(): v for k, v in headers.items()}
        auth = lower.get("authorization", "")
        m = re.match(
            r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, "
            r"SignedHeaders=([^,]+), Signature=([0-9a-f]+)",
            auth,
        )
        if not m:
            return "not SigV4"
        access_key, _, region, signed, signature = m.groups()
        if access_key != key:
            return "wrong access key"
        if lower.get("x-amz-security-token") != token:
            return "no or wrong session token"
        if "x-amz-security-token" not in signed.split(";"):
            return "session token not signed"
        payload = lower.get("x-amz-content-sha256", "")
        if re.fullmatch(r"[0-9a-f]{64}", payload) and hashlib.sha256(body).hexdigest() != payload:
            return "body does not match its hash"
        req = AWSRequest(
            method=method,
            url=f"http://{lower['host']}{path}",
            headers={h: lower[h] for h in signed.split(";")},
        )
        req.context["timestamp"] = lower["x-amz-date"]
        signer = S3SigV4Auth(Credentials(key, secret, token), "s3", region)
        canonical = signer.canonical_request(req)
        expected = signer.signature(signer.string_to_sign(req, canonical), req)
        return "" if hmac.compare_digest(expected, signature) else "bad signature"

    @staticmethod
    def forward(backend, method, path, headers, body):
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        drop = (
            "authorization",
            "x-amz-security-token",
            "x-amz-date",
            "host",
            "x-amz-content-sha256",
            "content-length",
            "connection",
        )
        req = AWSRequest(
            method=method,
            url=backend["endpoint"] + path,
            data=body,
            headers={k: v for k, v in headers.items() if k.lower() not in drop},
        )
        S3SigV4Auth(
            Credentials(backend["access_key_id"], backend["secret_access_key"]), "s3", "us-east-1"
        ).add_auth(req)
        prepared = req.prepare()
        return requests.request(
            method, prepared.url, headers=dict(prepared.headers), data=body, allow_redirects=False, timeout=60
        )

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_metaflow_datastore_sends_the_session_token(tmp_path):
    # the client parameters the supabase-free stack writes (no dashboard keys given)
    program = run_program("supabase-free", {k: v for k, v in SECRETS.items() if not k.startswith("s3")})
    values = program.one("pulumi-python:dynamic/mfs:MetaflowConfig").plain["values"]
    params = json.loads(values["METAFLOW_DATATOOLS_CLIENT_PARAMS"])
    assert set(params) == {"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region_name"}

    provider = LocalS3Provider()
    s3 = provider.create(
        {"state_dir": str(tmp_path / "s3"), "bucket": "mfs-session", "port": 0, "drop_data": True}
    ).outs
    # Supabase's values: access key = project ref, secret = anon key, token = service-role JWT
    ref, anon = "qwertyuiopasdfghjklz", "eyJ.anon.key"
    proxy = SessionTokenS3(s3, ref, anon, TOKEN)
    try:
        params.update(aws_access_key_id=ref, aws_secret_access_key=anon, aws_session_token=TOKEN)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "AWS_"))}
        env.update(
            {
                **values,
                "METAFLOW_DATATOOLS_CLIENT_PARAMS": json.dumps(params),
                "METAFLOW_S3_ENDPOINT_URL": proxy.url,
                "METAFLOW_DATASTORE_SYSROOT_S3": "s3://mfs-session/metaflow",
                "METAFLOW_DATATOOLS_S3ROOT": "s3://mfs-session/data",
                "METAFLOW_DEFAULT_METADATA": "local",
                "METAFLOW_HOME": str(tmp_path / "mf"),
                "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(tmp_path / "local"),
                "USERNAME": "tester",
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        env.pop("METAFLOW_SERVICE_URL"), env.pop("METAFLOW_SERVICE_AUTH_KEY")
        flow = ROOT / "tests" / "pulumi" / "flows" / "hello_flow.py"
        run = subprocess.run(
            [sys.executable, str(flow), "run", "--max-workers", "2"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
        assert proxy.checked > 10 and proxy.refused == []
        direct = boto3.client(
            "s3",
            endpoint_url=s3["endpoint"],
            region_name="us-east-1",
            aws_access_key_id=s3["access_key_id"],
            aws_secret_access_key=s3["secret_access_key"],
        )
        keys = [
            o["Key"]
            for o in direct.list_objects_v2(Bucket="mfs-session", Prefix="metaflow/PulumiHelloFlow/")[
                "Contents"
            ]
        ]
        assert any("/data/" in k for k in keys)
    finally:
        proxy.close()
        provider.delete("x", s3)
