"""MetaflowConfig for real in a temporary METAFLOW_HOME: profile file, config.json rules, keys
it does not own, mode 0600, restore on destroy; and Metaflow itself reads the profile."""

import json
import os
import stat
import subprocess
import sys


from components.providers.metaflow_config import MetaflowConfigProvider

VALUES = {
    "METAFLOW_DEFAULT_METADATA": "service",
    "METAFLOW_SERVICE_URL": "http://svc:1/",
    "METAFLOW_SERVICE_AUTH_KEY": "k-123",
    "METAFLOW_DATATOOLS_CLIENT_PARAMS": json.dumps({"aws_access_key_id": "a"}),
}


def props(**kw):
    return {
        "profile": "teststack",
        "values": dict(VALUES),
        "write_default": "if-missing",
        "metaflow_home": "",
        **kw,
    }


def read(path):
    return json.loads(path.read_text())


def test_profile_written_0600_and_config_json_created_only_if_missing(metaflow_home):
    p = MetaflowConfigProvider()
    outs = p.create(props()).outs
    profile = metaflow_home / "config_teststack.json"
    assert read(profile) == VALUES
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert read(metaflow_home / "config.json") == VALUES  # none existed: written too
    assert json.loads(outs["config_json"]) == VALUES
    p.delete("x", outs)
    assert not profile.exists() and not (metaflow_home / "config.json").exists()


def test_existing_config_json_untouched_unless_always_then_restored(metaflow_home):
    metaflow_home.mkdir()
    original = {"METAFLOW_SERVICE_URL": "http://old/", "METAFLOW_USER": "me"}
    (metaflow_home / "config.json").write_text(json.dumps(original))
    p = MetaflowConfigProvider()
    outs = p.create(props()).outs  # if-missing: config.json exists, left alone
    assert read(metaflow_home / "config.json") == original
    p.delete("x", outs)

    outs = p.create(props(write_default="always")).outs
    merged = read(metaflow_home / "config.json")
    assert merged["METAFLOW_USER"] == "me"  # a key we do not own survives
    assert merged["METAFLOW_SERVICE_URL"] == VALUES["METAFLOW_SERVICE_URL"]
    p.delete("x", outs)
    assert read(metaflow_home / "config.json") == original  # what we replaced is back


def test_existing_profile_keys_survive_and_a_user_edit_is_not_undone(metaflow_home):
    metaflow_home.mkdir()
    profile = metaflow_home / "config_teststack.json"
    profile.write_text(json.dumps({"METAFLOW_USER": "me"}))
    p = MetaflowConfigProvider()
    outs = p.create(props(write_default="never")).outs
    assert not (metaflow_home / "config.json").exists()
    data = read(profile)
    data["METAFLOW_SERVICE_AUTH_KEY"] = "edited-by-user"
    profile.write_text(json.dumps(data))
    p.delete("x", outs)
    assert read(profile) == {"METAFLOW_USER": "me", "METAFLOW_SERVICE_AUTH_KEY": "edited-by-user"}


def test_update_removes_keys_no_longer_owned(metaflow_home):
    p = MetaflowConfigProvider()
    outs = p.create(props(write_default="never")).outs
    news = props(write_default="never")
    del news["values"]["METAFLOW_SERVICE_AUTH_KEY"]
    news["values"]["METAFLOW_SERVICE_URL"] = "http://new/"
    assert p.diff("x", outs, news).changes
    outs2 = p.update("x", outs, news).outs
    data = read(metaflow_home / "config_teststack.json")
    assert "METAFLOW_SERVICE_AUTH_KEY" not in data and data["METAFLOW_SERVICE_URL"] == "http://new/"
    p.delete("x", outs2)
    assert not (metaflow_home / "config_teststack.json").exists()


def test_metaflow_reads_the_written_profile(metaflow_home):
    p = MetaflowConfigProvider()
    outs = p.create(props(write_default="never")).outs
    env = {**os.environ, "METAFLOW_HOME": str(metaflow_home), "METAFLOW_PROFILE": "teststack"}
    code = (
        "from metaflow import metaflow_config as c; "
        "print(c.SERVICE_URL, c.DEFAULT_METADATA, c.SERVICE_HEADERS.get('x-api-key'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["http://svc:1/", "service", "k-123"]
    p.delete("x", outs)
