"""Every error is a JSON object with a stable code; no trace ever reaches a client."""

from __future__ import annotations

from api_support import ADMIN, make_settings, running_service
from fastapi.testclient import TestClient

from api.main import create_app


def _error(response):
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message", "field"} <= set(body["error"])
    return body["error"]


def test_unknown_paths_and_methods_are_json_errors(client):
    missing = client.get("/v1/nothing-here", headers=ADMIN)
    wrong_method = client.delete("/v1/cases", headers=ADMIN)

    assert missing.status_code == 404 and _error(missing)["code"] == "not_found"
    assert wrong_method.status_code == 405
    assert _error(wrong_method)["code"] == "method_not_allowed"


def test_a_malformed_body_is_422_with_the_field_at_fault(client):
    not_json = client.post(
        "/v1/cases",
        content=b"{not json",
        headers=ADMIN | {"content-type": "application/json"},
    )
    wrong_shape = client.post("/v1/cases", json={"rows": []}, headers=ADMIN)
    bad_query = client.get("/v1/cases", params={"limit": 0}, headers=ADMIN)

    assert not_json.status_code == 422 and _error(not_json)["code"] == "invalid_request"
    assert wrong_shape.status_code == 422 and _error(wrong_shape)["field"] == "cases"
    assert bad_query.status_code == 422 and _error(bad_query)["field"] == "limit"


def test_a_body_over_the_limit_is_413_whether_announced_or_streamed(database_url, cache_dir):
    settings = make_settings(database_url, cache_dir, max_body_bytes=1000)
    big = b'{"cases": [' + b" " * 2000 + b"]}"

    with running_service(settings) as client:
        announced = client.post(
            "/v1/cases", content=big, headers=ADMIN | {"content-type": "application/json"}
        )
        streamed = client.post(
            "/v1/cases",
            content=(big[i : i + 100] for i in range(0, len(big), 100)),
            headers=ADMIN | {"content-type": "application/json"},
        )
        small = client.post("/v1/cases", json={"cases": []}, headers=ADMIN)

    for response in (announced, streamed):
        assert response.status_code == 413
        assert _error(response)["code"] == "body_too_large"
    assert small.status_code == 200


def test_an_unexpected_failure_is_a_500_json_error_without_a_trace(database_url, cache_dir):
    app = create_app(make_settings(database_url, cache_dir))

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret internals at /srv/dispatch/app.py line 42")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/boom")

    assert response.status_code == 500
    error = _error(response)
    assert error["code"] == "internal_error"
    assert "secret" not in response.text and "Traceback" not in response.text
