"""A day planned by the service's own worker process, then read as dispatcher and collector.

One service per backend plans the day once (with the sample policy); the
tests read that plan. The last test kills the worker in the middle of a
second job.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import pytest
from api_support import (
    ADMIN,
    BACKENDS,
    LINK_SECRET,
    SAMPLE,
    fresh_database,
    make_settings,
    new_key,
    running_service,
    sample_cases,
    sample_collectors,
    wait_for,
    wait_for_job,
)
from fastapi.testclient import TestClient

from api.security import LinkClaims, sign_link

DATE = "2026-12-01"
NATIONAL_ID = "010190-123A"
CASES = 40


@dataclass(frozen=True)
class Planned:
    client: TestClient
    plan_id: str
    job: dict[str, Any]
    links: dict[str, dict[str, Any]]


def _path(url: str) -> str:
    """A link's URL as the test client requests it."""
    return url.removeprefix("http://testserver")


@pytest.fixture(scope="module", params=BACKENDS)
def planned(request, tmp_path_factory, cache_dir):
    with fresh_database(request.param, tmp_path_factory.mktemp("plans")) as url:
        settings = make_settings(url, cache_dir, workers=1)
        with running_service(settings) as client:
            cases = sample_cases(CASES)
            for case in cases:
                case["national_id"] = NATIONAL_ID
            client.post("/v1/cases", json={"cases": cases}, headers=ADMIN)
            client.post("/v1/collectors", json={"collectors": sample_collectors(3)}, headers=ADMIN)
            crew = {"id": "W-1", "member_ids": ["K-01", "K-03"]}
            client.post("/v1/crews", json={"crews": [crew]}, headers=ADMIN)
            document = (SAMPLE / "policy.yaml").read_text(encoding="utf-8")
            client.put("/v1/policies/fi-company", json={"document": document}, headers=ADMIN)
            body = {"date": DATE, "policy": "fi-company", "time_limit_s": 1}
            job = client.post("/v1/plans", json=body, headers=ADMIN).json()
            done = wait_for_job(client, job["id"], until=("succeeded", "failed"), timeout_s=90)
            assert done["status"] == "succeeded", done
            links = client.post(f"/v1/plans/{done['plan_id']}/links", headers=ADMIN).json()
            yield Planned(
                client, done["plan_id"], done, {k["collector_id"]: k for k in links["links"]}
            )


def test_the_plan_accounts_for_every_case(planned):
    client = planned.client

    plan = client.get(f"/v1/plans/{planned.plan_id}", headers=ADMIN).json()
    unassigned = client.get(f"/v1/plans/{planned.plan_id}/unassigned", headers=ADMIN).json()

    assert (planned.job["stage"], planned.job["error"]) == ("Done", None)
    visited = [s["case_id"] for r in plan["routes"] for s in r["stops"]]
    left = [u["case_id"] for u in unassigned["items"]]
    assert sorted(visited + left) == sorted(c["id"] for c in sample_cases(CASES))
    assert (plan["visit_count"], plan["unassigned_count"]) == (len(visited), len(left))
    assert all(u["reason"] and u["detail"] for u in unassigned["items"])
    assert (plan["date"], plan["timezone"], plan["policy_name"]) == (
        DATE,
        "Europe/Helsinki",
        "fi-company",
    )
    first = plan["routes"][0]["stops"][0]
    assert dt.datetime.fromisoformat(first["start"]).utcoffset() == dt.timedelta(hours=2)


def test_unassigned_cases_are_paged_and_filtered_by_reason(planned):
    client, plan_id = planned.client, planned.plan_id
    everything = client.get(f"/v1/plans/{plan_id}/unassigned", headers=ADMIN).json()
    reason = everything["items"][0]["reason"]

    some = client.get(
        f"/v1/plans/{plan_id}/unassigned", params={"reason": reason}, headers=ADMIN
    ).json()
    page = client.get(f"/v1/plans/{plan_id}/unassigned", params={"limit": 1}, headers=ADMIN)

    assert some["items"] and {u["reason"] for u in some["items"]} == {reason}
    assert page.json()["total"] == everything["total"] and len(page.json()["items"]) == 1
    missing = client.get(f"/v1/plans/{'0' * 32}/unassigned", headers=ADMIN)
    assert missing.status_code == 404


