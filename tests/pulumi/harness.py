"""Run this Pulumi program under `pulumi.runtime.set_mocks` and record what it registers.

`run_program(stack)` merges Pulumi.yaml defaults with stacks/Pulumi.<stack>.yaml as the CLI
would, runs `__main__.py`, and returns a `Run` with every resource registration (type, name,
parent, inputs with secrets still wrapped, additional secret outputs, retain-on-delete) and the
stack outputs. With `real=True` dynamic resources are really created (decode `__provider`,
`check` then `create`, as pulumi/dynamic/__main__.py does), and `Run.destroy()` deletes them
in reverse order.
"""

from __future__ import annotations

import base64
import concurrent.futures
import os
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

import dill
import pulumi
import yaml
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import rpc

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "metaflow-serverless"
SECRET_SIG = rpc._special_sig_key if hasattr(rpc, "_special_sig_key") else "4dabf18193072939515e22adb298388d"
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"
DYNAMIC = "pulumi-python:dynamic"
D = DYNAMIC + "/"  # prefix of a dynamic resource's type

# distinctive fake secret values: none may appear outside a secret wrapper
SECRETS = {
    "supabaseAccessToken": "sbp-TOKEN-0001",
    "s3AccessKeyId": "S3KEY-0002",
    "s3SecretAccessKey": "S3SECRET-0003",
    "neonApiKey": "NEON-KEY-0004",
    "b2ApplicationKeyId": "B2ID-0005",
    "b2ApplicationKey": "B2KEY-0006",
    "apiKey": "API-KEY-0007",
    "renderApiKey": "rnd-KEY-0008",
}

EXPECTED = {
    # stack: {component: child types that prove the backend choice}
    "local": {
        "Database": [D + "mfs:LocalPostgres", D + "mfs:SchemaMigrations"],
        "ObjectStore": [D + "mfs:LocalS3"],
        "MetadataCompute": [D + "mfs:LocalRouter"],
    },
    "supabase-free": {
        "Database": [D + "supabase:Project", D + "mfs:SchemaMigrations"],
        "ObjectStore": [D + "supabase:Bucket"],
        "MetadataCompute": [D + "supabase:Function"],
    },
    "neon-r2": {
        "Database": [D + "neon:Project", D + "mfs:SchemaMigrations"],
        "ObjectStore": ["cloudflare:index/r2Bucket:R2Bucket"],
        "MetadataCompute": ["command:local:Command", "cloudflare:index/workersScript:WorkersScript"],
    },
    "cockroach-b2": {
        "Database": [
            "cockroach:index/cluster:Cluster",
            "cockroach:index/sqlUser:SqlUser",
            D + "mfs:SchemaMigrations",
        ],
        "ObjectStore": [D + "b2:Bucket"],
        "MetadataCompute": ["gcp:cloudrunv2/service:Service", "gcp:secretmanager/secret:Secret"],
    },
    "neon-cloudrun": {
        "Database": [D + "neon:Project"],
        "ObjectStore": ["cloudflare:index/r2Bucket:R2Bucket"],
        "MetadataCompute": ["gcp:cloudrunv2/service:Service"],
    },
    "neon-render": {
        "Database": [D + "neon:Project", D + "mfs:SchemaMigrations"],
        "ObjectStore": ["cloudflare:index/r2Bucket:R2Bucket"],
        "MetadataCompute": ["pulumi:providers:render", "command:local:Command", "render:services:WebService"],
    },
}


def is_secret(value) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE


def unwrap(value):
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def stack_config(stack: str, overrides: dict | None = None) -> dict:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    cfg = {f"{PROJECT}:{k}": v.get("default") for k, v in project["config"].items() if "default" in v}
    stack_file = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    cfg.update(stack_file.get("config") or {})
    for k, v in (overrides or {}).items():
        cfg[k if ":" in k else f"{PROJECT}:{k}"] = v
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in cfg.items() if v is not None}


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict
    secret_outputs: list
    retain_on_delete: bool
    dependencies: list
    provider: str  # "<provider urn>::<id>" of an explicit provider, else ""

    @property
    def plain(self) -> dict:
        return unwrap(self.inputs)


@dataclass
class Run:
    resources: list
    outputs: dict  # stack exports: name -> {"value": ..., "secret": bool}
    created: list  # (provider, id, outs) of really created dynamic resources

    def by_type(self, type_: str) -> list:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> Registration:
        found = self.by_type(type_)
        assert len(found) == 1, f"{type_}: {len(found)} registrations"
        return found[0]

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.resources if r.urn == urn)

    def destroy(self):
        errors = []
        while self.created:
            provider, id_, outs = self.created.pop()
            try:
                in_thread(provider.delete, id_, outs)
            except Exception as exc:  # keep deleting the rest
                errors.append(exc)
        if errors:
            raise errors[0]


