"""A local stand-in for a vendor's HTTP API that validates every request against the vendor's
published OpenAPI document (tests/pulumi/vendor) with openapi-core and answers with responses
that are themselves validated against the same document.

A vendor module supplies `answer(standin, method, path, query, body) -> (status, payload)`.
`fail(method, path, status, times)` makes the next `times` matching requests fail with `status`
(429, 5xx, 404...) before the normal answer, to exercise retries and error paths.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

VENDOR = Path(__file__).resolve().parent / "vendor"


def drop_inline_discriminators(node):
    """Some documents put `discriminator` (no mapping) on oneOf of inline schemas, which
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
    def __init__(
        self, spec_file: str, answer, error_body=lambda status: {"message": "error"}, undocumented: str = "\0"
    ):
        """`undocumented`: a path prefix the document does not cover (answered, not validated)."""
        spec = json.loads((VENDOR / spec_file).read_text())
        drop_inline_discriminators(spec)
        self.spec = spec
        self.calls: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.bodies: dict = {}
        self.faults: list[list] = []  # [method, path, status, remaining]
        self.state: dict = {}  # the vendor module's memory (what exists)
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                url = f"http://127.0.0.1:{self.server.server_port}{self.path}"
                req = requests.Request(self.command, url, headers=dict(self.headers), data=body).prepare()
                parts = urlsplit(self.path)
                path = parts.path[len(outer.base) :]  # relative to the document's server
                with outer.lock:
                    outer.calls.append((self.command, path))
                    outer.bodies[(self.command, path)] = body
                    fault = next(
                        (
                            f
                            for f in outer.faults
                            if f[3] > 0 and f[0] == self.command and path.startswith(f[1])
                        ),
                        None,
                    )
                    if fault:
                        fault[3] -= 1
                documented = not path.startswith(undocumented)
                try:
                    if documented:
                        outer.openapi.validate_request(RequestsOpenAPIRequest(req))
                except Exception as exc:  # report, answer 400 like the real API would
                    outer.errors.append(
                        f"{self.command} {self.path}: {exc!r} {getattr(exc, '__cause__', '')!r}"
                    )
                    self._send(req, 400, error_body(400), validate=False)
                    return
                if fault:
                    self._send(req, fault[2], error_body(fault[2]), validate=False)
                    return
                with outer.lock:
                    status, payload = answer(
                        outer,
                        self.command,
                        path,
                        parse_qs(parts.query),
                        json.loads(body) if body and body[:1] in b"{[" else body,
                    )
                self._send(req, status, payload, validate=documented and status < 300)

            def _send(self, req, status, payload, validate=True):
                data = json.dumps(payload).encode()
                if validate:
                    resp = requests.Response()
                    resp.status_code, resp._content = status, data
                    resp.headers["Content-Type"] = "application/json"
                    try:
                        outer.openapi.validate_response(
                            RequestsOpenAPIRequest(req), RequestsOpenAPIResponse(resp)
                        )
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
        base = urlsplit((spec.get("servers") or [{"url": ""}])[0]["url"]).path.rstrip("/")
        self.root, self.base = self.url, base
        self.url += base
        spec["servers"] = [{"url": self.url}]
        # published documents carry vendor keywords that a strict validation *of the document*
        # refuses; requests and responses are still validated
        self.openapi = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fail(self, method: str, path: str, status: int, times: int = 1):
        self.faults.append([method, path, status, times])

    def count(self, method: str, path: str) -> int:
        return self.calls.count((method, path))

    def example(self, schema_name: str, /, **overrides) -> dict:
        """A minimal valid instance of components.schemas[schema_name] with `overrides` on top."""
        return {**self._example(self.spec["components"]["schemas"][schema_name]), **overrides}

    def _example(self, schema):
        if "$ref" in schema:
            return self._example(self.spec["components"]["schemas"][schema["$ref"].split("/")[-1]])
        if "allOf" in schema:
            out = {}
            for part in schema["allOf"]:
                out.update(self._example(part))
            return out
        if "oneOf" in schema or "anyOf" in schema:
            return self._example((schema.get("oneOf") or schema["anyOf"])[0])
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type", "object")
        if kind == "object":
            props = schema.get("properties", {})
            return {k: self._example(props.get(k, {"type": "string"})) for k in schema.get("required", [])}
        if kind == "array":
            return []
        if "minimum" in schema:
            return schema["minimum"]
        if schema.get("format") == "date-time":
            return "2025-01-01T00:00:00Z"
        return {"string": "x", "integer": 0, "number": 0, "boolean": False}.get(kind, "x")

    def close(self):
        self.server.shutdown()
        self.server.server_close()
