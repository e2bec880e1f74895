from fastapi.testclient import TestClient

from api.main import app


def test_health_reports_ok_and_the_installed_version():
    from importlib.metadata import version

    response = TestClient(app).get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": version("dispatch")}


def test_openapi_lists_the_versioned_paths():
    paths = TestClient(app).get("/openapi.json").json()["paths"]
    assert "/v1/health" in paths
