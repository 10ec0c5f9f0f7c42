"""The scene of real runs the UI tests share (built once per session: Metaflow runs are slow)."""

import pytest

from testkit import new_database
from mfs import migrations

from .uikit import Scene, age_run


@pytest.fixture(scope="session")
def ui_scene(pg15, tmp_path_factory):
    dsn = new_database(pg15)
    migrations.apply(dsn)
    scene = Scene(dsn, tmp_path_factory.mktemp("ui"))
    scene.dsn = dsn
    age_run(dsn, "UiFailFlow", 600)
    try:
        yield scene
    finally:
        scene.close()
