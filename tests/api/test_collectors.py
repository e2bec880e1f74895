"""Collectors and crews over HTTP: upsert by id, row problems, filters."""

from __future__ import annotations

from api_support import ADMIN, sample_collectors


def _upsert(client, rows, **params):
    return client.post("/v1/collectors", json={"collectors": rows}, headers=ADMIN, params=params)


def test_collectors_upsert_by_id_and_read_back_as_sent(client):
    rows = sample_collectors(10)
    rows[0] |= {"break_window": "11:00-13:00", "break_s": 1800, "capacity": 12}

    first = _upsert(client, rows).json()
    again = _upsert(client, rows).json()

    assert (first["created"], again["unchanged"]) == (10, 10)
    collector = client.get("/v1/collectors/K-01", headers=ADMIN).json()
    assert {k: collector[k] for k in rows[0]} == rows[0]


def test_collectors_are_listed_by_mode_and_skill(client):
    rows = sample_collectors(10)
    _upsert(client, rows)

    walkers = client.get("/v1/collectors", params={"mode": "walk"}, headers=ADMIN).json()
    swedish = client.get("/v1/collectors", params={"skill": "swedish"}, headers=ADMIN).json()
    unknown_mode = client.get("/v1/collectors", params={"mode": "boat"}, headers=ADMIN)

    assert [k["id"] for k in walkers["items"]] == ["K-04", "K-05", "K-06", "K-07"]
    assert walkers["total"] == 4
    assert [k["id"] for k in swedish["items"]] == ["K-02", "K-03", "K-04"]
    assert unknown_mode.status_code == 422
    assert unknown_mode.json()["error"]["field"] == "mode"


def test_bad_collector_rows_name_the_field_at_fault(client):
    rows = sample_collectors(4)
    rows[0]["shift_end"] = "07:00"
    rows[1]["end_lat"], rows[1]["end_lon"] = 60.17, None
    rows[2] |= {"break_window": "07:00-08:00", "break_s": 1800}
    rows[3]["shift_start"] = "25:00"

    response = _upsert(client, rows)

    assert response.status_code == 422
    problems = [(r["index"], r["field"]) for r in response.json()["error"]["rows"]]
    assert problems == [(0, "shift_end"), (1, "end_lat"), (2, "break_window"), (3, "shift_start")]
    assert client.get("/v1/collectors", headers=ADMIN).json()["total"] == 0


def test_a_missing_collector_is_404(client):
    response = client.get("/v1/collectors/K-99", headers=ADMIN)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_crews_upsert_by_id_and_refuse_a_one_member_crew(client):
    crews = [{"id": "W-1", "member_ids": ["K-01", "K-02"]}]

    first = client.post("/v1/crews", json={"crews": crews}, headers=ADMIN).json()
    again = client.post("/v1/crews", json={"crews": crews}, headers=ADMIN).json()
    alone = client.post(
        "/v1/crews", json={"crews": [{"id": "W-2", "member_ids": ["K-03"]}]}, headers=ADMIN
    )
    twice = client.post(
        "/v1/crews", json={"crews": [{"id": "W-3", "member_ids": ["K-03", "K-03"]}]}, headers=ADMIN
    )

    assert (first["created"], again["unchanged"]) == (1, 1)
    listed = client.get("/v1/crews", headers=ADMIN).json()
    assert [(w["id"], w["member_ids"]) for w in listed["items"]] == [("W-1", ["K-01", "K-02"])]
    assert alone.json()["error"]["rows"][0]["field"] == "member_ids"
    assert "more than once" in twice.json()["error"]["rows"][0]["reason"]
