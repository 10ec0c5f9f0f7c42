import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parents[1]):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import uuid

import pytest


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A throwaway real Postgres server, started by this program's own LocalPostgres provider."""
    from components.providers.local_postgres import LocalPostgresProvider

    provider = LocalPostgresProvider()
    props = {"state_dir": str(tmp_path_factory.mktemp("pg")), "port": 0, "drop_data": True}
    created = provider.create(props)
    yield created.outs
    provider.delete(created.id, created.outs)


@pytest.fixture
def fresh_db(postgres):
    """The URL of a new, empty database on the session's server."""
    import asyncpg

    from components.providers._util import run_async

    name = "t_" + uuid.uuid4().hex[:10]

    async def create():
        con = await asyncpg.connect(postgres["url"])
        await con.execute(f"create database {name}")
        await con.close()

    run_async(create())
    return postgres["url"].rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def metaflow_home(tmp_path, monkeypatch):
    home = tmp_path / "mfhome"
    monkeypatch.setenv("METAFLOW_HOME", str(home))
    return home
