"""A preview of an unchanged stack from another machine shows no changes: no input holds a path
of this checkout, and every dynamic provider's diff of its own create's state against the same
inputs is empty (a generated secret or suffix is not made again). Tests the workflow runs read
only files of the repository."""

import re

import pytest
import yaml

from harness import EXPECTED, FAKE_OUTPUTS, ROOT, SECRETS, load_provider, run_program, unwrap

WORKFLOW = ROOT / ".github" / "workflows" / "pulumi-preview.yml"


def strings(value):
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("stack", sorted(EXPECTED))
def test_no_input_holds_a_path_of_this_machine(stack):
    for r in run_program(stack, SECRETS).resources:
        found = [
            s
            for s in strings({k: v for k, v in r.plain.items() if k != "__provider"})
            if str(ROOT) in s or s.startswith(("/home/", "/root/", "/work/"))
        ]
        assert not found, f"{stack}: {r.type} {r.name}: {found}"


@pytest.mark.parametrize("stack", sorted(EXPECTED))
def test_every_dynamic_provider_sees_no_change_on_an_unchanged_stack(stack):
    for r in run_program(stack, SECRETS).resources:
        if not r.type.startswith("pulumi-python:dynamic"):
            continue
        provider = load_provider(r.inputs)
        news = {k: v for k, v in unwrap(r.inputs).items() if k != "__provider"}
        fake = FAKE_OUTPUTS.get(r.type.split(":")[-1], lambda i: {})(news)
        olds = {**news, **fake}  # the state after create: inputs and outputs
        diff = provider.diff("id", olds, news)
        assert diff.changes is False, f"{stack}: {r.type} {r.name}: {diff.__dict__}"


def test_the_workflow_tests_need_only_the_repository_and_forks_skip_the_preview():
    flow = yaml.safe_load(WORKFLOW.read_text())
    run = next(s["run"] for s in flow["jobs"]["offline-tests"]["steps"] if "pytest" in s.get("run", ""))
    selected = re.search(r'-k "([^"]+)"', run).group(1).split(" or ")
    files = [p for p in (ROOT / "tests" / "pulumi").glob("test_*.py") if any(k in p.name for k in selected)]
    assert files
    for f in files + [
        ROOT / "tests" / "pulumi" / n
        for n in ("harness.py", "vendor_standin.py", "neon_standin.py", "supabase_standin.py")
    ]:
        assert "../" + "shared" not in f.read_text(), f"{f.name} reads outside the repository"
    preview = flow["jobs"]["preview"]
    # a fork's pull request gets no secrets: every step is skipped but the notice, not failed
    assert preview["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    notice, *steps = preview["steps"]
    assert notice["if"] == "env.PULUMI_ACCESS_TOKEN == ''"
    assert steps and all(s["if"] == "env.PULUMI_ACCESS_TOKEN != ''" for s in steps)
