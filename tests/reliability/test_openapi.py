"""1. The published API description (functions/metadata-router/openapi.yaml) is valid OpenAPI
and describes exactly the routes the router serves (routes.ts ROUTES + /healthcheck)."""

import re

import requests
import yaml
from openapi_spec_validator import validate

from mfs import ROUTER_DIR
from .kit import OPENAPI, parse_routes
from mfs.routes import route_table

METHODS = {"get", "post", "patch", "put", "delete", "head", "options"}


def spec():
    return yaml.safe_load(OPENAPI.read_text())


def described(doc) -> set:
    return {(m.upper(), path) for path, item in doc["paths"].items() for m in item if m in METHODS}


def test_the_route_parser_sees_the_whole_table():
    routes = parse_routes()
    # every `{ method:` entry of ROUTES was understood (none silently skipped)
    text = (ROUTER_DIR / "routes.ts").read_text()
    table = text[text.index("export const ROUTES") :]
    assert len(routes) == table[: table.index("];")].count("method:") >= 25
    assert (
        "GET",
        "/flows/{flow_id}/runs/{run_number}/steps/{step_name}/tasks/{task_id}/artifacts/{name}/attempt/{attempt_id}",
    ) in routes
    assert len(set(routes)) == len(routes), "a route is listed twice in routes.ts"


def test_document_is_valid_openapi():
    doc = spec()
    validate(doc)
    assert doc["components"]["securitySchemes"]["apiKey"] == {
        **doc["components"]["securitySchemes"]["apiKey"],
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    assert doc["security"] == [{"apiKey": []}]


def test_every_served_route_is_described_and_vice_versa():
    served = set(parse_routes()) | {("GET", "/healthcheck")}
    doc = described(spec())
    assert served - doc == set(), f"served but not described: {sorted(served - doc)}"
    assert doc - served == set(), f"described but not served: {sorted(doc - served)}"


def test_each_operation_is_documented_usefully():
    doc = spec()
    op_ids = []
    for path, item in doc["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for method, op in item.items():
            if method not in METHODS:
                continue
            op_ids.append(op["operationId"])
            assert op.get("summary"), (method, path)
            params = [p for p in item.get("parameters", []) + op.get("parameters", [])]
            resolved = [
                doc["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
                for p in params
            ]
            assert {p["name"] for p in resolved if p["in"] == "path"} == names, path
            assert "200" in op["responses"], (method, path)
            if path != "/healthcheck":
                assert "401" in op["responses"], (method, path)
                assert op.get("security", doc["security"]) == [{"apiKey": []}]
            else:
                assert op["security"] == []
            if method in ("post", "patch"):
                assert "requestBody" in op, (method, path)
    assert len(op_ids) == len(set(op_ids))
    err = doc["components"]["schemas"]["Error"]
    assert err["required"] == ["message"] and err["properties"]["message"]["type"] == "string"
    for name in ("ObjectCreate", "RunCreate", "TaskCreate", "TagMutate", "MetadataCreate", "ArtifactCreate"):
        assert name in doc["components"]["schemas"]


def test_query_parameters_match_the_route_table():
    """Every query parameter a route passes on is described for that operation, and only those."""
    served = {
        (r["method"], re.sub(r":(\w+)", r"{\1}", r["pattern"])): set(r.get("query", []))
        for r in route_table()
    }
    assert served[("GET", "/flows/{flow_id}/runs")] >= {
        "_limit",
        "_cursor",
        "status:eq",
        "user:eq",
        "ts_epoch:ge",
        "_tags:any",
        "_tags:all",
    }
    doc = spec()
    comp = doc["components"]["parameters"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            params = [
                comp[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p for p in op.get("parameters", [])
            ]
            qs = [p["name"] for p in params if p["in"] == "query"]
            assert len(qs) == len(set(qs)), (method, path, qs)
            assert set(qs) == served.get((method.upper(), path), set()), (method, path)


def test_live_replies_match_the_documented_shapes(api):
    """A few real replies validated against the response schemas of the document."""
    from openapi_core import OpenAPI
    from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

    u = api.base
    doc = spec()
    doc["servers"] = [{"url": u}]  # the document's servers are examples, not the test's router
    oa = OpenAPI.from_dict(doc)
    calls = [("POST", "/flows/DocFlow", {"user_name": "u", "system_tags": ["user:u"]})]

    def go(method, path, body=None):
        req = requests.Request(method, u + path, json=body, headers={"x-api-key": api.headers["x-api-key"]})
        prepared = req.prepare()
        resp = api.send(prepared)
        oa_req = RequestsOpenAPIRequest(req)
        return resp, oa_req

    results = []
    for method, path, body in calls:
        results.append(go(method, path, body))
    run = go("POST", "/flows/DocFlow/run", {"user_name": "u"})
    results.append(run)
    r = run[0].json()["run_number"]
    results.append(go("POST", f"/flows/DocFlow/runs/{r}/steps/start/step", {}))
    t = go("POST", f"/flows/DocFlow/runs/{r}/steps/start/task", {})
    results.append(t)
    tid = t[0].json()["task_id"]
    base = f"/flows/DocFlow/runs/{r}/steps/start/tasks/{tid}"
    results.append(
        go("POST", base + "/metadata", [{"field_name": "attempt", "value": "0", "type": "attempt"}])
    )
    results.append(
        go("POST", base + "/artifact", [{"name": "x", "location": "/l", "ds_type": "local", "attempt_id": 0}])
    )
    for p in [
        "/ping",
        "/version",
        "/usage",
        "/flows",
        "/flows/DocFlow",
        f"/flows/DocFlow/runs/{r}",
        f"/flows/DocFlow/runs/{r}/steps",
        base,
        base + "/metadata",
        base + "/artifacts",
        base + "/artifacts/x",
        base + "/artifacts/x/attempt/0",
        base + "/attempt/0/artifacts",
        f"/flows/DocFlow/runs/{r}/steps/start/filtered_tasks",
        "/flows/Nope",
    ]:
        results.append(go("GET", p))
    results.append(go("PATCH", f"/flows/DocFlow/runs/{r}/tag/mutate", {"tags_to_add": ["a"]}))
    results.append(go("POST", f"/flows/DocFlow/runs/{r}/heartbeat", {}))
    for resp, oa_req in results:
        oa.validate_response(oa_req, RequestsOpenAPIResponse(resp))
