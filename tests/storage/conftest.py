"""The ``store`` fixture: each storage test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dbs import HOW_TO, postgres_schema, postgres_url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/llmrelay.db"
        return
    url = postgres_url()
    if url is None:
        pytest.skip(HOW_TO)
    with postgres_schema(url) as schema_url:
        yield schema_url


@pytest.fixture
def store(store_url: str):
    from llmrelay.storage import open_store

    s = open_store(store_url)
    s.migrate()
    yield s
    s.close()
