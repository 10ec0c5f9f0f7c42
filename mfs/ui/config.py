"""What `mfs ui` reads from Metaflow's own configuration: the service URL and key, and the
datastore. As Metaflow does: an environment variable METAFLOW_X wins, else the key METAFLOW_X of
the profile file `$METAFLOW_HOME/config_<profile>.json` (profile from --profile, else
$METAFLOW_PROFILE), else of `config.json`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..metaflow_profile import metaflow_home


class ConfigError(ValueError):
    """The configuration does not say where the service is: one line saying what to set."""


@dataclass(frozen=True)
class UiConfig:
    service_url: str
    api_key: Optional[str]
    datastore: str  # "local" or "s3"
    local_root: Optional[Path]  # the local datastore root (<sysroot>/.metaflow)
    s3_root: Optional[str]  # s3://bucket/prefix
    s3_endpoint_url: Optional[str]
    card_local_root: Optional[Path]
    card_s3_root: Optional[str]
    profile: Optional[str]


def _profile_values(profile: Optional[str]) -> dict:
    home = metaflow_home()
    name = f"config_{profile}.json" if profile else "config.json"
    path = home / name
    if not path.exists():
        if profile:
            raise ConfigError(
                f"Metaflow profile {profile!r} not found: {path} does not exist "
                f"(deploy a stack or run `python -m mfs local`, or set METAFLOW_SERVICE_URL)"
            )
        return {}
    text = path.read_text()
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise ConfigError(f"{path} is not valid JSON ({e})") from None


def _local_root(sysroot: Optional[str]) -> Optional[Path]:
    """Metaflow's local datastore root: <sysroot>/.metaflow, else the nearest .metaflow folder
    from the current directory upwards (as Metaflow looks for it)."""
    if sysroot:
        return Path(sysroot).expanduser() / ".metaflow"
    here = Path.cwd().resolve()
    for folder in [here, *here.parents]:
        if (folder / ".metaflow").is_dir():
            return folder / ".metaflow"
    return None


def load(profile: Optional[str] = None, environ: Optional[dict] = None) -> UiConfig:
    env = os.environ if environ is None else environ
    profile = profile or env.get("METAFLOW_PROFILE") or None
    values = _profile_values(profile)

    def get(key: str) -> Optional[str]:
        v = env.get(f"METAFLOW_{key}")
        if v in (None, ""):
            v = values.get(f"METAFLOW_{key}")
        return None if v in (None, "") else str(v)

    url = get("SERVICE_URL")
    if not url:
        raise ConfigError(
            "no metadata service configured: set METAFLOW_SERVICE_URL, or give --profile "
            "(a profile `mfs local` or a deployed stack wrote)"
        )
    key = get("SERVICE_AUTH_KEY")
    headers = get("SERVICE_HEADERS")
    if not key and headers:
        try:
            key = {k.lower(): v for k, v in json.loads(headers).items()}.get("x-api-key")
        except (ValueError, AttributeError):
            pass
    datastore = (get("DEFAULT_DATASTORE") or "local").lower()
    if datastore not in ("local", "s3"):
        raise ConfigError(f"datastore {datastore!r} is not supported by mfs ui (local or s3)")
    local_root = _local_root(get("DATASTORE_SYSROOT_LOCAL"))
    card_local = get("CARD_LOCALROOT")
    s3_root = get("DATASTORE_SYSROOT_S3")
    return UiConfig(
        service_url=url.rstrip("/"),
        api_key=key,
        datastore=datastore,
        local_root=local_root,
        s3_root=s3_root.rstrip("/") if s3_root else None,
        s3_endpoint_url=get("S3_ENDPOINT_URL"),
        card_local_root=Path(card_local).expanduser()
        if card_local
        else (local_root / "mf.cards" if local_root else None),
        card_s3_root=get("CARD_S3ROOT") or (f"{s3_root.rstrip('/')}/mf.cards" if s3_root else None),
        profile=profile,
    )
