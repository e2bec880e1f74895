"""Routes turned into itineraries: numbered stops, the break, legs along the roads, links."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from urllib.parse import quote, urlencode

from dispatch.errors import InvalidProblemError, NetworkError
from dispatch.matrix import TravelMatrix, route_path
from dispatch.model import Case, Collector, Location, Plan, Problem, Route, Stop, TravelMode
from dispatch.network import RoadNetwork

Coords = tuple[tuple[float, float], ...]

# Travel-mode names in the navigation apps' own vocabulary.
_GOOGLE_MODES = {
    TravelMode.WALK: "walking",
    TravelMode.BIKE: "bicycling",
    TravelMode.DRIVE: "driving",
}
_OSM_ENGINES = {
    TravelMode.WALK: "fossgis_osrm_foot",
    TravelMode.BIKE: "fossgis_osrm_bike",
    TravelMode.DRIVE: "fossgis_osrm_car",
}
# Apple's ``dirflg`` knows driving (d), walking (w) and transit (r) only; a cyclist gets the
# transport type they chose in the app.
_APPLE_FLAGS = {TravelMode.WALK: "w", TravelMode.DRIVE: "d"}
_AMAP_MODES = {TravelMode.WALK: "walk", TravelMode.BIKE: "ride", TravelMode.DRIVE: "car"}
_BAIDU_MODES = {TravelMode.WALK: "walking", TravelMode.BIKE: "riding", TravelMode.DRIVE: "driving"}


@dataclass(frozen=True)
class Leg:
    """The way from one point to the next, along the roads.

    ``travel_time_s`` and ``distance_m`` are the plan's figures (the matrix's,
    access legs included); ``coords`` is the ``(lon, lat)`` line from the
    origin address through its road node, along the roads, to the
    destination's road node and address.
    """

    travel_time_s: int
    distance_m: int
    coords: Coords

    def __post_init__(self) -> None:
        if self.travel_time_s < 0:
            raise InvalidProblemError(f"leg travel time {self.travel_time_s} s is negative")
        if self.distance_m < 0:
            raise InvalidProblemError(f"leg distance {self.distance_m} m is negative")
        coords = tuple((float(lon), float(lat)) for lon, lat in self.coords)
        if len(coords) < 2:
            raise InvalidProblemError(f"leg line has {len(coords)} point(s), needs at least 2")
        object.__setattr__(self, "coords", coords)

    @property
    def origin(self) -> tuple[float, float]:
        """``(lon, lat)`` where the leg starts."""
        return self.coords[0]

    @property
    def destination(self) -> tuple[float, float]:
        """``(lon, lat)`` where the leg ends."""
        return self.coords[-1]


@dataclass(frozen=True)
class ItineraryStop:
    """A visit on an itinerary: its place in the order, the case, its timing and the leg to it.

    ``break_s`` is the part of the route's break taken at this door, between
    arriving and starting the visit; ``Itinerary`` sets it from its route.
    """

    number: int
    case: Case
    stop: Stop
    leg: Leg
    break_s: int = 0

    def __post_init__(self) -> None:
        if self.number < 1:
            raise InvalidProblemError(f"stop number {self.number} must be 1 or more")
        if self.case.id != self.stop.case_id:
            raise InvalidProblemError(
                f"stop {self.number} visits case {self.stop.case_id} "
                f"but carries case {self.case.id}"
            )
        if not 0 <= self.break_s <= max(self.stop.wait_s, 0):
            raise InvalidProblemError(
                f"stop {self.number}: a break of {self.break_s} s at the door does not fit "
                f"into the {self.stop.wait_s} s between arrival and visit"
            )

    @property
    def wait_s(self) -> int:
        """Seconds waited at the door for the visit to start, the break not counted."""
        return self.stop.wait_s - self.break_s

    @property
    def needs_crew(self) -> bool:
        """Whether the visit must be made by two or more collectors together."""
        return self.case.min_crew > 1


class BreakPlace(StrEnum):
    """Where a break falls in the day."""

    START = "start"
    """Before leaving the start point."""
    ON_THE_WAY = "on_the_way"
    """On the way to the next point: travel pauses for it."""
    AT_THE_DOOR = "at_the_door"
    """At the next stop, after arriving and before the visit."""
    END = "end"
    """After reaching the end point."""


@dataclass(frozen=True)
class ItineraryBreak:
    """The route's break as an item of the itinerary.

    ``after`` visits are made before it (0 before the first, n after the
    last); ``point`` is the ``(lon, lat)`` where it is taken: the start, a
    point along the leg (as far as the travel before the break reaches), the
    next stop's door, or the end.
    """

    start_s: int
    end_s: int
    after: int
    place: BreakPlace
    point: tuple[float, float]

    def __post_init__(self) -> None:
        if self.end_s <= self.start_s:
            raise InvalidProblemError(f"break {self.start_s}-{self.end_s} s has no length")
        if self.after < 0:
            raise InvalidProblemError(f"a break after {self.after} visits is impossible")

    @property
    def duration_s(self) -> int:
        """Length of the break in seconds."""
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Itinerary:
    """One collector's day as they will walk, ride or drive it.

    ``stops`` are numbered 1..n in visiting order, each with the leg from the
    previous point (the start for stop 1); ``return_leg`` goes from the last
    stop to the route's end point. A crew member's itinerary holds the
    crew's route (``route.collector_id`` is the crew's first member, whose
    start and end the crew shares); ``members`` then lists the crew's
    collectors, the first member first, and ``crew_id`` names the crew.
    ``rest_break`` is the route's break placed among the stops (None when
    the route takes none).
    """

    collector: Collector
    route: Route
    stops: tuple[ItineraryStop, ...]
    return_leg: Leg
    members: tuple[Collector, ...] = ()
    crew_id: str | None = None
    rest_break: ItineraryBreak | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stops", tuple(self.stops))
        object.__setattr__(self, "members", tuple(self.members))
        owner = f"itinerary of collector {self.collector.id}"
        if self.collector.id not in self.route.members:
            raise InvalidProblemError(f"{owner} holds the route of {', '.join(self.route.members)}")
        if self.members and tuple(k.id for k in self.members) != self.route.members:
            raise InvalidProblemError(
                f"{owner}: members {', '.join(k.id for k in self.members)} differ from the "
                f"route's {', '.join(self.route.members)}"
            )
        if not self.stops:
            raise InvalidProblemError(f"{owner} has no stops")
        numbers = [s.number for s in self.stops]
        if numbers != list(range(1, len(self.stops) + 1)):
            raise InvalidProblemError(f"{owner}: stops are numbered {numbers}, expected 1..n")
        if tuple(s.stop for s in self.stops) != self.route.stops:
            raise InvalidProblemError(f"{owner}: stops differ from the route's stops")
        rest = _place_break(self.route, self.stops, self.return_leg)
        object.__setattr__(self, "rest_break", rest)
        at_door = rest is not None and rest.place is BreakPlace.AT_THE_DOOR
        object.__setattr__(
            self,
            "stops",
            tuple(
                replace(
                    item,
                    break_s=rest.duration_s if at_door and rest and rest.after == index else 0,
                )
                for index, item in enumerate(self.stops)
            ),
        )

    @property
    def partners(self) -> tuple[Collector, ...]:
        """The other collectors on the route (empty for a collector working alone)."""
        return tuple(k for k in self.members if k.id != self.collector.id)

    def timeline(self) -> tuple[ItineraryStop | ItineraryBreak, ...]:
        """The stops in order with the break between them, where it falls."""
        items: list[ItineraryStop | ItineraryBreak] = list(self.stops)
        if self.rest_break is not None:
            items.insert(self.rest_break.after, self.rest_break)
        return tuple(items)

    @property
    def mode(self) -> TravelMode:
        """How the collector travels."""
        return self.collector.mode

    @property
    def visits(self) -> int:
        """Number of visits."""
        return len(self.stops)

    @property
    def legs(self) -> tuple[Leg, ...]:
        """Every leg of the day in order, the return leg last."""
        return (*(s.leg for s in self.stops), self.return_leg)

    @property
    def travel_time_s(self) -> int:
        """Seconds spent travelling over the day, the return leg included."""
        return sum(leg.travel_time_s for leg in self.legs)

    @property
    def distance_m(self) -> int:
        """Metres travelled over the day, the return leg included."""
        return sum(leg.distance_m for leg in self.legs)

    @property
    def start_s(self) -> int:
        """When the collector leaves the start point."""
        return self.route.start_s

    @property
    def first_stop_s(self) -> int:
        """When the first visit starts."""
        return self.stops[0].stop.start_s

    @property
    def last_stop_s(self) -> int:
        """When the last visit ends."""
        return self.stops[-1].stop.end_s

    @property
    def finish_s(self) -> int:
        """When the collector reaches the end point (a break on the way home included)."""
        return max(self.route.end_s, self.last_stop_s + self.return_leg.travel_time_s)

    @property
    def coords(self) -> Coords:
        """The whole day's line, start to end, as ``(lon, lat)`` pairs."""
        line: list[tuple[float, float]] = []
        for leg in self.legs:
            line.extend(leg.coords[1:] if line and line[-1] == leg.coords[0] else leg.coords)
        return tuple(line)


