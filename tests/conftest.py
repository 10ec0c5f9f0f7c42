"""Shared fixtures: real PostgreSQL servers (Debian 15 and pgserver's 16), freshly migrated
databases, the real Deno router over HTTP. Helpers are in testkit.py."""

from __future__ import annotations

import secrets

import pytest

from testkit import Router, new_database  # importing testkit also puts the repo on sys.path
from mfs import migrations  # noqa: E402
from mfs.local_postgres import DEBIAN_BIN, LocalPostgres, pgserver_bin  # noqa: E402


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
    r = Router(migrated_db, secrets.token_urlsafe(24))
    yield r
    r.stop()


@pytest.fixture
def api(router):
    """A requests session with the key, and a helper to build URLs."""
    s = router.session()
    s.base = router.url
    return s
