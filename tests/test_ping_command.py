"""`python -m mfs ping`: waits for a service that is still waking (nothing listens yet), takes the
URL from the Metaflow profile when none is given, and fails in one line when nothing comes up."""

import json
import os
import secrets
import subprocess
import sys
import time

from mfs.processes import free_port, stop_process
from mfs.router import start_router
from testkit import ROOT


def ping(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "mfs", "ping", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ping_waits_for_a_service_that_comes_up_later(migrated_db):
    port = free_port()
    waiting = ping(f"http://127.0.0.1:{port}", "--timeout", "90")
    router = None
    try:
        time.sleep(3)  # the service is "asleep": nothing listens
        assert waiting.poll() is None
        router = start_router(
            migrated_db, secrets.token_urlsafe(16), port, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
        assert out.startswith(f"http://127.0.0.1:{port} is up (")
    finally:
        stop_process(waiting)
        stop_process(router)


def test_ping_reads_the_url_of_the_active_profile(router, tmp_path):
    home = tmp_path / "mfhome"
    home.mkdir()
    (home / "config_team.json").write_text(json.dumps({"METAFLOW_SERVICE_URL": router.url}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOW_")}
    env.update(METAFLOW_HOME=str(home), METAFLOW_PROFILE="team")
    proc = ping(env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith(f"{router.url} is up")


def test_ping_gives_up_with_a_one_line_error():
    proc = ping(f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and out == ""
    assert err.startswith("error: the router did not answer") and err.count("\n") == 1
