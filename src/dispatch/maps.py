"""Leaflet maps of a plan: the dispatcher's overview and one phone page per collector."""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import cast

import folium

from dispatch.compliance import Exclusion, Exposure, ExposureProfile, Outcome, redact_for_collector
from dispatch.itinerary import (
    DEFAULT_NAVIGATION,
    NAVIGATION_APPS,
    BreakPlace,
    Itinerary,
    ItineraryBreak,
    ItineraryStop,
    navigation_links,
)
from dispatch.model import (
    ALL_DAY,
    Case,
    Collector,
    Location,
    Plan,
    Problem,
    Reason,
    TimeWindow,
    TravelMode,
    Unassigned,
    format_clock,
)
from dispatch.progress import Progress, StopProgress, StopStatus

# Qualitative palette (Tableau 10 without its grey, plus navy and black): grey marks
# unassigned cases. Collectors beyond its length reuse colours; layers tell them apart.
PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#000000",
)
UNASSIGNED_COLOUR = "#7f7f7f"
EXCLUDED_COLOUR = "#303030"

# Leaflet and jQuery (folium's popups call ``$``) ship with the package, so that the pages
# work where a CDN is blocked or the connection is poor; only the map tiles come from online.
ASSET_SCRIPTS: tuple[tuple[str, str], ...] = (
    ("leaflet", "leaflet/leaflet.js"),
    ("jquery", "jquery/jquery.min.js"),
)
ASSET_STYLES: tuple[tuple[str, str], ...] = (("leaflet_css", "leaflet/leaflet.css"),)

