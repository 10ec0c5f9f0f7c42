"""Shared fixtures: real PostgreSQL servers (Debian 15 and pgserver's 16), freshly migrated
databases, the real Deno router over HTTP. Helpers are in testkit.py.

The session marks every process it starts (tests/leftovers.py) and fails if any is still
running at its end; what root-run Postgres needs outside private homes goes to a folder of the
session's own (MFS_SHARED_DIR), removed at the end."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest

import leftovers

from testkit import Router, new_database  # importing testkit also puts the repo on sys.path
from mfs import migrations  # noqa: E402
from mfs.local_postgres import LocalPostgres  # noqa: E402
from mfs.postgres_binaries import DEBIAN_BIN, pgserver_bin  # noqa: E402


def pytest_sessionstart(session):
    os.environ.setdefault(leftovers.MARKER, f"pytest-{uuid.uuid4().hex[:12]}")
    if "MFS_SHARED_DIR" not in os.environ:
        shared = tempfile.mkdtemp(prefix="mfs-shared-")
        os.chmod(shared, 0o755)  # the postgres user must traverse it
        os.environ["MFS_SHARED_DIR"] = session.config._mfs_shared_dir = shared


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.ensure_newline()
    out = reporter.write_line if reporter else print
    if leftovers.report_and_stop(os.environ[leftovers.MARKER], out) and session.exitstatus == 0:
        session.exitstatus = 1  # something was not stopped by the test that started it
    shared = getattr(session.config, "_mfs_shared_dir", None)
    if shared:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture(scope="session")
def pg15():
    with LocalPostgres(DEBIAN_BIN) as pg:
        yield pg


@pytest.fixture(scope="session")
def pg16():
    with LocalPostgres(pgserver_bin()) as pg:
        yield pg


@pytest.fixture(params=["pg15", "pg16"])
def any_pg(request):
    """Each test using this runs on both PostgreSQL builds."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def empty_db(pg15) -> str:
    return new_database(pg15)


@pytest.fixture
def migrated_db(pg15) -> str:
    dsn = new_database(pg15)
    migrations.apply(dsn)
    return dsn


@pytest.fixture
def router(migrated_db):
    r = Router(migrated_db)
    yield r
    r.stop()


@pytest.fixture
def api(router):
    """A requests session with the key, and a helper to build URLs."""
    s = router.session()
    s.base = router.url
    return s
