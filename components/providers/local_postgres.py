"""Dynamic provider `LocalPostgres`: a real PostgreSQL server in a data folder of the project,
a thin adapter over `mfs.local_postgres.LocalPostgres` (which binaries, which user, folders a
root-run server cannot reach: all decided there).

`create` runs `initdb` once (a random password, kept 0600 beside the data), starts the server on
127.0.0.1 (pg_ctl detaches it, so it outlives the provider process) and returns its pid, port and
URL. `delete` stops it (fast shutdown) and removes the data only when `drop_data`.
"""

from __future__ import annotations

import secrets
import shutil
import signal
from pathlib import Path
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

from mfs.local_postgres import LocalPostgres as Server
from mfs.postgres_binaries import find_bin_dir
from mfs.private_file import write_private
from mfs.processes import command_name, pid_alive, stop_group

from ._util import REPO_ROOT, port_changed, process_read, settings_update


def _state_dir(props) -> Path:
    return (REPO_ROOT / props["state_dir"]).resolve()


def _server(props, port: int = 0) -> Server:
    state = _state_dir(props)
    state.mkdir(parents=True, exist_ok=True)
    pwfile = state / "password"
    if not pwfile.exists():
        write_private(pwfile, secrets.token_urlsafe(24))
    return Server(
        find_bin_dir("auto"), state / "data", port=port or None, password=pwfile.read_text().strip()
    )


class LocalPostgresProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = [k for k in ("state_dir",) if olds.get(k) != news.get(k)]
        replaces += ["port"] if port_changed(olds, news) else []
        changed = replaces + (["drop_data"] if olds.get("drop_data") != news.get("drop_data") else [])
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def read(self, id_, props):
        return process_read(id_, props, "postgres")

    def update(self, _id, olds, news):
        return settings_update(olds, news)

    def create(self, props):
        server = _server(props, int(props.get("port") or 0))
        if server.running_pid():  # left by an earlier, interrupted create of ours
            server.stop()
        server.start()
        pid = server.running_pid()
        return CreateResult(
            f"postgres-{pid}",
            {
                **props,
                "pid": pid,
                "port": server.port,
                "url": server.dsn,
                "data_dir": str(server.real_data_dir),
            },
        )

    def delete(self, _id, props):
        if _state_dir(props).exists():
            server = _server(props, int(props.get("port") or 0))
            server.stop()
            if props.get("drop_data"):
                server.remove_data()
        pid = int(props.get("pid") or 0)
        if pid and pid_alive(pid) and command_name(pid) == "postgres":  # folder gone: by pid
            stop_group(pid, timeout=30, first=signal.SIGINT)  # SIGINT = Postgres' fast shutdown
        if props.get("drop_data"):
            shutil.rmtree(_state_dir(props), ignore_errors=True)


class LocalPostgres(Resource, module="mfs", name="LocalPostgres"):
    pid: pulumi.Output[int]
    port: pulumi.Output[int]
    url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        state_dir: str,
        port: int = 0,
        drop_data: bool = False,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["url"]))
        super().__init__(
            LocalPostgresProvider(),
            name,
            {
                "state_dir": state_dir,
                "port": port,
                "drop_data": drop_data,
                "pid": None,
                "url": None,
                "data_dir": None,
            },
            opts,
        )