def build_itineraries(
    problem: Problem,
    plan: Plan,
    networks: Mapping[TravelMode, RoadNetwork],
    matrices: Mapping[TravelMode, TravelMatrix],
) -> tuple[Itinerary, ...]:
    """Turn the plan's routes into itineraries with road geometry, one per collector at work.

    Every collector who works on a route with at least one stop gets an
    itinerary (a collector with nothing to visit has no way to show): alone,
    or as a member of a crew, whose members each get the crew's route
    (``Plan.routes_of_member``) with ``members`` and ``crew_id`` set. They
    come in ``problem.collectors`` order so that positions, and the colours
    maps give them, are stable. Times and distances come from the plan's
    stops and routes; the geometry follows the fastest road path between the
    snapped nodes of the matrix, from and to the route's own start and end
    (a crew's first member's).

    Parameters
    ----------
    problem
        The plan day the plan was made for.
    plan
        The routes to lay out.
    networks
        Road network per travel mode; the one each route travels on.
    matrices
        Travel matrix per travel mode, built on the same networks (its snapped nodes
        say where each point joins the roads).

    Returns
    -------
    tuple[Itinerary, ...]
        One itinerary per collector on a non-empty route.

    Raises
    ------
    InvalidProblemError
        A route names a collector or a case that is not in the problem, or a
        collector works on more than one route.
    NetworkError
        A route's network or matrix is missing, or two consecutive points have
        no road path between them.
    """
    known = {k.id for k in problem.collectors}
    for route in plan.routes:
        for collector_id in dict.fromkeys((route.collector_id, *route.members)):
            if collector_id not in known:
                raise InvalidProblemError(
                    f"the plan has a route for collector '{collector_id}', "
                    "who is not in the problem"
                )
    points = problem.points()
    laid_out: dict[str, Itinerary] = {}
    itineraries = []
    for collector in problem.collectors:
        worked = [r for r in plan.routes_of_member(collector.id) if r.stops]
        if not worked:
            continue
        if len(worked) > 1:
            listed = ", ".join(r.collector_id for r in worked)
            raise InvalidProblemError(
                f"collector {collector.id} works on {len(worked)} routes ({listed}); "
                "a collector works on one route a day"
            )
        route = worked[0]
        if route.collector_id not in laid_out:
            position = problem.collector_position(route.collector_id)
            network, matrix = _network_and_matrix(problem.collectors[position], networks, matrices)
            laid_out[route.collector_id] = _build_itinerary(
                problem, points, position, route, network, matrix
            )
        itinerary = laid_out[route.collector_id]
        if route.member_ids:
            crew = problem.crew_of(route.collector_id)
            itinerary = replace(
                itinerary,
                collector=collector,
                members=tuple(problem.collector(m) for m in route.members),
                crew_id=None if crew is None else crew.id,
            )
        itineraries.append(itinerary)
    return tuple(itineraries)


