"""The collector's phone page against a real running service: stops, map, outcomes, offline."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from dispatch import io

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
ADMIN_KEY = "e2e-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PHONE = {"width": 390, "height": 844}
TILE_HOST = "tile.openstreetmap.org"


@dataclass(frozen=True)
class Service:
    """A service running in its own process, and one plan made by its worker."""

    base_url: str
    plan_id: str
    links: dict[str, dict[str, Any]]
    itineraries: dict[str, dict[str, Any]]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=ADMIN, timeout=30)

    def outcomes(self, **params: str) -> list[dict[str, Any]]:
        with self.client() as client:
            response = client.get("/v1/outcomes", params={"limit": 1000, **params})
            response.raise_for_status()
            return response.json()["items"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the service exited: {log.read_text()[-2000:]}", pytrace=False)
        try:
            if httpx.get(f"{base_url}/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the service did not start: {log.read_text()[-2000:]}", pytrace=False)


def _plan(client: httpx.Client, date: dt.date) -> str:
    cases = [c for c in io.read_cases(SAMPLE / "cases.csv").items if not c.skills][:16]
    collectors = io.read_collectors(SAMPLE / "collectors.csv").items[:2]
    rows = [
        {
            "id": c.id,
            "lat": c.location.lat,
            "lon": c.location.lon,
            "address": c.address,
            "days_past_due": c.days_past_due,
            "amount_cents": c.amount_cents,
            "service_s": c.service_s,
            "debtor_name": c.debtor_name,
            "phone": c.phone,
        }
        for c in cases
    ]
    people = [
        {
            "id": k.id,
            "name": k.name,
            "start_lat": k.start.lat,
            "start_lon": k.start.lon,
            "shift_start": "08:00",
            "shift_end": "20:00",
            "mode": "walk",
            # Half the day's cases each, so that both collectors have a route.
            "max_visits": 8,
        }
        for k in collectors
    ]
    assert client.post("/v1/cases", json={"cases": rows}).status_code == 200
    assert client.post("/v1/collectors", json={"collectors": people}).status_code == 200
    job = client.post("/v1/plans", json={"date": date.isoformat(), "time_limit_s": 2}).json()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job['id']}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    assert job["status"] == "succeeded", job
    return job["plan_id"]


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("service")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "DISPATCH_DATABASE_URL": f"sqlite:///{folder / 'dispatch.db'}",
        "DISPATCH_ADMIN_KEY": ADMIN_KEY,
        "DISPATCH_LINK_SECRET": "e2e-link-secret",
        "DISPATCH_WORKERS": "1",
        "DISPATCH_POLL_S": "0.2",
        "DISPATCH_CACHE_DIR": str(folder / "cache"),
        "DISPATCH_TIMEZONE": "Europe/Helsinki",
        "DISPATCH_NAVIGATION_APPS": "osm,google,apple,geo",
    }
    log = folder / "service.log"
    command = [str(Path(sys.executable).with_name("dispatch")), "serve", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(base_url, process, log)
        with httpx.Client(base_url=base_url, headers=ADMIN, timeout=30) as client:
            today = dt.datetime.now(ZoneInfo("Europe/Helsinki")).date()
            plan_id = _plan(client, today)
            links = client.post(f"/v1/plans/{plan_id}/links").json()["links"]
            by_collector = {link["collector_id"]: link for link in links}
            itineraries = {
                collector_id: client.get(
                    link["itinerary_url"].removeprefix(base_url), headers={}
                ).json()
                for collector_id, link in by_collector.items()
            }
        assert len(itineraries) == 2 and all(it["stops"] for it in itineraries.values())
        yield Service(base_url, plan_id, by_collector, itineraries)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def phone(browser, service) -> Iterator[Any]:
    """A phone-sized browser context that shares its position: at the first stop's door."""
    first = service.itineraries["K-01"]["stops"][0]
    context = browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        geolocation={"latitude": first["lat"], "longitude": first["lon"], "accuracy": 12},
        permissions=["geolocation"],
    )
    # No internet here: the tiles are refused, everything else comes from the service.
    context.route(f"**/{TILE_HOST}/**", lambda route: route.abort("internetdisconnected"))
    yield context
    context.close()


