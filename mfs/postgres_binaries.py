"""Which PostgreSQL binaries to run, and as whom.

Two builds are supported: the one embedded in the `pgserver` wheel (PostgreSQL 16, no system
install needed) and Debian's `postgresql-15` package. Postgres refuses to run as root, so as root
the server runs as the `postgres` system user (or `pgserver`, the user the pgserver package
itself creates). That user must be able to reach the binaries: a wheel installed under a private
home (root's home is 0700 on many hosts, with Python inside it) is out of its reach. Then the
install tree is copied once into a shared cache the user can read (`shared_dir()`), checked
against the original on every use. Nothing of the user's home changes mode.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")
BUILDS = ("auto", "pgserver", "debian")


class PostgresUnavailable(RuntimeError):
    """No usable PostgreSQL build: the message says in one line what to do."""


def pgserver_bin() -> Path:
    # located, not imported: importing pgserver sets up platform folders and warns about them
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresUnavailable(
            "the pgserver wheel is not installed: pip install pgserver, or use --postgres debian "
            "(apt-get install postgresql-15)"
        )
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def find_bin_dir(build: str = "auto") -> Path:
    """The bin folder of `build` (`pgserver`, `debian`, or `auto`: pgserver, else Debian's)."""
    if build not in BUILDS:
        raise PostgresUnavailable(f"unknown PostgreSQL build {build!r}: choose one of {', '.join(BUILDS)}")
    if build in ("auto", "pgserver"):
        try:
            found = pgserver_bin()
            if (found / "pg_ctl").exists():
                return found
        except PostgresUnavailable:
            if build == "pgserver":
                raise
    if (DEBIAN_BIN / "pg_ctl").exists():
        return DEBIAN_BIN
    raise PostgresUnavailable(
        "no PostgreSQL binaries found: pip install pgserver, or apt-get install postgresql-15"
    )


def shared_dir() -> Path:
    """A root-owned folder every local user can traverse, for what the server user must reach
    (binary copies, data folders relocated out of a private home). $MFS_SHARED_DIR overrides."""
    return Path(os.environ.get("MFS_SHARED_DIR") or "/var/lib/metaflow-serverless")


def server_user() -> Optional[pwd.struct_passwd]:
    """The user the server runs as: None (the caller itself) unless the caller is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    res = subprocess.run(
        ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", "pgserver"],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise PostgresUnavailable(
            "PostgreSQL cannot run as root and there is no 'postgres' user; "
            f"creating one failed ({res.stderr.strip()}): run as another user"
        )
    return pwd.getpwnam("pgserver")


def as_user_kwargs(user: Optional[pwd.struct_passwd]) -> dict:
    """subprocess arguments that run a command as `user` (nothing when None)."""
    return {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def can_reach(user: Optional[pwd.struct_passwd], path: Path, test: str = "-x") -> bool:
    """Whether `user` passes `test -x path` (or another test(1) flag): asks the kernel as that
    user rather than guessing from modes, ACLs and mount options."""
    if user is None:
        return True
    res = subprocess.run(["test", test, str(path)], cwd="/", capture_output=True, **as_user_kwargs(user))
    return res.returncode == 0


def _copy_sources(bin_dir: Path) -> dict[str, Path]:
    """What a copy of `bin_dir` needs, by path relative to the copy: the install tree (bin, lib,
    share) and, for a wheel, the `<package>.libs` folder its binaries' RPATH points at
    (`$ORIGIN/../../../pgserver.libs`), in the same layout."""
    install = bin_dir.parent
    package = install.parent
    sources = {f"{package.name}/{install.name}": install}
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        sources[libs.name] = libs
    return sources


def _files(sources: dict[str, Path]):
    for rel, root in sorted(sources.items()):
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink() and "include" not in path.relative_to(root).parts[:1]:
                yield f"{rel}/{path.relative_to(root)}", path


def _fingerprint(sources: dict[str, Path]) -> str:
    """Paths, sizes and modification times of every file, hashed: a change of the installed
    build (upgrade, reinstall) gives another copy."""
    digest = hashlib.sha256()
    for rel, path in _files(sources):
        st = path.stat()
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _same_files(sources: dict[str, Path], copy: Path) -> bool:
    """The copy has every file of the original with the same size (a cheap check on each use)."""
    for rel, path in _files(sources):
        twin = copy / rel
        if not twin.is_file() or twin.stat().st_size != path.stat().st_size:
            return False
    return True


def runnable_bin_dir(bin_dir: Path, user: Optional[pwd.struct_passwd]) -> Path:
    """`bin_dir` itself when `user` can run its `postgres`, else a checked copy of its install
    in shared_dir() that the user can run."""
    bin_dir = Path(bin_dir)
    if can_reach(user, bin_dir / "postgres"):
        return bin_dir
    sources = _copy_sources(bin_dir)
    cache = shared_dir() / "postgres" / _fingerprint(sources)
    if cache.exists() and not _same_files(sources, cache):
        shutil.rmtree(cache)  # damaged or changed by hand: make it again
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        for folder in (cache.parent, cache.parent.parent):
            folder.chmod(0o755)
        work = Path(tempfile.mkdtemp(prefix=".copy-", dir=cache.parent))
        try:
            tree = work / "tree"
            for rel, root in sources.items():
                shutil.copytree(root, tree / rel, symlinks=True, ignore=shutil.ignore_patterns("include"))
            for folder in [tree, *tree.rglob("*")]:
                if folder.is_dir():
                    folder.chmod(0o755)
            os.replace(tree, cache)  # atomic: a racing copy finds it whole or not at all
        except OSError:
            if not cache.exists():
                raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    copied = cache / next(iter(sources)) / bin_dir.name
    if not can_reach(user, copied / "postgres"):
        raise PostgresUnavailable(
            f"user {user.pw_name} cannot run {copied}/postgres: make "
            f"{shared_dir()} traversable (chmod 755) or set MFS_SHARED_DIR"
        )
    return copied
