"""Cases over HTTP: idempotent bulk upsert, whole-batch rejection, partial batches, filters."""

from __future__ import annotations

import copy

from api_support import ADMIN, new_key, sample_cases


def _upsert(client, rows, *, headers=ADMIN, partial=None):
    params = {} if partial is None else {"partial": str(partial).lower()}
    return client.post("/v1/cases", json={"cases": rows}, headers=headers, params=params)


def test_the_same_batch_twice_changes_nothing_not_even_updated_at(client):
    rows = sample_cases(20)
    first = _upsert(client, rows)
    assert first.status_code == 200
    assert first.json() == {"created": 20, "updated": 0, "unchanged": 0, "rejected": []}
    before = client.get("/v1/cases/C-001", headers=ADMIN).json()

    again = _upsert(client, rows)

    assert again.json() == {"created": 0, "updated": 0, "unchanged": 20, "rejected": []}
    after = client.get("/v1/cases/C-001", headers=ADMIN).json()
    assert after == before
    assert after["updated_at"] == after["created_at"]


def test_a_changed_row_is_updated_and_only_it(client):
    rows = sample_cases(5)
    _upsert(client, rows)
    created = client.get("/v1/cases/C-002", headers=ADMIN).json()
    changed = copy.deepcopy(rows)
    changed[1]["days_past_due"] += 30
    changed[1]["windows"] = ["09:00-12:00", "17:00-20:00"]

    result = _upsert(client, changed).json()

    assert result == {"created": 0, "updated": 1, "unchanged": 4, "rejected": []}
    case = client.get("/v1/cases/C-002", headers=ADMIN).json()
    assert case["days_past_due"] == rows[1]["days_past_due"] + 30
    assert case["windows"] == ["09:00-12:00", "17:00-20:00"]
    assert case["created_at"] == created["created_at"]
    assert case["updated_at"] > created["updated_at"]


def test_a_batch_with_bad_rows_is_refused_whole_with_every_rows_problem(client):
    rows = sample_cases(4)
    rows[1]["lat"] = 123.0
    rows[2]["windows"] = ["12:00-09:00"]
    rows[3]["days_past_due"] = -1
    rows.append("not a case")
    rows.append(dict(rows[0]))

    response = _upsert(client, rows)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_rows"
    assert error["field"] == "cases"
    problems = {(r["index"], r["field"]) for r in error["rows"]}
    assert problems == {
        (1, "lat"),
        (2, "windows.0"),
        (3, "days_past_due"),
        (4, None),
        (5, "id"),
    }
    by_index = {r["index"]: r for r in error["rows"]}
    assert "ends before it starts" in by_index[2]["reason"]
    assert "also appears in row 0" in by_index[5]["reason"]
    assert by_index[1]["id"] == rows[1]["id"]
    listing = client.get("/v1/cases", headers=ADMIN).json()
    assert listing["total"] == 0, "nothing of a refused batch is stored"


def test_a_partial_batch_stores_the_good_rows_and_lists_the_rejected(client):
    rows = sample_cases(3)
    rows[1]["amount_cents"] = "a lot"
    rows[2]["unknown_column"] = 1

    response = _upsert(client, rows, partial=True)

    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["updated"], body["unchanged"]) == (1, 0, 0)
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (1, "amount_cents"),
        (2, "unknown_column"),
    ]
    assert client.get(f"/v1/cases/{rows[0]['id']}", headers=ADMIN).status_code == 200
    assert client.get(f"/v1/cases/{rows[1]['id']}", headers=ADMIN).status_code == 404


def test_cases_are_listed_by_skill_and_days_past_due_with_pages(client):
    rows = sample_cases(40)
    _upsert(client, rows)
    legal = sorted(r["id"] for r in rows if "legal" in r["skills"])
    in_range = sorted(r["id"] for r in rows if 100 <= r["days_past_due"] <= 300)

    by_skill = client.get("/v1/cases", params={"skill": "LEGAL", "limit": 1000}, headers=ADMIN)
    by_range = client.get(
        "/v1/cases",
        params={"min_days_past_due": 100, "max_days_past_due": 300, "limit": 1000},
        headers=ADMIN,
    )

    assert legal and [c["id"] for c in by_skill.json()["items"]] == legal
    assert [c["id"] for c in by_range.json()["items"]] == in_range
    first = client.get("/v1/cases", params={"limit": 15}, headers=ADMIN).json()
    second = client.get("/v1/cases", params={"limit": 15, "offset": 15}, headers=ADMIN).json()
    assert first["total"] == second["total"] == 40
    ids = [c["id"] for c in first["items"] + second["items"]]
    assert ids == sorted(r["id"] for r in rows)[:30]


def test_a_case_reads_back_as_it_was_sent(client):
    row = sample_cases(1)[0] | {
        "skills": ["legal"],
        "windows": ["08:00-10:00"],
        "flags": ["vulnerable"],
        "national_id": "010190-123A",
        "min_crew": 2,
        "appointment_s": 9 * 3600,
        "load": 3,
    }
    _upsert(client, [row])

    case = client.get(f"/v1/cases/{row['id']}", headers=ADMIN).json()

    assert {k: case[k] for k in row} == row


def test_an_unknown_case_is_404_and_a_malformed_id_422(client):
    missing = client.get("/v1/cases/C-999", headers=ADMIN)
    malformed = client.get("/v1/cases/bad id!", headers=ADMIN)

    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "not_found",
        "message": "case 'C-999' does not exist",
        "field": None,
    }
    assert malformed.status_code == 422
    assert malformed.json()["error"]["field"] == "case_id"


def test_writing_cases_needs_the_cases_write_scope(client):
    reader = new_key(client, "plans:read")
    writer = new_key(client, "cases:write")
    rows = sample_cases(2)

    assert _upsert(client, rows, headers={}).status_code == 401
    refused = _upsert(client, rows, headers=reader)
    accepted = _upsert(client, rows, headers=writer)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert "cases:write" in refused.json()["error"]["message"]
    assert accepted.status_code == 200
    # Reading is open to both: the case system reads back what it wrote.
    assert client.get("/v1/cases", headers=reader).status_code == 200
    assert client.get("/v1/cases", headers=writer).status_code == 200