def _osm_link(place: str, mode: TravelMode) -> str:
    return "https://www.openstreetmap.org/directions?" + _query(
        {"engine": _OSM_ENGINES[mode], "route": f";{place}"}
    )


def _google_link(place: str, mode: TravelMode) -> str:
    return "https://www.google.com/maps/dir/?" + _query(
        {"api": "1", "destination": place, "travelmode": _GOOGLE_MODES[mode]}
    )


def _apple_link(place: str, mode: TravelMode) -> str:
    query = {"daddr": place}
    if mode in _APPLE_FLAGS:
        query["dirflg"] = _APPLE_FLAGS[mode]
    return "https://maps.apple.com/?" + _query(query)


def _geo_link(place: str, mode: TravelMode) -> str:
    # RFC 5870: Android offers every installed map app (OsmAnd, Organic Maps, ...).
    return f"geo:{place}?q={place}"


def _amap_link(place: str, mode: TravelMode) -> str:
    lat, lon = place.split(",")
    # Amap takes longitude first; coordinate=wgs84 makes it convert to its own GCJ-02 datum.
    return "https://uri.amap.com/navigation?" + _query(
        {
            "to": f"{lon},{lat},Visit",
            "mode": _AMAP_MODES[mode],
            "coordinate": "wgs84",
            "callnative": "1",
        }
    )


