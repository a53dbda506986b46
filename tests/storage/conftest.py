"""The ``store`` fixture: each storage test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dbs import database_for


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    with database_for(request.param, str(tmp_path)) as url:
        yield url


@pytest.fixture
def store(store_url: str):
    from llmrelay.storage import open_store

    s = open_store(store_url)
    s.migrate()
    yield s
    s.close()
