"""Each dynamic provider's serialized form, as the engine ships it (`__provider`), loads in a
fresh Python process started in the program directory and runs `create` there."""

import json
import os
import subprocess
import sys

from harness import ROOT, SECRETS, run_program, unwrap

CHILD = r"""
import base64, json, sys
import dill
jobs = json.load(open(sys.argv[1]))
results = {}
for name, job in jobs.items():
    provider = dill.loads(base64.b64decode(job["blob"]))
    entry = {"class": type(provider).__name__}
    if job.get("props") is not None:
        checked = provider.check({}, job["props"])
        created = provider.create(checked.inputs)
        entry["id"] = created.id
        entry["outs"] = sorted(created.outs)
    results[name] = entry
print(json.dumps(results))
"""


def test_every_dynamic_provider_loads_and_creates_in_a_fresh_process(tmp_path, empty_db):
    no_key = {k: v for k, v in SECRETS.items() if k != "apiKey"}  # so RandomSecret is used
    dynamic = {}
    for stack in ("supabase-free", "neon-r2", "cockroach-b2", "local"):  # local last: its props
        for r in run_program(stack, no_key).resources:
            if r.type.startswith("pulumi-python:dynamic"):
                dynamic[r.type] = r
    dynamic = list(dynamic.values())
    assert len(dynamic) >= 12
    jobs = {}
    for r in dynamic:
        props = {k: v for k, v in r.plain.items() if k != "__provider"}
        kind = r.type.split("/")[-1].replace(":", "")
        if kind in ("mfsSchemaMigrations", "mfsQuotaLimits", "mfsRetentionPolicy"):
            props["dsn"] = empty_db
        elif kind == "mfsMetaflowConfig":
            props["metaflow_home"] = str(tmp_path / "home")
        elif kind != "mfsRandomSecret":
            props = None  # process-starting providers: created for real in the e2e test
        jobs[kind] = {"blob": unwrap(r.inputs["__provider"]), "props": props}
    # QuotaLimits and RetentionPolicy need the schema first: order the jobs as the engine would
    order = [
        "mfsRandomSecret",
        "mfsSchemaMigrations",
        "mfsQuotaLimits",
        "mfsRetentionPolicy",
        "mfsMetaflowConfig",
    ]
    jobs = {k: jobs[k] for k in order + [k for k in jobs if k not in order]}
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "jobs.json")],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    classes = {k: v["class"] for k, v in results.items()}
    assert classes == {
        k: k.replace("mfs", "", 1)
        .replace("supabase", "Supabase", 1)
        .replace("neon", "Neon", 1)
        .replace("b2", "B2", 1)
        + "Provider"
        for k in jobs
    }, classes
    assert "value" in results["mfsRandomSecret"]["outs"]
    assert "applied" in results["mfsSchemaMigrations"]["outs"]
    assert results["mfsQuotaLimits"]["id"] == "quota-default"
    assert "runs_deleted_at_deploy" in results["mfsRetentionPolicy"]["outs"]
    assert (tmp_path / "home" / "config_local.json").exists()