def _baidu_link(place: str, mode: TravelMode) -> str:
    return "https://api.map.baidu.com/direction?" + _query(
        {
            "destination": f"latlng:{place}|name:Visit",
            "mode": _BAIDU_MODES[mode],
            "coord_type": "wgs84",
            "output": "html",
            "src": "dispatch",
        }
    )


def _waze_link(place: str, mode: TravelMode) -> str:
    return "https://waze.com/ul?" + _query({"ll": place, "navigate": "yes"})


def _query(values: Mapping[str, str]) -> str:
    return urlencode(values, quote_via=quote)


@dataclass(frozen=True, slots=True)
class NavigationApp:
    """A navigation app a stop can open, by a deep link built from the place and mode."""

    key: str
    name: str
    link: Callable[[str, TravelMode], str]


NAVIGATION_APPS: dict[str, NavigationApp] = {
    app.key: app
    for app in (
        NavigationApp("osm", "OpenStreetMap", _osm_link),
        NavigationApp("google", "Google Maps", _google_link),
        NavigationApp("apple", "Apple Maps", _apple_link),
        NavigationApp("geo", "Map app", _geo_link),
        NavigationApp("amap", "Amap", _amap_link),
        NavigationApp("baidu", "Baidu Maps", _baidu_link),
        NavigationApp("waze", "Waze", _waze_link),
    )
}
DEFAULT_NAVIGATION: tuple[str, ...] = ("osm", "google", "apple")


def parse_navigation(text: str) -> tuple[str, ...]:
    """Read a comma-separated list of navigation app keys (``osm,google,amap``).

    Raises
    ------
    ValueError
        A key is not one of ``NAVIGATION_APPS``, or the list is empty.
    """
    keys = tuple(dict.fromkeys(k.strip().lower() for k in text.split(",") if k.strip()))
    unknown = [k for k in keys if k not in NAVIGATION_APPS]
    if unknown or not keys:
        raise ValueError(
            f"navigation app(s) {', '.join(unknown) or '(none given)'} not known; "
            f"choose from {', '.join(NAVIGATION_APPS)}"
        )
    return keys


def navigation_links(
    location: Location, *, mode: TravelMode, apps: Sequence[str] = DEFAULT_NAVIGATION
) -> dict[str, str]:
    """Deep links that open turn-by-turn directions to a place in navigation apps.

    The origin is left to the app (the phone's own position). Nothing is
    fetched; these are plain URLs.

    Parameters
    ----------
    location
        Where to go.
    mode
        How the collector travels; each app gets its matching profile.
    apps
        Keys of ``NAVIGATION_APPS``, in the order to offer them: ``osm``
        (openstreetmap.org directions), ``google`` (Google Maps), ``apple``
        (Apple Maps), ``geo`` (a ``geo:`` URI any Android map app opens, such
        as OsmAnd or Organic Maps), ``amap`` and ``baidu`` (mainland China;
        they convert from WGS84 themselves) and ``waze``.

    Returns
    -------
    dict[str, str]
        URL per app, in the order of ``apps``.
    """
    mode = TravelMode(mode)
    place = f"{location.lat:.6f},{location.lon:.6f}"
    return {key: NAVIGATION_APPS[key].link(place, mode) for key in apps}


def _network_and_matrix(
    collector: Collector,
    networks: Mapping[TravelMode, RoadNetwork],
    matrices: Mapping[TravelMode, TravelMatrix],
) -> tuple[RoadNetwork, TravelMatrix]:
    mode = collector.mode
    for name, given in (("road network", networks), ("travel matrix", matrices)):
        if mode not in given:
            raise NetworkError(
                f"collector {collector.id} travels by {mode}, but no {mode} {name} was given"
            )
    return networks[mode], matrices[mode]


