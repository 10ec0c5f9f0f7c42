"""The router's Cloudflare Worker bundle: build it (esbuild) and run it locally (workerd).

Both tools and postgres.js come pinned from npm (`functions/metadata-router/worker/package.json`);
`ensure_tools()` installs them with `npm ci` on first use. The bundle is what the `neon-r2`
stack uploads, and what the tests and the cold-start benchmark run under workerd.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from . import ROUTER_DIR
from .private_file import write_private
from .processes import stop_process
from .router import router_env, wait_healthy

WORKER_DIR = ROUTER_DIR / "worker"
BIN = WORKER_DIR / "node_modules" / ".bin"
COMPATIBILITY_DATE = "2025-01-01"


def ensure_tools() -> None:
    if (BIN / "esbuild").exists() and (BIN / "workerd").exists():
        return
    npm = shutil.which("npm")
    if not npm:
        raise RuntimeError(
            "the Worker bundle needs Node.js and npm (https://nodejs.org) to install esbuild and workerd"
        )
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--silent"],
        cwd=WORKER_DIR,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def bundle(out_file: Path) -> Path:
    """Bundles worker.ts and its imports (handler, routes, postgres.js for workerd) into one ES module."""
    ensure_tools()
    subprocess.run(
        [
            str(BIN / "esbuild"),
            "worker.ts",
            "--bundle",
            "--format=esm",
            "--platform=neutral",
            "--conditions=workerd,worker",
            "--main-fields=module,main",
            "--external:node:*",
            "--external:cloudflare:sockets",
            "--log-level=warning",
            f"--outfile={out_file}",
        ],
        cwd=WORKER_DIR,
        check=True,
    )
    return out_file


def _capnp_text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def workerd_config(bundle_file: Path, port: int, bindings: dict) -> str:
    """A workerd config serving the bundle on 127.0.0.1:port; sockets may reach loopback hosts."""
    items = ",\n    ".join(f"(name = {_capnp_text(k)}, text = {_capnp_text(v)})" for k, v in bindings.items())
    return f'''using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .router),
    (name = "loopback", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:{port}", http = (), service = "main")],
);
const router :Workerd.Worker = (
  modules = [(name = "worker.js", esModule = embed {_capnp_text(bundle_file.name)})],
  compatibilityDate = "{COMPATIBILITY_DATE}",
  compatibilityFlags = ["nodejs_compat"],
  globalOutbound = "loopback",
  bindings = [
    {items}
  ],
);
'''


class WorkerdRouter:
    """The Worker bundle served by a local workerd process (config with secrets in a 0700 dir, 0600 file)."""

    def __init__(
        self,
        database_url: str,
        api_key: str,
        port: int,
        quota_scope: str = "default",
        path_prefix: str = "",
        stdout=None,
        stderr=None,
    ):
        self.dir = Path(tempfile.mkdtemp(prefix="mfs-workerd-"))
        bundle(self.dir / "worker.js")
        config = self.dir / "config.capnp"
        write_private(
            config,
            workerd_config(
                self.dir / "worker.js",
                port,
                router_env(database_url, api_key, quota_scope, path_prefix),
            ),
        )
        self.command = [str(BIN / "workerd"), "serve", str(config)]
        self.url, self.key, self.port = f"http://127.0.0.1:{port}{path_prefix}", api_key, port
        self.stdout, self.stderr = stdout, stderr
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "WorkerdRouter":
        self.proc = subprocess.Popen(self.command, stdout=self.stdout, stderr=self.stderr)
        try:
            wait_healthy(self.url, self.proc)
        except BaseException:
            stop_process(self.proc)
            raise
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
