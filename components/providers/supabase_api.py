"""Dynamic providers over the Supabase Management API (`https://api.supabase.com`, bearer PAT).

Why a dynamic provider: Supabase's maintained provider is a Terraform provider, reachable from
Pulumi only through the CLI's Terraform bridge (a generated local SDK per user); the PyPI
`pulumi-supabase` is an unrelated, unmaintained package. The Management API is small, versioned
and published as OpenAPI (the contract test validates every request we send against it), so
`requests` through `VendorApi` (timeouts, retries) is the least moving part.

Resources: `SupabaseProject` (project, its session-pooler URL for migrations and its
transaction-pooler URL for the Edge Function), `SupabaseBucket` (a bucket made and removed
through the project's own Storage API with the service key, plus the S3 protocol switch; the
Management API has no bucket endpoint, and SQL deletes are refused by Storage's
`protect_buckets_delete` trigger) and `SupabaseFunction` (the router deployed as an Edge Function
with its secrets). The API base URLs are inputs (`api_url`, `storage_url`) so tests can point
them at local servers.
"""

from __future__ import annotations

import hashlib
import json
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from ._util import REPO_ROOT
from .vendor_api import VendorApi, wait_until

API = "https://api.supabase.com"
STORAGE = "https://{ref}.supabase.co/storage/v1"  # the project's own Storage API
FAILED = {"INIT_FAILED", "REMOVED", "GOING_DOWN", "RESTORE_FAILED", "PAUSE_FAILED"}
GONE = {"REMOVED", "GOING_DOWN"}  # refresh treats such a project as deleted
ROUTER_DIR = REPO_ROOT / "functions" / "metadata-router"
PROJECT_OUTPUTS = ("ref", "url", "db_url", "pooler_url", "project_region")


def _api(props) -> VendorApi:
    return VendorApi(
        props.get("api_url") or API, props["access_token"], backoff=float(props.get("retry_backoff", 1.0))
    )


def _wait_healthy(api, ref, timeout, poll):
    def healthy():
        project = api.call("GET", f"/v1/projects/{ref}", "get project")
        if project["status"] in FAILED:
            raise RuntimeError(f"Supabase project {ref} is {project['status']}")
        return project if project["status"] == "ACTIVE_HEALTHY" else None

    return wait_until(healthy, f"Supabase project {ref} healthy", timeout, poll)


def _pooler_urls(api, ref, password) -> dict:
    """Session mode (port 5432 of the shared pooler) keeps session locks and is reachable over
    IPv4, unlike the free tier's direct db.<ref>.supabase.co host (IPv6 only): migrations use it.
    Transaction mode (6543) is what Supabase advises for serverless and edge functions."""
    pools = api.call("GET", f"/v1/projects/{ref}/config/database/pooler", "get pooler")
    pool = next((p for p in pools if p["database_type"] == "PRIMARY"), pools[0])
    url = f"postgresql://{pool['db_user']}:{password}@{pool['db_host']}:{{}}/{pool['db_name']}"
    return {
        "db_url": url.format(5432) + "?sslmode=require",
        "pooler_url": url.format(6543) + "?sslmode=require",
    }


def service_keys(api, ref) -> dict:
    """{"anon": ..., "service_role": ...}: the project's legacy JWT keys."""
    keys = api.call("GET", f"/v1/projects/{ref}/api-keys", "get API keys", params={"reveal": "true"})
    found = {k["name"]: k.get("api_key") for k in keys if k["name"] in ("anon", "service_role")}
    if not (found.get("anon") and found.get("service_role")):
        raise RuntimeError(
            f"Supabase project {ref} has no legacy anon/service_role JWT keys "
            "(the bucket is made with the service key and S3 session-token auth "
            "needs both): re-enable the legacy API keys in the dashboard"
        )
    return found


class SupabaseProjectProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = [k for k in ("name", "organization", "region") if olds.get(k) != news.get(k)]
        changed = replaces + [
            k
            for k in ("access_token", "db_pass", "instance_size", "api_url")
            if olds.get(k, "") != news.get(k, "")
        ]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def create(self, props):
        api = _api(props)
        body = {
            "name": props["name"],
            "organization_slug": props["organization"],
            "db_pass": props["db_pass"],
        }
        if props.get("region"):
            body["region_selection"] = {"type": "specific", "code": props["region"]}
        if props.get("instance_size"):
            body["desired_instance_size"] = props["instance_size"]
        ref = api.call("POST", "/v1/projects", "create project", json=body)["ref"]
        try:
            project = _wait_healthy(api, ref, float(props.get("timeout", 900)), float(props.get("poll", 5)))
            urls = _pooler_urls(api, ref, props["db_pass"])
        except BaseException:  # a retry would make a second project: remove this one
            api.call("DELETE", f"/v1/projects/{ref}", "delete half-made project", absent_ok=True)
            raise
        return CreateResult(
            ref,
            {
                **props,
                "ref": ref,
                "project_region": project["region"],
                "url": f"https://{ref}.supabase.co",
                **urls,
            },
        )

    def read(self, id_, props):
        project = _api(props).call("GET", f"/v1/projects/{id_}", "get project", absent_ok=True)
        if project is None or project["status"] in GONE:
            return ReadResult(None, {})
        return ReadResult(id_, props)

    def update(self, id_, olds, news):
        api = _api(news)
        outs = {**news, **{k: olds[k] for k in PROJECT_OUTPUTS if k in olds}}
        if news.get("instance_size", "") != olds.get("instance_size", "") and news.get("instance_size"):
            api.call(
                "PATCH",
                f"/v1/projects/{id_}/billing/addons",
                "change instance size",
                json={"addon_type": "compute_instance", "addon_variant": f"ci_{news['instance_size']}"},
            )
        if news["db_pass"] != olds.get("db_pass"):  # the database's password, then the URLs
            api.call(
                "PATCH",
                f"/v1/projects/{id_}/database/password",
                "set database password",
                json={"password": news["db_pass"]},
            )
            outs.update(_pooler_urls(api, id_, news["db_pass"]))
        return UpdateResult(outs)

    def delete(self, id_, props):
        _api(props).call("DELETE", f"/v1/projects/{id_}", "delete project", absent_ok=True)


class SupabaseProject(Resource, module="supabase", name="Project"):
    ref: pulumi.Output[str]
    url: pulumi.Output[str]
    db_url: pulumi.Output[str]
    pooler_url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        project_name: str,
        organization: str,
        region: str,
        access_token,
        db_pass,
        instance_size: str = "",
        api_url: str = API,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["db_url", "pooler_url", "db_pass"])
        )
        super().__init__(
            SupabaseProjectProvider(),
            name,
            {
                "name": project_name,
                "organization": organization,
                "region": region,
                "instance_size": instance_size,
                "api_url": api_url,
                "access_token": pulumi.Output.secret(access_token),
                "db_pass": pulumi.Output.secret(db_pass),
                "ref": None,
                "url": None,
                "db_url": None,
                "pooler_url": None,
                "project_region": None,
            },
            opts,
        )


def _storage(props) -> tuple[VendorApi, dict]:
    """The project's Storage API with the service key, and the project's keys."""
    keys = service_keys(_api(props), props["ref"])
    base = (props.get("storage_url") or STORAGE).format(ref=props["ref"])
    return VendorApi(
        base,
        keys["service_role"],
        headers={"apikey": keys["service_role"]},
        backoff=float(props.get("retry_backoff", 1.0)),
    ), keys


class SupabaseBucketProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = [k for k in ("ref", "bucket") if olds.get(k) != news.get(k)]
        changed = replaces + [
            k for k in ("drop_data", "access_token", "api_url", "storage_url") if olds.get(k) != news.get(k)
        ]
        return DiffResult(changes=bool(changed), replaces=replaces)

    def _s3(self, props, keys) -> dict:
        """Supabase's documented session-token S3 auth: access key = project ref, secret = anon
        key, session token = a JWT (the service key, so Metaflow may read and write)."""
        return {
            **props,
            "endpoint": f"https://{props['ref']}.supabase.co/storage/v1/s3",
            "access_key_id": props["ref"],
            "secret_access_key": keys["anon"],
            "session_token": keys["service_role"],
        }

    def create(self, props):
        api, ref = _api(props), props["ref"]
        api.call(
            "PATCH",
            f"/v1/projects/{ref}/config/storage",
            "enable S3 protocol",
            json={"features": {"s3Protocol": {"enabled": True}}},
        )
        storage, keys = _storage(props)
        if storage.call("GET", f"/bucket/{props['bucket']}", "get bucket", absent_ok=True) is None:
            storage.call(
                "POST",
                "/bucket",
                "create bucket",
                json={"id": props["bucket"], "name": props["bucket"], "public": False},
            )
        return CreateResult(f"{ref}/{props['bucket']}", self._s3(props, keys))

    def read(self, id_, props):
        if _api(props).call("GET", f"/v1/projects/{props['ref']}", "get project", absent_ok=True) is None:
            return ReadResult(None, {})
        storage, keys = _storage(props)
        if storage.call("GET", f"/bucket/{props['bucket']}", "get bucket", absent_ok=True) is None:
            return ReadResult(None, {})
        return ReadResult(id_, self._s3(props, keys))

    def update(self, _id, olds, news):
        return UpdateResult(self._s3(news, service_keys(_api(news), news["ref"])))

    def delete(self, _id, props):
        if not props.get("drop_data"):
            return  # the artifacts stay; the project's own deletion removes them
        if _api(props).call("GET", f"/v1/projects/{props['ref']}", "get project", absent_ok=True) is None:
            return  # the project, and every bucket with it, is gone already
        storage, _ = _storage(props)
        if (
            storage.call("POST", f"/bucket/{props['bucket']}/empty", "empty bucket", absent_ok=True)
            is not None
        ):
            storage.call("DELETE", f"/bucket/{props['bucket']}", "delete bucket", absent_ok=True)


