"""Dynamic provider `LocalRouter`: the metadata router (`functions/metadata-router/main.ts`)
as a local Deno process, the same code the Edge Function runs.

`create` starts `deno run` in its own session with the database URL, API key and quota scope in
its environment (never on its command line), waits for the port and the unauthenticated health
route, and returns pid, port and URL. A changed input restarts the process (replace).
"""

from __future__ import annotations

import os
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

from mfs.processes import free_port, pid_alive, start_detached, stop_group, wait_port
from mfs.router import router_command, router_env, wait_healthy

from ._util import REPO_ROOT, port_changed, process_read


class LocalRouterProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        keys = ("database_url", "api_key", "quota_scope", "port", "state_dir")
        replaces = [k for k in keys if k != "port" and olds.get(k) != news.get(k)]
        replaces += ["port"] if port_changed(olds, news) else []
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=True)

    def read(self, id_, props):
        return process_read(id_, props, "deno")

    def create(self, props):
        port = int(props.get("port") or 0) or free_port()
        env = {**os.environ, **router_env(props["database_url"], props["api_key"], props["quota_scope"])}
        env["PORT"] = str(port)
        state = (REPO_ROOT / props["state_dir"]).resolve()
        pid = start_detached(router_command(), state / "router.log", env=env, cwd=str(REPO_ROOT))
        url = f"http://127.0.0.1:{port}"
        try:
            wait_port(port, 120, pid)
            wait_healthy(url, timeout=90, pid=pid)
        except Exception:
            stop_group(pid)
            raise
        return CreateResult(f"router-{pid}", {**props, "pid": pid, "port": port, "url": url})

    def delete(self, _id, props):
        pid = int(props.get("pid") or 0)
        if pid and pid_alive(pid):
            stop_group(pid)


class LocalRouter(Resource, module="mfs", name="LocalRouter"):
    pid: pulumi.Output[int]
    url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        database_url,
        api_key,
        quota_scope: str,
        state_dir: str,
        port: int = 0,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__(
            LocalRouterProvider(),
            name,
            {
                "database_url": pulumi.Output.secret(database_url),
                "api_key": pulumi.Output.secret(api_key),
                "quota_scope": quota_scope,
                "state_dir": state_dir,
                "port": port,
                "pid": None,
                "url": None,
            },
            opts,
        )
