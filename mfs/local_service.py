"""`python -m mfs local`: PostgreSQL + migrations + the router on this machine, as a service a
person can live with.

- One instance per data folder: a lock held for the instance's life (the kernel drops it when
  the process dies, whatever killed it). A second start answers "already running at URL".
- What a dead instance left behind (a postmaster with parent 1 after a closed terminal, a
  router, a profile pointing at a dead URL) is found through `running.json` and
  `postmaster.pid`, stopped cleanly and replaced.
- SIGHUP, SIGTERM and SIGINT stop the router and PostgreSQL and restore the Metaflow profile.
- The Metaflow profile `config_<profile>.json` (mfs/metaflow_profile.py) points Metaflow at the
  service while it runs: `METAFLOW_PROFILE=local python flow.py run` in any shell.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from . import SQL_DIR, metaflow_profile
from .local_postgres import LocalPostgres
from .migrations import apply
from .postgres_binaries import find_bin_dir
from .private_file import write_private
from .processes import command_name, free_port, pid_alive, stop_group, stop_process, wait_port
from .router import start_router

STATE_FILE = "running.json"
LOCK_FILE = "lock"
STOP_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


class LocalServiceError(RuntimeError):
    """Starting failed; the message is one line saying what to do."""


class Stopped(BaseException):
    """A stop signal arrived (BaseException: no `except Exception` swallows it)."""


@dataclass
class LocalOptions:
    data_dir: Path
    port: int = 8080
    db_port: Optional[int] = None
    postgres: str = "auto"
    profile: Optional[str] = "local"  # None: write no profile
    ui_port: Optional[int] = None  # also serve the Metaflow UI (mfs ui) on this port


def _say(out: Callable[[str], None], text: str) -> None:
    try:
        out(text)
    except OSError:  # the terminal is gone (SIGHUP): keep stopping quietly
        pass


def _lock(state: Path):
    """Holds the instance lock, or raises LocalServiceError naming the running instance."""
    handle = os.fdopen(os.open(state / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600), "r+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        info = _read_state(state)
        where = f" at {info['url']} (pid {info['pid']})" if info.get("url") else ""
        raise LocalServiceError(
            f"mfs local is already running{where} on {state}: use it, or stop "
            "it first (Ctrl-C in its terminal)"
        ) from None
    return handle


def _read_state(state: Path) -> dict:
    try:
        return json.loads((state / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _clean_up_after_dead_instance(state: Path, pg: LocalPostgres, out) -> None:
    """Called with the lock held: anything still running from this folder belongs to an
    instance that died without stopping it."""
    left = _read_state(state)
    router_pid = int(left.get("router_pid") or 0)
    if router_pid and pid_alive(router_pid) and command_name(router_pid) == "deno":
        _say(out, f"stopping the router left running by an earlier mfs local (pid {router_pid})")
        stop_group(router_pid, timeout=10)
    ui_pid = int(left.get("ui_pid") or 0)
    if ui_pid and pid_alive(ui_pid) and _is_mfs_ui(ui_pid):
        _say(out, f"stopping the UI left running by an earlier mfs local (pid {ui_pid})")
        stop_group(ui_pid, timeout=10)
    if left.get("profile"):
        metaflow_profile.restore(left["profile"]["values"], left["profile"]["files"])
    pid = pg.running_pid()
    if pid:
        _say(out, f"stopping the PostgreSQL left running by an earlier mfs local (pid {pid})")
        pg.stop()
    (state / STATE_FILE).unlink(missing_ok=True)


def _is_mfs_ui(pid: int) -> bool:
    try:
        return b"mfs\0ui\0" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _start_ui(port: int, service_url: str, key: str, log: Path) -> subprocess.Popen:
    """`python -m mfs ui` for this service (local datastore: Metaflow's default, the working
    folder's .metaflow, unless METAFLOW_DATASTORE_SYSROOT_LOCAL says otherwise)."""
    env = {
        **os.environ,
        "METAFLOW_DEFAULT_METADATA": "service",
        "METAFLOW_SERVICE_URL": service_url,
        "METAFLOW_SERVICE_AUTH_KEY": key,
    }
    env.setdefault("METAFLOW_DEFAULT_DATASTORE", "local")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mfs", "ui", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, 120, proc.pid)
    except (RuntimeError, TimeoutError):
        stop_process(proc)
        said = log.read_text(errors="replace").strip().splitlines()
        raise LocalServiceError(
            f"the Metaflow UI did not start: {said[-1] if said else 'no output'} (log: {log})"
        ) from None
    except BaseException:
        stop_process(proc)
        raise
    return proc


def _check_port_free(port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the router binds: TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise LocalServiceError(
                f"port {port} is in use by another program: choose another with --port"
            ) from None


def run(opts: LocalOptions, out: Callable[[str], None] = print) -> None:
    """Runs until a stop signal or the router's exit; everything started is stopped on return."""

    def on_signal(signum, _frame):
        raise Stopped(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    state = Path(opts.data_dir).expanduser()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = _lock(state)
    started = time.monotonic()
    router = ui = pg = profile = None
    try:
        key_file = state / "api-key"
        if not key_file.exists():
            write_private(key_file, secrets.token_urlsafe(32), exclusive=True)
        key = key_file.read_text().strip()
        bin_dir = find_bin_dir(opts.postgres)
        pg = LocalPostgres(bin_dir, state / "pgdata", port=opts.db_port or free_port())
        _clean_up_after_dead_instance(state, pg, out)
        _check_port_free(opts.port)
        if opts.ui_port:
            _check_port_free(opts.ui_port)
        _say(out, f"starting PostgreSQL ({bin_dir}) with data in {pg.data_dir} ...")
        pg.start()
        if pg.data_dir.is_symlink():
            _say(
                out,
                f"  (its files are in {pg.real_data_dir}: as root the server runs as "
                f"{pg.user.pw_name}, who cannot enter a private home)",
            )
        apply(pg.dsn, SQL_DIR, progress=lambda m: _say(out, "  " + m))
        _say(out, f"starting the router on port {opts.port} ...")
        router = start_router(pg.dsn, key, opts.port)
        url = f"http://127.0.0.1:{opts.port}"
        if opts.profile:
            values = {
                "METAFLOW_DEFAULT_METADATA": "service",
                "METAFLOW_SERVICE_URL": url,
                "METAFLOW_SERVICE_AUTH_KEY": key,
                "METAFLOW_DEFAULT_DATASTORE": "local",
            }
            paths = metaflow_profile.targets(opts.profile, write_default="never")
            profile = {"values": values, "files": metaflow_profile.write(values, paths)}
        if opts.ui_port:
            _say(out, f"starting the Metaflow UI on port {opts.ui_port} ...")
            ui = _start_ui(opts.ui_port, url, key, state / "ui.log")
        write_private(
            state / STATE_FILE,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "url": url,
                    "router_pid": router.pid,
                    "ui_pid": ui.pid if ui else None,
                    "postgres_pid": pg.running_pid(),
                    "profile": profile,
                }
            ),
        )
        _say(out, f"\nready in {time.monotonic() - started:.1f}s. To run a flow against it:\n")
        if profile:
            _say(
                out,
                f"  METAFLOW_PROFILE={opts.profile} python your_flow.py run"
                f"      # profile {paths[0]}\n\nor, without the profile:\n",
            )
        _say(out, "  export METAFLOW_DEFAULT_METADATA=service")
        _say(out, f"  export METAFLOW_SERVICE_URL={url}")
        _say(out, f"  export METAFLOW_SERVICE_AUTH_KEY=$(cat {key_file})")
        _say(out, "  python your_flow.py run\n")
        if ui:
            _say(out, f"The Metaflow UI: http://127.0.0.1:{opts.ui_port}/   (its log: {state / 'ui.log'})\n")
        _say(out, "Ctrl-C stops the router and PostgreSQL.")
        code = router.wait()
        raise LocalServiceError(f"the router exited with code {code}; PostgreSQL stopped too")
    except Stopped as stop:
        _say(out, f"\n{stop.args[0]}: stopping ...")
    finally:
        for s in STOP_SIGNALS:  # a second Ctrl-C must not cut the clean-up short
            signal.signal(s, signal.SIG_IGN)
        try:
            if profile:
                metaflow_profile.restore(profile["values"], profile["files"])
            stop_process(ui)
            stop_process(router)
            if pg is not None:
                pg.stop()
            if router is not None:  # running.json is ours (written after the router started)
                (state / STATE_FILE).unlink(missing_ok=True)
        finally:
            lock.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
