"""One route table (routes.ts), and each operation in it has its SQL function in the dispatcher
and its entry in openapi.yaml: an operation added in one place and forgotten in another fails
here, not in a user's request."""

import re

import yaml

from testkit import ROOT, q
from mfs.routes import route_table

OPENAPI = ROOT / "functions" / "metadata-router" / "openapi.yaml"
# mfs.dispatch and the dispatchers it falls back to (0030 wraps the one before it)
DISPATCH_SQL = """select string_agg(prosrc, ' ') from pg_proc
                   where pronamespace = 'mfs'::regnamespace and proname like 'dispatch%'"""


def test_each_operation_is_dispatched_in_sql_and_described_in_openapi(migrated_db):
    ops = {r["op"] for r in route_table()}
    assert len(ops) >= 25
    dispatched = q(migrated_db, DISPATCH_SQL)[0][0]
    static = {r["op"] for r in route_table() if r.get("static")}  # answered by the router itself
    assert sorted(op for op in ops - static if f"when '{op}'" not in dispatched) == []
    doc = yaml.safe_load(OPENAPI.read_text())
    described = {
        op.get("operationId")
        for item in doc["paths"].values()
        for op in item.values()
        if isinstance(op, dict)
    }
    assert sorted(ops - described) == []


def test_the_dispatcher_knows_no_operation_the_router_cannot_reach(migrated_db):
    dispatched = q(migrated_db, DISPATCH_SQL)[0][0]
    in_sql = set(re.findall(r"when '(\w+)' then", dispatched))
    assert sorted(in_sql - {r["op"] for r in route_table()}) == []
