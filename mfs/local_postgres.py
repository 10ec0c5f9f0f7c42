"""A PostgreSQL server on a TCP port of 127.0.0.1, for `python -m mfs local`, the `local` stack
and the tests.

Which binaries and which user: mfs/postgres_binaries.py. As root the server runs as another
user, who must also reach the data folder: one inside a private home is kept in shared_dir()
instead, with a symlink at the requested place (`real_data_dir` says where it is).
A server left running on the folder (its owner died) is found through `postmaster.pid`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

import asyncpg

from .postgres_binaries import (
    PostgresUnavailable,
    as_user_kwargs,
    can_reach,
    runnable_bin_dir,
    server_user,
    shared_dir,
)
from .aio import run_sync
from .private_file import write_private
from .processes import command_name, free_port, pid_alive

DEFAULT_SETTINGS = {"listen_addresses": "127.0.0.1", "max_connections": 200, "fsync": "on"}


class PostgresStartError(RuntimeError):
    """The server did not start; the message's first line says why and what to do."""


class PostgresRunning(PostgresStartError):
    """A server already runs on the data folder."""


class LocalPostgres:
    """initdb (once) + pg_ctl start; `stop()` (or leaving the `with`) ends it. Without a
    data_dir the cluster lives in a temporary folder that stop() removes."""

    def __init__(
        self,
        bin_dir: Path,
        data_dir: Optional[Path] = None,
        port: Optional[int] = None,
        password: str = "postgres",
        settings: Optional[dict] = None,
    ):
        if not (Path(bin_dir) / "pg_ctl").exists():
            raise PostgresUnavailable(f"no PostgreSQL binaries in {bin_dir}")
        self.user = server_user()
        self.bin_dir = runnable_bin_dir(Path(bin_dir), self.user)
        self._own_dir = data_dir is None
        # mkdtemp's folder is 0700 under a world-traversable /tmp: reachable once chowned
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="mfs-pg-"))
        self.port = port or free_port()
        self.password = password
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    @property
    def real_data_dir(self) -> Path:
        return self.data_dir.resolve()

    def create_database(self, name: str) -> str:
        """Creates an empty database on this server and returns its URL."""

        async def create():
            con = await asyncpg.connect(self.dsn)
            try:
                await con.execute(f'create database "{name}"')
            finally:
                await con.close()

        run_sync(create())
        return self.dsn.rsplit("/", 1)[0] + "/" + name

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, check=check, capture_output=True, text=True, cwd="/", **as_user_kwargs(self.user)
        )

    def _chown(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _place_data_dir(self) -> None:
        """Create the data folder where the server user can reach it (see module doc)."""
        if self.data_dir.is_symlink():  # placed by an earlier start
            self.real_data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if can_reach(self.user, self.data_dir.parent):
            self.data_dir.mkdir(mode=0o700, exist_ok=True)
            return
        if (self.data_dir / "PG_VERSION").exists():
            raise PostgresStartError(
                f"the {self.user.pw_name} user cannot reach {self.data_dir} (a parent folder is "
                "private): move the data elsewhere or choose another --data-dir"
            )
        key = hashlib.sha256(str(self.data_dir.absolute()).encode()).hexdigest()[:12]
        real = shared_dir() / "pgdata" / key
        real.parent.mkdir(parents=True, exist_ok=True)
        real.parent.chmod(0o711)  # traversable, not listable
        real.mkdir(mode=0o700, exist_ok=True)
        if self.data_dir.exists():
            self.data_dir.rmdir()  # an empty folder from an earlier attempt
        self.data_dir.symlink_to(real, target_is_directory=True)

    def running_pid(self) -> Optional[int]:
        """The pid of a postmaster serving this data folder, if one runs (ours or left over);
        a stale postmaster.pid (its process gone or another program) is removed."""
        pidfile = self.real_data_dir / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        if pid_alive(pid) and command_name(pid) in ("postgres", "postmaster"):
            if len(lines) > 3 and lines[3].strip().isdigit():
                self.port = int(lines[3])
            return pid
        pidfile.unlink(missing_ok=True)
        return None

    def start(self) -> "LocalPostgres":
        """initdb if the folder is new, then start; on failure nothing is left running and a
        temporary folder is removed. A server already running on the folder is left alone:
        PostgresRunning (stop() it first to replace it)."""
        pid = self.running_pid()
        if pid:
            raise PostgresRunning(
                f"PostgreSQL (pid {pid}) already serves {self.data_dir} on port {self.port}"
            )
        try:
            self._place_data_dir()
            data = self.real_data_dir
            self._chown(data)
            if not (data / "PG_VERSION").exists():
                self._initdb(data)
            self.resume()
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb(self, data: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="mfs-initdb-") as tmp:
            pwfile = write_private(Path(tmp) / "pw", self.password)
            self._chown(Path(tmp))
            self._chown(pwfile)
            res = self._run(
                str(self.bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--no-sync",
                check=False,
            )
        if res.returncode != 0:
            detail = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise PostgresStartError(f"initdb failed in {data}: {detail}")

    def resume(self) -> None:
        """Start (again) the server on the same data folder and port."""
        data = self.real_data_dir
        opts = " ".join([f"-p {self.port}", f"-k {data}"] + [f"-c {k}={v}" for k, v in self.settings.items()])
        log = data / "server.log"
        res = self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "start",
            check=False,
        )
        if res.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            why = " / ".join(tail) or res.stderr.strip() or f"pg_ctl exited with {res.returncode}"
            raise PostgresStartError(f"PostgreSQL did not start on port {self.port}: {why}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise PostgresStartError("PostgreSQL started but does not accept connections")

    def pause(self) -> None:
        """Stop the server immediately, keeping its data (to test outages)."""
        self._pg_ctl_stop("immediate")

    def _pg_ctl_stop(self, mode: str) -> None:
        data = self.real_data_dir
        if (data / "postmaster.pid").exists():
            self._run(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-m",
                mode,
                "-w",
                "-t",
                "60",
                "stop",
                check=False,
            )

    def stop(self) -> None:
        """Fast shutdown (rolls back open work), whoever started the server; a temporary data
        folder is removed."""
        self._pg_ctl_stop("fast")
        if self._own_dir:
            self.remove_data()

    def remove_data(self) -> None:
        """Delete the data folder (and its relocated twin); the server must be stopped."""
        real = self.real_data_dir
        shutil.rmtree(real, ignore_errors=True)
        if self.data_dir.is_symlink():
            self.data_dir.unlink()

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
