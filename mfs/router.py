"""Start the Deno router (functions/metadata-router/main.ts) as a child process."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from typing import Optional

from . import ROUTER_DIR
from .processes import pid_alive, stop_process

ENTRY = ROUTER_DIR / "main.ts"
DENO_FLAGS = ["run", "--allow-net", "--allow-env", "--allow-read"]


def deno_binary() -> str:
    found = shutil.which("deno")
    if found:
        return found
    try:
        import deno  # the PyPI wheel ships the binary

        return deno.find_deno_bin()
    except Exception:
        raise RuntimeError("Deno is not installed: pip install deno (or see https://deno.land)") from None


SECRET_VARS = ("DATABASE_URL", "METADATA_API_KEY")  # what a backend must store as secrets


# Databases whose vendor bills the bytes leaving the database (Neon's "public network
# transfer", CockroachDB's request units): the quota's egress counts replies before gzip there.
EGRESS_BILLED_AT_DATABASE = ("neon", "cockroach")


def router_env(
    database_url, api_key, quota_scope="default", path_prefix: str = "", database: str = ""
) -> dict:
    """The router's environment, the same on every backend (values may be Pulumi Outputs);
    PATH_PREFIX only where the router is served under one; QUOTA_EGRESS=uncompressed where the
    database's vendor bills what the database sends (`database`: the stack's `database` setting)."""
    env = {"DATABASE_URL": database_url, "METADATA_API_KEY": api_key, "QUOTA_SCOPE": quota_scope}
    if path_prefix:
        env["PATH_PREFIX"] = path_prefix
    if database in EGRESS_BILLED_AT_DATABASE:
        env["QUOTA_EGRESS"] = "uncompressed"
    return env


def router_command() -> list[str]:
    return [deno_binary(), *DENO_FLAGS, str(ENTRY)]


def start_router(
    database_url: str,
    api_key: str,
    port: int,
    quota_scope: str = "default",
    path_prefix: str = "",
    extra_env: Optional[dict] = None,
    stdout=None,
    stderr=None,
) -> subprocess.Popen:
    """Start the router and wait until its health probe answers (or raise with its output)."""
    env = {**os.environ, **router_env(database_url, api_key, quota_scope, path_prefix), "PORT": str(port)}
    env.update(extra_env or {})
    proc = subprocess.Popen(router_command(), env=env, stdout=stdout, stderr=stderr)
    try:
        wait_healthy(f"http://127.0.0.1:{port}{path_prefix}", proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def wait_healthy(
    base_url: str,
    proc: Optional[subprocess.Popen] = None,
    timeout: float = 90,
    pid: Optional[int] = None,
    request_timeout: float = 2,
) -> None:
    """Until GET /healthcheck answers 200; raises if the process (`proc` or `pid`) exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the router exited with code {proc.returncode} before it was ready")
        if pid is not None and not pid_alive(pid):
            raise RuntimeError(f"the router (pid {pid}) exited before it was ready; see its log")
        try:
            left = max(0.1, min(request_timeout, deadline - time.monotonic()))
            with urllib.request.urlopen(base_url + "/healthcheck", timeout=left) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the router did not answer {base_url}/healthcheck within {timeout:.0f}s")
