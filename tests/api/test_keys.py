"""API keys: shown once, stored hashed, scoped, revocable; the bootstrap admin key."""

from __future__ import annotations

import hashlib

from api_support import ADMIN, new_key
from sqlalchemy import create_engine, text


def test_a_new_key_is_shown_once_and_stored_only_as_a_hash(client, database_url):
    created = client.post(
        "/v1/keys", json={"name": "crm", "scopes": ["cases:write"]}, headers=ADMIN
    )

    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith(f"dsp_{body['id']}_")
    listed = client.get("/v1/keys", headers=ADMIN).json()
    assert listed["items"] == [{k: v for k, v in body.items() if k != "key"}]
    engine = create_engine(database_url)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT key_hash FROM api_keys")).scalar_one()
    engine.dispose()
    secret = key.split("_", 2)[2]
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in stored


def test_a_key_without_the_scope_gets_403_and_with_it_passes(client):
    reader = new_key(client, "plans:read")
    planner = new_key(client, "plans:write")

    assert client.get("/v1/plans", headers=reader).status_code == 200
    refused = client.post("/v1/plans", json={"date": "2026-12-01"}, headers=reader)
    assert refused.status_code == 403
    assert refused.json()["error"]["message"].startswith("this needs the scope plans:write")
    assert client.get("/v1/plans", headers=planner).status_code == 403
    assert client.get("/v1/keys", headers=reader).status_code == 403


def test_a_revoked_key_gets_401(client):
    headers = new_key(client, "plans:read")
    key_id = headers["Authorization"].split("_")[1]

    revoked = client.delete(f"/v1/keys/{key_id}", headers=ADMIN)
    refused = client.get("/v1/plans", headers=headers)

    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "key_revoked"
    assert refused.headers["www-authenticate"] == "Bearer"
    # Revoking again keeps the first time.
    assert client.delete(f"/v1/keys/{key_id}", headers=ADMIN).json() == revoked.json()


def test_missing_unknown_and_forged_keys_get_401(client):
    real = new_key(client, "plans:read")["Authorization"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    cases = {
        "unauthenticated": {},
        "invalid_key": {"Authorization": "Bearer dsp_000000000000_nothing"},
    }
    for code, headers in cases.items():
        response = client.get("/v1/plans", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == code
    assert client.get("/v1/plans", headers={"Authorization": forged}).status_code == 401
    basic = client.get("/v1/plans", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


def test_only_admin_keys_manage_keys_and_scopes_are_checked(client):
    admin = new_key(client, "admin")
    unknown_scope = client.post("/v1/keys", json={"name": "x", "scopes": ["root"]}, headers=admin)
    no_scope = client.post("/v1/keys", json={"name": "x", "scopes": []}, headers=admin)
    missing = client.delete("/v1/keys/0123456789ab", headers=admin)

    assert unknown_scope.status_code == 422
    assert unknown_scope.json()["error"]["field"] == "scopes"
    assert no_scope.status_code == 422
    assert missing.status_code == 404
    writer = new_key(client, "cases:write", "plans:write", "plans:read")
    denied = client.post("/v1/keys", json={"name": "x", "scopes": ["admin"]}, headers=writer)
    assert denied.status_code == 403
