"""The map pages in a real browser, offline, on a plan of the Helsinki sample city."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatch import io
from dispatch.compliance import (
    ComplianceResult,
    Policy,
    apply_policy,
    load_policy,
    redact_for_collector,
)
from dispatch.itinerary import Itinerary, build_itineraries
from dispatch.maps import page_filename, write_maps
from dispatch.matrix import build_matrices
from dispatch.model import Case, Plan, Problem
from dispatch.network import load_networks
from dispatch.solve import SolveParams, solve

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
HELSINKI_CENTRE = (60.1699, 24.9384)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TILE_HOST = "tile.openstreetmap.org"


@dataclasses.dataclass(frozen=True)
class Written:
    """A planned sample day and the folder its maps were written to."""

    policy: Policy
    compliance: ComplianceResult
    plan: Plan
    itineraries: tuple[Itinerary, ...]
    out_dir: Path


@dataclasses.dataclass
class Visit:
    """An open page and what the browser reported while loading it."""

    page: Any
    errors: list[str]
    blocked: list[str]

    def map_name(self) -> str:
        return self.page.eval_on_selector(".folium-map", "element => element.id")

    def data(self, selector: str) -> list[dict[str, str]]:
        """The ``data-*`` attributes of every element the selector finds."""
        return self.page.eval_on_selector_all(
            selector, "els => els.map(e => Object.assign({}, e.dataset))"
        )


def with_debtor(case: Case, number: int) -> Case:
    return dataclasses.replace(
        case,
        debtor_name=f"Debtor Number{number}",
        phone=f"+358 40 123 {number:04d}",
        national_id=f"010190-{number:03d}X",
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Written:
    cases = io.read_cases(SAMPLE / "cases.csv").items
    collectors = io.read_collectors(SAMPLE / "collectors.csv").items
    crews = io.read_crews(SAMPLE / "crews.csv", collectors=collectors).items
    day = Problem(
        dt.date(2026, 12, 1),
        "Europe/Helsinki",
        tuple(with_debtor(c, i) for i, c in enumerate(cases, start=1)),
        collectors,
        crews,
    )
    policy = load_policy(SAMPLE / "policy.yaml")
    compliance = apply_policy(day, policy)
    problem = compliance.problem
    networks = load_networks(None, problem.modes())
    matrices = build_matrices(problem, networks)
    plan = solve(problem, matrices, params=SolveParams(time_limit_s=10, solution_limit=20))
    itineraries = build_itineraries(problem, plan, networks, matrices)
    out_dir = tmp_path_factory.mktemp("maps")
    write_maps(
        problem,
        plan,
        itineraries,
        out_dir,
        exposure=policy.exposure,
        excluded=compliance.excluded,
        excluded_cases=day.cases,
    )
    return Written(policy, compliance, plan, itineraries, out_dir)


@pytest.fixture
def visit(browser) -> Iterator[Callable[..., Visit]]:
    """Open a page offline: only file:// loads; every other request is refused and listed."""
    contexts = []

    def open_page(path: Path, *, viewport: dict[str, int], mobile: bool = False) -> Visit:
        context = browser.new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile)
        contexts.append(context)
        page = context.new_page()
        found = Visit(page, [], [])

        def refuse_online(route):
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                found.blocked.append(route.request.url)
                route.abort("internetdisconnected")

        def note_error(message):
            if message.type == "error" and not _is_refused_tile(message):
                found.errors.append(f"console: {message.text} ({message.location})")

        context.route("**/*", refuse_online)
        page.on("pageerror", lambda error: found.errors.append(f"uncaught: {error}"))
        page.on("console", note_error)
        page.goto(path.as_uri(), wait_until="load")
        return found

    yield open_page
    for context in contexts:
        context.close()


def _is_refused_tile(message) -> bool:
    # Tiles are the one thing the pages fetch online; offline the browser reports each refusal.
    return TILE_HOST in message.location.get("url", "") and "Failed to load" in message.text


def test_overview_works_offline_with_every_stop_numbered_on_helsinki(written, visit, artifacts):
    opened = visit(written.out_dir / "overview.html", viewport=DESKTOP)
    page = opened.page
    assert opened.errors == []
    # Leaflet and jQuery came from assets/: the only online requests were map tiles.
    assert opened.blocked
    assert all(TILE_HOST in url for url in opened.blocked)
    assert page.locator(".folium-map.leaflet-container").count() == 1
    # A crew's route is drawn once, marked with its first member's id.
    markers = opened.data(".leaflet-marker-pane .dispatch-stop")
    assert len(markers) == sum(len(route.stops) for route in written.plan.routes)
    assert {(m["collector"], m["number"], m["case"]) for m in markers} == {
        (route.collector_id, str(number), stop.case_id)
        for route in written.plan.routes
        for number, stop in enumerate(route.stops, start=1)
    }
    breaks = opened.data(".leaflet-marker-pane .dispatch-break")
    assert sorted(b["collector"] for b in breaks) == sorted(
        r.collector_id for r in written.plan.routes if r.stops and r.break_start_s is not None
    )
    # The sample policy keeps a few cases off the day; they show in their own layer.
    assert written.compliance.excluded
    excluded = opened.data(".leaflet-marker-pane .dispatch-excluded")
    assert {(m["case"], m["rule"]) for m in excluded} == {
        (e.case_id, str(e.rule)) for e in written.compliance.excluded
    }
    # A road line per route with visits, plus a dot per unassigned case.
    routes = [r for r in written.plan.routes if r.stops]
    assert page.locator(".leaflet-overlay-pane path.leaflet-interactive").count() == len(
        routes
    ) + len(written.plan.unassigned)
    south, west, north, east = page.evaluate(
        "name => { const b = window[name].getBounds();"
        " return [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()]; }",
        opened.map_name(),
    )
    lat, lon = HELSINKI_CENTRE
    assert south < lat < north and west < lon < east
    # Fitted to the city, not the world.
    assert north - south < 0.5 and east - west < 1.0
    legend = page.locator(".dispatch-legend")
    assert legend.is_visible()
    collectors = written.compliance.problem.collectors
    assert legend.locator("tr[data-collector]").count() == len(collectors)
    page.screenshot(path=str(artifacts / "overview.png"))