def test_the_audit_names_the_policy_and_decides_every_case(planned):
    audit = planned.client.get(f"/v1/plans/{planned.plan_id}/audit", headers=ADMIN).json()

    assert audit["policy_name"] == "fi-company"
    assert len(audit["policy_hash"]) == 64
    assert sorted(e["case_id"] for e in audit["entries"]) == sorted(
        c["id"] for c in sample_cases(CASES)
    )


def test_plans_are_listed_by_day_and_a_missing_plan_is_404(planned):
    client = planned.client

    on_day = client.get("/v1/plans", params={"date": DATE}, headers=ADMIN).json()
    other_day = client.get("/v1/plans", params={"date": "2026-12-02"}, headers=ADMIN).json()

    assert [p["id"] for p in on_day["items"]] == [planned.plan_id]
    assert other_day["total"] == 0
    assert client.get(f"/v1/plans/{'0' * 32}", headers=ADMIN).status_code == 404
    assert client.get("/v1/plans/not-a-plan", headers=ADMIN).status_code == 422


def test_the_overview_map_is_for_plan_readers_and_loads_leaflet_from_the_service(planned):
    client = planned.client
    reader = new_key(client, "plans:read")
    writer = new_key(client, "cases:write")

    page = client.get(f"/v1/plans/{planned.plan_id}/map", headers=reader)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'src="../../assets/leaflet/leaflet.js"' in page.text
    assert "Aino Virtanen" in page.text
    assert NATIONAL_ID not in page.text
    # Relative to /v1/plans/<id>/map, the page's assets are at /v1/assets.
    assert client.get("/v1/assets/leaflet/leaflet.js").status_code == 200
    assert client.get(f"/v1/plans/{planned.plan_id}/map").status_code == 401
    assert client.get(f"/v1/plans/{planned.plan_id}/map", headers=writer).status_code == 403


def test_a_dispatcher_lists_and_reads_itineraries(planned):
    client, plan_id = planned.client, planned.plan_id

    listed = client.get(f"/v1/plans/{plan_id}/itineraries", headers=ADMIN).json()
    collector = listed[0]["collector_id"]
    itinerary = client.get(f"/v1/plans/{plan_id}/itineraries/{collector}", headers=ADMIN).json()

    assert [i["collector_id"] for i in listed] == sorted(planned.links)
    assert [s["number"] for s in itinerary["stops"]] == list(range(1, listed[0]["visits"] + 1))
    etas = [s["eta"] for s in itinerary["stops"]]
    assert etas == sorted(etas)
    stop = itinerary["stops"][0]
    assert stop["navigation"]["google"].startswith("https://www.google.com/maps/dir/")
    assert len(stop["leg"]["coords"]) >= 2
    missing = f"/v1/plans/{'0' * 32}"
    for path in (f"{missing}/itineraries", f"{missing}/map", f"{missing}/audit"):
        assert client.get(path, headers=ADMIN).status_code == 404
    for path in (f"/v1/plans/{plan_id}/itineraries/K-99", f"{missing}/itineraries/K-01"):
        assert client.get(path, headers=ADMIN).status_code == 404
        assert client.get(f"{path}/page", headers=ADMIN).status_code == 404
        outcome = {"case_id": "C-001", "outcome": "paid"}
        assert client.post(f"{path}/outcomes", json=outcome, headers=ADMIN).status_code == 404


def test_a_link_opens_its_collectors_itinerary_and_page_redacted_by_the_policy(planned):
    client = planned.client
    collector, link = next(iter(planned.links.items()))

    itinerary = client.get(_path(link["itinerary_url"]))
    page = client.get(_path(link["page_url"]))

    assert itinerary.status_code == 200
    assert itinerary.json()["collector_id"] == collector
    details = itinerary.json()["stops"][0]["details"]
    # fi-company: names in full, phone numbers masked, national ids never.
    assert details["name"] and "*" in details["phone"]
    assert NATIONAL_ID not in itinerary.text
    assert page.status_code == 200
    assert 'src="../../../../assets/leaflet/leaflet.js"' in page.text
    assert NATIONAL_ID not in page.text


