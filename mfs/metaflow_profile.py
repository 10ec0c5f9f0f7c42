"""Metaflow profiles: `$METAFLOW_HOME/config_<profile>.json` (default home `~/.metaflowconfig`),
read by Metaflow when `METAFLOW_PROFILE=<profile>`, and optionally `config.json`, its default.

Only the keys written are owned: other keys of an existing file stay as they are, and what an
owned key held before is kept in the returned record and put back by `restore`. A key changed by
someone else after it was written is left alone. Files are written atomically, mode 0600 (they
hold the service key). Used by `mfs local` and by the stacks' `MetaflowConfig` provider.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

MISSING = "__mfs_missing__"
WRITE_DEFAULT = ("always", "if-missing", "never")


def metaflow_home(configured: str = "") -> Path:
    home = configured or os.environ.get("METAFLOW_HOME") or "~/.metaflowconfig"
    return Path(home).expanduser()


def _read(path: Path) -> Optional[dict]:
    if not path.exists():
        return None
    text = path.read_text()
    return json.loads(text) if text.strip() else {}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # a leftover tmp file keeps its old mode otherwise
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def targets(profile: str, home: str = "", write_default: str = "if-missing") -> list[Path]:
    """The files a profile is written to."""
    folder = metaflow_home(home)
    paths = [folder / f"config_{profile}.json"]
    default = folder / "config.json"
    if write_default == "always" or (write_default == "if-missing" and not default.exists()):
        paths.append(default)
    return paths


def write(values: dict, paths: list[Path]) -> dict:
    """Merge `values` into each file; returns {path: {"existed", "backup"}} for `restore`."""
    files = {}
    for path in paths:
        current = _read(path)
        backup = {k: (current or {}).get(k, MISSING) for k in values}
        _write(path, {**(current or {}), **values})
        files[str(path)] = {"existed": current is not None, "backup": backup}
    return files


def restore(values: dict, files: dict) -> None:
    """Undo `write`: owned keys back to what they held, a file we created removed if empty."""
    for name, record in (files or {}).items():
        path = Path(name)
        current = _read(path)
        if current is None:
            continue
        for key, old in record["backup"].items():
            if current.get(key, MISSING) != values.get(key):
                continue  # changed by someone else since we wrote it: theirs now
            if old == MISSING:
                current.pop(key, None)
            else:
                current[key] = old
        if not current and not record["existed"]:
            path.unlink()
        else:
            _write(path, current)


def service_url() -> Optional[str]:
    """The metadata service URL Metaflow would use here: $METAFLOW_SERVICE_URL, else the profile
    named by $METAFLOW_PROFILE (config_<profile>.json), else config.json, in the Metaflow home."""
    if os.environ.get("METAFLOW_SERVICE_URL"):
        return os.environ["METAFLOW_SERVICE_URL"]
    profile = os.environ.get("METAFLOW_PROFILE")
    name = f"config_{profile}.json" if profile else "config.json"
    return (_read(metaflow_home() / name) or {}).get("METAFLOW_SERVICE_URL") or None