def in_thread(fn, *args):
    """Provider calls run off the SDK's threads (which own an event loop), like the host."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def load_provider(inputs: dict):
    blob = unwrap(inputs["__provider"])
    return dill.loads(base64.b64decode(blob))


FAKE_OUTPUTS = {
    "SchemaMigrations": lambda i: {"applied": i.get("migrations", [])},
    "RandomSecret": lambda i: {"value": "fake-generated-secret"},
    "RandomSuffix": lambda i: {"value": "a1b2c3"},
    "MetaflowConfig": lambda i: {"config_json": "{}", "files": {}},
    "LocalPostgres": lambda i: {
        "pid": 1,
        "port": 5432,
        "url": "postgresql://postgres:pw@127.0.0.1:5432/postgres",
    },
    "LocalS3": lambda i: {
        "pid": 2,
        "port": 9000,
        "endpoint": "http://127.0.0.1:9000",
        "access_key_id": "AK",
        "secret_access_key": "SK",
    },
    "LocalRouter": lambda i: {"pid": 3, "port": 8080, "url": "http://127.0.0.1:8080"},
    "Project": lambda i: {
        "ref": "abcdefghijklmnopqrst",
        "project_id": "neon-proj",
        "url": "https://abcdefghijklmnopqrst.supabase.co",
        "db_url": "postgresql://u:p@pooler:5432/postgres",
        "pooled_url": "postgresql://u:p@ep-1-pooler.neon.example/neondb",
        "pooler_url": "postgresql://u:p@pooler:6543/postgres",
    },
    "Bucket": lambda i: {
        "endpoint": "https://s3.example",
        "access_key_id": "B2K",
        "secret_access_key": "B2S",
        "bucket_id": "b",
        "session_token": "JWT",
    },
    "cloudflare:index/accountToken:AccountToken": lambda i: {"value": "r2-token-value"},
    "Function": lambda i: {"url": "https://abcdefghijklmnopqrst.supabase.co/functions/v1/x"},
    "cockroach:index/cluster:Cluster": lambda i: {
        "regions": [{"name": "us-east-1", "sqlDns": "crdb.example"}]
    },
    "gcp:cloudrunv2/service:Service": lambda i: {"uri": "https://router-xyz.a.run.app"},
    "gcp:serviceaccount/account:Account": lambda i: {"email": "sa@p.iam.gserviceaccount.com"},
    "gcp:secretmanager/secretVersion:SecretVersion": lambda i: {"version": "1"},
    "command:local:Command": lambda i: {"stdout": "export default {}"},
    "render:services:WebService": lambda i: {
        "serviceDetails": {
            **i.get("serviceDetails", {}),
            "url": "https://metaflow-serverless-router.onrender.com",
        }
    },
}


class ProgramMocks(pulumi.runtime.Mocks):
    def __init__(self, real: bool):
        self.real = real
        self.created = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = dict(args.inputs)
        if args.typ.startswith(DYNAMIC) and self.real:
            provider = load_provider(inputs)
            props = unwrap({k: v for k, v in inputs.items() if k != "__provider"})
            checked = in_thread(provider.check, {}, props)
            result = in_thread(provider.create, checked.inputs)
            outs = result.outs or {}
            self.created.append((provider, result.id, outs))
            return result.id, {**outs, "__provider": inputs["__provider"]}
        short = args.typ.split(":")[-1]
        fake = FAKE_OUTPUTS.get(args.typ) or FAKE_OUTPUTS.get(short) or (lambda i: {})
        return f"{args.name}-id", {**inputs, **fake(unwrap(inputs))}

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token.endswith("getAccountApiTokenPermissionGroupsList"):
            return {
                "results": [{"id": "pg-" + args.args["name"].split()[-1].lower(), "name": args.args["name"]}]
            }
        return {}


class RecordingMonitor(pmocks.MockMonitor):
    def __init__(self, mocks):
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    custom=bool(request.custom),
                    inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
                    secret_outputs=list(request.additionalSecretOutputs),
                    retain_on_delete=bool(request.retainOnDelete),
                    dependencies=list(request.dependencies),
                    provider=request.provider,
                )
            )
        return response


def run_program(stack: str, config: dict | None = None, real: bool = False) -> Run:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    mocks = ProgramMocks(real)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_all_config(stack_config(stack, config))
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)

    exported: dict = {}

    async def collect(outputs: dict):
        for key, value in outputs.items():
            out = pulumi.Output.from_input(value)
            exported[key] = {"value": await out.future(with_unknowns=True), "secret": await out.is_secret()}

    @pulumi.runtime.test
    def program():
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        finally:
            os.chdir(cwd)
        stack = pulumi.runtime.settings.get_root_resource()
        return pulumi.Output.from_input(collect(dict(stack.outputs)))

    try:
        program()
    except BaseException:
        # resources really created before the failure must not outlive it
        Run(monitor.registrations, exported, mocks.created).destroy()
        raise
    return Run(monitor.registrations, exported, mocks.created)
