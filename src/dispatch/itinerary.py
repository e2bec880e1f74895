"""Routes turned into itineraries: numbered stops, legs along the roads, navigation links."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    """A visit on an itinerary: its place in the order, the case, its timing and the leg to it."""

    number: int
    case: Case
    stop: Stop
    leg: Leg

    def __post_init__(self) -> None:
        if self.number < 1:
            raise InvalidProblemError(f"stop number {self.number} must be 1 or more")
        if self.case.id != self.stop.case_id:
            raise InvalidProblemError(
                f"stop {self.number} visits case {self.stop.case_id} "
                f"but carries case {self.case.id}"
            )


@dataclass(frozen=True)
class Itinerary:
    """One collector's day as they will walk, ride or drive it.

    ``stops`` are numbered 1..n in visiting order, each with the leg from the
    previous point (the start for stop 1); ``return_leg`` goes from the last
    stop to the collector's end point.
    """

    collector: Collector
    route: Route
    stops: tuple[ItineraryStop, ...]
    return_leg: Leg

    def __post_init__(self) -> None:
        object.__setattr__(self, "stops", tuple(self.stops))
        owner = f"itinerary of collector {self.collector.id}"
        if self.route.collector_id != self.collector.id:
            raise InvalidProblemError(f"{owner} holds the route of {self.route.collector_id}")
        if not self.stops:
            raise InvalidProblemError(f"{owner} has no stops")
        numbers = [s.number for s in self.stops]
        if numbers != list(range(1, len(self.stops) + 1)):
            raise InvalidProblemError(f"{owner}: stops are numbered {numbers}, expected 1..n")
        if tuple(s.stop for s in self.stops) != self.route.stops:
            raise InvalidProblemError(f"{owner}: stops differ from the route's stops")

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
        """When the collector reaches the end point: the last visit's end plus the return leg."""
        return self.last_stop_s + self.return_leg.travel_time_s

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
    """Turn the plan's routes into itineraries with road geometry.

    Only routes with at least one stop become itineraries (a collector with
    nothing to visit has no way to show); they come in ``problem.collectors``
    order so that positions, and the colours maps give them, are stable.
    Times and distances come from the plan's stops and routes; the geometry
    follows the fastest road path between the snapped nodes of the matrix.

    Parameters
    ----------
    problem
        The plan day the plan was made for.
    plan
        The routes to lay out.
    networks
        Road network per travel mode; the one each collector travels on.
    matrices
        Travel matrix per travel mode, built on the same networks (its snapped nodes
        say where each point joins the roads).

    Returns
    -------
    tuple[Itinerary, ...]
        One itinerary per non-empty route.

    Raises
    ------
    InvalidProblemError
        A route names a collector or a case that is not in the problem.
    NetworkError
        A collector's network or matrix is missing, or two consecutive points have
        no road path between them.
    """
    routes: dict[str, Route] = {}
    for route in plan.routes:
        try:
            problem.collector(route.collector_id)
        except KeyError:
            raise InvalidProblemError(
                f"the plan has a route for collector '{route.collector_id}', "
                "who is not in the problem"
            ) from None
        routes[route.collector_id] = route
    points = problem.points()
    itineraries = []
    for position, collector in enumerate(problem.collectors):
        if collector.id not in routes or not routes[collector.id].stops:
            continue
        network, matrix = _network_and_matrix(collector, networks, matrices)
        itineraries.append(
            _build_itinerary(problem, points, position, routes[collector.id], network, matrix)
        )
    return tuple(itineraries)


def navigation_links(location: Location, *, mode: TravelMode) -> dict[str, str]:
    """Deep links that open turn-by-turn directions to a place in a navigation app.

    The origin is left to the app (the phone's own position). Nothing is
    fetched; these are plain URLs.

    Parameters
    ----------
    location
        Where to go.
    mode
        How the collector travels; each app gets its matching profile.

    Returns
    -------
    dict[str, str]
        URL per app: ``osm`` (openstreetmap.org directions), ``google`` (Google Maps)
        and ``apple`` (Apple Maps).
    """
    mode = TravelMode(mode)
    lat_lon = f"{location.lat:.6f},{location.lon:.6f}"
    osm_query = {"engine": _OSM_ENGINES[mode], "route": f";{lat_lon}"}
    google_query = {"api": "1", "destination": lat_lon, "travelmode": _GOOGLE_MODES[mode]}
    apple_query = {"daddr": lat_lon}
    if mode in _APPLE_FLAGS:
        apple_query["dirflg"] = _APPLE_FLAGS[mode]
    return {
        "osm": "https://www.openstreetmap.org/directions?" + urlencode(osm_query, quote_via=quote),
        "google": "https://www.google.com/maps/dir/?" + urlencode(google_query, quote_via=quote),
        "apple": "https://maps.apple.com/?" + urlencode(apple_query, quote_via=quote),
    }


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
