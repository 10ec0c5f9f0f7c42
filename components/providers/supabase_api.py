"""Dynamic providers over the Supabase Management API (`https://api.supabase.com`, bearer PAT).

Why a dynamic provider: Supabase's maintained provider is a Terraform provider, reachable from
Pulumi only through the CLI's Terraform bridge (a generated local SDK per user); the PyPI
`pulumi-supabase` is an unrelated, unmaintained package. The Management API is small, versioned
and published as OpenAPI (the contract test validates every request we send against it), so
`requests` with bounded retries is the least moving part.

Resources: `SupabaseProject` (project + session-pooler URL), `SupabaseBucket` (a row in
`storage.buckets` through the SQL endpoint, plus the S3 protocol switch; the Management API has
no bucket endpoint) and `SupabaseFunction` (the router deployed as an Edge Function with its
secrets). The API base URL is an input (`api_url`) so tests can point it at a local server.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from ._util import REPO_ROOT, check, http_session

API = "https://api.supabase.com"
FAILED = {"INIT_FAILED", "REMOVED", "GOING_DOWN", "RESTORE_FAILED", "PAUSE_FAILED"}
ROUTER_DIR = REPO_ROOT / "functions" / "metadata-router"


def _session(props):
    return http_session(props["access_token"]), props.get("api_url") or API


def _wait_healthy(s, api, ref, timeout, poll):
    deadline = time.monotonic() + timeout
    while True:
        project = check(s.get(f"{api}/v1/projects/{ref}"), "get project")
        if project["status"] == "ACTIVE_HEALTHY":
            return project
        if project["status"] in FAILED:
            raise RuntimeError(f"Supabase project {ref} is {project['status']}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Supabase project {ref} still {project['status']}")
        time.sleep(poll)


def _session_pooler_url(s, api, ref, password) -> str:
    pools = check(s.get(f"{api}/v1/projects/{ref}/config/database/pooler"), "get pooler")
    pool = next((p for p in pools if p["database_type"] == "PRIMARY"), pools[0])
    # Session mode (port 5432 of the pooler) keeps advisory locks and is reachable over IPv4,
    # unlike the free tier's direct db.<ref>.supabase.co host (IPv6 only).
    return (f"postgresql://{pool['db_user']}:{password}@{pool['db_host']}:5432/"
            f"{pool['db_name']}?sslmode=require")


class SupabaseProjectProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = [k for k in ("name", "organization", "region") if olds.get(k) != news.get(k)]
        changed = replaces + [k for k in ("access_token", "db_pass") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def create(self, props):
        s, api = _session(props)
        body = {"name": props["name"], "organization_slug": props["organization"],
                "db_pass": props["db_pass"]}
        if props.get("region"):
            body["region_selection"] = {"type": "specific", "code": props["region"]}
        if props.get("instance_size"):
            body["desired_instance_size"] = props["instance_size"]
        project = check(s.post(f"{api}/v1/projects", json=body), "create project")
        ref = project["ref"]
        project = _wait_healthy(s, api, ref, props.get("timeout", 900), props.get("poll", 5))
        return CreateResult(ref, {
            **props, "ref": ref, "project_region": project["region"],
            "url": f"https://{ref}.supabase.co",
            "db_url": _session_pooler_url(s, api, ref, props["db_pass"])})

    def update(self, _id, _olds, news):  # token or password rotated outside: recompute URL
        s, api = _session(news)
        return UpdateResult({**_olds, **news,
                             "db_url": _session_pooler_url(s, api, _olds["ref"], news["db_pass"])})

    def delete(self, id_, props):
        s, api = _session(props)
        resp = s.delete(f"{api}/v1/projects/{id_}")
        if resp.status_code != 404:
            check(resp, "delete project")


class SupabaseProject(Resource, module="supabase", name="Project"):
    ref: pulumi.Output[str]
    url: pulumi.Output[str]
    db_url: pulumi.Output[str]

    def __init__(self, name: str, project_name: str, organization: str, region: str,
                 access_token, db_pass, instance_size: str = "", api_url: str = API,
                 opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["db_url", "db_pass"]))
        super().__init__(SupabaseProjectProvider(), name, {
            "name": project_name, "organization": organization, "region": region,
            "instance_size": instance_size, "api_url": api_url,
            "access_token": pulumi.Output.secret(access_token),
            "db_pass": pulumi.Output.secret(db_pass),
            "ref": None, "url": None, "db_url": None, "project_region": None}, opts)


class SupabaseBucketProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = [k for k in ("ref", "bucket") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces)

    def create(self, props):
        s, api = _session(props)
        ref = props["ref"]
        check(s.patch(f"{api}/v1/projects/{ref}/config/storage",
                      json={"features": {"s3Protocol": {"enabled": True}}}), "enable S3 protocol")
        check(s.post(f"{api}/v1/projects/{ref}/database/query", json={
            "query": "insert into storage.buckets (id, name, public) values ($1, $1, false) "
                     "on conflict (id) do nothing",
            "parameters": [props["bucket"]]}), "create bucket")
        return CreateResult(f"{ref}/{props['bucket']}", {
            **props, "endpoint": f"https://{ref}.supabase.co/storage/v1/s3"})

    def delete(self, _id, props):
        if not props.get("drop_data"):
            return  # the artifacts stay; the project's own deletion removes them
        s, api = _session(props)
        check(s.post(f"{api}/v1/projects/{props['ref']}/database/query", json={
            "query": "delete from storage.buckets where id = $1",
            "parameters": [props["bucket"]]}), "delete bucket")


class SupabaseBucket(Resource, module="supabase", name="Bucket"):
    endpoint: pulumi.Output[str]

    def __init__(self, name: str, ref, bucket: str, access_token, drop_data: bool = False,
                 api_url: str = API, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(SupabaseBucketProvider(), name, {
            "ref": ref, "bucket": bucket, "drop_data": drop_data, "api_url": api_url,
            "access_token": pulumi.Output.secret(access_token), "endpoint": None}, opts)


def router_files() -> dict[str, bytes]:
    """The router's source files as the Edge Function bundle (tests, and what npm and the Worker
    build put beside them, excluded)."""
    return {str(p.relative_to(ROUTER_DIR)): p.read_bytes()
            for p in sorted(ROUTER_DIR.rglob("*"))
            if p.is_file() and p.suffix in (".ts", ".json") and "test" not in p.name
            and not {"node_modules", "dist"} & set(p.relative_to(ROUTER_DIR).parts)}


def router_hash() -> str:
    h = hashlib.sha256()
    for name, data in router_files().items():
        h.update(name.encode() + b"\0" + data)
    return h.hexdigest()


class SupabaseFunctionProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = [k for k in ("ref", "slug") if olds.get(k) != news.get(k)]
        changed = replaces + [k for k in ("source_hash", "secrets", "access_token")
                              if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=replaces)

    def _deploy(self, props):
        s, api = _session(props)
        ref, slug = props["ref"], props["slug"]
        names = sorted(props["secrets"])
        check(s.post(f"{api}/v1/projects/{ref}/secrets",
                     json=[{"name": n, "value": props["secrets"][n]} for n in names]),
              "set function secrets")
        metadata = {"entrypoint_path": "main.ts", "name": slug, "verify_jwt": False}
        files = [("metadata", (None, json.dumps(metadata), "application/json"))]
        files += [("file", (name, data, "application/typescript"))
                  for name, data in router_files().items()]
        fn = check(s.post(f"{api}/v1/projects/{ref}/functions/deploy", params={"slug": slug},
                          files=files), "deploy function")
        return {**props, "version": fn["version"], "secret_names": names,
                "url": f"https://{ref}.supabase.co/functions/v1/{slug}"}

    def create(self, props):
        outs = self._deploy(props)
        return CreateResult(f"{props['ref']}/{props['slug']}", outs)

    def update(self, _id, olds, news):
        stale = sorted(set(olds.get("secret_names", [])) - set(news["secrets"]))
        if stale:
            s, api = _session(news)
            check(s.delete(f"{api}/v1/projects/{news['ref']}/secrets", json=stale),
                  "delete stale secrets")
        return UpdateResult(self._deploy(news))

    def delete(self, _id, props):
        s, api = _session(props)
        ref = props["ref"]
        resp = s.delete(f"{api}/v1/projects/{ref}/functions/{props['slug']}")
        if resp.status_code != 404:
            check(resp, "delete function")
        if props.get("secret_names"):
            check(s.delete(f"{api}/v1/projects/{ref}/secrets", json=props["secret_names"]),
                  "delete function secrets")


class SupabaseFunction(Resource, module="supabase", name="Function"):
    url: pulumi.Output[str]

    def __init__(self, name: str, ref, slug: str, secrets: dict, access_token,
                 api_url: str = API, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(SupabaseFunctionProvider(), name, {
            "ref": ref, "slug": slug, "api_url": api_url, "source_hash": router_hash(),
            "secrets": pulumi.Output.secret(secrets),
            "access_token": pulumi.Output.secret(access_token),
            "url": None, "version": None, "secret_names": None}, opts)
