"""Dynamic provider `NeonProject` over the Neon API v2 (`https://console.neon.tech/api/v2`).

Why a dynamic provider: Neon has no maintained Pulumi provider nor Python SDK on PyPI (the
community Terraform provider would need the CLI's Terraform bridge). One project = one create
and one delete call, so `requests` it is (through `VendorApi`: timeouts, retries).

Outputs: `db_url`, the direct connection (migrations hold a session lock, which a transaction
pooler would not keep), and `pooled_url`, the same role through Neon's PgBouncer host (`-pooler`),
which Neon's documentation recommends for serverless clients such as the Worker. Accounts that
belong to an organization must name it (`org_id`); when the key sees exactly one organization it
is used. A failed create deletes the half-made project, so a retry starts clean.
"""

from __future__ import annotations

from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from .vendor_api import VendorApi, wait_until

API = "https://console.neon.tech/api/v2"
DONE = {"finished", "skipped"}  # OperationStatus values after which nothing more happens
FAILED = {"failed", "error", "cancelled"}
REPLACE = ("region", "pg_version", "org_id")  # a project cannot move; it is made anew
OUTPUTS = ("project_id", "db_url", "pooled_url")


def _api(props) -> VendorApi:
    return VendorApi(
        props.get("api_url") or API, props["api_key"], backoff=float(props.get("retry_backoff", 1.0))
    )


def _org_id(api: VendorApi, props) -> str:
    if props.get("org_id"):
        return props["org_id"]
    orgs = api.call("GET", "/users/me/organizations", "list organizations")["organizations"]
    if len(orgs) > 1:
        raise RuntimeError(
            "the Neon API key sees several organizations: set neonOrgId to one "
            "of " + ", ".join(f"{o['id']} ({o['name']})" for o in orgs)
        )
    return orgs[0]["id"] if orgs else ""


def _wait(api: VendorApi, pid: str, operations: list, timeout: float, poll: float) -> None:
    for op in operations:  # until the endpoint accepts connections

        def status():
            st = api.call("GET", f"/projects/{pid}/operations/{op['id']}", "get operation")["operation"][
                "status"
            ]
            if st in FAILED:
                raise RuntimeError(f"Neon operation {op['id']} ({op.get('action')}) {st}")
            return st if st in DONE else None

        wait_until(status, f"Neon operation {op['id']}", timeout, poll)


def pooled(details: dict) -> str:
    """The connection URI with the pooler host in place of the endpoint's."""
    params = details["connection_parameters"]
    return details["connection_uri"].replace(f"@{params['host']}", f"@{params['pooler_host']}", 1)


class NeonProjectProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = [k for k in REPLACE if olds.get(k, "") != news.get(k, "")]
        changed = replaces + [k for k in ("name", "api_key", "api_url") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def create(self, props):
        api = _api(props)
        org = _org_id(api, props)
        project = {"name": props["name"], "pg_version": int(props["pg_version"])}
        if props.get("region"):
            project["region_id"] = props["region"]
        if org:
            project["org_id"] = org
        body = api.call("POST", "/projects", "create project", json={"project": project})
        pid = body["project"]["id"]
        try:
            _wait(
                api,
                pid,
                body.get("operations", []),
                float(props.get("timeout", 300)),
                float(props.get("poll", 2)),
            )
        except BaseException:
            api.call("DELETE", f"/projects/{pid}", "delete half-made project", absent_ok=True)
            raise
        details = body["connection_uris"][0]
        return CreateResult(
            pid,
            {
                **props,
                "org_id": props.get("org_id", ""),
                "project_id": pid,
                "db_url": details["connection_uri"],
                "pooled_url": pooled(details),
            },
        )

    def read(self, id_, props):
        found = _api(props).call("GET", f"/projects/{id_}", "get project", absent_ok=True)
        if found is None:
            return ReadResult(None, {})  # gone: refresh drops it from the state
        return ReadResult(id_, {**props, "name": found["project"]["name"]})

    def update(self, id_, olds, news):
        if olds.get("name") != news.get("name"):
            _api(news).call(
                "PATCH", f"/projects/{id_}", "rename project", json={"project": {"name": news["name"]}}
            )
        # the engine stores exactly what update returns: keep the outputs
        return UpdateResult({**news, **{k: olds[k] for k in OUTPUTS if k in olds}})

    def delete(self, id_, props):
        _api(props).call("DELETE", f"/projects/{id_}", "delete project", absent_ok=True)


class NeonProject(Resource, module="neon", name="Project"):
    project_id: pulumi.Output[str]
    db_url: pulumi.Output[str]
    pooled_url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        project_name: str,
        region: str,
        api_key,
        org_id: str = "",
        pg_version: int = 16,
        api_url: str = API,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["db_url", "pooled_url"])
        )
        super().__init__(
            NeonProjectProvider(),
            name,
            {
                "name": project_name,
                "region": region,
                "pg_version": pg_version,
                "org_id": org_id,
                "api_url": api_url,
                "api_key": pulumi.Output.secret(api_key),
                "project_id": None,
                "db_url": None,
                "pooled_url": None,
            },
            opts,
        )
