"""Dynamic provider `MetaflowConfig`: the Metaflow client configuration of this stack.

Writes `$METAFLOW_HOME/config_<profile>.json` (default home `~/.metaflowconfig`; used with
`METAFLOW_PROFILE=<profile>`) and, when `write_default` is `always` or is `if-missing` and no
`config.json` exists, `config.json` too. Only the keys in `values` are owned: other keys of an
existing file are left as they are, and what an owned key held before is kept in the state
(`backup`, a secret) and put back on delete. A key the user changed after we wrote it is left
alone on delete. Files are written atomically with mode 0600. S3 credentials travel in
`METAFLOW_DATATOOLS_CLIENT_PARAMS`, the only config key Metaflow reads them from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

_MISSING = "__mfs_missing__"


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
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _targets(props) -> list[Path]:
    home = metaflow_home(props.get("metaflow_home", ""))
    paths = [home / f"config_{props['profile']}.json"]
    mode = props.get("write_default", "if-missing")
    default = home / "config.json"
    if mode == "always" or (mode == "if-missing" and not default.exists()):
        paths.append(default)
    return paths


def _apply(props) -> dict:
    values = props["values"]
    files = {}
    for path in _targets(props):
        current = _read(path)
        backup = {k: (current or {}).get(k, _MISSING) for k in values}
        _write(path, {**(current or {}), **values})
        files[str(path)] = {"existed": current is not None, "backup": backup}
    return {**props, "files": files, "config_json": json.dumps(values, sort_keys=True)}


def _undo(props) -> None:
    values = props.get("values", {})
    for name, record in (props.get("files") or {}).items():
        path = Path(name)
        current = _read(path)
        if current is None:
            continue
        for key, old in record["backup"].items():
            if current.get(key, _MISSING) != values.get(key):
                continue  # changed by someone else since we wrote it: theirs now
            if old == _MISSING:
                current.pop(key, None)
            else:
                current[key] = old
        if not current and not record["existed"]:
            path.unlink()
        else:
            _write(path, current)


class MetaflowConfigProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        keys = ("values", "profile", "metaflow_home", "write_default")
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def create(self, props):
        return CreateResult(f"metaflow-profile-{props['profile']}", _apply(props))

    def update(self, _id, olds, news):
        _undo(olds)
        return UpdateResult(_apply(news))

    def delete(self, _id, props):
        _undo(props)


class MetaflowConfig(Resource, module="mfs", name="MetaflowConfig"):
    """Metaflow profile `profile` holding `values`. Output `config_json` is secret."""

    files: pulumi.Output[dict]
    config_json: pulumi.Output[str]

    def __init__(self, name: str, profile: str, values, write_default: str = "if-missing",
                 metaflow_home: str = "", opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["files", "config_json"]))
        super().__init__(
            MetaflowConfigProvider(), name,
            {
                "profile": profile,
                "values": pulumi.Output.secret(values),
                "write_default": write_default,
                "metaflow_home": metaflow_home,
                "files": None,
                "config_json": None,
            },
            opts,
        )
