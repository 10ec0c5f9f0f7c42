"""The quota counts the egress bytes actually sent (issue 12): a reply the router gzips is
counted at its compressed size (the router hands the saving to its next call,
functions/metadata-router/egress.ts and sql/0031), a client that does not accept gzip is
counted the full size. Through the real router and Postgres, with and without limits (the
free, fast and exact paths of the ledger)."""

from __future__ import annotations

import gzip
import secrets

import pytest

from testkit import Router, q

FLOW = "EgressFlow"


def ledger(dsn: str, scope: str) -> tuple[int, int]:
    rows = q(
        dsn,
        "select requests, egress_bytes from mfs.quota_usage where scope = $1 and month = mfs.current_month()",
        scope,
    )
    return (rows[0][0], rows[0][1]) if rows else (0, 0)


@pytest.fixture
def db(migrated_db) -> str:
    """One flow of 400 runs (a complete list of ~90 KB: above the ledger's fast-path size)."""
    q(migrated_db, "insert into public.flows_v3 (flow_id, user_name, ts_epoch) values ($1, 'u', 1)", FLOW)
    q(
        migrated_db,
        """insert into public.runs_v3 (flow_id, user_name, ts_epoch, last_heartbeat_ts, tags, system_tags)
           select $1, 'u', 1700000000000 + g, 1700000000 + g, '["é"]', '["user:u", "runtime:dev"]'
             from generate_series(1, 400) g""",
        FLOW,
    )
    return migrated_db


def get_list(s, url: str, encoding: str) -> tuple[int, int]:
    """(bytes on the wire, bytes of the JSON) of one complete runs list."""
    r = s.get(f"{url}/flows/{FLOW}/runs", headers={"Accept-Encoding": encoding}, stream=True)
    wire = r.raw.read(decode_content=False)
    assert r.status_code == 200
    assert (r.headers.get("content-encoding") == "gzip") == (encoding == "gzip")
    return len(wire), len(gzip.decompress(wire) if encoding == "gzip" else wire)


@pytest.mark.parametrize("limits", [None, (1_000_000, 10**12)], ids=["no limit", "limits"])
def test_gzipped_replies_count_their_compressed_size(db, limits):
    scope = "gz"
    if limits:
        q(db, "select mfs_api.set_quota_limits($1, $2, $3)", scope, *limits)
    router = Router(db, secrets.token_urlsafe(24), scope=scope)
    try:
        s = router.session()
        sent = [get_list(s, router.url, "gzip") for _ in range(5)]
        usage = s.get(f"{router.url}/usage", headers={"Accept-Encoding": "identity"})
    finally:
        router.stop()
    wire = [w for w, _ in sent]
    plain = sent[-1][1]
    assert all(w * 4 < p for w, p in sent) and plain > 65536
    body = usage.json()
    # /usage shows what was counted before it: every reply at its wire size, except the last
    # one's saving, which this very request carried
    assert body["requests"] == 5
    assert body["egress_bytes"] == sum(wire[:-1]) + plain == sum(wire) + (plain - wire[-1])
    # after it, the ledger holds exactly the bytes sent
    assert ledger(db, scope) == (6, sum(wire) + len(usage.content))


def test_a_client_without_gzip_is_counted_the_full_size(db):
    scope = "plain"
    router = Router(db, secrets.token_urlsafe(24), scope=scope)
    try:
        s = router.session()
        sent = [get_list(s, router.url, "identity") for _ in range(3)]
        # a gzip reply in between: the identity replies after it still count their full size,
        # less the one saving handed over
        zipped = get_list(s, router.url, "gzip")
        after = get_list(s, router.url, "identity")
        last = get_list(s, router.url, "identity")
    finally:
        router.stop()
    assert all(w == p > 65536 for w, p in sent + [after, last]) and zipped[0] * 4 < zipped[1]
    assert ledger(db, scope) == (6, sum(w for w, _ in sent) + zipped[0] + after[0] + last[0])
