"""What earlier visits change about today's plan: closures, address holds, disputes, availability.

(It also measures a visit's check-in against the address, ``check_in``.)

Collectors report an outcome for every visit; those outcomes are the visit
history, and the next plan follows them. What the latest visit of a case
found decides, in this order:

1. ``paid`` (in full): the case is closed; it is held back as
   ``CASE_CLOSED`` and never visited again under the same case id.
2. ``moved`` or ``wrong_address``: the case is held back as
   ``ADDRESS_UNVERIFIED`` for as long as its address is the one visited; once
   the case system sends a new address it is planned again.
3. ``disputed``: the case gets the ``dispute`` flag, so the compliance
   policy's ``blocked_flags`` decide (every preset blocks it).

Promises to pay need nothing here: the policy's promise cool-off reads them
from the same history.

Then availability: "not home" at some time of day makes later plans prefer
other times. The day is cut into local time bands (``DEFAULT_BANDS``); a band
is avoided for a case when its visits there found nobody home more often
than somebody home. The case's own visits decide; a case with none learns
from the cases within ``radius_m`` of it: a band is avoided when at least
``min_area_cases`` of them (and more than found somebody home there) avoid it
by their own visits. One debtor never home says little about the
neighbours, so one case alone never teaches the area. An avoided band is
taken out of the case's windows only when some other time stays open; if every
open time is avoided, the case keeps its windows.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

import numpy as np
from pyproj import Geod
from scipy.spatial import cKDTree

from dispatch.compliance import Outcome, VisitRecord, case_timezone, local_instant
from dispatch.model import Case, Location, Problem, Reason, TimeWindow, Unassigned, format_clock

DISPUTE_FLAG = "dispute"
EARTH_RADIUS_M = 6_371_000.0
_ADDRESS_FAILURES = frozenset({Outcome.MOVED, Outcome.WRONG_ADDRESS})
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True, slots=True)
class Band:
    """A part of the day in the debtor's local wall-clock time, ``[start_s, end_s)``."""

    name: str
    start_s: int
    end_s: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_s < self.end_s <= 24 * 3600:
            raise ValueError(
                f"time band {self.name} {format_clock(self.start_s)}-"
                f"{format_clock(self.end_s)} is not a part of one day"
            )

    def __str__(self) -> str:
        return f"{self.name} {format_clock(self.start_s)}-{format_clock(self.end_s)}"

    def holds(self, seconds: int) -> bool:
        """Whether a local time of day (seconds from midnight) falls in the band."""
        return self.start_s <= seconds < self.end_s


DEFAULT_BANDS: tuple[Band, ...] = (
    Band("morning", 8 * 3600, 12 * 3600),
    Band("afternoon", 12 * 3600, 17 * 3600),
    Band("evening", 17 * 3600, 21 * 3600),
)


@dataclass(frozen=True, slots=True)
class AvailabilityParams:
    """How availability is learned from visits that found nobody home."""

    bands: tuple[Band, ...] = DEFAULT_BANDS
    radius_m: float = 300.0
    min_area_cases: int = 2

    def __post_init__(self) -> None:
        ordered = sorted(self.bands, key=lambda b: b.start_s)
        for before, after in itertools.pairwise(ordered):
            if after.start_s < before.end_s:
                raise ValueError(f"time bands {before} and {after} overlap")
        if self.radius_m < 0:
            raise ValueError(f"radius_m {self.radius_m} is negative")
        if self.min_area_cases < 1:
            raise ValueError(f"min_area_cases {self.min_area_cases} is below 1")


@dataclass(frozen=True, slots=True)
class Availability:
    """Bands a case's next visit avoids, what they were learned from, and whether it applied.

    ``source`` is ``case`` (its own visits) or ``area`` (visits to cases
    nearby). ``applied`` is False when avoiding them would have left no time
    to visit, and the case kept its windows.
    """

    case_id: str
    avoided: tuple[Band, ...]
    source: str
    detail: str
    applied: bool

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "case_id": self.case_id,
            "avoided": [str(b) for b in self.avoided],
            "source": self.source,
            "detail": self.detail,
            "applied": self.applied,
        }


@dataclass(frozen=True, slots=True)
class CheckIn:
    """Where the phone was when an outcome was recorded, and how far that is from the case.

    ``far_from_address`` is set when ``distance_m`` exceeds the allowed radius
    plus the position fix's own accuracy.
    """

    location: Location
    accuracy_m: float | None
    distance_m: float
    far_from_address: bool


def check_in(
    address: Location, position: Location, *, accuracy_m: float | None, radius_m: float
) -> CheckIn:
    """Measure a check-in against the case's geocoded address (geodesic metres on WGS84)."""
    _, _, distance_m = _GEOD.inv(address.lon, address.lat, position.lon, position.lat)
    far = distance_m > radius_m + (accuracy_m or 0.0)
    return CheckIn(position, accuracy_m, float(distance_m), far)


