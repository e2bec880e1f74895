"""Fixtures of the service tests: SQLite always, PostgreSQL when configured.

Every test that takes ``database_url`` runs twice: on a fresh SQLite file and
on a real PostgreSQL server named by ``DISPATCH_TEST_DATABASE_URL``. Without
that variable the PostgreSQL runs are skipped with a loud reason, or fail
when ``DISPATCH_REQUIRE_POSTGRES=1`` (as on CI, see ``.ci/run``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import (
    BACKENDS,
    empty_postgres,
    fresh_database,
    make_settings,
    migrate,
    postgres_schema,
    running_service,
)
from fastapi.testclient import TestClient
from sqlalchemy import make_url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (cheaper than migrating every time)."""
    folder = tmp_path_factory.mktemp("template")
    with fresh_database("sqlite", folder) as url:
        return Path(make_url(url).database or "")


@pytest.fixture(scope="session")
def postgres_shared() -> Iterator[str]:
    """A migrated PostgreSQL schema that each test empties before use."""
    with postgres_schema() as url:
        migrate(url)
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database at the latest schema, on each backend."""
    if request.param == "sqlite":
        target = tmp_path / "dispatch.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgres_shared")
    empty_postgres(url)
    return url


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Road networks and matrices cached for the whole run."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def client(database_url: str, cache_dir: Path) -> Iterator[TestClient]:
    """A client of a service on an empty database, without plan workers."""
    with running_service(make_settings(database_url, cache_dir)) as client:
        yield client