def _build_itinerary(
    problem: Problem,
    points: tuple[Location, ...],
    position: int,
    route: Route,
    network: RoadNetwork,
    matrix: TravelMatrix,
) -> Itinerary:
    collector = problem.collectors[position]
    previous_index = problem.start_index(position)
    stops = []
    for number, stop in enumerate(route.stops, start=1):
        try:
            index = problem.case_index(stop.case_id)
        except KeyError:
            raise InvalidProblemError(
                f"the route of collector {collector.id} visits case '{stop.case_id}', "
                "which is not in the problem"
            ) from None
        coords = _leg_coords(points, network, matrix, previous_index, index)
        leg = Leg(stop.travel_time_s, stop.distance_m, coords)
        stops.append(ItineraryStop(number, problem.cases[index], stop, leg))
        previous_index = index
    end_index = problem.end_index(position)
    coords = _leg_coords(points, network, matrix, previous_index, end_index)
    return_leg = Leg(route.return_travel_time_s, route.return_distance_m, coords)
    return Itinerary(collector, route, tuple(stops), return_leg)


def _place_break(
    route: Route, stops: Sequence[ItineraryStop], return_leg: Leg
) -> ItineraryBreak | None:
    """Place a route's stated break among its stops: before, on the way, at a door, after."""
    if route.break_start_s is None or route.break_end_s is None:
        return None
    start_s, end_s = route.break_start_s, route.break_end_s
    if end_s <= start_s:
        return None
    if end_s <= route.start_s:
        first = stops[0].leg if stops else return_leg
        return ItineraryBreak(start_s, end_s, 0, BreakPlace.START, first.origin)
    leave_s = route.start_s
    for index, item in enumerate(stops):
        stop = item.stop
        if end_s <= stop.arrival_s:
            point = _point_along(item.leg, start_s - leave_s)
            return ItineraryBreak(start_s, end_s, index, BreakPlace.ON_THE_WAY, point)
        if stop.arrival_s <= start_s and end_s <= stop.start_s:
            return ItineraryBreak(
                start_s, end_s, index, BreakPlace.AT_THE_DOOR, item.leg.destination
            )
        if start_s < stop.end_s:
            # A break that overlaps a visit (a plan edited by hand, which the checker
            # reports): shown after that visit, where it was.
            return ItineraryBreak(
                start_s, end_s, index + 1, BreakPlace.ON_THE_WAY, item.leg.destination
            )
        leave_s = stop.end_s
    if start_s >= route.end_s:
        return ItineraryBreak(start_s, end_s, len(stops), BreakPlace.END, return_leg.destination)
    point = _point_along(return_leg, start_s - leave_s)
    return ItineraryBreak(start_s, end_s, len(stops), BreakPlace.ON_THE_WAY, point)


def _point_along(leg: Leg, travelled_s: int) -> tuple[float, float]:
    """Where a leg's traveller is after ``travelled_s`` seconds, at an even pace along its line."""
    if leg.travel_time_s <= 0 or travelled_s <= 0:
        return leg.origin
    fraction = min(1.0, travelled_s / leg.travel_time_s)
    pieces = [(a, b, _metres(a, b)) for a, b in itertools.pairwise(leg.coords)]
    remaining_m = fraction * sum(length for _, _, length in pieces)
    for (lon1, lat1), (lon2, lat2), length_m in pieces:
        if length_m > 0 and remaining_m <= length_m:
            share = remaining_m / length_m
            return (lon1 + share * (lon2 - lon1), lat1 + share * (lat2 - lat1))
        remaining_m -= length_m
    return leg.destination


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two ``(lon, lat)`` points, in metres."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def _leg_coords(
    points: tuple[Location, ...],
    network: RoadNetwork,
    matrix: TravelMatrix,
    origin: int,
    destination: int,
) -> Coords:
    start, end = points[origin], points[destination]
    road = route_path(network, matrix.nodes[origin], matrix.nodes[destination])
    # Access segments: straight from the address to its road node and from the last node on.
    line = [(start.lon, start.lat), *road, (end.lon, end.lat)]
    deduplicated = [line[0]]
    for point in line[1:]:
        if point != deduplicated[-1]:
            deduplicated.append(point)
    if len(deduplicated) == 1:
        deduplicated.append(deduplicated[0])
    return tuple(deduplicated)