@dataclass(frozen=True)
class FollowUp:
    """Today's cases after the latest outcomes: those still to plan and those held back."""

    problem: Problem
    held_back: tuple[Unassigned, ...] = ()
    disputed: tuple[str, ...] = ()


def address_key(address: str, location: Location) -> str:
    """The address as compared across visits: case, spaces and punctuation do not count.

    A case without a postal address is known by its coordinates (about 1 m).
    """
    words = re.sub(r"[\W_]+", " ", address.casefold()).split()
    return " ".join(words) if words else f"{location.lat:.5f},{location.lon:.5f}"


def follow_up(problem: Problem, history: Iterable[VisitRecord]) -> FollowUp:
    """Apply what the latest visit of each case found (rules 1-3 of the module docstring).

    Every case of ``problem`` either stays in the returned problem or is
    held back with its reason; a disputed case stays, with the ``dispute``
    flag added for the policy to block.
    """
    latest = _latest_visits(history)
    kept: list[Case] = []
    held_back: list[Unassigned] = []
    disputed: list[str] = []
    for case in problem.cases:
        visit = latest.get(case.id)
        if visit is None:
            kept.append(case)
            continue
        when = visit.visited_at.astimezone(problem.tz).strftime("%Y-%m-%d %H:%M")
        if visit.outcome is Outcome.PAID:
            held_back.append(
                Unassigned(
                    case.id, Reason.CASE_CLOSED, f"PAID: paid in full at the visit on {when}"
                )
            )
        elif visit.outcome in _ADDRESS_FAILURES and _same_address(visit, case):
            found = (
                "MOVED: the debtor had moved"
                if visit.outcome is Outcome.MOVED
                else "WRONG_ADDRESS: the address was wrong"
            )
            held_back.append(
                Unassigned(
                    case.id,
                    Reason.ADDRESS_UNVERIFIED,
                    f"{found} at the visit on {when}; visit again once the address is updated",
                )
            )
        elif visit.outcome is Outcome.DISPUTED:
            disputed.append(case.id)
            kept.append(replace(case, flags=case.flags | {DISPUTE_FLAG}))
        else:
            kept.append(case)
    return FollowUp(replace(problem, cases=tuple(kept)), tuple(held_back), tuple(disputed))


def learn_availability(
    problem: Problem,
    history: Iterable[VisitRecord],
    *,
    locations: Mapping[str, Location] | None = None,
    params: AvailabilityParams | None = None,
) -> tuple[Problem, tuple[Availability, ...]]:
    """Take the bands where nobody was home out of the cases' windows, where time remains.

    Parameters
    ----------
    problem
        The day's cases, with the windows they may be visited in (plan seconds).
    history
        Recorded visits; ``not_home`` counts against a band, a visit that
        spoke to someone counts for it, others do not count.
    locations
        Where each case of the history is, for learning from the area;
        default: the cases of ``problem``.
    params
        Bands and the area rule. Default: ``AvailabilityParams()``.

    Returns
    -------
    tuple
        The problem with narrowed windows, and one ``Availability`` per case
        that has a band to avoid.
    """
    params = params or AvailabilityParams()
    places = {c.id: c.location for c in problem.cases} | dict(locations or {})
    tallies = _band_tallies(history, places, params.bands)
    area = _AreaTallies(tallies, places, params)
    cases: list[Case] = []
    notes: list[Availability] = []
    for case in problem.cases:
        own = tallies.get(case.id)
        if own is not None:
            tally, source, minimum = own, "case", 1
        else:
            tally, source, minimum = area.around(case), "area", params.min_area_cases
        avoided = _avoided(tally, params.bands, minimum)
        if not avoided:
            cases.append(case)
            continue
        windows = _without_bands(problem, case, avoided)
        detail = _detail(avoided, tally, source)
        notes.append(Availability(case.id, avoided, source, detail, applied=bool(windows)))
        cases.append(replace(case, windows=windows) if windows else case)
    return replace(problem, cases=tuple(cases)), tuple(notes)


# A tally per band: (visits that found nobody home, visits that spoke to someone).
Tally = dict[Band, tuple[int, int]]


def _latest_visits(history: Iterable[VisitRecord]) -> dict[str, VisitRecord]:
    latest: dict[str, VisitRecord] = {}
    for visit in history:
        seen = latest.get(visit.case_id)
        if seen is None or visit.visited_at >= seen.visited_at:
            latest[visit.case_id] = visit
    return latest


def _same_address(visit: VisitRecord, case: Case) -> bool:
    # A visit recorded without its address (an old history file) holds the case: only a
    # recorded address can show that the case system has sent a new one.
    if not visit.address:
        return True
    return address_key(visit.address, case.location) == address_key(case.address, case.location)


