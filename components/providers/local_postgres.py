"""Dynamic provider `LocalPostgres`: a real PostgreSQL server in a data folder of the project.

Uses the binaries that the `pgserver` wheel ships (so `pip install` is all a user needs), else
Debian's `/usr/lib/postgresql/<v>/bin`, else `initdb` on PATH. `create` runs `initdb` once
(password auth on TCP, password kept in a 0600 file beside the data), starts the server on
127.0.0.1 with `pg_ctl` in its own session so it outlives the provider, and returns its pid,
port and URL. `delete` stops it (fast shutdown) and removes the data only when `drop_data`.
Postgres refuses to run as root: as root the server runs as the `postgres` user if it exists,
else as a `pgserver` user created the way the pgserver package does.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
from pathlib import Path
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

from ._util import REPO_ROOT, free_port, pid_alive, stop_group, wait_port


def postgres_bin() -> Path:
    try:
        import pgserver  # noqa: F401

        candidate = Path(pgserver.__file__).parent / "pginstall" / "bin"
        if (candidate / "initdb").exists():
            return candidate
    except ImportError:
        pass
    for version in ("17", "16", "15", "14"):
        candidate = Path(f"/usr/lib/postgresql/{version}/bin")
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("no PostgreSQL binaries: pip install pgserver, or apt-get install postgresql")


def _run_user() -> Optional[pwd.struct_passwd]:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "-s", "/bin/false", "pgserver"], check=True, capture_output=True)
    return pwd.getpwnam("pgserver")


def _open_path_for(user, path: Path) -> None:
    """Let `user` traverse every parent of `path` and own `path` itself."""
    if user is None:
        return
    for parent in list(path.parents)[::-1]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(parent, mode | stat.S_IXOTH)
    for root, dirs, files in os.walk(path):
        os.chown(root, user.pw_uid, user.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), user.pw_uid, user.pw_gid)


def _state_dir(props) -> Path:
    return (REPO_ROOT / props["state_dir"]).resolve()


class LocalPostgresProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = [k for k in ("state_dir", "port") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=True)

    def create(self, props):
        state = _state_dir(props)
        data, pwfile, log = state / "data", state / "password", state / "postgres.log"
        state.mkdir(parents=True, exist_ok=True)
        user = _run_user()
        as_user = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
        bindir = postgres_bin()
        if not (data / "PG_VERSION").exists():
            password = secrets.token_urlsafe(24)
            data.mkdir(mode=0o700, exist_ok=True)
            init_pw = state / "initdb-pw"
            init_pw.write_text(password + "\n")
            _open_path_for(user, state)
            try:
                subprocess.run(
                    [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
                     "--auth-host=scram-sha-256", "--auth-local=trust", f"--pwfile={init_pw}"],
                    check=True, capture_output=True, **as_user)
            finally:
                init_pw.unlink()
            pwfile.touch(mode=0o600)
            pwfile.write_text(password)
        password = pwfile.read_text().strip()
        port = int(props.get("port") or 0) or free_port()
        _open_path_for(user, data)
        if user:
            log.touch()
            os.chown(log, user.pw_uid, user.pw_gid)
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start",
             "-o", f"-p {port} -c listen_addresses=127.0.0.1 -k {data}"],
            check=True, capture_output=True, start_new_session=True, **as_user)
        pid = int((data / "postmaster.pid").read_text().split()[0])
        wait_port(port, 30, pid)
        url = f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
        return CreateResult(f"postgres-{pid}",
                            {**props, "pid": pid, "port": port, "url": url, "data_dir": str(data)})

    def delete(self, _id, props):
        pid = int(props.get("pid") or 0)
        if pid and pid_alive(pid):
            # SIGINT is Postgres' "fast" shutdown: roll back open work, then exit
            stop_group(pid, timeout=30, first=signal.SIGINT)
        if props.get("drop_data"):
            shutil.rmtree(_state_dir(props), ignore_errors=True)


class LocalPostgres(Resource, module="mfs", name="LocalPostgres"):
    pid: pulumi.Output[int]
    port: pulumi.Output[int]
    url: pulumi.Output[str]

    def __init__(self, name: str, state_dir: str, port: int = 0, drop_data: bool = False,
                 opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["url"]))
        super().__init__(
            LocalPostgresProvider(), name,
            {"state_dir": state_dir, "port": port, "drop_data": drop_data,
             "pid": None, "url": None, "data_dir": None},
            opts,
        )
