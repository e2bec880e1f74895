"""Helpers of the service tests: databases on both backends, services, keys, sample rows."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from api.main import create_app
from api.settings import Settings
from dispatch import io
from dispatch.model import ALL_DAY, Case, Collector, format_clock
from dispatch.store import Base, Store

ADMIN_KEY = "test-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
LINK_SECRET = "test-link-secret"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
BACKENDS = ("sqlite", "postgresql")


def postgres_base_url() -> str:
    """The test server's URL; skips (or fails, on CI) the calling test without one."""
    url = os.environ.get("DISPATCH_TEST_DATABASE_URL", "")
    if not url:
        message = (
            "POSTGRESQL TESTS NOT RUN: set DISPATCH_TEST_DATABASE_URL to a PostgreSQL "
            "database (see .ci/run)"
        )
        if os.environ.get("DISPATCH_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{message} (DISPATCH_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(message)
    return url


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose connections work in a new, empty schema of the test server; dropped after."""
    base = postgres_base_url()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """A new database at the latest schema: an SQLite file in ``folder`` or a PostgreSQL schema."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / f'dispatch-{uuid.uuid4().hex[:8]}.db'}"
        migrate(url)
        yield url
        return
    with postgres_schema() as url:
        migrate(url)
        yield url


def migrate(url: str) -> None:
    """Bring a database to the latest schema."""
    store = Store(url)
    store.migrate()
    store.close()


def empty_postgres(url: str) -> None:
    """Delete every row of a migrated PostgreSQL schema (the data version starts again at 0)."""
    engine = create_engine(url)
    with engine.begin() as connection:
        # DELETE beats TRUNCATE on tables this small: no new files to create and sync.
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
        connection.execute(text("INSERT INTO store_state (id, data_version) VALUES (1, 0)"))
    engine.dispose()


def make_settings(database_url: str, cache_dir: Path, **overrides: Any) -> Settings:
    """Settings of a test service: no workers unless asked, known admin key and link secret."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "admin_key": ADMIN_KEY,
        "link_secret": LINK_SECRET,
        "cache_dir": cache_dir,
        "workers": 0,
        # The fixtures hand out migrated databases; a test of migrating on start asks for it.
        "migrate": False,
        "poll_s": 0.2,
        "timezone": "Europe/Helsinki",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextmanager
def running_service(settings: Settings) -> Iterator[TestClient]:
    """A started service (schema migrated, workers running) and a client of it."""
    with TestClient(create_app(settings)) as client:
        yield client


def new_key(client: TestClient, *scopes: str, name: str = "test") -> dict[str, str]:
    """Headers with a new API key holding ``scopes``."""
    response = client.post("/v1/keys", json={"name": name, "scopes": list(scopes)}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


def case_row(case: Case) -> dict[str, Any]:
    """A case as the API takes it."""
    windows = [] if case.windows == (ALL_DAY,) else [str(w) for w in case.windows]
    return {
        "id": case.id,
        "lat": case.location.lat,
        "lon": case.location.lon,
        "address": case.address,
        "days_past_due": case.days_past_due,
        "amount_cents": case.amount_cents,
        "value_cents": case.value,
        "skills": sorted(case.skills),
        "service_s": case.service_s,
        "windows": windows,
        "flags": sorted(case.flags),
        "debtor_name": case.debtor_name,
        "phone": case.phone,
        "national_id": case.national_id,
        "min_crew": case.min_crew,
        "appointment_s": case.appointment_s,
        "appointment_tolerance_s": case.appointment_tolerance_s,
        "load": case.load,
    }


def collector_row(collector: Collector) -> dict[str, Any]:
    """A collector as the API takes it."""
    return {
        "id": collector.id,
        "name": collector.name,
        "start_lat": collector.start.lat,
        "start_lon": collector.start.lon,
        "end_lat": collector.end.lat,
        "end_lon": collector.end.lon,
        "shift_start": format_clock(collector.shift.start_s),
        "shift_end": format_clock(collector.shift.end_s),
        "skills": sorted(collector.skills),
        "max_visits": collector.max_visits,
        "mode": collector.mode.value,
        "break_window": None if collector.break_window is None else str(collector.break_window),
        "break_s": collector.break_s,
        "capacity": collector.capacity,
    }


def sample_cases(count: int = 120) -> list[dict[str, Any]]:
    """The first cases of the sample city, as the API takes them."""
    return [case_row(c) for c in io.read_cases(SAMPLE / "cases.csv").items[:count]]


def sample_collectors(count: int = 10) -> list[dict[str, Any]]:
    """The first collectors of the sample city, as the API takes them."""
    return [collector_row(k) for k in io.read_collectors(SAMPLE / "collectors.csv").items[:count]]


def wait_for(check: Callable[[], Any], *, timeout_s: float = 60.0, every_s: float = 0.1) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting after {timeout_s:g} s", pytrace=False)
        time.sleep(every_s)


def wait_for_job(
    client: TestClient, job_id: str, *, until: tuple[str, ...], timeout_s: float = 60.0
) -> dict[str, Any]:
    """Poll a plan job until its status is one of ``until``."""

    def status() -> dict[str, Any] | None:
        job = client.get(f"/v1/jobs/{job_id}", headers=ADMIN).json()
        return job if job["status"] in until else None

    return wait_for(status, timeout_s=timeout_s)
