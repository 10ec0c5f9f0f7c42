"""`python -m mfs local` and the embedded Postgres on any machine: binaries inside a private
home (root's home 0700 with Python in it), one instance per data folder, what a dead instance
left running, every stop signal, and the Metaflow profile written while it runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from testkit import ROOT, drain, port_open, q, read_until
from mfs.local_postgres import LocalPostgres
from mfs.postgres_binaries import can_reach, pgserver_bin, server_user, shared_dir
from mfs.processes import free_port, pid_alive, stop_group

FLOW = ROOT / "tests" / "pulumi" / "flows" / "hello_flow.py"


def private_copy_of_pgserver(home: Path) -> Path:
    """pgserver's install laid out as in site-packages, inside a 0700 folder: the layout of a
    Python installed in root's private home. Returns its bin folder."""
    site = home / "lib" / "site-packages"
    original = pgserver_bin().parent  # .../site-packages/pgserver/pginstall
    shutil.copytree(
        original, site / "pgserver" / "pginstall", symlinks=True, ignore=shutil.ignore_patterns("include")
    )
    libs = original.parent.parent / "pgserver.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / "pgserver.libs", symlinks=True)
    home.chmod(0o700)
    return site / "pgserver" / "pginstall" / "bin"


def test_postgres_starts_from_binaries_and_data_inside_a_private_home(tmp_path):
    home = tmp_path / "home"
    bin_dir = private_copy_of_pgserver(home)
    user = server_user()
    if user is not None:  # as root: the simulation is real only if the user is kept out
        assert not can_reach(user, bin_dir / "postgres")
    data = home / ".metaflow-serverless" / "pgdata"
    pg = LocalPostgres(bin_dir, data)
    try:
        pg.start()
        assert q(pg.dsn, "select current_setting('server_version_num')::int / 10000 as v")[0]["v"] == 16
        pid = pg.running_pid()
        assert pid and pid_alive(pid)
        if user is not None:
            assert shared_dir() in pg.bin_dir.parents  # the checked copy is what runs
            assert data.is_symlink() and shared_dir() in pg.real_data_dir.parents
        else:
            assert pg.bin_dir == bin_dir and not data.is_symlink()
        pg.stop()
        assert not pid_alive(pid)
        again = LocalPostgres(bin_dir, data)  # same data, same copy: the cluster is kept
        again.start()
        assert again.bin_dir == pg.bin_dir
        assert q(again.dsn, "select 1 as one")[0]["one"] == 1
        again.stop()
    finally:
        pg.stop()
        pg.remove_data()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700  # nothing opened up the private home
    assert not data.exists() and not data.is_symlink()


def test_a_changed_copy_is_made_again(tmp_path):
    """The copy is checked against the original on every use: a damaged copy is replaced."""
    bin_dir = private_copy_of_pgserver(tmp_path / "home")
    first = LocalPostgres(bin_dir).bin_dir
    if server_user() is None:  # not root: the server runs as us, from the original
        assert first == bin_dir
        return
    victim = next((first.parent / "lib").rglob("*.so"))
    victim.write_bytes(b"damaged")
    second = LocalPostgres(bin_dir)
    assert second.bin_dir == first
    with second:
        assert q(second.dsn, "select 1 as one")[0]["one"] == 1


def local_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOW_")}
    env.update(PYTHONUNBUFFERED="1", METAFLOW_HOME=str(tmp_path / "mfhome"), USERNAME="tester")
    return env


def start_local(data_dir: Path, port: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mfs", "local", "--data-dir", str(data_dir), "--port", str(port)],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # signals reach only what the test sends


def stop_everything(proc: subprocess.Popen, data_dir: Path) -> None:
    """On any path out of a test: the instance and whatever it started."""
    state = data_dir / "running.json"
    pids = json.loads(state.read_text()) if state.exists() else {}
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)
    for key in ("router_pid", "postgres_pid"):
        if pids.get(key) and pid_alive(pids[key]):
            stop_group(pids[key], timeout=20, first=signal.SIGINT)


def healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthcheck", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_mfs_local_profile_second_instance_and_sighup(tmp_path):
    env = local_env(tmp_path)
    profile_file = tmp_path / "mfhome" / "config_local.json"
    profile_file.parent.mkdir()
    before = {"METAFLOW_USER": "someone", "METAFLOW_SERVICE_URL": "http://previous/"}
    profile_file.write_text(json.dumps(before))
    data_dir, port = tmp_path / "local", free_port()
    proc = start_local(data_dir, port, env)
    try:
        out, lines = read_until(proc, "Ctrl-C stops", 120)
        url = f"http://127.0.0.1:{port}"
        assert "METAFLOW_PROFILE=local python your_flow.py run" in out
        assert stat.S_IMODE(profile_file.stat().st_mode) == 0o600
        profile = json.loads(profile_file.read_text())
        assert profile["METAFLOW_SERVICE_URL"] == url
        assert profile["METAFLOW_SERVICE_AUTH_KEY"] == (data_dir / "api-key").read_text().strip()
        assert profile["METAFLOW_USER"] == "someone"  # a key that is not ours stays

        flow_env = {**env, "METAFLOW_PROFILE": "local"}
        flow = subprocess.run(
            [sys.executable, str(FLOW), "run"],
            env=flow_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert flow.returncode == 0, flow.stderr[-3000:]
        read = subprocess.run(
            [
                sys.executable,
                "-c",
                (
                    "from metaflow import Flow, namespace, get_metadata; namespace(None); "
                    "r = Flow('PulumiHelloFlow').latest_run; print(get_metadata(), r.successful, r.data.total)"
                ),
            ],
            env=flow_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert read.stdout.split() == [f"service@{url}", "True", "14"], read.stderr[-2000:]

        second = subprocess.run(
            [sys.executable, "-m", "mfs", "local", "--data-dir", str(data_dir), "--port", str(free_port())],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert f"already running at {url}" in second.stderr
        assert "Traceback" not in second.stderr + second.stdout
        assert healthy(port)  # the first one untouched

        running = json.loads((data_dir / "running.json").read_text())
        proc.send_signal(signal.SIGHUP)  # what closing its terminal sends
        assert proc.wait(60) == 0
        rest = drain(lines)
        assert "Traceback" not in rest
        assert not port_open(port)
        assert not pid_alive(running["postgres_pid"]) and not pid_alive(running["router_pid"])
        assert json.loads(profile_file.read_text()) == before  # restored as it was
        assert not (data_dir / "running.json").exists()
    finally:
        stop_everything(proc, data_dir)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_mfs_local_stops_everything_on(signame, tmp_path):
    env = local_env(tmp_path)
    data_dir, port = tmp_path / "local", free_port()
    proc = start_local(data_dir, port, env)
    try:
        read_until(proc, "Ctrl-C stops", 120)
        running = json.loads((data_dir / "running.json").read_text())
        proc.send_signal(getattr(signal, signame))
        assert proc.wait(60) == 0
        assert not pid_alive(running["postgres_pid"]) and not pid_alive(running["router_pid"])
        assert not (tmp_path / "mfhome" / "config_local.json").exists()  # ours, removed
    finally:
        stop_everything(proc, data_dir)


def test_mfs_local_replaces_what_a_killed_instance_left_running(tmp_path):
    env = local_env(tmp_path)
    data_dir, port = tmp_path / "local", free_port()
    first = start_local(data_dir, port, env)
    second = None
    try:
        read_until(first, "Ctrl-C stops", 120)
        left = json.loads((data_dir / "running.json").read_text())
        first.kill()  # dies without a word: Postgres (parent 1 now) and the router stay
        first.wait(30)
        assert pid_alive(left["postgres_pid"]) and pid_alive(left["router_pid"])
        assert (data_dir / "pgdata" / "postmaster.pid").exists()

        second = start_local(data_dir, port, env)
        out, lines = read_until(second, "Ctrl-C stops", 120)
        assert (
            f"stopping the PostgreSQL left running by an earlier mfs local (pid {left['postgres_pid']})"
            in out
        )
        assert f"stopping the router left running by an earlier mfs local (pid {left['router_pid']})" in out
        assert "another server might be running" not in out
        assert not pid_alive(left["postgres_pid"]) and not pid_alive(left["router_pid"])
        key = (data_dir / "api-key").read_text().strip()
        assert (
            requests.get(f"http://127.0.0.1:{port}/flows", headers={"x-api-key": key}, timeout=10).status_code
            == 200
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
        assert "Traceback" not in drain(lines)
    finally:
        stop_everything(first, data_dir)
        if second is not None:
            stop_everything(second, data_dir)


def test_mfs_local_says_in_one_line_when_postgres_cannot_start(tmp_path):
    with socket.socket() as busy:  # PostgreSQL's port taken by another program
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "mfs",
                "local",
                "--data-dir",
                str(tmp_path / "d"),
                "--port",
                str(free_port()),
                "--db-port",
                str(busy.getsockname()[1]),
                "--postgres",
                "debian",
            ],
            cwd=ROOT,
            env=local_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert res.returncode != 0
    assert res.stderr.strip().splitlines()[-1].startswith("error: PostgreSQL did not start"), res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "mfhome" / "config_local.json").exists()


UI_BUNDLE = ROOT.parent / "shared" / "vendor" / "metaflow-ui" / "metaflow-ui-v1.3.14.zip"


def test_mfs_local_ui_serves_the_ui_over_the_local_service_and_stops_with_it(tmp_path):
    assert UI_BUNDLE.exists(), f"the UI bundle fixture is missing: {UI_BUNDLE} (../shared of the repo)"
    env = {**local_env(tmp_path), "MFS_UI_BUNDLE": str(UI_BUNDLE), "MFS_UI_CACHE": str(tmp_path / "ui")}
    data_dir, port, ui_port = tmp_path / "local", free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mfs",
            "local",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--ui",
            "--ui-port",
            str(ui_port),
        ],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, lines = read_until(proc, "Ctrl-C stops", 180)
        assert f"The Metaflow UI: http://127.0.0.1:{ui_port}/" in out
        page = requests.get(f"http://127.0.0.1:{ui_port}/", timeout=10)
        assert page.status_code == 200 and "window.METAFLOW_SERVICE" in page.text
        key = (data_dir / "api-key").read_text().strip()
        assert key not in page.text
        api = requests.get(f"http://127.0.0.1:{ui_port}/api/runs", timeout=30)
        assert api.status_code == 200 and api.json()["data"] == []  # the local service's (empty) runs
        running = json.loads((data_dir / "running.json").read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "Traceback" not in drain(lines)
        assert not pid_alive(running["ui_pid"]) and not port_open(ui_port)
    finally:
        stop_everything(proc, data_dir)
