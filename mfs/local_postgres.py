"""A throwaway PostgreSQL server on a TCP port, for `python -m mfs local` and the tests.

Two builds are supported: the one embedded in the `pgserver` wheel (PostgreSQL 16, no system
install needed) and Debian's `postgresql-15` package. Postgres refuses to run as root, so as
root the server runs as the `postgres` system user (Debian's package creates it).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

import asyncpg

from .private_file import write_private

DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")


def pgserver_bin() -> Path:
    import pgserver  # imported lazily: only this build needs the wheel

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """initdb + pg_ctl start on 127.0.0.1:<port>; `stop()` (or the context manager) ends it."""

    def __init__(self, bin_dir: Path, data_dir: Optional[Path] = None, port: Optional[int] = None,
                 password: str = "postgres"):
        self.bin_dir = Path(bin_dir)
        if not (self.bin_dir / "pg_ctl").exists():
            raise FileNotFoundError(f"no PostgreSQL binaries in {self.bin_dir}")
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="mfs-pg-"))
        self.port = port or free_port()
        self.password = password
        self._as_user = None
        if os.geteuid() == 0:
            try:
                self._as_user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("PostgreSQL cannot run as root and there is no 'postgres' user: "
                                   "create one (useradd postgres) or run as another user") from None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """Creates an empty database on this server and returns its URL."""
        async def create():
            con = await asyncpg.connect(self.dsn)
            try:
                await con.execute(f'create database "{name}"')
            finally:
                await con.close()

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(create())
        finally:
            loop.close()
        return self.dsn.rsplit("/", 1)[0] + "/" + name

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        kwargs = {}
        if self._as_user is not None:
            kwargs = {"user": self._as_user.pw_uid, "group": self._as_user.pw_gid}
        return subprocess.run(args, check=check, capture_output=True, text=True, cwd="/", **kwargs)

    def start(self) -> "LocalPostgres":
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._as_user is not None:
            os.chown(self.data_dir, self._as_user.pw_uid, self._as_user.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            pwfile = self.data_dir.parent / f".{self.data_dir.name}.pw"
            write_private(pwfile, self.password)
            if self._as_user is not None:
                os.chown(pwfile, self._as_user.pw_uid, self._as_user.pw_gid)
            try:
                self._run(str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                          "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync")
            finally:
                pwfile.unlink()
        self.resume()
        return self

    def resume(self) -> None:
        """Start (again) the server on the same data dir and port."""
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} "
                "-c max_connections=200 -c fsync=on")
        res = self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-o", opts,
                        "-l", str(self.data_dir / "server.log"), "-w", "-t", "60", "start", check=False)
        if res.returncode != 0:
            log = (self.data_dir / "server.log").read_text()[-2000:] if (self.data_dir / "server.log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {res.stderr.strip()}\n{log}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("PostgreSQL started but does not accept connections")

    def pause(self) -> None:
        """Stop the server immediately, keeping its data (to test outages)."""
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w",
                  "stop", check=False)

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop",
                  check=False)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
