"""compute=render under mocks: what the Render web service is given (explicit provider with the
API key as a secret, the public Deno image, the bundle as a secret file, Render's HOST/PORT
contract, secret env values, the health check), every registered argument rebuilt as the
installed pulumi_render input types, and the refusals (free plan, missing workspace id / key)."""

import collections.abc
import enum
import typing

import pulumi
import pulumi.output
import pytest
from pulumi._types import input_type_py_to_pulumi_names, is_input_type
from pulumi_render.services import WebServiceArgs, _enums, _inputs

from components.render import BUNDLE_FILE, container_env, start_command
from harness import SECRETS, is_secret, run_program, stack_config

WEB = "render:services:WebService"
NEON_URL = "postgresql://u:p@pooler:5432/postgres"  # the harness's fake Neon project URL
NS = {**vars(pulumi.output), **vars(pulumi), **vars(_enums), **vars(_inputs)}


@pytest.fixture(scope="module")
def run():
    return run_program("neon-render", {**SECRETS, "quotaScope": "team-r"})


def _concrete(hint):
    """The declared type inside pulumi.Input[Optional[...]] (Union with Awaitable and Output)."""
    if typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            origin = typing.get_origin(arg) or arg
            if arg is not type(None) and origin not in (collections.abc.Awaitable, pulumi.output.Output):
                return _concrete(arg)
    return hint


def rebuild(hint, value):
    """`value` as registered (API names) rebuilt as the pulumi_render type `hint`: an unknown or
    missing argument raises TypeError, an enum value must be one of the type's members."""
    hint = _concrete(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)  # ValueError if the installed enum has no such member
    if typing.get_origin(hint) is collections.abc.Sequence:
        assert isinstance(value, list)
        return [rebuild(typing.get_args(hint)[0], v) for v in value]
    if isinstance(hint, type) and is_input_type(hint):
        assert isinstance(value, dict), (hint, value)
        py_names = {api: py for py, api in input_type_py_to_pulumi_names(hint).items()}
        unknown = set(value) - set(py_names)
        assert not unknown, f"{hint.__name__} has no {unknown}"
        hints = typing.get_type_hints(hint.__init__, globalns=NS)
        return hint(**{py_names[k]: rebuild(hints[py_names[k]], v) for k, v in value.items()})
    assert isinstance(value, hint), (hint, value)
    return value


def test_every_argument_is_an_argument_of_the_installed_pulumi_render(run):
    service = run.one(WEB).plain
    args = rebuild(WebServiceArgs, service)
    details = args.service_details
    assert details.runtime == _enums.WebServiceDetailsCreateRuntime.IMAGE
    assert details.plan == _enums.WebServiceDetailsCreatePlan.STARTER
    assert details.region == _enums.WebServiceDetailsCreateRegion.OREGON
    assert args.image.image_path == stack_config("neon-render")["metaflow-serverless:routerImage"]
    assert args.image.owner_id == args.owner_id == "your-render-workspace-id"
    # the rebuilding itself refuses what the installed types do not declare
    with pytest.raises(AssertionError, match="no {'startCommand'}"):
        rebuild(WebServiceArgs, {**service, "startCommand": "deno"})
    with pytest.raises(ValueError):
        rebuild(WebServiceArgs, {**service, "serviceDetails": {**service["serviceDetails"], "plan": "free"}})


def test_the_provider_gets_the_render_api_key_as_a_secret(run):
    provider = run.one("pulumi:providers:render")
    assert is_secret(provider.inputs["apiKey"])
    assert provider.plain["apiKey"] == SECRETS["renderApiKey"]
    assert run.one(WEB).provider.startswith(provider.urn + "::")


def test_the_service_runs_the_public_deno_image_with_the_bundle_as_a_secret_file(run):
    service = run.one(WEB).plain
    bundle = run.one("command:local:Command")
    assert bundle.plain["create"] == "python -m mfs deno-bundle"
    assert "dir" not in bundle.plain  # runs in the project directory: no absolute path
    # the bundle is the command's output (the harness's fake stdout here)
    assert service["secretFiles"] == [{"name": BUNDLE_FILE, "content": "export default {}"}]
    details = service["serviceDetails"]
    assert details["envSpecificDetails"] == {"dockerCommand": " ".join(start_command())}
    assert start_command()[0] == "deno" and start_command()[-1] == f"/etc/secrets/{BUNDLE_FILE}"
    assert details["healthCheckPath"] == "/healthcheck"
    assert details["numInstances"] == 1
    assert "repo" not in service and "dockerfilePath" not in details["envSpecificDetails"]
    assert run.outputs["service_url"]["value"] == "https://metaflow-serverless-router.onrender.com"


def test_env_holds_render_contract_and_the_secrets_stay_secret(run):
    reg = run.one(WEB)
    assert is_secret(reg.inputs["envVars"]) and "envVars" in reg.secret_outputs
    env = {e["key"]: e["value"] for e in reg.plain["envVars"]}
    assert env == {
        "HOST": "0.0.0.0",
        "PORT": "10000",
        "QUOTA_SCOPE": "team-r",
        "DATABASE_URL": NEON_URL,
        "METADATA_API_KEY": SECRETS["apiKey"],
        # Neon bills what leaves the database: the quota counts replies before gzip
        "QUOTA_EGRESS": "uncompressed",
    }
    assert env == container_env(NEON_URL, SECRETS["apiKey"], "team-r", "neon")


def test_a_free_plan_is_refused_with_the_reason():
    with pytest.raises(Exception, match="renderPlan='free'.*creates no free instance"):
        run_program("neon-render", {**SECRETS, "renderPlan": "free"})


def test_a_missing_render_api_key_names_the_key_and_its_environment_variable(monkeypatch):
    monkeypatch.delenv("RENDER_API_KEY", raising=False)
    cfg = {k: v for k, v in SECRETS.items() if k != "renderApiKey"}
    with pytest.raises(Exception, match="renderApiKey.*RENDER_API_KEY"):
        run_program("neon-render", cfg)


def test_the_workspace_id_is_required():
    with pytest.raises(Exception, match="needs renderOwnerId"):
        run_program("neon-render", {**SECRETS, "renderOwnerId": ""})
