"""Whatever the service accepted is there after a restart on the same database."""

from __future__ import annotations

from api_support import (
    ADMIN,
    SAMPLE,
    make_settings,
    new_key,
    running_service,
    sample_cases,
    sample_collectors,
)

from api.worker import run_job


def _snapshot(client, headers, plan_id, link):
    """Everything the first service was told, as a client reads it."""
    return {
        path: client.get(path, headers=headers).json()
        for path in (
            "/v1/cases?limit=1000",
            "/v1/collectors",
            "/v1/crews",
            "/v1/policies",
            "/v1/outcomes",
            "/v1/jobs",
            "/v1/plans",
            f"/v1/plans/{plan_id}",
            f"/v1/plans/{plan_id}/unassigned",
            f"/v1/plans/{plan_id}/audit",
        )
    } | {"itinerary": client.get(link["itinerary_url"].removeprefix("http://testserver")).json()}


def test_a_restarted_service_reads_back_everything_it_accepted(database_url, cache_dir):
    settings = make_settings(database_url, cache_dir)
    with running_service(settings) as client:
        headers = new_key(client, "plans:read", "plans:write", "cases:write")
        client.post("/v1/cases", json={"cases": sample_cases(10)}, headers=headers)
        # Without breaks, so that the two can form a crew whatever the sample's lunch hours.
        collectors = [k | {"break_window": None, "break_s": 0} for k in sample_collectors(2)]
        client.post("/v1/collectors", json={"collectors": collectors}, headers=headers)
        client.post(
            "/v1/crews",
            json={"crews": [{"id": "W-1", "member_ids": ["K-01", "K-02"]}]},
            headers=headers,
        )
        document = (SAMPLE / "policy.yaml").read_text(encoding="utf-8")
        client.put("/v1/policies/fi-company", json={"document": document}, headers=ADMIN)
        client.post(
            "/v1/outcomes",
            json={"case_id": "C-003", "outcome": "not_home", "visited_at": "2026-11-20T10:00Z"},
            headers=headers,
        )
        request = {"date": "2026-12-01", "policy": "fi-company", "time_limit_s": 1}
        planned = client.post("/v1/plans", json=request, headers=headers).json()
        store = client.app.state.store
        run_job(store, store.claim_job("test-worker", lease_s=30), settings, "test-worker")
        plan_id = client.get(f"/v1/jobs/{planned['id']}", headers=headers).json()["plan_id"]
        link = client.post(f"/v1/plans/{plan_id}/links", headers=headers).json()["links"][0]
        queued = client.post("/v1/plans", json=request | {"seed": 3}, headers=headers).json()
        before = _snapshot(client, headers, plan_id, link)

    with running_service(make_settings(database_url, cache_dir, migrate=True)) as client:
        after = _snapshot(client, headers, plan_id, link)
        again = client.post("/v1/plans", json=request | {"seed": 3}, headers=headers).json()

    assert after == before
    assert before["/v1/cases?limit=1000"]["total"] == 10
    assert before[f"/v1/plans/{plan_id}"]["routes"]
    assert before["itinerary"]["stops"]
    # The queued job survived too, so the same request is still the same job.
    assert again["id"] == queued["id"] and again["status"] == "queued"