def _open(context: Any, url: str) -> tuple[Any, list[str]]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.goto(url, wait_until="load")
    return page, errors


def _record(page: Any, case_id: str, outcome: str, **fields: str) -> None:
    page.locator(f'button.dispatch-report[data-case="{case_id}"]').click()
    form = page.locator("#dispatch-report-form")
    form.locator('select[name="outcome"]').select_option(outcome)
    for name, value in fields.items():
        form.locator(f'[name="{name}"]').fill(value)
    form.locator('button[type="submit"]').click()


def _state(page: Any, case_id: str) -> str:
    return page.locator(f'.dispatch-status[data-case="{case_id}"]').get_attribute("data-state")


def test_the_phone_page_shows_the_day_and_stores_an_outcome(service, phone, artifacts):
    own = service.itineraries["K-01"]
    page, errors = _open(phone, service.links["K-01"]["page_url"])

    listed = page.eval_on_selector_all(
        ".dispatch-stops [data-stop]", "items => items.map(i => i.dataset.case)"
    )
    assert listed == [stop["case_id"] for stop in own["stops"]]
    assert page.locator(".folium-map .leaflet-tile-pane").count() == 1
    assert page.locator(".leaflet-marker-pane .dispatch-stop").count() == len(own["stops"])
    # The browser shared its position: the page shows it on the map.
    page.wait_for_selector(".leaflet-overlay-pane path.dispatch-here")
    assert "±12 m" in page.locator("#dispatch-position").inner_text()
    # Every stop navigates with the configured apps, in order.
    first = own["stops"][0]["case_id"]
    item = page.locator(f'.dispatch-stops li[data-case="{first}"]')
    item.locator("details.nav summary").click()
    apps = item.locator("details.nav a").evaluate_all("links => links.map(a => a.dataset.app)")
    assert apps == ["osm", "google", "apple", "geo"]
    # Nothing is wider than the phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(artifacts / "collector-phone.png"), full_page=True)

    due = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    page.locator(f'button.dispatch-report[data-case="{first}"]').click()
    page.screenshot(path=str(artifacts / "collector-phone-outcome-form.png"))
    page.locator("#dispatch-report-form [data-cancel]").click()
    _record(
        page,
        first,
        "promise_to_pay",
        promise_due=due,
        promise_amount="150.00",
        note="will pay after payday",
    )
    page.wait_for_function(
        f"document.querySelector('.dispatch-status[data-case=\"{first}\"]')"
        ".dataset.state === 'sent'"
    )
    assert errors == []

    (stored,) = [o for o in service.outcomes(plan_id=service.plan_id) if o["case_id"] == first]
    assert stored["outcome"] == "promise_to_pay"
    assert (stored["promise_due"], stored["promise_amount_cents"]) == (due, 15000)
    assert (stored["collector_id"], stored["note"]) == ("K-01", "will pay after payday")
    # Checked in at the door: near the address, not flagged.
    assert stored["checkin"]["far_from_address"] is False
    assert stored["checkin"]["distance_m"] < 50

    # The dispatcher sees the stop done.
    with service.client() as client:
        progress = client.get(f"/v1/plans/{service.plan_id}/progress").json()
    (stop,) = [s for s in progress["stops"] if s["case_id"] == first]
    assert (stop["status"], stop["outcome"]) == ("done", "promise_to_pay")
    (route,) = [r for r in progress["routes"] if r["route_id"] == "K-01"]
    assert route["done"] == 1 and route["stops"] == len(own["stops"])


def test_another_collectors_link_sees_only_their_own_stops(service, phone):
    first = {stop["case_id"] for stop in service.itineraries["K-01"]["stops"]}
    second = {stop["case_id"] for stop in service.itineraries["K-02"]["stops"]}
    page, errors = _open(phone, service.links["K-02"]["page_url"])
    listed = set(
        page.eval_on_selector_all(
            ".dispatch-stops [data-stop]", "items => items.map(i => i.dataset.case)"
        )
    )
    assert listed == second and not listed & first
    text = page.content()
    assert not any(f'"{case_id}"' in text for case_id in first)
    assert errors == []
    # The second link opens nothing of the first collector's, nor can it report there.
    token = service.links["K-02"]["token"]
    base = f"/v1/plans/{service.plan_id}/itineraries/K-01"
    with httpx.Client(base_url=service.base_url, timeout=30) as client:
        assert client.get(base, params={"link": token}).status_code == 403
        assert client.get(f"{base}/page", params={"link": token}).status_code == 403
        body = {"case_id": sorted(first)[0], "outcome": "paid"}
        assert client.post(f"{base}/outcomes", params={"link": token}, json=body).status_code == 403