class SupabaseBucket(Resource, module="supabase", name="Bucket"):
    endpoint: pulumi.Output[str]
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]
    session_token: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        ref,
        bucket: str,
        access_token,
        drop_data: bool = False,
        api_url: str = API,
        storage_url: str = STORAGE,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["secret_access_key", "session_token"])
        )
        super().__init__(
            SupabaseBucketProvider(),
            name,
            {
                "ref": ref,
                "bucket": bucket,
                "drop_data": drop_data,
                "api_url": api_url,
                "storage_url": storage_url,
                "access_token": pulumi.Output.secret(access_token),
                "endpoint": None,
                "access_key_id": None,
                "secret_access_key": None,
                "session_token": None,
            },
            opts,
        )


def router_files() -> dict[str, bytes]:
    """The router's source files as the Edge Function bundle (tests, and what npm and the Worker
    build put beside them, excluded)."""
    return {
        str(p.relative_to(ROUTER_DIR)): p.read_bytes()
        for p in sorted(ROUTER_DIR.rglob("*"))
        if p.is_file()
        and p.suffix in (".ts", ".json")
        and "test" not in p.name
        and not {"node_modules", "dist"} & set(p.relative_to(ROUTER_DIR).parts)
    }


def router_hash() -> str:
    h = hashlib.sha256()
    for name, data in router_files().items():
        h.update(name.encode() + b"\0" + data)
    return h.hexdigest()


class SupabaseFunctionProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        replaces = [k for k in ("ref", "slug") if olds.get(k) != news.get(k)]
        changed = replaces + [
            k for k in ("source_hash", "secrets", "access_token", "api_url") if olds.get(k) != news.get(k)
        ]
        return DiffResult(changes=bool(changed), replaces=replaces)

    def _deploy(self, props):
        api = _api(props)
        ref, slug = props["ref"], props["slug"]
        names = sorted(props["secrets"])
        api.call(
            "POST",
            f"/v1/projects/{ref}/secrets",
            "set function secrets",
            json=[{"name": n, "value": props["secrets"][n]} for n in names],
        )
        metadata = {"entrypoint_path": "main.ts", "name": slug, "verify_jwt": False}
        files = [("metadata", (None, json.dumps(metadata), "application/json"))]
        files += [("file", (name, data, "application/typescript")) for name, data in router_files().items()]
        fn = api.call(
            "POST",
            f"/v1/projects/{ref}/functions/deploy",
            "deploy function",
            params={"slug": slug},
            files=files,
        )
        return {
            **props,
            "version": fn["version"],
            "secret_names": names,
            "url": f"https://{ref}.supabase.co/functions/v1/{slug}",
        }

    def create(self, props):
        try:
            outs = self._deploy(props)
        except BaseException:  # secrets set before a failed deploy must not linger
            self._remove(props, sorted(props["secrets"]))
            raise
        return CreateResult(f"{props['ref']}/{props['slug']}", outs)

    def read(self, id_, props):
        found = _api(props).call(
            "GET", f"/v1/projects/{props['ref']}/functions/{props['slug']}", "get function", absent_ok=True
        )
        if found is None:
            return ReadResult(None, {})
        return ReadResult(id_, {**props, "version": found["version"]})

    def update(self, _id, olds, news):
        stale = sorted(set(olds.get("secret_names") or []) - set(news["secrets"]))
        if stale:
            _api(news).call(
                "DELETE",
                f"/v1/projects/{news['ref']}/secrets",
                "delete stale secrets",
                json=stale,
                absent_ok=True,
            )
        return UpdateResult(self._deploy(news))

    def delete(self, _id, props):
        self._remove(props, props.get("secret_names"))

    def _remove(self, props, secret_names):
        api, ref = _api(props), props["ref"]
        api.call("DELETE", f"/v1/projects/{ref}/functions/{props['slug']}", "delete function", absent_ok=True)
        if secret_names:
            api.call(
                "DELETE",
                f"/v1/projects/{ref}/secrets",
                "delete function secrets",
                json=secret_names,
                absent_ok=True,
            )


class SupabaseFunction(Resource, module="supabase", name="Function"):
    url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        ref,
        slug: str,
        secrets: dict,
        access_token,
        api_url: str = API,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__(
            SupabaseFunctionProvider(),
            name,
            {
                "ref": ref,
                "slug": slug,
                "api_url": api_url,
                "source_hash": router_hash(),
                "secrets": pulumi.Output.secret(secrets),
                "access_token": pulumi.Output.secret(access_token),
                "url": None,
                "version": None,
                "secret_names": None,
            },
            opts,
        )
