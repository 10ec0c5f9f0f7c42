"""The Cloudflare Worker bundle (functions/metadata-router/worker/) under a real local workerd,
in front of a real PostgreSQL, answering real Metaflow traffic."""

import gzip
import json
import secrets

import pytest
import requests

from testkit import client, metaflow_env, q, run_flow
from mfs.processes import free_port
from mfs.worker import WorkerdRouter


@pytest.fixture
def worker(migrated_db):
    w = WorkerdRouter(migrated_db, secrets.token_urlsafe(24), free_port(), path_prefix="/mf").start()
    yield w
    w.stop()


def test_the_bundle_speaks_the_api_and_refuses_strangers(worker):
    assert requests.get(f"{worker.url}/healthcheck").status_code == 200
    assert requests.get(f"{worker.url}/ping").status_code == 401
    s = requests.Session()
    s.headers["x-api-key"] = worker.key
    r = s.get(f"{worker.url}/ping")
    assert r.status_code == 200 and r.json() == "pong" and r.headers["METADATA_SERVICE_VERSION"] == "2.5.1"
    assert s.post(f"{worker.url}/flows/W", json={"user_name": "u"}).json()["flow_id"] == "W"
    assert s.post(f"{worker.url}/flows/W", data="{bad").status_code == 400


def test_real_metaflow_runs_through_the_worker(worker, migrated_db, tmp_path):
    env = metaflow_env(worker, tmp_path)
    run_flow(env, "foreach_flow.py", "run", "--n", "6", "--max-workers", "4")
    run_flow(env, "retry_flow.py", "run", "--with", "retry:times=1,minutes_between_retries=0")
    got = client(
        env,
        """
        fe = Flow('ForeachFlow').latest_run
        t = Flow('RetryFlow').latest_run['flaky'].task
        print(json.dumps({'total': fe.data.total, 'ok': fe.successful, 'each': len(list(fe['each'])),
                          'latest': t['attempt_seen'].data, 'a0': Task(t.pathspec, attempt=0)['attempt_seen'].data}))
    """,
    )
    assert got == {"total": sum(i * i for i in range(6)), "ok": True, "each": 6, "latest": 1, "a0": 0}
    assert (
        q(migrated_db, "select count(*) from tasks_v3 where flow_id = 'ForeachFlow' and step_name = 'each'")[
            0
        ][0]
        == 6
    )


def test_the_worker_runtime_gzips_large_replies(worker, migrated_db):
    """The Worker leaves compression to the runtime (Content-Encoding set, body as text)."""
    s = requests.Session()
    s.headers["x-api-key"] = worker.key
    s.post(f"{worker.url}/flows/Z", json={"user_name": "u"})
    for _ in range(20):
        s.post(f"{worker.url}/flows/Z/run", json={"user_name": "u", "system_tags": ["user:u"]})
    plain = s.get(f"{worker.url}/flows/Z/runs", headers={"Accept-Encoding": "identity"})
    raw = s.get(f"{worker.url}/flows/Z/runs", headers={"Accept-Encoding": "gzip"}, stream=True)
    wire = raw.raw.read(decode_content=False)
    assert raw.headers.get("content-encoding") == "gzip"
    assert json.loads(gzip.decompress(wire)) == plain.json() and len(plain.json()) == 20
    # the Worker never sees the compressed size: its quota counts the uncompressed reply
    # (README, "egress counts the bytes sent"), so gzip replies cost what identity ones do
    used = "select egress_bytes from mfs.quota_usage where scope = 'default'"
    before = q(migrated_db, used)[0][0]
    for _ in range(3):
        r = s.get(f"{worker.url}/flows/Z/runs", headers={"Accept-Encoding": "gzip"})
        assert r.headers.get("content-encoding") == "gzip"
    assert q(migrated_db, used)[0][0] - before == 3 * len(plain.content)
