"""The `local` stack end to end: the program runs under mocks whose dynamic resources are
really created (Postgres started, migrations applied, quota written, SeaweedFS and the router
started, Metaflow profile written); a real Metaflow flow runs with that profile and is read back
with the Client API; then everything is deleted in reverse order, nothing is left running and
the config that was there before is back."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mfs.processes import pid_alive
from harness import run_program

FLOW = Path(__file__).parent / "flows" / "hello_flow.py"


@pytest.mark.timeout(600)
def test_local_stack_up_run_a_flow_and_destroy(tmp_path, metaflow_home):
    metaflow_home.mkdir()
    before = {"METAFLOW_USER": "someone", "METAFLOW_SERVICE_URL": "http://previous/"}
    (metaflow_home / "config.json").write_text(json.dumps(before))
    (metaflow_home / "config_local.json").write_text(json.dumps({"METAFLOW_USER": "someone"}))
    state = tmp_path / "state"
    run = run_program(
        "local",
        {"localStateDir": str(state), "dropDataOnDestroy": True, "writeDefaultConfig": "if-missing"},
        real=True,
    )
    try:
        outs = {type(p).__name__: o for p, _, o in run.created}
        pids = [outs[k]["pid"] for k in ("LocalPostgresProvider", "LocalS3Provider", "LocalRouterProvider")]
        assert all(pid_alive(p) for p in pids)
        assert outs["SchemaMigrationsProvider"]["applied"]
        url = run.outputs["service_url"]["value"]
        assert url == outs["LocalRouterProvider"]["url"]
        profile = json.loads((metaflow_home / "config_local.json").read_text())
        assert profile["METAFLOW_USER"] == "someone"  # not ours: kept
        assert profile["METAFLOW_SERVICE_URL"] == url
        assert json.loads((metaflow_home / "config.json").read_text()) == before  # existed

        env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "AWS_"))}
        env.update(
            {
                "METAFLOW_HOME": str(metaflow_home),
                "METAFLOW_PROFILE": "local",
                "USERNAME": "pulumi-e2e",
                "PYTHONPATH": "",
            }
        )
        flow = subprocess.run(
            [sys.executable, str(FLOW), "run"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert flow.returncode == 0, flow.stdout[-2000:] + flow.stderr[-4000:]
        read = subprocess.run(
            [
                sys.executable,
                "-c",
                (
                    "from metaflow import Flow, namespace; namespace(None); "
                    "r = Flow('PulumiHelloFlow').latest_run; "
                    "print(r.successful, r.data.total, len(list(r['square'])))"
                ),
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert read.returncode == 0, read.stderr[-3000:]
        assert read.stdout.split() == ["True", "14", "3"]
    finally:
        run.destroy()
    assert not any(pid_alive(p) for p in pids)
    assert json.loads((metaflow_home / "config.json").read_text()) == before
    assert json.loads((metaflow_home / "config_local.json").read_text()) == {"METAFLOW_USER": "someone"}