def test_collector_page_on_a_phone_lists_only_their_own_stops(written, visit, artifacts):
    itinerary = max(written.itineraries, key=lambda it: it.visits)
    path = written.out_dir / "collectors" / page_filename(itinerary.collector.id)
    opened = visit(path, viewport=PHONE, mobile=True)
    page = opened.page
    assert opened.errors == []
    assert all(TILE_HOST in url for url in opened.blocked)
    own = [s.case.id for s in itinerary.stops]
    assert [item["case"] for item in opened.data(".dispatch-stops [data-stop]")] == own
    markers = opened.data(".leaflet-marker-pane .dispatch-stop")
    assert [m["case"] for m in sorted(markers, key=lambda m: int(m["number"]))] == own
    words = set(page.inner_text("body").split())
    others = {c.id for c in written.compliance.problem.cases} - set(own)
    assert not others & words
    # The debtor as the policy's profile lets the collector see them; never the national id.
    first = itinerary.stops[0].case
    shown = redact_for_collector({"phone": first.phone}, written.policy.exposure)
    assert page.locator(".dispatch-stops li[data-stop] .phone").first.inner_text() == shown.get(
        "phone", ""
    )
    assert first.national_id not in page.content()
    # The list fits a phone: it starts on the first screen and nothing is wider than the screen.
    stops = page.locator(".dispatch-stops")
    assert stops.is_visible()
    box = stops.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert box["y"] < PHONE["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(artifacts / "collector-phone.png"))
    page.screenshot(path=str(artifacts / "collector-phone-full.png"), full_page=True)


def test_tapping_a_stop_in_the_list_opens_it_on_the_map(written, visit):
    itinerary = written.itineraries[0]
    path = written.out_dir / "collectors" / page_filename(itinerary.collector.id)
    opened = visit(path, viewport=PHONE, mobile=True)
    last = itinerary.stops[-1]
    opened.page.locator(f'.dispatch-stops li[data-stop="{last.number}"] .eta').click()
    popup = opened.page.locator(".leaflet-popup-content")
    popup.wait_for(state="visible", timeout=5000)
    assert f"Stop {last.number}: {last.case.id}" in popup.inner_text()
    assert opened.errors == []


def test_a_crew_members_page_lists_the_crews_stops_and_the_break(written, visit, artifacts):
    # The crew's second member: their page shows the route planned under the first's id.
    itinerary = next(
        it for it in written.itineraries if it.members and it.collector.id != it.members[0].id
    )
    route = itinerary.route
    assert route.collector_id != itinerary.collector.id
    path = written.out_dir / "collectors" / page_filename(itinerary.collector.id)
    opened = visit(path, viewport=PHONE, mobile=True)
    page = opened.page
    assert opened.errors == []
    assert [item["case"] for item in opened.data(".dispatch-stops [data-stop]")] == list(
        route.case_ids
    )
    rest = itinerary.rest_break
    assert rest is not None
    span = f"{rest.start_s // 3600:02d}:{rest.start_s % 3600 // 60:02d}-"
    span += f"{rest.end_s // 3600:02d}:{rest.end_s % 3600 // 60:02d}"
    (item,) = opened.data(".dispatch-stops [data-break]")
    assert item["break"] == span
    # The break sits in the list between the visits it falls between.
    order = page.eval_on_selector_all(
        ".dispatch-stops li[data-stop], .dispatch-stops li[data-break]",
        "els => els.map(e => e.dataset.case || 'break')",
    )
    assert order.index("break") == rest.after
    partner = itinerary.members[0]
    assert f"together with {partner.name} ({partner.id})" in page.inner_text(".dispatch-header")
    (marker,) = opened.data(".leaflet-marker-pane .dispatch-break")
    assert (marker["start"], marker["end"]) == tuple(span.split("-"))
    # Tapping the break in the list opens its popup on the map.
    page.locator(".dispatch-stops li[data-break]").click()
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for(state="visible", timeout=5000)
    assert f"Break: {span}" in popup.inner_text()
    page.screenshot(path=str(artifacts / "crew-member-phone-full.png"), full_page=True)
