"""What Render would run for the neon-render stack, run here: the bundle built by the stack's
local command, the service's docker command and env values exactly as registered, with four
stand-ins only (a local Deno for the image's `deno`, a folder for `/etc/secrets`, a free port for
10000, a real local database for the mocked Neon URL). The router must come up from that alone
(fresh DENO_DIR, nothing fetched), listen on 0.0.0.0 as Render requires, answer its health check
without a database, and serve a real Metaflow flow."""

import os
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest
import requests

from components.render import SECRETS_DIR
from harness import ROOT, SECRETS, run_program
from leftovers import MARKER
from mfs.processes import free_port, stop_process
from mfs.router import deno_binary, wait_healthy
from testkit import client, metaflow_env, run_flow

WEB = "render:services:WebService"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The registered service and its secret files, the bundle being the local command's output."""
    run = run_program("neon-render", SECRETS)
    service = run.one(WEB).plain
    command = run.one("command:local:Command").plain
    argv = shlex.split(command["create"])
    assert argv[0] == "python"
    built = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    secrets_dir = tmp_path_factory.mktemp("etc-secrets")
    for f in service["secretFiles"]:  # the registered content is the command's stdout
        (secrets_dir / f["name"]).write_text(built.stdout)
    return service, secrets_dir


def start(service, secrets_dir: Path, database_url: str, workdir: Path):
    argv = service["serviceDetails"]["envSpecificDetails"]["dockerCommand"].split()
    assert argv[0] == "deno"
    argv = [deno_binary()] + [a.replace(SECRETS_DIR, str(secrets_dir)) for a in argv[1:]]
    env = {e["key"]: e["value"] for e in service["envVars"]}
    assert env["HOST"] == "0.0.0.0" and env["PORT"] == "10000"
    env.update(PORT=str(free_port()), DATABASE_URL=database_url)
    # a fresh container: nothing in Deno's cache, no other variable than the service's
    env.update(
        PATH=os.environ["PATH"],
        DENO_DIR=str(workdir / "deno-dir"),
        HOME=str(workdir),
        **{MARKER: os.environ[MARKER]},
    )
    log = workdir / "router.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        wait_healthy(url, proc, timeout=60)
    except BaseException:
        stop_process(proc)
        raise AssertionError(log.read_text(errors="replace")[-3000:])
    return proc, url, env


def test_the_health_check_answers_without_a_database(deployed, tmp_path):
    service, secrets_dir = deployed
    dead = f"postgresql://nobody:pw@127.0.0.1:{free_port()}/none"
    proc, url, env = start(service, secrets_dir, dead, tmp_path)
    try:
        assert requests.get(f"{url}/healthcheck", timeout=10).status_code == 200
        pinged = requests.get(f"{url}/ping", headers={"x-api-key": env["METADATA_API_KEY"]}, timeout=30)
        assert pinged.status_code >= 500  # /ping does reach the database
    finally:
        stop_process(proc)


@pytest.mark.timeout(900)
def test_render_command_and_env_serve_a_real_metaflow_flow(deployed, migrated_db, tmp_path):
    service, secrets_dir = deployed
    proc, url, env = start(service, secrets_dir, migrated_db, tmp_path)
    try:
        assert f"listening on http://0.0.0.0:{env['PORT']}" in (tmp_path / "router.log").read_text()
        cache = tmp_path / "deno-dir"  # nothing was fetched: no npm package, no remote module
        assert not [
            p for p in cache.rglob("*") if p.is_file() and p.parts[len(cache.parts)] in ("npm", "remote")
        ]
        router = types.SimpleNamespace(url=url, key=SECRETS["apiKey"])
        mf = metaflow_env(router, tmp_path)
        run_flow(mf, "foreach_flow.py", "run", "--n", "4", "--max-workers", "4")
        got = client(
            mf,
            """
            run = Flow('ForeachFlow').latest_run
            print(json.dumps([run.successful, run.data.total, len(list(run['each']))]))
        """,
        )
        assert got == [True, 0 + 1 + 4 + 9, 4]
    finally:
        stop_process(proc)
