"""What the UI tests share: the UI bundle fixture, `mfs ui` as a process, and a scene of real
Metaflow runs over a local router (a foreach with a card and a retried step, a failing run, a
run still in progress)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from testkit import ROOT, Router, metaflow_env, read_until
from mfs.processes import free_port, stop_process

FLOWS = Path(__file__).resolve().parent / "flows"
BUNDLE_REL = Path("shared/vendor/metaflow-ui/metaflow-ui-v1.3.14.zip")


def bundle_zip() -> Path:
    """The v1.3.14 UI build in ../shared (relative to the repository root)."""
    path = ROOT.parent / BUNDLE_REL
    if not path.is_file():
        raise FileNotFoundError(
            f"the Metaflow UI bundle fixture is missing: expected {path} "
            f"(../{BUNDLE_REL} relative to the repository)"
        )
    return path


class UiServer:
    """`python -m mfs ui` over a router and datastore, as a user starts it."""

    def __init__(self, env: dict, cache: Path, bundle: Path | None = None):
        self.port = free_port()
        env = {**env, "MFS_UI_CACHE": str(cache)}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mfs",
                "ui",
                "--bundle",
                str(bundle or bundle_zip()),
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            self.banner, self.lines = read_until(self.proc, "Metaflow UI on", 60)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc)


def run_flow(env: dict, cwd: Path, name: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(
        [sys.executable, str(FLOWS / name), "--no-pylint", "run", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"{name} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return res


class Scene:
    """A router over a migrated database and the runs the UI tests look at."""

    def __init__(self, dsn: str, tmp: Path):
        self.tmp = tmp
        self.router = Router(dsn)
        self.slow = None
        self.ui = None
        try:
            self.env = metaflow_env(self.router, tmp)
            self.sysroot = Path(self.env["METAFLOW_DATASTORE_SYSROOT_LOCAL"])
            self.sysroot.mkdir(parents=True, exist_ok=True)
            self.release = tmp / "release-slow-run"
            self.env["UI_SLOW_RELEASE"] = str(self.release)
            run_flow(self.env, self.sysroot, "ui_demo_flow.py")
            res = run_flow(self.env, self.sysroot, "ui_fail_flow.py", check=False)
            assert res.returncode != 0, "the failing flow did not fail"
            self.slow = subprocess.Popen(
                [sys.executable, str(FLOWS / "ui_slow_flow.py"), "--no-pylint", "run"],
                env=self.env,
                cwd=self.sysroot,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._wait_for_slow_step()
            self.ui = UiServer(self.env, tmp / "ui-cache")
        except BaseException:
            self.close()
            raise

    def _wait_for_slow_step(self, timeout: float = 180) -> None:
        s = self.router.session()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = s.get(f"{self.router.url}/flows/UiSlowFlow/runs")
            if r.ok and r.json():
                run = r.json()[0]["run_number"]
                t = s.get(f"{self.router.url}/flows/UiSlowFlow/runs/{run}/steps/wait/tasks")
                if t.ok and t.json():
                    return
            assert self.slow.poll() is None, "the slow flow ended before its wait step"
            time.sleep(0.5)
        raise AssertionError("the slow flow's wait step did not start")

    def close(self) -> None:
        try:
            if self.ui:
                self.ui.stop()
            if self.slow:
                self.release.touch()
                try:
                    self.slow.wait(120)
                except subprocess.TimeoutExpired:
                    stop_process(self.slow)
        finally:
            self.router.stop()


def age_run(dsn: str, flow: str, seconds: int) -> None:
    """Moves a flow's runs `seconds` into the past, as if they had ended that long ago (a failed
    run reads as running until the official 6-minute heartbeat cutoff has passed)."""
    from testkit import q

    for table in ("runs_v3", "steps_v3", "tasks_v3", "metadata_v3", "artifact_v3"):
        q(
            dsn,
            f"update public.{table} set ts_epoch = ts_epoch - $2::bigint * 1000 where flow_id = $1",
            flow,
            seconds,
        )
    for table in ("runs_v3", "tasks_v3"):
        q(
            dsn,
            f"update public.{table} set last_heartbeat_ts = last_heartbeat_ts - $2 where flow_id = $1",
            flow,
            seconds,
        )