def test_an_outcome_entered_offline_is_sent_once_when_the_connection_returns(service, phone):
    stops = service.itineraries["K-02"]["stops"]
    case_id = stops[0]["case_id"]
    page, errors = _open(phone, service.links["K-02"]["page_url"])

    phone.set_offline(True)
    _record(page, case_id, "not_home", note="dog barking, nobody opened")
    assert _state(page, case_id) == "queued"
    assert page.locator("#dispatch-sync").is_visible()
    time.sleep(1.0)
    assert [o for o in service.outcomes(case_id=case_id)] == []

    phone.set_offline(False)
    page.wait_for_function(
        f"document.querySelector('.dispatch-status[data-case=\"{case_id}\"]')"
        ".dataset.state === 'sent'",
        timeout=30_000,
    )
    assert page.locator("#dispatch-sync").is_hidden()
    # A reload shows what the service has, and sends nothing again.
    page.reload(wait_until="load")
    assert _state(page, case_id) == "sent"
    assert "Not home" in page.locator(f'.dispatch-status[data-case="{case_id}"]').inner_text()
    # The page carries the outcome and its time, not what was written about the visit.
    assert "dog barking" not in page.content()
    time.sleep(1.0)
    stored = service.outcomes(case_id=case_id)
    assert len(stored) == 1
    assert (stored[0]["outcome"], stored[0]["collector_id"]) == ("not_home", "K-02")
    assert errors == []


def test_a_report_whose_answer_was_lost_is_resent_under_the_same_id(service, phone):
    stops = service.itineraries["K-02"]["stops"]
    case_id = stops[1]["case_id"]
    page, errors = _open(phone, service.links["K-02"]["page_url"])
    lost = []

    def lose_the_answer(route: Any) -> None:
        # The service records the outcome; the phone never hears back (a dropped connection).
        if not lost:
            lost.append(route.fetch().status)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/outcomes?link=*", lose_the_answer)
    _record(page, case_id, "refused")
    deadline = time.monotonic() + 30
    while not lost and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert lost == [201]
    # The page heard nothing back, so the report is still waiting on the phone.
    page.wait_for_timeout(300)
    assert _state(page, case_id) == "queued"
    assert page.locator("#dispatch-sync").is_visible()

    # The next try (the browser coming back online) sends the same report again.
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.wait_for_function(
        f"document.querySelector('.dispatch-status[data-case=\"{case_id}\"]')"
        ".dataset.state === 'sent'"
    )
    stored = service.outcomes(case_id=case_id)
    assert [o["outcome"] for o in stored] == ["refused"]
    assert errors == []


def test_the_dispatchers_map_shows_each_stops_status(service, browser):
    with service.client() as client:
        link = client.post(f"/v1/plans/{service.plan_id}/links/overview").json()
    # A plain browser, no key: the dispatcher's link opens the map.
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.route(f"**/{TILE_HOST}/**", lambda route: route.abort("internetdisconnected"))
    try:
        page, errors = _open(context, link["map_url"])
        with service.client() as client:
            progress = client.get(f"/v1/plans/{service.plan_id}/progress").json()
        shown = page.eval_on_selector_all(
            ".leaflet-marker-pane .dispatch-stop",
            "els => els.map(e => [e.dataset.case, e.dataset.status, e.dataset.outcome || null])",
        )
        assert sorted(map(tuple, shown)) == sorted(
            (s["case_id"], s["status"], s["outcome"]) for s in progress["stops"]
        )
        legend = page.locator(".dispatch-legend")
        for route in progress["routes"]:
            row = legend.locator(f'tr[data-collector="{route["route_id"]}"] td[data-done]')
            assert row.get_attribute("data-done") == str(route["done"])
        assert "visits done" in legend.inner_text()
        assert errors == []
    finally:
        context.close()
