"""Compliance policies over HTTP: stored by name, every schema problem listed."""

from __future__ import annotations

from api_support import ADMIN, SAMPLE, new_key

DOCUMENT = (SAMPLE / "policy.yaml").read_text(encoding="utf-8")


def test_a_policy_is_stored_under_its_name_and_read_back(client):
    created = client.put("/v1/policies/fi-company", json={"document": DOCUMENT}, headers=ADMIN)
    again = client.put("/v1/policies/fi-company", json={"document": DOCUMENT}, headers=ADMIN)

    assert created.status_code == 201
    assert again.status_code == 200
    body = created.json()
    assert (body["name"], body["version"]) == ("fi-company", "2026-11-01")
    assert body["document"] == DOCUMENT
    assert again.json()["updated_at"] == body["updated_at"]
    listed = client.get("/v1/policies", headers=ADMIN).json()
    assert [p["name"] for p in listed["items"]] == ["fi-company"]
    assert client.get("/v1/policies/fi-company", headers=ADMIN).json() == body


def test_a_bad_policy_is_refused_with_every_problem(client):
    broken = DOCUMENT.replace("min_crew: 1", "min_crew: 0").replace("[sun]", "[sunday]")

    response = client.put("/v1/policies/fi-company", json={"document": broken}, headers=ADMIN)

    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_policy", "document")
    assert len(error["problems"]) == 2
    assert client.get("/v1/policies/fi-company", headers=ADMIN).status_code == 404


def test_the_path_must_name_the_documents_policy(client):
    response = client.put("/v1/policies/other", json={"document": DOCUMENT}, headers=ADMIN)
    not_yaml = client.put("/v1/policies/x", json={"document": "a: [b"}, headers=ADMIN)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "name_mismatch"
    assert not_yaml.status_code == 422
    assert not_yaml.json()["error"]["code"] == "invalid_policy"


def test_storing_policies_needs_admin(client):
    planner = new_key(client, "plans:write", "cases:write", "plans:read")

    response = client.put("/v1/policies/fi-company", json={"document": DOCUMENT}, headers=planner)

    assert response.status_code == 403