def test_each_crew_member_gets_a_link_to_the_crews_route(planned):
    client = planned.client
    first = client.get(_path(planned.links["K-01"]["itinerary_url"])).json()
    second = client.get(_path(planned.links["K-03"]["itinerary_url"])).json()

    assert (first["collector_id"], second["collector_id"]) == ("K-01", "K-03")
    for day in (first, second):
        assert (day["crew_id"], day["member_ids"]) == ("W-1", ["K-01", "K-03"])
    assert [s["case_id"] for s in first["stops"]] == [s["case_id"] for s in second["stops"]]
    outcome = {"case_id": second["stops"][0]["case_id"], "outcome": "refused"}
    reported = client.post(
        f"/v1/plans/{planned.plan_id}/itineraries/K-03/outcomes",
        params={"link": planned.links["K-03"]["token"]},
        json=outcome,
    )
    assert reported.status_code == 201


def test_a_link_opens_nothing_else(planned):
    client, plan_id = planned.client, planned.plan_id
    (mine, link), (theirs, _) = list(planned.links.items())[:2]
    token = {"link": link["token"]}

    other_collector = client.get(f"/v1/plans/{plan_id}/itineraries/{theirs}", params=token)
    other_plan = client.get(f"/v1/plans/{'f' * 32}/itineraries/{mine}", params=token)
    other_page = client.get(f"/v1/plans/{plan_id}/itineraries/{theirs}/page", params=token)

    for response in (other_collector, other_plan, other_page):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    for path in (f"/v1/plans/{plan_id}", "/v1/cases"):
        assert client.get(path, params=token).status_code == 401
    # The plan's overview takes links, but only the dispatcher's.
    for path in (f"/v1/plans/{plan_id}/map", f"/v1/plans/{plan_id}/progress"):
        assert client.get(path, params=token).status_code == 403


def test_the_dispatchers_link_opens_the_plans_map_and_progress_only(planned):
    client, plan_id = planned.client, planned.plan_id
    created = client.post(f"/v1/plans/{plan_id}/links/overview", headers=ADMIN)
    assert created.status_code == 201
    link = created.json()
    token = {"link": link["token"]}

    page = client.get(_path(link["map_url"]))
    progress = client.get(_path(link["progress_url"]))

    assert page.status_code == 200 and "dispatch-legend" in page.text
    assert progress.status_code == 200
    plan = client.get(f"/v1/plans/{plan_id}", headers=ADMIN).json()
    routed = {stop["case_id"] for route in plan["routes"] for stop in route["stops"]}
    assert {stop["case_id"] for stop in progress.json()["stops"]} == routed
    collector = next(iter(planned.links))
    assert (
        client.get(f"/v1/plans/{plan_id}/itineraries/{collector}", params=token).status_code == 403
    )
    assert client.get(f"/v1/plans/{'f' * 32}/map", params=token).status_code == 403
    assert client.get(f"/v1/plans/{plan_id}", params=token).status_code == 401
    assert client.delete(f"/v1/links/{link['link_id']}", headers=ADMIN).status_code == 204
    assert client.get(f"/v1/plans/{plan_id}/map", params=token).status_code == 401


def test_expired_tampered_and_revoked_links_are_refused(planned):
    client, plan_id = planned.client, planned.plan_id
    collector, link = next(iter(planned.links.items()))
    path = f"/v1/plans/{plan_id}/itineraries/{collector}"
    past = LinkClaims("a" * 24, plan_id, collector, int(time.time()) - 1)
    expired = sign_link(past, LINK_SECRET.encode())
    payload, signature = link["token"].split(".")
    tampered = f"{payload[:-2]}{'AB' if payload[-2:] != 'AB' else 'CD'}.{signature}"
    other_secret = sign_link(
        LinkClaims("b" * 24, plan_id, collector, int(time.time()) + 600), b"another secret"
    )

    for token, code in [
        (expired, "link_expired"),
        (tampered, "invalid_link"),
        (other_secret, "invalid_link"),
        ("garbage", "invalid_link"),
    ]:
        response = client.get(path, params={"link": token})
        assert response.status_code == 401, token
        assert response.json()["error"]["code"] == code
    reader = new_key(client, "plans:read")
    assert client.delete(f"/v1/links/{link['link_id']}", headers=reader).status_code == 403
    assert client.delete(f"/v1/links/{link['link_id']}", headers=ADMIN).status_code == 204
    revoked = client.get(path, params={"link": link["token"]})
    assert revoked.status_code == 401
    assert revoked.json()["error"]["code"] == "link_revoked"


