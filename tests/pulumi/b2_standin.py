"""A stand-in for the Backblaze B2 native API v3 (b2_authorize_account and the bucket, key and
file-version calls the provider makes), answering with the fields B2's documentation lists.
No machine-readable document is published for it, so requests are checked here by hand: the
fields each call requires must be present. Buckets refuse deletion while they hold files."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUIRED = {
    "b2_list_buckets": {"accountId"},
    "b2_create_bucket": {"accountId", "bucketName", "bucketType"},
    "b2_delete_bucket": {"accountId", "bucketId"},
    "b2_create_key": {"accountId", "capabilities", "keyName"},
    "b2_delete_key": {"applicationKeyId"},
    "b2_list_file_versions": {"bucketId"},
    "b2_delete_file_version": {"fileName", "fileId"},
}


class B2StandIn:
    def __init__(self):
        self.buckets: dict = {}  # name -> {"bucketId", "files": [..]}
        self.keys: set = set()
        self.errors: list = []
        self.fail_next: dict = {}  # call -> (status, code)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                user, _, pw = (
                    base64.b64decode(self.headers["Authorization"].split()[1]).decode().partition(":")
                )
                if (user, pw) != ("master-id", "master-key"):
                    return self._send(401, {"status": 401, "code": "unauthorized", "message": ""})
                base = f"http://127.0.0.1:{self.server.server_port}"
                self._send(
                    200,
                    {
                        "accountId": "acct",
                        "authorizationToken": "tok",
                        "apiInfo": {
                            "storageApi": {
                                "apiUrl": base,
                                "s3ApiUrl": "https://s3.us-west-004.backblazeb2.com",
                            }
                        },
                    },
                )

            def do_POST(self):
                call = self.path.rsplit("/", 1)[1]
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.headers.get("Authorization") != "tok":
                    outer.errors.append(f"{call}: not authorized")
                missing = REQUIRED[call] - set(body)
                if missing:
                    outer.errors.append(f"{call}: missing {missing}")
                    return self._send(400, {"status": 400, "code": "bad_request", "message": ""})
                if call in outer.fail_next:
                    status, code = outer.fail_next.pop(call)
                    return self._send(status, {"status": status, "code": code, "message": code})
                self._send(*outer.answer(call, body))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.auth_url = f"http://127.0.0.1:{self.server.server_port}/b2api/v3/b2_authorize_account"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, call, body):
        by_id = {b["bucketId"]: (n, b) for n, b in self.buckets.items()}
        if call == "b2_list_buckets":
            found = [
                {"bucketId": b["bucketId"], "bucketName": n}
                for n, b in self.buckets.items()
                if n == body.get("bucketName", n)
            ]
            return 200, {"buckets": found}
        if call == "b2_create_bucket":
            if body["bucketName"] in self.buckets:
                return 400, {"status": 400, "code": "duplicate_bucket_name", "message": ""}
            self.buckets[body["bucketName"]] = {"bucketId": f"b{len(by_id) + 1}", "files": []}
            return 200, {
                "bucketId": self.buckets[body["bucketName"]]["bucketId"],
                "bucketName": body["bucketName"],
            }
        if call == "b2_delete_bucket":
            if body["bucketId"] not in by_id:
                return 400, {"status": 400, "code": "bad_bucket_id", "message": ""}
            name, b = by_id[body["bucketId"]]
            if b["files"]:
                return 400, {"status": 400, "code": "cannot_delete_non_empty_bucket", "message": ""}
            del self.buckets[name]
            return 200, {"bucketId": body["bucketId"]}
        if call == "b2_create_key":
            key = f"K{len(self.keys) + 1}"
            self.keys.add(key)
            return 200, {"applicationKeyId": key, "applicationKey": "secret-" + key}
        if call == "b2_delete_key":
            if body["applicationKeyId"] not in self.keys:
                return 400, {"status": 400, "code": "bad_request", "message": "key not found"}
            self.keys.discard(body["applicationKeyId"])
            return 200, {"applicationKeyId": body["applicationKeyId"]}
        if call == "b2_list_file_versions":
            files = by_id[body["bucketId"]][1]["files"]
            page, rest = files[:2], files[2:]  # small pages: the provider must follow them
            return 200, {
                "files": [{"fileName": f, "fileId": f"id-{f}"} for f in page],
                "nextFileName": rest[0] if rest else None,
                "nextFileId": None,
            }
        if call == "b2_delete_file_version":
            for b in self.buckets.values():
                if body["fileName"] in b["files"]:
                    b["files"].remove(body["fileName"])
            return 200, {"fileName": body["fileName"], "fileId": body["fileId"]}
        raise AssertionError(call)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