def _band_tallies(
    history: Iterable[VisitRecord], places: Mapping[str, Location], bands: Sequence[Band]
) -> dict[str, Tally]:
    tallies: dict[str, Tally] = {}
    zones: dict[str, ZoneInfo | None] = {}
    for visit in history:
        if visit.outcome is Outcome.NOT_HOME:
            column = 0
        elif visit.contacted:
            column = 1
        else:
            continue
        if visit.case_id not in zones:
            place = places.get(visit.case_id)
            name = case_timezone(place) if place is not None else None
            zones[visit.case_id] = ZoneInfo(name) if name else None
        zone = zones[visit.case_id]
        local = visit.visited_at.astimezone(zone) if zone else visit.visited_at
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        band = next((b for b in bands if b.holds(seconds)), None)
        if band is None:
            continue
        tally = tallies.setdefault(visit.case_id, {})
        counts = list(tally.get(band, (0, 0)))
        counts[column] += 1
        tally[band] = (counts[0], counts[1])
    return tallies


def _avoided(tally: Tally, bands: Sequence[Band], minimum: int) -> tuple[Band, ...]:
    return tuple(
        band
        for band in bands
        if (counts := tally.get(band)) is not None
        and counts[0] >= minimum
        and counts[0] > counts[1]
    )


class _AreaTallies:
    """Per band, how many cases within a radius avoid it by their own visits, and how many not.

    The tallies it returns count cases, not visits: (cases where nobody was
    home more often than somebody, the other cases with visits in the band).
    """

    def __init__(
        self,
        tallies: Mapping[str, Tally],
        places: Mapping[str, Location],
        params: AvailabilityParams,
    ):
        self._ids = [case_id for case_id in tallies if case_id in places]
        self._tallies = tallies
        self._radius = params.radius_m
        points = [places[case_id] for case_id in self._ids]
        self._tree = cKDTree(_unit_vectors(points)) if points else None

    def around(self, case: Case) -> Tally:
        if self._tree is None:
            return {}
        # Chord length on the unit sphere for the great-circle radius.
        chord = 2 * math.sin(self._radius / EARTH_RADIUS_M / 2)
        found = self._tree.query_ball_point(_unit_vectors([case.location])[0], chord)
        summed: Tally = {}
        for index in found:
            for band, (away, home) in self._tallies[self._ids[index]].items():
                before = summed.get(band, (0, 0))
                summed[band] = (before[0] + (away > home), before[1] + (away <= home))
        return summed


def _unit_vectors(points: Sequence[Location]) -> np.ndarray:
    lat = np.radians([p.lat for p in points])
    lon = np.radians([p.lon for p in points])
    return np.column_stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)))


def _without_bands(problem: Problem, case: Case, avoided: Sequence[Band]) -> tuple[TimeWindow, ...]:
    """The case's windows minus the avoided bands of the plan day, in plan seconds."""
    name = case_timezone(case.location)
    zone = ZoneInfo(name) if name else problem.tz
    midnight = dt.datetime.combine(problem.date, dt.time(0), tzinfo=problem.tz).astimezone(dt.UTC)
    cuts = []
    for offset in (-1, 0, 1):
        local_date = problem.date + dt.timedelta(days=offset)
        for band in avoided:
            start = local_instant(local_date, band.start_s, zone).astimezone(dt.UTC) - midnight
            end = local_instant(local_date, band.end_s, zone).astimezone(dt.UTC) - midnight
            cuts.append((int(start.total_seconds()), int(end.total_seconds())))
    spans = [(w.start_s, w.end_s) for w in case.windows]
    for cut_start, cut_end in cuts:
        spans = [piece for span in spans for piece in _subtract(span, cut_start, cut_end)]
    return tuple(TimeWindow(start, end) for start, end in spans)


def _subtract(span: tuple[int, int], cut_start: int, cut_end: int) -> list[tuple[int, int]]:
    """A closed span minus the half-open cut ``[cut_start, cut_end)``."""
    start, end = span
    if cut_end <= start or cut_start > end:
        return [span]
    pieces = []
    if start < cut_start:
        pieces.append((start, cut_start - 1))
    if cut_end <= end:
        pieces.append((cut_end, end))
    return pieces


def _detail(avoided: Sequence[Band], tally: Tally, source: str) -> str:
    parts = []
    for band in avoided:
        away, home = tally[band]
        if source == "case":
            parts.append(f"{band}: nobody home {away} of {away + home} time(s)")
        else:
            parts.append(f"{band}: nobody home at {away} of {away + home} case(s) nearby")
    whose = "its own visits" if source == "case" else "cases nearby"
    return f"avoids {'; '.join(parts)} ({whose})"