def test_a_collector_reports_outcomes_of_their_own_visits_only(planned):
    client, plan_id = planned.client, planned.plan_id
    (mine, link), (theirs, _) = list(planned.links.items())[1:3]
    own = client.get(_path(link["itinerary_url"])).json()["stops"][0]["case_id"]
    plan = client.get(f"/v1/plans/{plan_id}", headers=ADMIN).json()
    other = next(r for r in plan["routes"] if r["collector_id"] == theirs)["stops"][0]["case_id"]
    outcomes = f"/v1/plans/{plan_id}/itineraries/{mine}/outcomes"
    token = {"link": link["token"]}

    reported = client.post(outcomes, params=token, json={"case_id": own, "outcome": "not_home"})
    not_mine = client.post(outcomes, params=token, json={"case_id": other, "outcome": "paid"})
    elsewhere = client.post(
        f"/v1/plans/{plan_id}/itineraries/{theirs}/outcomes",
        params=token,
        json={"case_id": other, "outcome": "paid"},
    )

    assert reported.status_code == 201
    assert (reported.json()["collector_id"], reported.json()["plan_id"]) == (mine, plan_id)
    assert not_mine.status_code == 403 and not_mine.json()["error"]["field"] == "case_id"
    assert elsewhere.status_code == 403
    listed = client.get("/v1/outcomes", params={"plan_id": plan_id}, headers=ADMIN).json()
    recorded = {(o["case_id"], o["collector_id"], o["outcome"]) for o in listed["items"]}
    assert (own, mine, "not_home") in recorded
    assert not any(outcome == "paid" for _, _, outcome in recorded)
    reader = new_key(client, "plans:read")
    by_reader = client.post(outcomes, headers=reader, json={"case_id": own, "outcome": "paid"})
    assert by_reader.status_code == 403


def test_links_are_given_only_for_collectors_with_stops_in_an_existing_plan(planned):
    client, plan_id = planned.client, planned.plan_id
    collector = next(iter(planned.links))

    one = client.post(
        f"/v1/plans/{plan_id}/links",
        json={"collector_ids": [collector], "ttl_s": 600},
        headers=ADMIN,
    )
    nobody = client.post(
        f"/v1/plans/{plan_id}/links", json={"collector_ids": ["K-99"]}, headers=ADMIN
    )
    no_plan = client.post(f"/v1/plans/{'0' * 32}/links", headers=ADMIN)

    assert one.status_code == 201
    (link,) = one.json()["links"]
    expires = dt.datetime.fromisoformat(link["expires_at"])
    assert 590 <= (expires - dt.datetime.now(dt.UTC)).total_seconds() <= 600
    assert nobody.status_code == 422 and nobody.json()["error"]["code"] == "no_itinerary"
    assert no_plan.status_code == 404


def test_a_killed_worker_fails_its_job_at_once_and_is_replaced(planned):
    client = planned.client
    body = {"date": "2026-12-02", "time_limit_s": 60}
    job = client.post("/v1/plans", json=body, headers=ADMIN).json()
    running = wait_for_job(client, job["id"], until=("running",), timeout_s=30)
    (pid,) = client.app.state.workers.pids().values()
    assert running["stage"] != "Done"

    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    failed = wait_for_job(client, job["id"], until=("failed", "succeeded"), timeout_s=15)

    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "worker_lost"
    assert time.monotonic() - killed_at < 5
    replaced = wait_for(lambda: client.app.state.workers.pids(), timeout_s=5)
    assert list(replaced.values()) != [pid]
    # The failed job blocks nothing: the same request is a new job.
    again = client.post("/v1/plans", json=body, headers=ADMIN).json()
    assert again["id"] != job["id"]
    client.post(f"/v1/jobs/{again['id']}/cancel", headers=ADMIN)
