"""Visit outcomes reported by the case system: validated, idempotent by id, listed."""

from __future__ import annotations

from api_support import ADMIN, new_key, sample_cases


def _report(client, body, headers=ADMIN):
    return client.post("/v1/outcomes", json=body, headers=headers)


def test_an_outcome_is_recorded_once_under_its_id(client):
    client.post("/v1/cases", json={"cases": sample_cases(2)}, headers=ADMIN)
    body = {
        "id": "visit-1",
        "case_id": "C-001",
        "outcome": "promise_to_pay",
        "visited_at": "2026-11-20T10:15:00+02:00",
        "promise_due": "2026-12-15",
        "promise_amount_cents": 15000,
        "collector_id": "K-01",
    }

    first = _report(client, body)
    retried = _report(client, body)
    changed = _report(
        client, body | {"outcome": "paid", "promise_due": None, "promise_amount_cents": None}
    )

    assert first.status_code == 201
    assert retried.status_code == 200
    assert retried.json() == first.json()
    assert first.json()["visited_at"] == "2026-11-20T08:15:00Z"
    assert changed.status_code == 409
    listed = client.get("/v1/outcomes", params={"case_id": "C-001"}, headers=ADMIN).json()
    assert [o["id"] for o in listed["items"]] == ["visit-1"]


def test_outcomes_break_no_visit_rule(client):
    client.post("/v1/cases", json={"cases": sample_cases(1)}, headers=ADMIN)
    checks = [
        ("promise_due", "invalid_outcome", {"outcome": "promise_to_pay"}),
        ("promise_due", "invalid_outcome", {"outcome": "paid", "promise_due": "2026-12-01"}),
        ("case_id", "unknown_case", {"case_id": "C-999", "outcome": "paid"}),
        ("outcome", "invalid_request", {"outcome": "gone_fishing"}),
        ("visited_at", "invalid_outcome", {"outcome": "paid", "visited_at": "2999-01-01T00:00Z"}),
        ("visited_at", "invalid_request", {"outcome": "paid", "visited_at": "2026-11-20T10:15"}),
        ("plan_id", "unknown_plan", {"outcome": "paid", "plan_id": "0" * 32}),
        ("paid_cents", "invalid_outcome", {"outcome": "partial_payment"}),
        ("paid_cents", "invalid_outcome", {"outcome": "refused", "paid_cents": 100}),
        ("checkin.lat", "invalid_request", {"outcome": "paid", "checkin": {"lat": 91, "lon": 0}}),
    ]
    for field, code, body in checks:
        response = _report(client, {"case_id": "C-001"} | body)
        assert response.status_code == 422, body
        error = response.json()["error"]
        assert (error["field"], error["code"]) == (field, code), body


def test_reporting_outcomes_needs_cases_write(client):
    client.post("/v1/cases", json={"cases": sample_cases(1)}, headers=ADMIN)
    reader = new_key(client, "plans:read")

    refused = _report(client, {"case_id": "C-001", "outcome": "not_home"}, headers=reader)

    assert refused.status_code == 403
    assert client.get("/v1/outcomes", headers=reader).json()["total"] == 0


def test_a_check_in_far_from_the_address_is_flagged_with_its_distance(client):
    case = sample_cases(1)[0]
    client.post("/v1/cases", json={"cases": [case]}, headers=ADMIN)
    at_door = {"lat": case["lat"] + 0.0003, "lon": case["lon"], "accuracy_m": 15}
    # About 1.1 km north of the address: far, even allowing for the fix's 40 m.
    elsewhere = {"lat": case["lat"] + 0.01, "lon": case["lon"], "accuracy_m": 40}
    near = _report(
        client,
        {
            "case_id": "C-001",
            "outcome": "partial_payment",
            "paid_cents": 12000,
            "note": "paid cash",
            "checkin": at_door,
        },
    ).json()
    far = _report(client, {"case_id": "C-001", "outcome": "not_home", "checkin": elsewhere}).json()

    assert near["checkin"]["far_from_address"] is False
    assert 30 < near["checkin"]["distance_m"] < 37
    assert (near["paid_cents"], near["note"]) == (12000, "paid cash")
    assert near["address"] == case["address"]
    assert far["checkin"]["far_from_address"] is True
    assert 1100 < far["checkin"]["distance_m"] < 1125


def test_a_retry_without_a_time_is_the_same_report(client):
    client.post("/v1/cases", json={"cases": sample_cases(1)}, headers=ADMIN)
    body = {"id": "visit-9", "case_id": "C-001", "outcome": "not_home"}
    first = _report(client, body)
    retried = _report(client, body)
    assert (first.status_code, retried.status_code) == (201, 200)
    assert retried.json() == first.json()
