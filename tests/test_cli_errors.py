"""Every `python -m mfs` command refuses bad input with one line on stderr that says what is
wrong (no traceback, no page of usage), and a non-zero exit code."""

import os
import subprocess
import sys

import pytest

from testkit import ROOT

UNREACHABLE = "postgresql://u:p@127.0.0.1:1/db"  # nothing listens on port 1
CASES = {
    "migrate without a database": (["migrate"], "give a Postgres URL"),
    "pending without a database": (["pending"], "give a Postgres URL"),
    "quota without a database": (["quota"], "give a Postgres URL"),
    "retain without a database": (["retain", "--keep-days", "1"], "give a Postgres URL"),
    "serve without a key": (["serve", UNREACHABLE], "set METADATA_API_KEY"),
    "migrate, database unreachable": (["migrate", UNREACHABLE], "cannot connect to the database"),
    "pending, database unreachable": (["pending", UNREACHABLE], "cannot connect to the database"),
    "quota, database unreachable": (["quota", UNREACHABLE], "cannot connect to the database"),
    "retain, database unreachable": (
        ["retain", UNREACHABLE, "--keep-runs", "3"],
        "cannot connect to the database",
    ),
    "migrate, not a URL": (["migrate", "not-a-url"], "invalid DSN"),
    # without --keep-days/--keep-runs retain reads the stack's stored policy first (the "say what
    # to keep" answer over a database without one: tests/test_retention.py)
    "retain without a policy": (["retain", UNREACHABLE], "cannot connect to the database"),
    "quota, bad number": (
        ["quota", UNREACHABLE, "--max-requests", "many"],
        "expected a whole number or none, not 'many'",
    ),
    "local, bad port": (["local", "--port", "eighty"], "invalid int value: 'eighty'"),
    "local, bad build": (["local", "--postgres", "oracle"], "invalid choice: 'oracle'"),
    "ping, nobody answers": (["ping", "http://127.0.0.1:1", "--timeout", "1"], "did not answer"),
    "ping without a URL": (["ping"], "give the service URL"),
    "ui without a service": (["ui"], "no metadata service configured"),
    "unknown command": (["serverless"], "invalid choice: 'serverless'"),
    "no command": ([], "the following arguments are required: COMMAND"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_clear_line(case, tmp_path):
    argv, says = CASES[case]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "MFS_"))}
    for k in ("DATABASE_URL", "SUPABASE_DB_URL", "METADATA_API_KEY"):
        env.pop(k, None)
    env["METAFLOW_HOME"] = str(tmp_path)  # no profile here
    res = subprocess.run(
        [sys.executable, "-m", "mfs", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode != 0 and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert "error: " in res.stderr and says in res.stderr, res.stderr