# What each reason means, for the dispatcher reading an unassigned case's popup.
REASON_TEXT: dict[Reason, str] = {
    Reason.OFF_NETWORK: "the address is too far from any usable road",
    Reason.NO_QUALIFIED_COLLECTOR: "no collector on duty holds the skills it needs",
    Reason.NO_CREW: "it needs a crew, and no crew that large holds its skills",
    Reason.UNREACHABLE: "no qualified collector can reach it and get back",
    Reason.NO_FEASIBLE_TIME: "no qualified collector can come inside its windows and shift",
    Reason.APPOINTMENT_IMPOSSIBLE: "nobody qualified can start within the appointment's tolerance",
    Reason.CAPACITY_EXHAUSTED: "it fits alone, but every route that could take it was full",
    Reason.NOT_WORTH_TRAVEL: "the extra travel would cost more than the visit is worth",
    Reason.POLICY_EXCLUDED: "the compliance policy forbids a visit today",
    Reason.NOT_FOR_FIELD: "triage keeps it with calls and messages today",
    Reason.CASE_CLOSED: "a visit collected the debt in full",
    Reason.ADDRESS_UNVERIFIED: "the debtor moved or the address was wrong at the last visit",
}
BREAK_SYMBOL = "\u2016"
_MODE_WORDS = {TravelMode.WALK: "walking", TravelMode.BIKE: "cycling", TravelMode.DRIVE: "driving"}
# Outcomes in the collector's words, in the order the form offers them.
OUTCOME_LABELS: dict[Outcome, str] = {
    Outcome.PAID: "Paid in full",
    Outcome.PARTIAL_PAYMENT: "Partial payment",
    Outcome.PROMISE_TO_PAY: "Promise to pay",
    Outcome.NOT_HOME: "Not home",
    Outcome.MOVED: "Moved",
    Outcome.WRONG_ADDRESS: "Wrong address",
    Outcome.REFUSED: "Refused",
    Outcome.DISPUTED: "Disputed",
    Outcome.THIRD_PARTY: "Third party only",
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")

_MARKER_CSS = """
.dispatch-stop, .dispatch-end {
  display: flex; align-items: center; justify-content: center;
  width: 26px; height: 26px; box-sizing: border-box;
  border: 2px solid #fff; box-shadow: 0 0 3px rgba(0, 0, 0, 0.6);
  font: bold 13px/1 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
.dispatch-stop { border-radius: 50%; }
.dispatch-end { border-radius: 4px; }
.dispatch-break {
  display: flex; align-items: center; justify-content: center;
  width: 22px; height: 22px; box-sizing: border-box; border-radius: 4px;
  border: 2px solid; background: #fff; box-shadow: 0 0 3px rgba(0, 0, 0, 0.6);
  font: bold 14px/1 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
.dispatch-excluded {
  display: flex; align-items: center; justify-content: center;
  width: 34px; height: 34px; box-sizing: border-box; border-radius: 5px;
  border: 3px solid #303030; background: rgba(255, 255, 255, 0.75); color: #303030;
  box-shadow: 0 0 2px #fff; font: bold 18px/1 system-ui, -apple-system, "Segoe UI", sans-serif;
}
.dispatch-stop.is-done { filter: grayscale(0.85); opacity: 0.75; }
.dispatch-stop.is-done::after { content: "\\2713"; position: absolute; right: -6px; top: -8px;
  color: #1b6e20; font-size: 14px; text-shadow: 0 0 2px #fff; }
.dispatch-stop.is-missed { border-color: #b00020; border-width: 3px; }
.dispatch-popup { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.dispatch-popup th { text-align: left; padding-right: 8px; font-weight: 600; }
"""

_LEGEND_CSS = """
.dispatch-legend {
  position: fixed; left: 10px; bottom: 64px; z-index: 1000; max-height: 60vh; overflow: auto;
  background: rgba(255, 255, 255, 0.95); padding: 8px 10px; border-radius: 6px;
  box-shadow: 0 1px 5px rgba(0, 0, 0, 0.4);
  font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
.dispatch-legend h2 { font-size: 14px; margin: 0 0 4px; }
.dispatch-legend .dispatch-progress { margin: 0 0 4px; font-weight: 600; }
.dispatch-legend table { border-collapse: collapse; }
.dispatch-legend td { padding: 1px 6px 1px 0; white-space: nowrap; }
.dispatch-legend td.num { text-align: right; }
.dispatch-swatch {
  display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -1px;
}
"""

_PAGE_CSS = """
html, body { height: auto; min-height: 100%; }
body {
  display: flex; flex-direction: column; background: #f6f6f6; color: #1b1b1b;
  font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
.dispatch-header { order: 0; padding: 10px 14px; background: #fff; border-bottom: 1px solid #ddd; }
.dispatch-header h1 { font-size: 1.15rem; margin: 0; }
.dispatch-header p { margin: 2px 0 0; color: #444; font-size: 0.9rem; }
.dispatch-header p span { white-space: nowrap; }
.folium-map { order: 1; flex: 0 0 auto; height: 50vh !important; min-height: 260px; }
.dispatch-stops { order: 2; margin: 0; padding: 8px 10px 24px; list-style: none; }
.dispatch-stops li {
  display: flex; gap: 10px; background: #fff; border-radius: 8px; margin: 8px 0;
  padding: 10px 12px; box-shadow: 0 1px 2px rgba(0, 0, 0, 0.15);
}
.dispatch-stops .dispatch-stop { flex: 0 0 auto; width: 32px; height: 32px; font-size: 15px; }
.dispatch-stops .eta { font-weight: 700; }
.dispatch-stops .address { font-size: 1.05rem; }
.dispatch-stops li > div:last-child { min-width: 0; overflow-wrap: anywhere; }
.dispatch-stops .who { font-size: 0.95rem; }
.dispatch-stops .phone { white-space: nowrap; }
.dispatch-stops a.phone { color: #0b4f9c; }
.dispatch-stops .debt, .dispatch-stops .meta { color: #555; font-size: 0.9rem; }
.dispatch-actions { margin-top: 8px; display: flex; flex-wrap: wrap; gap: 8px; align-items: start; }
.dispatch-stops .nav summary, .dispatch-stops button.dispatch-report {
  display: inline-block; min-height: 44px; box-sizing: border-box; padding: 10px 14px;
  border-radius: 8px; border: 0; font: 600 0.95rem/1.5 system-ui, sans-serif; cursor: pointer;
}
.dispatch-stops .nav summary { background: #eef2f7; color: #0b4f9c; list-style: none; }
.dispatch-stops .nav summary::-webkit-details-marker { display: none; }
.dispatch-stops .nav[open] summary { background: #dbe5f1; }
.dispatch-stops .nav div { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
.dispatch-stops .nav a {
  display: inline-block; padding: 10px 12px; border-radius: 6px; background: #eef2f7;
  color: #0b4f9c; text-decoration: none; font-size: 0.95rem;
}
.dispatch-stops button.dispatch-report { background: #0b4f9c; color: #fff; }
.dispatch-stops li.end { background: transparent; box-shadow: none; color: #444; }
.dispatch-stops li.break { background: #fff8e1; color: #4e3b00; }
.dispatch-stops li.break .dispatch-break { flex: 0 0 auto; width: 32px; height: 32px; }
.dispatch-stops .appointment { font-weight: 600; }
.dispatch-stops .crew-visit { color: #8a1c1c; font-weight: 600; font-size: 0.95rem; }
@media (min-width: 900px) {
  body { flex-direction: row; flex-wrap: wrap; height: 100%; }
  .dispatch-header { flex: 0 0 100%; box-sizing: border-box; }
  .folium-map { flex: 1 1 60%; height: calc(100vh - 70px) !important; }
  .dispatch-stops { flex: 0 0 38%; height: calc(100vh - 70px); overflow-y: auto;
                    box-sizing: border-box; }
}
"""


_REPORT_CSS = """
.dispatch-position { order: 1; margin: 0; padding: 4px 14px; font-size: 0.85rem; color: #555;
                     background: #fff; }
.dispatch-sync { order: 1; margin: 0; padding: 8px 14px; background: #fff4ce; color: #4e3b00; }
.dispatch-status:empty { display: none; }
.dispatch-status { margin-top: 6px; font-weight: 600; }
.dispatch-status[data-state="sent"] { color: #1b6e20; }
.dispatch-status[data-state="queued"] { color: #8a5a00; }
.dispatch-status[data-state="rejected"] { color: #b00020; }
li[data-outcome-state="sent"] { opacity: 0.75; }
.dispatch-stop.is-done { filter: grayscale(0.8); opacity: 0.7; }
.dispatch-stop.is-queued { outline: 3px dashed #8a5a00; }
.dispatch-report[open] { width: min(94vw, 480px); max-height: 92vh; border: 0; border-radius: 12px;
                         padding: 16px; box-sizing: border-box; }
.dispatch-report::backdrop { background: rgba(0, 0, 0, 0.4); }
.dispatch-report h2 { font-size: 1.1rem; margin: 0 0 8px; }
.dispatch-report [hidden] { display: none !important; }
.dispatch-report label { display: block; margin: 10px 0; font-weight: 600; }
.dispatch-report input:not([type=checkbox]), .dispatch-report select,
.dispatch-report textarea {
  display: block; width: 100%; box-sizing: border-box; margin-top: 4px; min-height: 44px;
  font: 16px system-ui, sans-serif; padding: 8px; border: 1px solid #999; border-radius: 6px;
}
.dispatch-report .dispatch-check { font-weight: 400; }
.dispatch-report .dispatch-check input { width: 22px; height: 22px; vertical-align: -5px; }
.dispatch-form-error { color: #b00020; min-height: 1em; }
.dispatch-buttons { display: flex; gap: 10px; justify-content: flex-end; }
.dispatch-buttons button { min-height: 44px; padding: 10px 16px; border-radius: 8px; border: 0;
                           font: 600 1rem system-ui, sans-serif; }
.dispatch-buttons [type=submit] { background: #0b4f9c; color: #fff; }
"""


def colour_of(position: int) -> str:
    """Return the map colour of the collector at this position in ``problem.collectors``."""
    return PALETTE[position % len(PALETTE)]


def page_filename(collector_id: str) -> str:
    """Return a safe, unique file name for a collector's page.

    Ids made of letters, digits, ``.``, ``_`` and ``-`` are kept as they are;
    any other id gets its unsafe characters replaced and a short hash of the
    id appended, so that two ids never share a page.
    """
    safe = _SAFE_NAME.sub("_", collector_id).lstrip(".")
    if safe != collector_id or not safe:
        digest = hashlib.sha1(collector_id.encode("utf-8")).hexdigest()[:8]
        safe = f"{safe}-{digest}" if safe else digest
    return f"{safe}.html"


def render_overview(
    problem: Problem,
    plan: Plan,
    itineraries: Sequence[Itinerary],
    path: Path,
    *,
    page_links: Mapping[str, str] | None = None,
    excluded: Sequence[Exclusion] = (),
    excluded_cases: Iterable[Case] = (),
    assets_dir: Path | None = None,
    progress: Progress | None = None,
    refresh_s: int | None = None,
) -> Path:
    """Draw every route, stop, unassigned and excluded case on one map for the dispatcher.

    Each route gets a colour (its collector's, for a crew its first
    member's) and a layer (road line, numbered stops, start and end, and the
    break where it is taken); a crew's route is drawn once and named after
    the crew and its members. Unassigned cases are grey in a layer of their
    own, their popups giving the reason and what it means, and cases the
    compliance policy excluded are dark-framed in an "Excluded by policy"
    layer, their popups giving the rule. A legend lists every collector with
    the visits and travel of the route they work on (each crew member lists
    the crew's), their crew and break, and the unassigned cases by reason.
    Popups show the debtor's name, amount and value (the dispatcher's view);
    never the national id.

    Parameters
    ----------
    problem
        The plan day.
    plan
        The plan drawn (its unassigned cases are shown).
    itineraries
        The plan's itineraries, from ``build_itineraries``.
    path
        The HTML file to write.
    page_links
        Optional link per collector id (for example to their page), used in the legend.
    excluded
        Cases the compliance policy kept off the plan day (``ComplianceResult.excluded``).
    excluded_cases
        Where to find the excluded cases, which ``apply_policy`` removed from
        ``problem``: for example the cases of the problem before the policy.
        Cases not excluded are ignored.
    assets_dir
        Folder the page loads Leaflet and jQuery from, by a relative link; the
        package's copies are written there. Default: ``assets`` beside the page.
    progress
        The day's progress (``progress.track_progress``): each stop marker
        shows its status (done, with the outcome, or missed) and the legend
        each collector's count of stops done and missed.
    refresh_s
        Reload the page this often (seconds), for a live view; None: never.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        An exclusion names a case that is not in ``excluded_cases``.
    """
    path = Path(path)
    shut_out = _excluded_with_cases(excluded, excluded_cases)
    positions = {k.id: i for i, k in enumerate(problem.collectors)}
    fmap = _new_map(f"Dispatch plan {problem.date.isoformat()}", path, assets_dir)
    bounds: list[tuple[float, float]] = []
    drawn = _routes_once(itineraries)
    for itinerary in drawn:
        colour = colour_of(positions[itinerary.route.collector_id])
        layer = folium.FeatureGroup(name=_layer_name(itinerary), show=True)
        _draw_itinerary(layer, itinerary, colour, exposure=None, progress=progress)
        layer.add_to(fmap)
        bounds.extend(_itinerary_points(itinerary))
    # Cases the policy shut out have a layer of their own below.
    shut_out_ids = {exclusion.case_id for exclusion, _ in shut_out}
    unassigned = [u for u in plan.unassigned if u.case_id not in shut_out_ids]
    if unassigned:
        layer = folium.FeatureGroup(name=f"Unassigned ({len(unassigned)})", show=True)
        for item in unassigned:
            case = problem.case(item.case_id)
            popup = _table(f"Unassigned: {case.id}", _unassigned_rows(case, item))
            folium.CircleMarker(
                (case.location.lat, case.location.lon),
                radius=7,
                color="#ffffff",
                weight=2,
                fill=True,
                fill_color=UNASSIGNED_COLOUR,
                fill_opacity=0.95,
                popup=folium.Popup(popup, max_width=320),
                tooltip=_escape(f"{case.id}: {item.reason.value}"),
            ).add_to(layer)
            bounds.append((case.location.lat, case.location.lon))
        layer.add_to(fmap)
    if shut_out:
        layer = folium.FeatureGroup(name=f"Excluded by policy ({len(shut_out)})", show=True)
        for exclusion, case in shut_out:
            _draw_excluded(layer, exclusion, case)
            bounds.append((case.location.lat, case.location.lon))
        layer.add_to(fmap)
    # A long list of routes would cover the map; it folds away past a dozen.
    folium.LayerControl(collapsed=len(drawn) > 12).add_to(fmap)
    root = _figure(fmap)
    root.header.add_child(folium.Element(f"<style>{_MARKER_CSS}{_LEGEND_CSS}</style>"))
    if refresh_s is not None:
        root.header.add_child(folium.Element(f'<meta http-equiv="refresh" content="{refresh_s}">'))
    legend = _legend(
        problem,
        plan,
        itineraries,
        page_links or {},
        excluded=len(shut_out),
        unassigned=unassigned,
        progress=progress,
    )
    root.html.add_child(folium.Element(legend))
    _fit(fmap, bounds or [(k.start.lat, k.start.lon) for k in problem.collectors])
    return _save(fmap, path)


def render_collector_page(
    problem: Problem,
    itinerary: Itinerary,
    path: Path,
    *,
    exposure: ExposureProfile | None = None,
    assets_dir: Path | None = None,
    navigation: Sequence[str] = DEFAULT_NAVIGATION,
    reporting: Reporting | None = None,
) -> Path:
    """Write a collector's phone page: their route on a map and the ordered list of stops.

    Each stop gives case id, window, ETA, the wait at the door (a break taken
    there not counted), service minutes, required skills, the appointment
    (time ± tolerance) and whether it is a two-person visit, navigation
    links, and of the debtor's data only what the data-exposure profile
    lets a collector see (name, address, phone, amount owed, days past due;
    see ``redact_for_collector``). The break is an item of the list, between
    the stops where it falls, and a marker on the map where it is taken. A
    crew member's page shows the crew's route and names the partners. It
    never shows the national id, the case's value or collectors of other
    routes.

    Parameters
    ----------
    problem
        The plan day.
    itinerary
        The collector's itinerary.
    path
        The HTML file to write.
    exposure
        The policy's data-exposure profile (``Policy.exposure``). Default:
        ``ExposureProfile()``, the defaults of ``EXPOSURE_FIELDS``.
    assets_dir
        Folder the page loads Leaflet and jQuery from, by a relative link; the
        package's copies are written there. Default: ``assets`` beside the page.
    navigation
        Navigation apps each stop's "Navigate" button offers, in order (keys
        of ``itinerary.NAVIGATION_APPS``).
    reporting
        Outcome reporting, for a page the service serves: each stop gets a
        "Record outcome" button and a status, and outcomes wait in the
        browser until the service has them. None (a page on disk): no
        reporting.

    The page shows the collector's own position on the map when the
    browser shares it.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    profile = ExposureProfile() if exposure is None else exposure
    collector = itinerary.collector
    colour = colour_of(problem.collector_position(itinerary.route.collector_id))
    title = f"{collector.name or collector.id}: {problem.date.isoformat()}"
    fmap = _new_map(title, path, assets_dir)
    markers = _draw_itinerary(fmap, itinerary, colour, exposure=profile, navigation=navigation)
    root = _figure(fmap)
    root.header.add_child(folium.Element(f"<style>{_MARKER_CSS}{_PAGE_CSS}{_REPORT_CSS}</style>"))
    root.html.add_child(folium.Element(_page_header(problem, itinerary)))
    root.html.add_child(
        folium.Element(
            '<p id="dispatch-position" class="dispatch-position">Your position is not shared</p>'
            '<p id="dispatch-sync" class="dispatch-sync" role="status" hidden></p>'
        )
    )
    stops = _stop_list(itinerary, colour, profile, navigation, reporting=reporting is not None)
    root.html.add_child(folium.Element(stops))
    config: dict[str, object] = {"map": fmap.get_name(), "markers": markers, "reporting": None}
    if reporting is not None:
        root.html.add_child(folium.Element(_report_form(problem)))
        config["reporting"] = {
            "endpoint": reporting.endpoint,
            "storage_key": reporting.storage_key,
            "reported": dict(reporting.reported),
            "labels": {o.value: label for o, label in OUTCOME_LABELS.items()},
        }
    # JSON inside a script element: "</" must not close it early.
    data = json.dumps(config).replace("</", "<\\/")
    base = _assets_base(path, assets_dir)
    root.html.add_child(
        folium.Element(
            f'<script type="application/json" id="dispatch-config">{data}</script>'
            f'<script src="{_escape(base)}/dispatch/collector.js"></script>'
        )
    )
    _fit(fmap, _itinerary_points(itinerary))
    return _save(fmap, path)


@dataclass(frozen=True)
class Reporting:
    """Outcome reporting on a collector page that the service serves.

    ``endpoint`` is the URL, relative to the page, that takes outcomes (the
    page's own query string, which holds its link, is appended);
    ``storage_key`` names the browser storage where outcomes wait until they
    are sent (one per plan and collector, so a new link to the same
    itinerary still sends them); ``reported`` holds the outcomes the service
    already has, by case id, as the API returns them.
    """

    endpoint: str
    storage_key: str
    reported: Mapping[str, Mapping[str, object]] = field(default_factory=dict)


def _report_form(problem: Problem) -> str:
    """The outcome form, one for the page, opened for a stop by its button."""
    options = "".join(
        f'<option value="{o.value}">{_escape(label)}</option>'
        for o, label in OUTCOME_LABELS.items()
    )
    return f"""
<dialog id="dispatch-report" class="dispatch-report" aria-labelledby="dispatch-report-title">
<form id="dispatch-report-form" novalidate>
  <h2 id="dispatch-report-title">Outcome of case <span class="dispatch-form-case"></span></h2>
  <input type="hidden" name="case_id">
  <label>What happened
    <select name="outcome" required><option value="">Choose...</option>{options}</select>
  </label>
  <label data-for="paid partial_payment">Amount paid
    <input name="paid" type="number" inputmode="decimal" min="0.01" step="0.01">
  </label>
  <div data-for="promise_to_pay">
    <label>Promised to pay by <input name="promise_due" type="date"
      min="{problem.date.isoformat()}"></label>
    <label>Amount promised
      <input name="promise_amount" type="number" inputmode="decimal" min="0" step="0.01">
    </label>
  </div>
  <label>Note <textarea name="note" rows="3" maxlength="2000"></textarea></label>
  <label>Time of the visit <input name="visited_at" type="datetime-local" required></label>
  <label class="dispatch-check"><input type="checkbox" name="share_location" checked>
    Check in with my position</label>
  <p class="dispatch-form-error" role="alert"></p>
  <div class="dispatch-buttons">
    <button type="button" data-cancel>Cancel</button>
    <button type="submit">Save outcome</button>
  </div>
</form>
</dialog>"""


def write_maps(
    problem: Problem,
    plan: Plan,
    itineraries: Sequence[Itinerary],
    out_dir: Path,
    *,
    exposure: ExposureProfile | None = None,
    excluded: Sequence[Exclusion] = (),
    excluded_cases: Iterable[Case] = (),
    navigation: Sequence[str] = DEFAULT_NAVIGATION,
) -> list[Path]:
    """Write ``overview.html``, ``collectors/<collector>.html`` and ``assets/`` into a folder.

    Every collector with an itinerary gets a page and a route sheet: each
    member of a crew gets their own, showing the crew's route.

    The pages link Leaflet and jQuery from ``assets/`` by relative paths, so
    the folder works offline (but for the map tiles), served as it is or
    zipped.

    Parameters
    ----------
    problem
        The plan day (after ``apply_policy``, when a policy applies).
    plan
        The plan.
    itineraries
        The plan's itineraries; each gets a page (see ``page_filename``).
    out_dir
        Folder to write into (created if missing).
    exposure
        The data-exposure profile for the collector pages (see
        ``render_collector_page``). Default: ``ExposureProfile()``.
    excluded, excluded_cases
        Cases the policy excluded, and where to find them, for the overview
        (see ``render_overview``).
    navigation
        Navigation apps of the collector pages (see ``render_collector_page``).

    Returns
    -------
    list[Path]
        The overview first, then the collector pages in itinerary order.
    """
    out_dir = Path(out_dir)
    pages_dir = out_dir / "collectors"
    pages_dir.mkdir(parents=True, exist_ok=True)
    assets_dir = copy_assets(out_dir / "assets")
    names = {it.collector.id: page_filename(it.collector.id) for it in itineraries}
    pages = [
        render_collector_page(
            problem,
            it,
            pages_dir / names[it.collector.id],
            exposure=exposure,
            assets_dir=assets_dir,
            navigation=navigation,
        )
        for it in itineraries
    ]
    sheets = [
        write_route_sheet(
            it, (pages_dir / names[it.collector.id]).with_suffix(".csv"), exposure=exposure
        )
        for it in itineraries
    ]
    links = {collector_id: f"collectors/{name}" for collector_id, name in names.items()}
    overview = render_overview(
        problem,
        plan,
        itineraries,
        out_dir / "overview.html",
        page_links=links,
        excluded=excluded,
        excluded_cases=excluded_cases,
        assets_dir=assets_dir,
    )
    return [overview, *pages, *sheets]


ROUTE_SHEET_COLUMNS = (
    "stop",
    "eta",
    "start",
    "window",
    "case_id",
    "service_min",
    "name",
    "address",
    "phone",
    "amount",
    "days_past_due",
    "appointment",
    "min_crew",
)


def write_route_sheet(
    itinerary: Itinerary, path: Path, *, exposure: ExposureProfile | None = None
) -> Path:
    """Write a collector's printable route sheet (CSV), redacted like their page.

    A row per stop, and a row for the break where it falls (``stop`` reads
    ``break``; ``eta`` and ``start`` give its start, ``window`` its span).
    Columns the data-exposure profile hides stay empty; the national id and
    the case's value are never written.
    """
    profile = exposure or ExposureProfile()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ROUTE_SHEET_COLUMNS)
    for entry in itinerary.timeline():
        if isinstance(entry, ItineraryBreak):
            begins = format_clock(entry.start_s)
            span = f"{begins}-{format_clock(entry.end_s)}"
            row = ("break", begins, begins, span, "", entry.duration_s // 60)
            writer.writerow(row + ("",) * (len(ROUTE_SHEET_COLUMNS) - len(row)))
            continue
        item = entry
        fields = _collector_fields(item.case, profile)
        amount = fields.get("amount_cents")
        writer.writerow(
            (
                item.number,
                format_clock(item.stop.arrival_s),
                format_clock(item.stop.start_s),
                "; ".join(str(w) for w in item.case.windows),
                item.case.id,
                item.case.service_s // 60,
                fields.get("name", ""),
                fields.get("address", ""),
                fields.get("phone", ""),
                "" if amount is None else f"{cast(int, amount) / 100:.2f}",
                fields.get("days_past_due", ""),
                _appointment(item.case) or "",
                item.case.min_crew if item.needs_crew else "",
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, buffer.getvalue().encode("utf-8"))
    return path


def copy_assets(assets_dir: Path) -> Path:
    """Copy the packaged Leaflet and jQuery files (with their licences) into a folder.

    Files already there with the same content are left alone.

    Returns
    -------
    Path
        ``assets_dir``.
    """
    assets_dir = Path(assets_dir)
    for relative, source in _packaged_assets():
        target = assets_dir / relative
        data = source.read_bytes()
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(target, data)
    return assets_dir


def _packaged_assets() -> list[tuple[Path, Traversable]]:
    """Every file under the package's ``assets`` folder, by path relative to it."""
    found: list[tuple[Path, Traversable]] = []
    pending = [(Path(), resources.files("dispatch") / "assets")]
    while pending:
        relative, folder = pending.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                pending.append((relative / entry.name, entry))
            elif entry.is_file():
                found.append((relative / entry.name, entry))
    return sorted(found, key=lambda item: item[0])


def _assets_base(path: Path, assets_dir: Path | None) -> str:
    """The assets folder as a link relative to the page."""
    folder = path.parent / "assets" if assets_dir is None else assets_dir
    return Path(os.path.relpath(folder.resolve(), path.parent.resolve())).as_posix()


def _new_map(title: str, path: Path, assets_dir: Path | None) -> folium.Map:
    copy_assets(path.parent / "assets" if assets_dir is None else assets_dir)
    base = _assets_base(path, assets_dir)
    fmap = folium.Map(tiles="OpenStreetMap", control_scale=True)
    # Replace folium's CDN links (Bootstrap, Font Awesome and awesome-markers included, which
    # nothing here uses) on this map only: folium's own lists are shared by every map.
    fmap.default_js = [(name, f"{base}/{file}") for name, file in ASSET_SCRIPTS]
    fmap.default_css = [(name, f"{base}/{file}") for name, file in ASSET_STYLES]
    _figure(fmap).title = _escape(title)
    return fmap


def _figure(fmap: folium.Map) -> folium.Figure:
    root = fmap.get_root()
    assert isinstance(root, folium.Figure)
    return root


def _excluded_with_cases(
    excluded: Sequence[Exclusion], cases: Iterable[Case]
) -> list[tuple[Exclusion, Case]]:
    by_id = {case.id: case for case in cases}
    missing = [item.case_id for item in excluded if item.case_id not in by_id]
    if missing:
        raise ValueError(
            f"excluded case(s) {', '.join(missing)} not among excluded_cases: pass the cases "
            "as they were before the policy was applied"
        )
    return [(item, by_id[item.case_id]) for item in excluded]


def _draw_itinerary(
    parent: folium.Map | folium.FeatureGroup,
    itinerary: Itinerary,
    colour: str,
    *,
    exposure: ExposureProfile | None,
    navigation: Sequence[str] = DEFAULT_NAVIGATION,
    progress: Progress | None = None,
) -> dict[str, str]:
    """Add the road line, numbered stops, start/end marks and the break; return marker names.

    Stops are keyed by number, the break by ``"break"``. ``exposure`` is the
    collector's profile on their own page, None on the overview.
    """
    statuses = {} if progress is None else {s.case_id: s for s in progress.stops}
    route_id = itinerary.route.collector_id
    folium.PolyLine(
        [(lat, lon) for lon, lat in itinerary.coords],
        color=colour,
        weight=5,
        opacity=0.8,
        tooltip=_escape(
            f"{_route_label(itinerary)}: {itinerary.visits} visits, "
            f"{_duration(itinerary.travel_time_s)} travel"
        ),
    ).add_to(parent)
    _draw_ends(parent, itinerary, colour)
    markers = {}
    for item in itinerary.stops:
        case = item.case
        marker = folium.Marker(
            (case.location.lat, case.location.lon),
            icon=_number_icon(item.number, colour, case.id, route_id, statuses.get(case.id)),
            popup=folium.Popup(
                _stop_popup(item, itinerary, exposure=exposure, navigation=navigation),
                max_width=320,
            ),
            tooltip=_escape(
                f"{item.number}. {case.id} ETA {format_clock(item.stop.arrival_s)}"
                + _status_words(statuses.get(case.id))
            ),
        )
        marker.add_to(parent)
        markers[str(item.number)] = marker.get_name()
    if itinerary.rest_break is not None:
        markers["break"] = _draw_break(parent, itinerary, itinerary.rest_break, colour)
    return markers


def _draw_break(
    parent: folium.Map | folium.FeatureGroup,
    itinerary: Itinerary,
    rest: ItineraryBreak,
    colour: str,
) -> str:
    """Mark where the break is taken, with a popup saying when and where; return its name."""
    lon, lat = rest.point
    span = f"{format_clock(rest.start_s)}-{format_clock(rest.end_s)}"
    route_id = _escape(itinerary.route.collector_id)
    marker = folium.Marker(
        (lat, lon),
        icon=folium.DivIcon(
            html=(
                f'<div class="dispatch-break" data-collector="{route_id}"'
                f' data-start="{format_clock(rest.start_s)}" data-end="{format_clock(rest.end_s)}"'
                f' data-place="{rest.place.value}" style="border-color:{colour};color:{colour}">'
                f"{BREAK_SYMBOL}</div>"
            ),
            icon_size=(22, 22),
            icon_anchor=(11, 11),
        ),
        popup=folium.Popup(
            _table(
                f"Break: {span}",
                [
                    ("Who", _route_label(itinerary)),
                    ("When", f"{span} ({_minutes(rest.duration_s)})"),
                    ("Where", _break_place(itinerary, rest)),
                ],
            ),
            max_width=300,
        ),
        tooltip=_escape(f"Break {span}: {_route_label(itinerary)}"),
        # Under the stops: a break at a door keeps that stop's number clickable.
        z_index_offset=-50,
    )
    marker.add_to(parent)
    return marker.get_name()


def _break_place(itinerary: Itinerary, rest: ItineraryBreak) -> str:
    """Where the break falls among the stops, in words."""
    following = itinerary.stops[rest.after] if rest.after < itinerary.visits else None
    if rest.place is BreakPlace.START:
        return "before leaving the start"
    if rest.place is BreakPlace.END:
        return "after reaching the end point"
    if following is None:
        return "on the way to the end point"
    where = f"stop {following.number} ({following.case.id})"
    if rest.place is BreakPlace.AT_THE_DOOR:
        return f"at {where}, before the visit"
    return f"on the way to {where}"


def _draw_ends(parent: folium.Map | folium.FeatureGroup, itinerary: Itinerary, colour: str) -> None:
    # A crew starts and ends at its first member's points.
    collector = itinerary.members[0] if itinerary.members else itinerary.collector
    route_id = itinerary.route.collector_id
    start = ("Start", format_clock(itinerary.start_s))
    end = ("End", format_clock(itinerary.finish_s))
    if collector.start == collector.end:
        ends = [(collector.start, "S", [start, end])]
    else:
        ends = [(collector.start, "S", [start]), (collector.end, "E", [end])]
    for location, label, rows in ends:
        folium.Marker(
            (location.lat, location.lon),
            icon=folium.DivIcon(
                html=(
                    f'<div class="dispatch-end" data-collector="{_escape(route_id)}" '
                    f'style="{_fill(colour)}">{label}</div>'
                ),
                icon_size=(26, 26),
                icon_anchor=(13, 13),
            ),
            popup=folium.Popup(_table(_route_label(itinerary), rows), max_width=280),
            tooltip=_escape(
                f"{_route_label(itinerary)}: " + ", ".join(f"{k} {v}" for k, v in rows)
            ),
            # Stops drawn at the start point stay clickable above it.
            z_index_offset=-100,
        ).add_to(parent)


def _draw_excluded(layer: folium.FeatureGroup, exclusion: Exclusion, case: Case) -> None:
    rule = str(exclusion.rule)
    popup = _table(
        f"Excluded by policy: {case.id}",
        [
            ("Case", case.id),
            *_debtor_rows(case),
            ("Rule", rule),
            ("Detail", exclusion.detail or "-"),
            *_debt_rows(case),
        ],
    )
    folium.Marker(
        (case.location.lat, case.location.lon),
        icon=folium.DivIcon(
            html=(
                f'<div class="dispatch-excluded" data-case="{_escape(case.id)}" '
                f'data-rule="{_escape(rule)}">×</div>'
            ),
            icon_size=(34, 34),
            icon_anchor=(17, 17),
        ),
        popup=folium.Popup(popup, max_width=320),
        tooltip=_escape(f"{case.id}: excluded ({rule})"),
        # A frame wider than a stop, drawn under it: a stop at the same building keeps its
        # number readable and clickable, and the frame around it still shows the exclusion.
        z_index_offset=-200,
    ).add_to(layer)


def _number_icon(
    number: int, colour: str, case_id: str, collector_id: str, status: StopProgress | None = None
) -> folium.DivIcon:
    marks = ""
    if status is not None:
        outcome = f' data-outcome="{status.outcome.value}"' if status.outcome else ""
        marks = f' data-status="{status.status.value}"{outcome}'
    state = f" is-{status.status.value}" if status is not None else ""
    return folium.DivIcon(
        html=(
            f'<div class="dispatch-stop{state}" data-number="{number}" '
            f'data-case="{_escape(case_id)}" data-collector="{_escape(collector_id)}"{marks} '
            f'style="{_fill(colour)}">{number}</div>'
        ),
        icon_size=(26, 26),
        icon_anchor=(13, 13),
    )


def _status_words(status: StopProgress | None) -> str:
    """A stop's status for its tooltip on the overview."""
    if status is None or status.status is StopStatus.PLANNED:
        return "" if status is None else ": planned"
    if status.status is StopStatus.MISSED:
        return ": missed (no outcome)"
    label = OUTCOME_LABELS.get(status.outcome, "") if status.outcome else ""
    far = ", far from the address" if status.far_from_address else ""
    return f": done, {label.lower()}{far}"


def _stop_popup(
    item: ItineraryStop,
    itinerary: Itinerary,
    *,
    exposure: ExposureProfile | None,
    navigation: Sequence[str],
) -> str:
    case, stop = item.case, item.stop
    if exposure is None:
        personal, debt = _debtor_rows(case), _debt_rows(case)
    else:
        personal, debt = _collector_rows(_collector_fields(case, exposure))
    rows = [("Case", case.id), *personal, ("Window", _windows(case.windows))]
    appointment = _appointment(case)
    if appointment:
        rows.append(("Appointment", appointment))
    rows += [("ETA", format_clock(stop.arrival_s)), ("Wait", _minutes(item.wait_s))]
    if item.break_s and itinerary.rest_break is not None:
        rest = itinerary.rest_break
        rows.append(("Break", f"{format_clock(rest.start_s)}-{format_clock(rest.end_s)} here"))
    rows += [
        ("Visit", f"{format_clock(stop.start_s)}-{format_clock(stop.end_s)}"),
        ("Service", _minutes(case.service_s)),
    ]
    if item.needs_crew:
        rows.append(("Crew", f"{case.min_crew}-person visit"))
    if case.skills:
        rows.append(("Skills", ", ".join(sorted(case.skills))))
    rows.extend(debt)
    if exposure is None:
        rows.append(("Collector" if not itinerary.members else "Crew", _route_label(itinerary)))
    body = _table(f"Stop {item.number}: {case.id}", rows)
    if exposure is not None:
        body += _nav_links(case.location, itinerary.collector, navigation)
    return body


def _unassigned_rows(case: Case, item: Unassigned) -> list[tuple[str, str]]:
    """What the dispatcher needs to judge an unassigned case: the case, the reason, the debt."""
    rows = [("Case", case.id), *_debtor_rows(case), ("Window", _windows(case.windows))]
    appointment = _appointment(case)
    if appointment:
        rows.append(("Appointment", appointment))
    if case.min_crew > 1:
        rows.append(("Crew", f"{case.min_crew}-person visit"))
    if case.skills:
        rows.append(("Skills", ", ".join(sorted(case.skills))))
    rows += [
        ("Reason", item.reason.value),
        ("Meaning", REASON_TEXT.get(item.reason, "-")),
        ("Detail", item.detail or "-"),
        *_debt_rows(case),
    ]
    return rows


def _appointment(case: Case) -> str:
    """``14:00 ± 10 min``, or empty when the case has no appointment."""
    if case.appointment_s is None:
        return ""
    return f"{format_clock(case.appointment_s)} ± {_minutes(case.appointment_tolerance_s)}"


def _debtor_rows(case: Case) -> list[tuple[str, str]]:
    """Who and where, as the dispatcher sees it (never the national id)."""
    rows = [("Debtor", case.debtor_name)] if case.debtor_name else []
    return [*rows, ("Address", case.address or "-")]


def _debt_rows(case: Case) -> list[tuple[str, str]]:
    """The debt, as the dispatcher sees it."""
    return [
        ("Amount", _money(case.amount_cents)),
        ("Value", _money(case.value)),
        ("Days past due", str(case.days_past_due)),
    ]


def _collector_fields(case: Case, exposure: ExposureProfile) -> dict[str, object]:
    """The case's personal fields as the data-exposure profile lets a collector see them."""
    fields: dict[str, object] = {
        "name": case.debtor_name,
        "address": case.address,
        "phone": case.phone,
        "amount_cents": case.amount_cents,
        "days_past_due": case.days_past_due,
    }
    # The national id is not even handed to the redaction: no page ever needs it.
    return redact_for_collector({k: v for k, v in fields.items() if v != ""}, exposure)


def _collector_rows(
    fields: Mapping[str, object],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Who-and-where rows and debt rows of the redacted fields."""
    labels = {"name": "Debtor", "address": "Address", "phone": "Phone"}
    personal = [(label, str(fields[name])) for name, label in labels.items() if name in fields]
    debt = []
    if "amount_cents" in fields:
        debt.append(("Amount", _money(cast(int, fields["amount_cents"]))))
    if "days_past_due" in fields:
        debt.append(("Days past due", str(fields["days_past_due"])))
    return personal, debt


def _table(title: str, rows: Iterable[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{_escape(k)}</th><td>{_escape(v)}</td></tr>" for k, v in rows)
    return f'<div class="dispatch-popup"><b>{_escape(title)}</b><table>{cells}</table></div>'


def _nav_links(location: Location, collector: Collector, navigation: Sequence[str]) -> str:
    """The stop's "Navigate" button: it opens the configured apps' deep links."""
    links = navigation_links(location, mode=collector.mode, apps=navigation)
    anchors = "".join(
        f'<a href="{_escape(url)}" target="_blank" rel="noopener" data-app="{app}">'
        f"{_escape(NAVIGATION_APPS[app].name)}</a>"
        for app, url in links.items()
    )
    return f'<details class="nav"><summary>Navigate</summary><div>{anchors}</div></details>'


def _legend(
    problem: Problem,
    plan: Plan,
    itineraries: Sequence[Itinerary],
    page_links: Mapping[str, str],
    *,
    excluded: int,
    unassigned: Sequence[Unassigned],
    progress: Progress | None = None,
) -> str:
    by_collector = {it.collector.id: it for it in itineraries}
    routes_done = {} if progress is None else {r.route_id: r for r in progress.routes}
    rows = []
    for collector in problem.collectors:
        itinerary = by_collector.get(collector.id)
        label = _escape(_collector_label(collector))
        if collector.id in page_links:
            label = f'<a href="{_escape(page_links[collector.id])}">{label}</a>'
        # A crew member's row shows the crew's route, in its colour.
        route_id = itinerary.route.collector_id if itinerary else collector.id
        colour = colour_of(problem.collector_position(route_id))
        visits = itinerary.visits if itinerary else 0
        travel = _duration(itinerary.travel_time_s) if itinerary else "-"
        notes = _legend_notes(itinerary) if itinerary else ""
        route_done = routes_done.get(route_id)
        progress_cell = ""
        if route_done is not None:
            progress_cell = (
                f'<td class="num" data-done="{route_done.done}" data-missed="{route_done.missed}">'
                f"{route_done.done}/{route_done.stops} done"
                f"{f', {route_done.missed} missed' if route_done.missed else ''}</td>"
            )
        elif progress is not None:
            progress_cell = '<td class="num"></td>'
        rows.append(
            f'<tr data-collector="{_escape(collector.id)}">'
            f'<td><span class="dispatch-swatch" style="background:{colour}">'
            f"</span></td><td>{label}</td>"
            f'<td class="num">{visits} visits</td><td class="num">{travel}</td>{progress_cell}'
            f"<td>{_escape(notes)}</td></tr>"
        )
    if unassigned:
        rows.append(
            f'<tr data-layer="unassigned"><td><span class="dispatch-swatch" '
            f'style="background:{UNASSIGNED_COLOUR}"></span></td><td>Unassigned</td>'
            f'<td class="num">{len(unassigned)} cases</td><td></td><td></td></tr>'
        )
        counts: dict[Reason, int] = {}
        for item in unassigned:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        for reason in Reason:
            if reason in counts:
                rows.append(
                    f'<tr data-reason="{reason.value}"><td></td><td>{reason.value}</td>'
                    f'<td class="num">{counts[reason]}</td><td></td>'
                    f"<td>{_escape(REASON_TEXT.get(reason, ''))}</td></tr>"
                )
    if excluded:
        rows.append(
            f'<tr data-layer="excluded"><td><span class="dispatch-swatch" '
            f'style="background:{EXCLUDED_COLOUR}"></span></td><td>Excluded by policy</td>'
            f'<td class="num">{excluded} cases</td><td></td><td></td></tr>'
        )
    routes = _routes_once(itineraries)
    visits = sum(it.visits for it in routes)
    travel = _duration(sum(it.travel_time_s for it in routes))
    status = ""
    if progress is not None:
        done_total = sum(r.done for r in progress.routes)
        missed_total = sum(r.missed for r in progress.routes)
        clock = progress.as_of.astimezone(problem.tz).strftime("%H:%M")
        status = (
            f'<p class="dispatch-progress">At {clock}: {done_total} of {visits} visits done, '
            f"{missed_total} missed</p>"
        )
    return (
        f'<div class="dispatch-legend"><h2>{_escape(problem.date.isoformat())}: '
        f"{visits} visits, {travel} travel</h2>{status}<table>{''.join(rows)}</table></div>"
    )


def _legend_notes(itinerary: Itinerary) -> str:
    """Crew and break of a collector's route, for the legend."""
    notes = []
    if itinerary.members:
        crew = f"crew {itinerary.crew_id}" if itinerary.crew_id else "crew"
        partners = ", ".join(k.id for k in itinerary.partners)
        notes.append(f"{crew} with {partners}")
    if itinerary.rest_break is not None:
        rest = itinerary.rest_break
        notes.append(f"break {format_clock(rest.start_s)}-{format_clock(rest.end_s)}")
    return " · ".join(notes)


def _page_header(problem: Problem, itinerary: Itinerary) -> str:
    collector = itinerary.collector
    parts = [
        problem.date.strftime("%a %d %b %Y"),
        f"{itinerary.visits} visits",
        f"{_duration(itinerary.travel_time_s)} {_MODE_WORDS[itinerary.mode]}",
        f"{itinerary.distance_m / 1000:.1f} km",
        f"{format_clock(itinerary.start_s)}-{format_clock(itinerary.finish_s)} "
        f"({problem.timezone})",
    ]
    if itinerary.rest_break is not None:
        rest = itinerary.rest_break
        parts.append(f"break {format_clock(rest.start_s)}-{format_clock(rest.end_s)}")
    crew = ""
    if itinerary.members:
        partners = ", ".join(_collector_label(k) for k in itinerary.partners)
        named = f"Crew {itinerary.crew_id}" if itinerary.crew_id else "Crew"
        crew = f'<p class="crew">{_escape(named)}: together with {_escape(partners)}</p>'
    # Each part wraps as a whole on a narrow screen, never between a number and its unit.
    summary = " · ".join(f"<span>{_escape(part)}</span>" for part in parts)
    return (
        f'<header class="dispatch-header"><h1>{_escape(_collector_label(collector))}</h1>'
        f"<p>{summary}</p>{crew}</header>"
    )


def _stop_list(
    itinerary: Itinerary,
    colour: str,
    exposure: ExposureProfile,
    navigation: Sequence[str],
    *,
    reporting: bool,
) -> str:
    collector = itinerary.collector
    items = [
        f'<li class="end"><div>Leave the start at <b>{format_clock(itinerary.start_s)}</b>'
        "</div></li>"
    ]
    for entry in itinerary.timeline():
        if isinstance(entry, ItineraryBreak):
            items.append(_break_item(itinerary, entry, colour))
            continue
        item = entry
        case, stop = item.case, item.stop
        timing = []
        if stop.start_s != stop.arrival_s:
            timing.append(f"visit {format_clock(stop.start_s)}")
        if item.wait_s > 0:
            timing.append(f"wait {_minutes(item.wait_s)}")
        if item.break_s > 0:
            timing.append(f"break {_minutes(item.break_s)} here first")
        timing.append(f"window {_windows(case.windows)}")
        skills = f" · skills: {', '.join(sorted(case.skills))}" if case.skills else ""
        appointment = _appointment(case)
        marks = ""
        if appointment:
            marks += f'<div class="appointment">Appointment {_escape(appointment)}</div>'
        if item.needs_crew:
            together = ", ".join(k.name or k.id for k in itinerary.partners)
            with_whom = f": go with {together}" if together else ""
            marks += (
                f'<div class="crew-visit">{case.min_crew}-person visit{_escape(with_whom)}</div>'
            )
        items.append(
            f'<li data-stop="{item.number}" data-case="{_escape(case.id)}"'
            f"{' data-crew-visit' if item.needs_crew else ''}>"
            f'<div class="dispatch-stop" style="{_fill(colour)}">{item.number}</div><div>'
            f'<div><span class="eta">ETA {format_clock(stop.arrival_s)}</span>'
            f" · {_escape(' · '.join(timing))}</div>{marks}"
            f"{_stop_details(_collector_fields(case, exposure), exposure)}"
            f'<div class="meta">Case {_escape(case.id)} · {_minutes(case.service_s)} at the door'
            f"{_escape(skills)}</div>"
            f"{_stop_actions(case, collector, navigation, reporting=reporting)}</div></li>"
        )
    items.append(
        f'<li class="end"><div>Back at the end point by <b>{format_clock(itinerary.finish_s)}</b>'
        "</div></li>"
    )
    return f'<ol class="dispatch-stops">{"".join(items)}</ol>'


def _stop_actions(
    case: Case, collector: Collector, navigation: Sequence[str], *, reporting: bool
) -> str:
    """Navigate, and (on a served page) the outcome's status and button."""
    actions = _nav_links(case.location, collector, navigation)
    if not reporting:
        return f'<div class="dispatch-actions">{actions}</div>'
    case_id = _escape(case.id)
    return (
        f'<div class="dispatch-status" data-case="{case_id}" data-state="open" '
        f'aria-live="polite"></div><div class="dispatch-actions">{actions}'
        f'<button type="button" class="dispatch-report" data-case="{case_id}">'
        "Record outcome</button></div>"
    )


def _break_item(itinerary: Itinerary, rest: ItineraryBreak, colour: str) -> str:
    """The break as an item of the stop list."""
    span = f"{format_clock(rest.start_s)}-{format_clock(rest.end_s)}"
    return (
        f'<li class="break" data-break="{span}" data-place="{rest.place.value}">'
        f'<div class="dispatch-break" style="border-color:{colour};color:{colour}">'
        f"{BREAK_SYMBOL}</div><div><div><b>Break {span}</b> ({_minutes(rest.duration_s)})"
        f"</div><div>{_escape(_break_place(itinerary, rest))}</div></div></li>"
    )


def _stop_details(fields: Mapping[str, object], exposure: ExposureProfile) -> str:
    """Address, debtor and debt lines of a stop, from the redacted fields."""
    lines = []
    if "address" in fields:
        lines.append(f'<div class="address">{_escape(str(fields["address"]))}</div>')
    who = []
    if "name" in fields:
        who.append(f'<span class="debtor">{_escape(str(fields["name"]))}</span>')
    if "phone" in fields:
        phone = _escape(str(fields["phone"]))
        # Only a full number can be dialled; a masked one is for recognising the debtor.
        if exposure.level("phone") == Exposure.FULL:
            dial = re.sub(r"[^0-9+]", "", str(fields["phone"]))
            phone = f'<a class="phone" href="tel:{_escape(dial)}">{phone}</a>'
        else:
            phone = f'<span class="phone">{phone}</span>'
        who.append(phone)
    if who:
        lines.append(f'<div class="who">{" · ".join(who)}</div>')
    debt = []
    if "amount_cents" in fields:
        debt.append(f"owes {_money(cast(int, fields['amount_cents']))}")
    if "days_past_due" in fields:
        debt.append(f"{fields['days_past_due']} days past due")
    if debt:
        lines.append(f'<div class="debt">{_escape(" · ".join(debt))}</div>')
    return "".join(lines)


def _itinerary_points(itinerary: Itinerary) -> list[tuple[float, float]]:
    return [(lat, lon) for lon, lat in itinerary.coords]


def _fit(fmap: folium.Map, points: Sequence[tuple[float, float]]) -> None:
    if not points:
        return
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    fmap.fit_bounds([(min(lats), min(lons)), (max(lats), max(lons))], padding=(20, 20))


def _save(fmap: folium.Map, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, _figure(fmap).render().encode("utf-8"))
    return path


def _write_atomically(path: Path, data: bytes) -> None:
    # Write beside the target and rename, so that a reader never sees half a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _layer_name(itinerary: Itinerary) -> str:
    return _escape(f"{_route_label(itinerary)} ({itinerary.visits})")


def _routes_once(itineraries: Sequence[Itinerary]) -> list[Itinerary]:
    """One itinerary per route: a crew's members share theirs."""
    seen: dict[str, Itinerary] = {}
    for itinerary in itineraries:
        seen.setdefault(itinerary.route.collector_id, itinerary)
    return list(seen.values())


def _route_label(itinerary: Itinerary) -> str:
    """Who works a route: the collector, or the crew and its members."""
    if not itinerary.members:
        return _collector_label(itinerary.collector)
    members = " + ".join(_collector_label(k) for k in itinerary.members)
    return f"Crew {itinerary.crew_id}: {members}" if itinerary.crew_id else f"Crew: {members}"


def _collector_label(collector: Collector) -> str:
    if collector.name and collector.name != collector.id:
        return f"{collector.name} ({collector.id})"
    return collector.id


def _windows(windows: Sequence[TimeWindow]) -> str:
    if tuple(windows) == (ALL_DAY,):
        return "any time"
    return ", ".join(str(w) for w in windows)


def _minutes(seconds: int) -> str:
    return f"{round(seconds / 60)} min"


def _duration(seconds: int) -> str:
    hours, rest = divmod(round(seconds / 60), 60)
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"


def _money(cents: int) -> str:
    """Cents as currency units, thousands apart by a narrow no-break space: ``73 169.55``."""
    units, rest = divmod(cents, 100)
    return f"{units:,}.{rest:02d}".replace(",", "\u202f")


def _fill(colour: str) -> str:
    return f"background:{colour};color:{_ink(colour)}"


def _ink(colour: str) -> str:
    """Black or white, whichever reads better on the colour (relative luminance)."""
    red, green, blue = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    return "#000000" if luminance > 0.5 else "#ffffff"


def _escape(text: str) -> str:
    # Popups and tooltips land inside JavaScript template literals: neutralise ` and ${ too.
    return html.escape(str(text), quote=True).replace("`", "&#96;").replace("$", "&#36;")
