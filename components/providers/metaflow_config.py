"""Dynamic provider `MetaflowConfig`: the Metaflow client configuration of this stack.

Writes `$METAFLOW_HOME/config_<profile>.json` (default home `~/.metaflowconfig`; used with
`METAFLOW_PROFILE=<profile>`) and, when `write_default` is `always` or is `if-missing` and no
`config.json` exists, `config.json` too. Only the keys in `values` are owned: other keys of an
existing file are left as they are, and what an owned key held before is kept in the state
(`backup`, a secret) and put back on delete. A key the user changed after we wrote it is left
alone on delete. Files are written atomically with mode 0600 (mfs/metaflow_profile.py). S3 credentials travel in
`METAFLOW_DATATOOLS_CLIENT_PARAMS`, the only config key Metaflow reads them from.
"""

from __future__ import annotations

import json
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from mfs import metaflow_profile


def _apply(props) -> dict:
    paths = metaflow_profile.targets(
        props["profile"], props.get("metaflow_home", ""), props.get("write_default", "if-missing")
    )
    files = metaflow_profile.write(props["values"], paths)
    return {**props, "files": files, "config_json": json.dumps(props["values"], sort_keys=True)}


def _undo(props) -> None:
    metaflow_profile.restore(props.get("values", {}), props.get("files"))


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

    def __init__(
        self,
        name: str,
        profile: str,
        values,
        write_default: str = "if-missing",
        metaflow_home: str = "",
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["files", "config_json"])
        )
        super().__init__(
            MetaflowConfigProvider(),
            name,
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
