"""Dynamic provider `NeonProject` over the Neon API v2 (`https://console.neon.tech/api/v2`).

Why a dynamic provider: Neon has no maintained Pulumi provider nor Python SDK on PyPI (the
community Terraform provider would need the CLI's Terraform bridge). One project = one create
and one delete call, so `requests` it is. The project's direct (not pooled) connection URI is
used: migrations take a session advisory lock, which a transaction pooler would not keep.
"""

from __future__ import annotations

import time
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

from ._util import check, http_session

API = "https://console.neon.tech/api/v2"


class NeonProjectProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = [k for k in ("name", "region", "pg_version") if olds.get(k) != news.get(k)]
        changed = replaces + (["api_key"] if olds.get("api_key") != news.get("api_key") else [])
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def create(self, props):
        s, api = http_session(props["api_key"]), props.get("api_url") or API
        project = {"name": props["name"], "pg_version": int(props["pg_version"])}
        if props.get("region"):
            project["region_id"] = props["region"]
        body = check(s.post(f"{api}/projects", json={"project": project}), "create project")
        pid = body["project"]["id"]
        for op in body.get("operations", []):  # wait until the endpoint accepts connections
            deadline = time.monotonic() + 300
            while True:
                status = check(s.get(f"{api}/projects/{pid}/operations/{op['id']}"),
                               "get operation")["operation"]["status"]
                if status == "finished":
                    break
                if status in ("failed", "error", "cancelled") or time.monotonic() > deadline:
                    raise RuntimeError(f"Neon operation {op['id']} {status}")
                time.sleep(2)
        url = body["connection_uris"][0]["connection_uri"]
        return CreateResult(pid, {**props, "project_id": pid, "db_url": url})

    def delete(self, id_, props):
        s, api = http_session(props["api_key"]), props.get("api_url") or API
        resp = s.delete(f"{api}/projects/{id_}")
        if resp.status_code != 404:
            check(resp, "delete project")


class NeonProject(Resource, module="neon", name="Project"):
    project_id: pulumi.Output[str]
    db_url: pulumi.Output[str]

    def __init__(self, name: str, project_name: str, region: str, api_key, pg_version: int = 16,
                 api_url: str = API, opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["db_url"]))
        super().__init__(NeonProjectProvider(), name, {
            "name": project_name, "region": region, "pg_version": pg_version,
            "api_url": api_url, "api_key": pulumi.Output.secret(api_key),
            "project_id": None, "db_url": None}, opts)
