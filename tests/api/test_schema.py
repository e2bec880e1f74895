"""The service against its own OpenAPI schema: generated requests never get a 500.

Schemathesis builds requests for every operation from ``/openapi.json``
(valid and invalid ones) and sends them with the admin key, so they get
past authentication into the handlers and the store. The example budget is
small so that the run stays well under a minute. Invalid rows are not
checked for rejection: with ``?partial=true`` a batch takes its valid rows
and lists the invalid ones, on purpose.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from api_support import ADMIN, make_settings, migrate, sample_cases, sample_collectors
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app

# Schemathesis reads the schema when the tests are collected, so the app exists from import on.
FOLDER = Path(tempfile.mkdtemp(prefix="dispatch-schema-"))
URL = f"sqlite:///{FOLDER / 'dispatch.db'}"
APP = create_app(make_settings(URL, FOLDER / "cache"))


async def _app_without_lifespan(scope: Any, receive: Any, send: Any) -> None:
    """The app for Schemathesis, which would otherwise start it once and keep it to the end.

    The fixture below starts and stops the service itself.
    """
    if scope["type"] != "lifespan":
        await APP(scope, receive, send)
        return
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


schema = schemathesis.openapi.from_asgi("/openapi.json", _app_without_lifespan)


@pytest.fixture(scope="module", autouse=True)
def service() -> Iterator[None]:
    """The service on SQLite with some data in it, so that reads find something."""
    migrate(URL)
    with TestClient(APP) as client:
        client.post("/v1/cases", json={"cases": sample_cases(5)}, headers=ADMIN)
        client.post("/v1/collectors", json={"collectors": sample_collectors(2)}, headers=ADMIN)
        yield
    shutil.rmtree(FOLDER, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=5,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_gets_a_server_error(case):
    case.call_and_validate(
        headers=ADMIN,
        checks=[
            not_a_server_error,
            status_code_conformance,
            response_schema_conformance,
        ],
    )
