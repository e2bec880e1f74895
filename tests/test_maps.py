"""Maps of a plan on the real Helsinki walking network: what the dispatcher and collectors see."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import folium
import pytest

from dispatch.compliance import (
    Exclusion,
    Exposure,
    ExposureProfile,
    Rule,
    mask_name,
    mask_phone,
)
from dispatch.explain import time_route
from dispatch.itinerary import Itinerary, build_itineraries
from dispatch.maps import (
    ASSET_SCRIPTS,
    ASSET_STYLES,
    PALETTE,
    colour_of,
    copy_assets,
    page_filename,
    render_collector_page,
    render_overview,
    write_maps,
)
from dispatch.matrix import build_matrix
from dispatch.model import (
    Case,
    Collector,
    Location,
    Plan,
    Problem,
    Reason,
    TimeWindow,
    TravelMode,
    Unassigned,
)
from dispatch.network import load_network

WALK = TravelMode.WALK
SHIFT = TimeWindow(8 * 3600, 16 * 3600)
ROUTES = {"K1": ["MAP-11", "MAP-12", "MAP-13"], "K/2 ö": ["MAP-21", "MAP-22"]}
AMOUNTS_CENTS = {"MAP-11": 7_316_955, "MAP-12": 4_830_117, "MAP-13": 2_295_903}
TRICKY_ADDRESS = "Bulevardi 5 `B` <b>14</b> & ${alert(1)}"
DEBTORS = {
    "MAP-11": ("Matti Virtanen", "+358 40 123 4567", "131052-308T"),
    "MAP-12": ("Liisa Korhonen", "+358 50 765 4321", "240385-912P"),
    "MAP-13": ("Kari Nieminen", "+358 44 246 8013", "020202A123B"),
}
HIDE_ALL = ExposureProfile(
    (
        ("name", Exposure.HIDDEN),
        ("address", Exposure.HIDDEN),
        ("phone", Exposure.HIDDEN),
        ("amount_cents", Exposure.HIDDEN),
        ("days_past_due", Exposure.HIDDEN),
    )
)
SHOW_ALL = ExposureProfile((("phone", Exposure.FULL),))


def case(case_id: str, lat: float, lon: float, **kw) -> Case:
    kw.setdefault("address", f"{case_id} Mannerheimintie")
    kw.setdefault("amount_cents", AMOUNTS_CENTS.get(case_id, 100_000))
    kw.setdefault("value_cents", kw["amount_cents"] // 4)
    kw.setdefault("days_past_due", 90 + int(case_id[-2:]))
    name, phone, national_id = DEBTORS.get(case_id, ("", "", ""))
    return Case(
        case_id,
        Location(lat, lon),
        debtor_name=name,
        phone=phone,
        national_id=national_id,
        **kw,
    )


@pytest.fixture(scope="module")
def problem() -> Problem:
    cases = (
        case("MAP-11", 60.16912, 24.94102, windows=(TimeWindow(9 * 3600, 11 * 3600),)),
        case("MAP-12", 60.17205, 24.94634, skills={"legal"}, address=TRICKY_ADDRESS),
        case(
            "MAP-13",
            60.17488,
            24.94210,
            windows=(TimeWindow(8 * 3600, 9 * 3600), TimeWindow(13 * 3600, 15 * 3600)),
        ),
        case("MAP-21", 60.16603, 24.94987),
        case("MAP-22", 60.16820, 24.95135),
        case("MAP-91", 60.17020, 24.93790, skills={"swedish"}),
        case("MAP-92", 60.17700, 24.95050),
    )
    home = Location(60.17098, 24.94128)
    collectors = (
        Collector("K1", "Aino", home, home, SHIFT, skills=frozenset({"legal"}), mode=WALK),
        Collector(
            "K/2 ö",
            "Bertil",
            Location(60.16747, 24.94552),
            Location(60.1739, 24.9478),
            SHIFT,
            mode=WALK,
        ),
        Collector("K3", "Cecilia", home, home, SHIFT, mode=WALK),
    )
    return Problem(dt.date(2025, 6, 3), "Europe/Helsinki", cases, collectors)


@pytest.fixture(scope="module")
def scenario(problem):
    network = load_network(None, mode=WALK)
    matrices = {WALK: build_matrix(network, problem.points())}
    routes = tuple(time_route(problem, matrices, k, ids) for k, ids in ROUTES.items())
    unassigned = (
        Unassigned("MAP-91", Reason.NO_QUALIFIED_COLLECTOR, "nobody on duty speaks swedish"),
        Unassigned("MAP-92", Reason.CAPACITY_EXHAUSTED, "every route was full by 15:10"),
    )
    plan = Plan(routes, unassigned)
    itineraries = build_itineraries(problem, plan, {WALK: network}, matrices)
    return plan, itineraries


@pytest.fixture(scope="module")
def overview(problem, scenario, tmp_path_factory) -> str:
    plan, itineraries = scenario
    path = tmp_path_factory.mktemp("maps") / "overview.html"
    assert render_overview(problem, plan, itineraries, path) == path
    return path.read_text(encoding="utf-8")


def render_pages(problem, itineraries, folder: Path, **kw) -> dict[str, str]:
    texts = {}
    for itinerary in itineraries:
        path = render_collector_page(problem, itinerary, folder / f"{len(texts)}.html", **kw)
        texts[itinerary.collector.id] = path.read_text(encoding="utf-8")
    return texts


@pytest.fixture(scope="module")
def pages(problem, scenario, tmp_path_factory) -> dict[str, str]:
    _, itineraries = scenario
    return render_pages(problem, itineraries, tmp_path_factory.mktemp("pages"))


@pytest.fixture(scope="module")
def hidden_pages(problem, scenario, tmp_path_factory) -> dict[str, str]:
    _, itineraries = scenario
    return render_pages(problem, itineraries, tmp_path_factory.mktemp("hidden"), exposure=HIDE_ALL)


class TagChecker(HTMLParser):
    """Collect start tags and check that every non-void element is closed in order."""

    VOID: ClassVar[set[str]] = {
        "meta",
        "link",
        "br",
        "img",
        "input",
        "hr",
        "area",
        "base",
        "col",
        "source",
        "wbr",
    }

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.starts: list[tuple[str, dict[str, str | None]]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.starts.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.starts.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def parse(text: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(text)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    return checker


def div_icons(text: str) -> list[dict[str, str | None]]:
    """Attributes of the element each Leaflet divIcon draws."""
    icons = []
    for raw in re.findall(r'L\.divIcon\(\{\s*"html": ("(?:[^"\\]|\\.)*")', text):
        checker = parse(json.loads(raw))
        icons.append({**checker.starts[0][1], "text": _text_of(json.loads(raw))})
    return icons


def _text_of(markup: str) -> str:
    return re.sub(r"<[^>]+>", "", markup).strip()


def popups(text: str) -> list[str]:
    return re.findall(r'\$\(`<div id="html_[0-9a-f]+"[^>]*>(.*?)</div>`\)\[0\]', text, re.S)


def overlay_names(text: str) -> list[str]:
    block = re.search(r"overlays :\s*\{(.*?)\},", text, re.S)
    assert block is not None
    return [json.loads(name) for name in re.findall(r'("(?:[^"\\]|\\.)*")\s*:', block.group(1))]


def stop_keys(itineraries: tuple[Itinerary, ...]) -> set[tuple[str, str, str]]:
    return {(it.collector.id, str(s.number), s.case.id) for it in itineraries for s in it.stops}


def test_overview_is_one_complete_leaflet_page(overview, scenario):
    _, itineraries = scenario
    checker = parse(overview)
    maps = [a for tag, a in checker.starts if tag == "div" and a.get("class") == "folium-map"]
    assert len(maps) == 1
    assert overview.count("L.map(") == 1
    assert overview.count("L.polyline(") == len(itineraries)
    # A marker per stop plus one per start and end (K1 starts and ends at home).
    assert overview.count("L.marker(") == sum(it.visits for it in itineraries) + 1 + 2
    assert overview.count("L.circleMarker(") == 2
    assert overview.count(".fitBounds(") == 1


def test_overview_has_a_layer_per_collector_with_stops_and_one_for_unassigned(overview, scenario):
    _, itineraries = scenario
    assert overview.count("L.featureGroup(") == len(itineraries) + 1
    assert overlay_names(overview) == [
        "Aino (K1) (3)",
        "Bertil (K/2 ö) (2)",
        "Unassigned (2)",
    ]


def test_overview_numbers_each_stop_in_its_collectors_colour(overview, problem, scenario):
    _, itineraries = scenario
    icons = [i for i in div_icons(overview) if i.get("class") == "dispatch-stop"]
    assert {(i["data-collector"], i["data-number"], i["data-case"]) for i in icons} == stop_keys(
        itineraries
    )
    assert all(i["text"] == i["data-number"] for i in icons)
    for icon in icons:
        colour = colour_of(problem.collector_position(icon["data-collector"]))
        assert f"background:{colour}" in icon["style"]
    assert len({colour_of(i) for i in range(len(problem.collectors))}) == len(problem.collectors)


def test_overview_popups_give_case_window_eta_wait_and_collector(overview, scenario):
    _, itineraries = scenario
    texts = popups(overview)
    first = itineraries[0].stops[0]
    popup = next(p for p in texts if f"Stop 1: {first.case.id}" in p)
    eta = first.stop.arrival_s
    assert f"<th>ETA</th><td>{eta // 3600:02d}:{eta % 3600 // 60:02d}</td>" in popup
    assert "<th>Window</th><td>09:00-11:00</td>" in popup
    assert f"<th>Wait</th><td>{round(first.stop.wait_s / 60)} min</td>" in popup
    assert "<th>Collector</th><td>Aino (K1)</td>" in popup
    two_windows = next(p for p in texts if "Stop 3: MAP-13" in p)
    assert "08:00-09:00, 13:00-15:00" in two_windows
    all_day = next(p for p in texts if "Stop 2: MAP-12" in p)
    assert "<th>Window</th><td>any time</td>" in all_day


def test_overview_shows_every_unassigned_case_with_its_reason(overview, scenario):
    plan, _ = scenario
    texts = popups(overview)
    for item in plan.unassigned:
        popup = next(p for p in texts if f"Unassigned: {item.case_id}" in p)
        assert f"<th>Reason</th><td>{item.reason.value}</td>" in popup
        assert f"<th>Detail</th><td>{item.detail}</td>" in popup


def test_overview_legend_lists_every_collector_with_visits_and_travel(overview, problem, scenario):
    _, itineraries = scenario
    legend = re.search(r'<div class="dispatch-legend">(.*?)</div>', overview, re.S).group(1)
    rows = dict(re.findall(r'<tr data-collector="([^"]+)">(.*?)</tr>', legend, re.S))
    assert list(rows) == [k.id for k in problem.collectors]
    for itinerary in itineraries:
        row = rows[itinerary.collector.id]
        assert f"{itinerary.visits} visits" in row
        minutes = round(itinerary.travel_time_s / 60)
        assert f"{minutes} min" in row or f"{minutes // 60} h {minutes % 60:02d} min" in row
    assert "0 visits" in rows["K3"]
    assert "2 cases" in legend


def test_an_empty_plan_still_gives_a_map_with_the_collectors(problem, tmp_path):
    path = render_overview(problem, Plan((), ()), (), tmp_path / "empty.html")
    text = path.read_text(encoding="utf-8")
    parse(text)
    assert "L.featureGroup(" not in text
    assert text.count('<td class="num">0 visits</td>') == len(problem.collectors)


def test_text_from_the_cases_is_escaped(overview, pages):
    for text in (overview, *pages.values()):
        assert "<b>14</b>" not in text
        assert "${alert" not in text
        assert "`B`" not in text
    assert "Bulevardi 5 &#96;B&#96; &lt;b&gt;14&lt;/b&gt; &amp; &#36;{alert(1)}" in pages["K1"]


def test_collector_page_shows_only_that_collectors_visits(pages, scenario):
    plan, itineraries = scenario
    every_case = {s.case.id for it in itineraries for s in it.stops} | {
        u.case_id for u in plan.unassigned
    }
    for itinerary in itineraries:
        text = pages[itinerary.collector.id]
        own = {s.case.id for s in itinerary.stops}
        assert all(case_id in text for case_id in own)
        assert not any(case_id in text for case_id in every_case - own)
        others = [it.collector.name for it in itineraries if it is not itinerary]
        assert not any(name in text for name in others)


def without_generated_numbers(text: str) -> str:
    # Generated element ids and coordinates are digits too; amounts must not hide in them.
    text = re.sub(r"[a-z_]+_[0-9a-f]{32}", "", text)
    return re.sub(r"-?\d+\.\d{5,}", "", text)


def amount_spellings(cents: int) -> list[str]:
    units = cents // 100
    grouped = f"{units:,}"
    return [
        str(cents),
        str(units),
        grouped,
        *(grouped.replace(",", sep) for sep in (" ", "\u202f", "\u00a0", ".")),
    ]


def stop_item(text: str, case_id: str) -> str:
    match = re.search(rf'<li data-stop="\d+" data-case="{case_id}">(.*?)</li>', text, re.S)
    assert match is not None
    return match.group(1)


def test_collector_page_shows_the_debtor_as_the_default_profile_allows(pages):
    item = stop_item(pages["K1"], "MAP-11")
    assert '<span class="debtor">Matti Virtanen</span>' in item
    # The default profile masks the phone: recognisable, not diallable.
    assert '<span class="phone">+358 40 *** **67</span>' in item
    assert "tel:" not in pages["K1"]
    assert "owes 73\u202f169.55 · 101 days past due" in item
    popup = next(p for p in popups(pages["K1"]) if "Stop 1: MAP-11" in p)
    assert "<th>Phone</th><td>+358 40 *** **67</td>" in popup
    assert "<th>Amount</th><td>73\u202f169.55</td>" in popup


def test_collector_pages_never_show_national_ids_values_or_full_masked_phones(pages):
    for text in pages.values():
        for _, phone, national_id in DEBTORS.values():
            assert national_id not in text
            assert phone not in text
            assert phone.replace(" ", "") not in text
        assert "value" not in text.lower()
        assert "national" not in text.lower()
    # A value (a quarter of the amount here) never appears, however it is spelled.
    text = without_generated_numbers(pages["K1"])
    for cents in AMOUNTS_CENTS.values():
        for shown in amount_spellings(cents // 4):
            assert shown not in text


def test_a_full_phone_is_a_link_to_dial(problem, scenario, tmp_path):
    _, itineraries = scenario
    text = render_pages(problem, itineraries[:1], tmp_path, exposure=SHOW_ALL)["K1"]
    assert '<a class="phone" href="tel:+358401234567">+358 40 123 4567</a>' in stop_item(
        text, "MAP-11"
    )
    assert "131052-308T" not in text


def test_collector_page_hides_what_the_profile_hides(hidden_pages, scenario):
    _, itineraries = scenario
    for itinerary in itineraries:
        text = without_generated_numbers(hidden_pages[itinerary.collector.id])
        for stop in itinerary.stops:
            case = stop.case
            item = stop_item(text, case.id)
            # The visit itself stays: case id, ETA, window and navigation.
            assert f"Case {case.id}" in item
            assert "Google Maps" in item
            assert case.address not in text
            assert f"{case.days_past_due} days" not in text
            for cents in (case.amount_cents, case.value):
                assert not any(shown in text for shown in amount_spellings(cents))
        for name, phone, national_id in DEBTORS.values():
            for shown in (*name.split(), mask_name(name), phone, mask_phone(phone), national_id):
                assert shown not in text
        assert "owes" not in text
        assert 'class="debtor"' not in text
        assert 'class="phone"' not in text
        assert "<th>Amount</th>" not in text
        assert "<th>Phone</th>" not in text


def test_collector_page_lists_the_stops_in_order_for_a_phone(pages, scenario):
    _, itineraries = scenario
    for itinerary in itineraries:
        checker = parse(pages[itinerary.collector.id])
        assert any(
            tag == "meta" and a.get("name") == "viewport" and "width=device-width" in a["content"]
            for tag, a in checker.starts
        )
        items = [(a["data-stop"], a["data-case"]) for tag, a in checker.starts if "data-stop" in a]
        assert items == [(str(s.number), s.case.id) for s in itinerary.stops]
        links = [a["href"] for tag, a in checker.starts if tag == "a" and "href" in a]
        for stop in itinerary.stops:
            destination = f"{stop.case.location.lat:.6f},{stop.case.location.lon:.6f}"
            google = [u for u in links if parse_qs(urlsplit(u).query).get("destination")]
            assert [destination] in [parse_qs(urlsplit(u).query)["destination"] for u in google]
            assert f"ETA {stop.stop.arrival_s // 3600:02d}:" in pages[itinerary.collector.id]


def test_write_maps_writes_the_overview_and_a_safe_page_per_collector(problem, scenario, tmp_path):
    plan, itineraries = scenario
    paths = write_maps(problem, plan, itineraries, tmp_path / "out")
    pages_dir = tmp_path / "out" / "collectors"
    pages = [pages_dir / "K1.html", pages_dir / page_filename("K/2 ö")]
    sheets = [page.with_suffix(".csv") for page in pages]
    assert paths == [tmp_path / "out" / "overview.html", *pages, *sheets]
    assert all(p.is_file() and p.parent in (tmp_path / "out", pages_dir) for p in paths)
    assert "MAP-21" in paths[2].read_text(encoding="utf-8")
    legend_links = re.findall(r'<a href="(collectors/[^"]+)">', paths[0].read_text("utf-8"))
    assert [tmp_path / "out" / link for link in legend_links] == pages
    assert sorted(p.name for p in pages_dir.iterdir()) == sorted(p.name for p in paths[1:])


def test_route_sheet_lists_the_stops_redacted_by_the_profile(scenario, tmp_path):
    from dispatch.compliance import Exposure, ExposureProfile
    from dispatch.maps import write_route_sheet

    _, itineraries = scenario
    itinerary = itineraries[0]
    secret = dataclasses.replace(
        itinerary.stops[0].case, phone="+358 40 123 4567", national_id="010180-123X"
    )
    first = dataclasses.replace(itinerary.stops[0], case=secret)
    itinerary = dataclasses.replace(itinerary, stops=(first, *itinerary.stops[1:]))
    hidden = ExposureProfile(levels=(("amount_cents", Exposure.HIDDEN),))
    path = write_route_sheet(itinerary, tmp_path / "sheet.csv", exposure=hidden)
    text = path.read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert [r["case_id"] for r in rows] == [s.case.id for s in itinerary.stops]
    assert rows[0]["phone"] == "+358 40 *** **67"
    assert all(r["amount"] == "" for r in rows)
    assert "010180-123X" not in text


@pytest.mark.parametrize("collector_id", ["K/2 ö", "../etc", "a b", "a_b", ".hidden", "ä"])
def test_page_filenames_are_safe_and_distinct(collector_id):
    name = page_filename(collector_id)
    assert re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\.html", name)
    assert Path(name).name == name


def test_page_filenames_never_collide():
    ids = ["a/b", "a_b", "a b", "a\\b", "K1", "k1"]
    assert len({page_filename(i) for i in ids}) == len(ids)


def test_palette_has_at_least_ten_distinct_colours_and_no_grey():
    assert len(set(PALETTE)) >= 10
    assert "#7f7f7f" not in PALETTE


def test_overview_popups_give_the_dispatcher_debtor_amount_and_value(overview):
    popup = next(p for p in popups(overview) if "Stop 1: MAP-11" in p)
    assert "<th>Debtor</th><td>Matti Virtanen</td>" in popup
    assert "<th>Amount</th><td>73\u202f169.55</td>" in popup
    assert "<th>Value</th><td>18\u202f292.38</td>" in popup
    assert "<th>Days past due</th><td>101</td>" in popup
    for _, phone, national_id in DEBTORS.values():
        assert national_id not in overview
        assert phone not in overview


EXCLUDED = (
    case("MAP-81", 60.16500, 24.93500, flags={"vulnerable"}),
    case("MAP-82", 60.18100, 24.95600, address="Siltasaarenkatu 4 <i>A</i>"),
)
EXCLUSIONS = (
    Exclusion("MAP-81", Rule.FLAG, "flag(s) vulnerable block visits under policy fi-company"),
    Exclusion("MAP-82", Rule.PROMISE_COOL_OFF, "promise to pay due 2025-06-10 (+3 days grace)"),
)


@pytest.fixture(scope="module")
def overview_with_exclusions(problem, scenario, tmp_path_factory) -> str:
    plan, itineraries = scenario
    path = tmp_path_factory.mktemp("excluded") / "overview.html"
    # The cases before the policy: the plan's own and the excluded ones, in any order.
    before_policy = (*EXCLUDED, *problem.cases)
    render_overview(
        problem, plan, itineraries, path, excluded=EXCLUSIONS, excluded_cases=before_policy
    )
    return path.read_text(encoding="utf-8")


def test_overview_draws_policy_exclusions_in_their_own_layer_with_the_rule(
    overview_with_exclusions,
):
    text = overview_with_exclusions
    parse(text)
    assert overlay_names(text)[-2:] == ["Unassigned (2)", "Excluded by policy (2)"]
    icons = [i for i in div_icons(text) if i.get("class") == "dispatch-excluded"]
    assert {(i["data-case"], i["data-rule"]) for i in icons} == {
        ("MAP-81", "FLAG"),
        ("MAP-82", "PROMISE_COOL_OFF"),
    }
    texts = popups(text)
    for exclusion in EXCLUSIONS:
        popup = next(p for p in texts if f"Excluded by policy: {exclusion.case_id}" in p)
        assert f"<th>Rule</th><td>{exclusion.rule}</td>" in popup
        assert f"<th>Detail</th><td>{exclusion.detail}</td>" in popup
    assert "Siltasaarenkatu 4 &lt;i&gt;A&lt;/i&gt;" in text
    legend = re.search(r'<tr data-layer="excluded">(.*?)</tr>', text, re.S)
    assert legend is not None
    assert "Excluded by policy" in legend.group(1)
    assert "2 cases" in legend.group(1)


def test_the_map_is_fitted_to_the_excluded_cases_too(overview_with_exclusions):
    match = re.search(r"\.fitBounds\(\s*(\[\[.*?\]\])", overview_with_exclusions, re.S)
    assert match is not None
    (south, west), (north, east) = json.loads(match.group(1))
    for excluded in EXCLUDED:
        assert south <= excluded.location.lat <= north
        assert west <= excluded.location.lon <= east


def test_an_exclusion_without_its_case_is_refused(problem, scenario, tmp_path):
    plan, itineraries = scenario
    with pytest.raises(ValueError, match="MAP-82"):
        render_overview(
            problem,
            plan,
            itineraries,
            tmp_path / "overview.html",
            excluded=EXCLUSIONS,
            excluded_cases=EXCLUDED[:1],
        )
    assert not (tmp_path / "overview.html").exists()


def linked_files(text: str) -> list[str]:
    checker = parse(text)
    links = [a["src"] for tag, a in checker.starts if tag == "script" and a.get("src")]
    links += [a["href"] for tag, a in checker.starts if tag == "link" and a.get("href")]
    return links


def test_pages_load_leaflet_and_jquery_from_the_folder_written_beside_them(
    problem, scenario, tmp_path
):
    plan, itineraries = scenario
    out = tmp_path / "out"
    overview, *written = write_maps(problem, plan, itineraries, out)
    pages = [path for path in written if path.suffix == ".html"]
    shipped = [file for _, file in (*ASSET_SCRIPTS, *ASSET_STYLES)]
    assert linked_files(overview.read_text("utf-8")) == [f"assets/{f}" for f in shipped]
    # Collector pages also load the page's own script, from the same folder.
    own = sorted(f"../assets/{f}" for f in (*shipped, "dispatch/collector.js"))
    for page in pages:
        assert sorted(linked_files(page.read_text("utf-8"))) == own
    for page in (overview, *pages):
        for link in linked_files(page.read_text("utf-8")):
            assert (page.parent / link).resolve().is_file()
    for name in ("leaflet/LICENSE", "jquery/LICENSE.txt", "leaflet/images/layers.png"):
        assert (out / "assets" / name).is_file()


def test_pages_need_nothing_from_a_cdn(overview, pages, overview_with_exclusions):
    for text in (overview, overview_with_exclusions, *pages.values()):
        assert all("//" not in link for link in linked_files(text))
        lowered = text.lower()
        for unused in ("bootstrap", "awesome", "glyphicon", "fontawesome", "cdn."):
            assert unused not in lowered
    # The one thing fetched online: the background tiles.
    assert re.findall(r'"(https?://[^"]*\{z\}[^"]*)"', overview) == [
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    ]


def test_the_shipped_assets_are_leaflet_1_9_4_and_jquery_3_7_1(tmp_path):
    folder = copy_assets(tmp_path / "assets")
    assert 't.version="1.9.4"' in (folder / "leaflet/leaflet.js").read_text("utf-8")
    assert "jQuery v3.7.1" in (folder / "jquery/jquery.min.js").read_text("utf-8")
    assert "BSD 2-Clause" in (folder / "leaflet/LICENSE").read_text("utf-8")
    assert "Permission is hereby granted" in (folder / "jquery/LICENSE.txt").read_text("utf-8")
    # Copying again leaves the files as they are.
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    copy_assets(folder)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before


def test_a_page_rendered_alone_gets_its_assets_beside_it(problem, scenario, tmp_path):
    _, itineraries = scenario
    path = render_collector_page(problem, itineraries[0], tmp_path / "page.html")
    assert linked_files(path.read_text("utf-8"))[0] == "assets/leaflet/leaflet.js"
    assert (tmp_path / "assets/leaflet/leaflet.js").is_file()


def test_folium_maps_elsewhere_keep_their_own_links(overview, pages):
    # Our pages swap the links on their own maps only; folium's shared defaults stay.
    text = folium.Map().get_root().render()
    assert "leaflet.js" in text
    assert "assets/leaflet" not in text


def test_write_maps_applies_the_profile_to_every_collector_page_but_not_the_overview(
    problem, scenario, tmp_path
):
    plan, itineraries = scenario
    overview, *pages = write_maps(problem, plan, itineraries, tmp_path, exposure=HIDE_ALL)
    for page in pages:
        text = page.read_text("utf-8")
        assert "owes" not in text
        assert "Matti Virtanen" not in text
    assert "<th>Debtor</th><td>Matti Virtanen</td>" in overview.read_text("utf-8")


# --- crews, breaks, appointments and every reason -------------------------------------------

LUNCH = TimeWindow(11 * 3600, 13 * 3600 + 1800)


@pytest.fixture(scope="module")
def crew_scenario(problem, tmp_path_factory):
    """K1 and K3 work as crew W with a lunch break; an appointment and a two-person visit."""
    from dispatch.model import Crew

    cases = {c.id: c for c in problem.cases}
    cases["MAP-11"] = dataclasses.replace(cases["MAP-11"], appointment_s=10 * 3600)
    cases["MAP-12"] = dataclasses.replace(cases["MAP-12"], min_crew=2)
    cases["MAP-13"] = dataclasses.replace(
        cases["MAP-13"], windows=(TimeWindow(13 * 3600, 15 * 3600),)
    )
    cases["MAP-92"] = dataclasses.replace(cases["MAP-92"], appointment_s=7 * 3600)
    collectors = tuple(
        dataclasses.replace(k, break_window=LUNCH, break_s=1800) if k.id in ("K1", "K3") else k
        for k in problem.collectors
    )
    day = dataclasses.replace(
        problem,
        cases=tuple(cases.values()),
        collectors=collectors,
        crews=(Crew("W", ("K1", "K3")),),
    )
    network = load_network(None, mode=WALK)
    matrices = {WALK: build_matrix(network, day.points())}
    routes = tuple(time_route(day, matrices, k, ids) for k, ids in ROUTES.items())
    unassigned = (
        Unassigned("MAP-91", Reason.NO_CREW, "needs 2 collectors holding swedish"),
        Unassigned("MAP-92", Reason.APPOINTMENT_IMPOSSIBLE, "07:00 is before every shift"),
    )
    plan = Plan(routes, unassigned)
    itineraries = build_itineraries(day, plan, {WALK: network}, matrices)
    out = tmp_path_factory.mktemp("crew")
    written = write_maps(day, plan, itineraries, out)
    return day, plan, itineraries, out, written


def test_a_crew_route_is_drawn_once_in_its_first_members_colour(crew_scenario):
    _, plan, itineraries, out, _ = crew_scenario
    text = (out / "overview.html").read_text("utf-8")
    assert [it.collector.id for it in itineraries] == ["K1", "K/2 ö", "K3"]
    assert text.count("L.polyline(") == len(plan.routes) == 2
    icons = [i for i in div_icons(text) if i.get("class") == "dispatch-stop"]
    assert sorted(i["data-case"] for i in icons) == sorted(
        c for r in plan.routes for c in r.case_ids
    )
    crew_icons = [i for i in icons if i["data-case"] in ROUTES["K1"]]
    assert {i["data-collector"] for i in crew_icons} == {"K1"}
    assert all(f"background:{colour_of(0)}" in i["style"] for i in crew_icons)
    assert overlay_names(text)[0] == "Crew W: Aino (K1) + Cecilia (K3) (3)"
    popup = next(p for p in popups(text) if "Stop 2: MAP-12" in p)
    assert "<th>Crew</th><td>Crew W: Aino (K1) + Cecilia (K3)</td>" in popup
    assert "<th>Crew</th><td>2-person visit</td>" in popup


def test_the_legend_lists_the_crew_under_each_member_with_the_break(crew_scenario):
    _, plan, _, out, _ = crew_scenario
    text = (out / "overview.html").read_text("utf-8")
    legend = re.search(r'<div class="dispatch-legend">(.*?)</div>', text, re.S).group(1)
    rows = dict(re.findall(r'<tr data-collector="([^"]+)">(.*?)</tr>', legend, re.S))
    crew = plan.route_of("K1")
    rest = f"{crew.break_start_s // 3600:02d}:{crew.break_start_s % 3600 // 60:02d}"
    for member, partner in (("K1", "K3"), ("K3", "K1")):
        assert "3 visits" in rows[member]
        assert f"crew W with {partner}" in rows[member]
        assert f"break {rest}-" in rows[member]
        assert f"background:{colour_of(0)}" in rows[member]
    # Each visit counted once in the day's total.
    assert re.search(r"<h2>[^<]*: 5 visits", legend)


def test_the_break_is_marked_where_it_is_taken_with_a_popup(crew_scenario):
    _, plan, itineraries, out, _ = crew_scenario
    rest = itineraries[0].rest_break
    route = plan.route_of("K1")
    assert rest is not None and (rest.start_s, rest.end_s) == (
        route.break_start_s,
        route.break_end_s,
    )
    # MAP-13 opens at 13:00: the crew arrives early and takes the break at its door.
    assert rest.place.value == "at_the_door"
    text = (out / "overview.html").read_text("utf-8")
    (icon,) = [i for i in div_icons(text) if i.get("class") == "dispatch-break"]
    start, end = (f"{s // 3600:02d}:{s % 3600 // 60:02d}" for s in (rest.start_s, rest.end_s))
    assert (icon["data-collector"], icon["data-start"], icon["data-end"]) == ("K1", start, end)
    popup = next(p for p in popups(text) if f"Break: {start}-{end}" in p)
    assert "<th>Where</th><td>at stop 3 (MAP-13), before the visit</td>" in popup
    assert "<th>When</th><td>" + f"{start}-{end} (30 min)" in popup
    lat, lon = rest.point[1], rest.point[0]
    assert re.search(rf"L\.marker\(\s*\[{lat}, {lon}\]", text)


def test_every_reason_has_a_meaning_and_the_legend_counts_them(crew_scenario):
    from dispatch.maps import REASON_TEXT

    assert set(REASON_TEXT) == set(Reason)
    _, plan, _, out, _ = crew_scenario
    text = (out / "overview.html").read_text("utf-8")
    for item in plan.unassigned:
        popup = next(p for p in popups(text) if f"Unassigned: {item.case_id}" in p)
        assert f"<th>Reason</th><td>{item.reason.value}</td>" in popup
        assert f"<th>Meaning</th><td>{html.escape(REASON_TEXT[item.reason])}</td>" in popup
        row = re.search(rf'<tr data-reason="{item.reason.value}">(.*?)</tr>', text, re.S)
        assert row is not None and '<td class="num">1</td>' in row.group(1)
    popup = next(p for p in popups(text) if "Unassigned: MAP-92" in p)
    assert "<th>Appointment</th><td>07:00 ± 10 min</td>" in popup


def test_each_crew_member_gets_a_page_with_the_crews_stops_and_the_break(crew_scenario):
    _, plan, itineraries, out, written = crew_scenario
    pages_dir = out / "collectors"
    assert {p.name for p in written if p.suffix == ".html"} == {
        "overview.html",
        "K1.html",
        "K3.html",
        page_filename("K/2 ö"),
    }
    for member, partner in (("K1", "Cecilia (K3)"), ("K3", "Aino (K1)")):
        text = (pages_dir / f"{member}.html").read_text("utf-8")
        checker = parse(text)
        entries = [
            a.get("data-case") or f"break {a['data-break']}"
            for tag, a in checker.starts
            if tag == "li" and ("data-stop" in a or "data-break" in a)
        ]
        rest = plan.route_of("K1")
        start = f"{rest.break_start_s // 3600:02d}:{rest.break_start_s % 3600 // 60:02d}"
        assert entries[:2] == ["MAP-11", "MAP-12"]
        assert entries[2].startswith(f"break {start}-") and entries[3:] == ["MAP-13"]
        assert f"Crew W: together with {partner}" in text
        assert "Appointment 10:00 ± 10 min" in stop_item(text, "MAP-11")
        assert '<li data-stop="2" data-case="MAP-12" data-crew-visit>' in text
        assert "2-person visit: go with" in text
        # The door break is not counted as waiting.
        door = itineraries[0].stops[2]
        assert door.break_s == 1800
        assert f"wait {round(door.wait_s / 60)} min" in stop_item(text, "MAP-13")
        assert "break 30 min here first" in stop_item(text, "MAP-13")
        assert "MAP-21" not in text


def test_the_route_sheet_has_a_row_for_the_break_and_the_appointment(crew_scenario):
    _, _, _, out, _ = crew_scenario
    rows = list(csv.DictReader((out / "collectors" / "K3.csv").read_text("utf-8").splitlines()))
    assert [r["stop"] for r in rows] == ["1", "2", "break", "3"]
    assert rows[0]["appointment"] == "10:00 ± 10 min"
    assert [r["min_crew"] for r in rows] == ["", "2", "", ""]
    assert rows[2]["service_min"] == "30"
