"""The run store's contract suite: every test here runs against SQLite and against PostgreSQL
(a fresh database each, chosen through ``MATCHA_DATABASE_URL`` as a user chooses it), except those
marked ``sqlite_only`` because they open SQLite's files themselves."""

from __future__ import annotations

import postgres
import pytest

BACKENDS = ["sqlite", "postgresql"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("store_backend", BACKENDS[:1] if only else BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def store_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "postgresql":
        monkeypatch.setenv("MATCHA_DATABASE_URL", postgres.new_database(request.getfixturevalue("pg_server")))
    else:
        monkeypatch.delenv("MATCHA_DATABASE_URL", raising=False)
    return str(request.param)
