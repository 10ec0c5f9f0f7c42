"""Fixtures of the reliability and security campaign (issue 5); its helpers are in kit.py.

The shared fixtures (pg15, migrated_db, router, ...) come from tests/conftest.py; this file
adds dedicated PostgreSQL clusters for tests that stop the server or create cluster-wide
roles, so that they never disturb the shared pg15."""

import pytest

from mfs.local_postgres import LocalPostgres
from mfs.postgres_binaries import DEBIAN_BIN


@pytest.fixture(scope="module")
def private_pg():
    """A PostgreSQL cluster of the module's own (may be paused, gets its own roles)."""
    with LocalPostgres(DEBIAN_BIN) as pg:
        yield pg
