"""A local stand-in for the Supabase Management API that validates every request against the
published OpenAPI document (tests/pulumi/vendor, copied from shared/vendor) with openapi-core and answers with responses that
are themselves validated against the same document."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

SPEC = Path(__file__).resolve().parent / "vendor" / "supabase-management-api.openapi.json"
REF = "qwertyuiopasdfghjklz"
NOW = "2025-01-01T00:00:00Z"


def project(status):
    return {"id": REF, "ref": REF, "organization_id": "org", "organization_slug": "my-org",
            "name": "mfs", "region": "us-east-1", "created_at": NOW, "status": status}


def answer(method, path, polls):
    """(status, json body) for a request the spec accepted."""
    if (method, path) == ("POST", "/v1/projects"):
        return 201, project("COMING_UP")
    if method == "GET" and path == f"/v1/projects/{REF}":
        polls.append(1)
        status = "ACTIVE_HEALTHY" if len(polls) >= 2 else "COMING_UP"
        return 200, {**project(status), "database": {
            "host": f"db.{REF}.supabase.co", "version": "15.8", "postgres_engine": "15",
            "release_channel": "ga"}}
    if path.endswith("/config/database/pooler"):
        return 200, [{"identifier": REF, "database_type": "PRIMARY", "is_using_scram_auth": True,
                      "db_user": f"postgres.{REF}", "db_host": "aws-0-us-east-1.pooler.supabase.com",
                      "db_port": 6543, "db_name": "postgres",
                      "connection_string": "postgresql://x", "connectionString": "postgresql://x",
                      "default_pool_size": 15, "max_client_conn": 200, "pool_mode": "transaction"}]
    if path.endswith("/functions/deploy"):
        return 201, {"id": "fn-1", "slug": "metadata-router", "name": "metadata-router",
                     "status": "ACTIVE", "version": 1}
    if path.endswith("/database/query"):
        return 201, []
    if method == "DELETE" and path == f"/v1/projects/{REF}":
        return 200, {"id": 1, "ref": REF, "name": "mfs"}
    return (201 if method == "POST" else 200), {}


def drop_inline_discriminators(node):
    """The document puts `discriminator` (no mapping) on oneOf of inline schemas, which
    openapi-core resolves to a non-existent `#/components/schemas/<value>`. The oneOf itself
    still decides validity exactly, so the discriminator hint is removed from this copy."""
    if isinstance(node, dict):
        if "discriminator" in node and all("$ref" not in s for s in node.get("oneOf", [])):
            del node["discriminator"]
        for v in node.values():
            drop_inline_discriminators(v)
    elif isinstance(node, list):
        for v in node:
            drop_inline_discriminators(v)


class StandIn:
    def __init__(self):
        spec = json.loads(SPEC.read_text())
        drop_inline_discriminators(spec)
        self.calls: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.bodies: dict = {}
        polls: list = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                url = f"http://127.0.0.1:{self.server.server_port}{self.path}"
                req = requests.Request(self.command, url, headers=dict(self.headers),
                                       data=body).prepare()
                path = self.path.split("?")[0]
                outer.calls.append((self.command, path))
                outer.bodies[(self.command, path)] = body
                try:
                    outer.openapi.validate_request(RequestsOpenAPIRequest(req))
                except Exception as exc:  # report, answer 400 like the real API would
                    outer.errors.append(f"{self.command} {self.path}: {exc!r} "
                                        f"{getattr(exc, '__cause__', '')!r}")
                    self._send(req, 400, {"message": "invalid request"}, validate=False)
                    return
                status, payload = answer(self.command, path, polls)
                self._send(req, status, payload)

            def _send(self, req, status, payload, validate=True):
                data = json.dumps(payload).encode()
                if validate:
                    resp = requests.Response()
                    resp.status_code, resp._content = status, data
                    resp.headers["Content-Type"] = "application/json"
                    try:
                        outer.openapi.validate_response(RequestsOpenAPIRequest(req),
                                                        RequestsOpenAPIResponse(resp))
                    except Exception as exc:
                        outer.errors.append(f"stand-in answer to {req.method} {req.url}: {exc!r}")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        spec["servers"] = [{"url": self.url}]
        # the published document carries vendor keywords (hideDefinitions) that a strict
        # validation *of the document* refuses; requests and responses are still validated
        self.openapi = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
