"""Itineraries on the real Helsinki walking network: legs follow roads and match the plan."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from urllib.parse import parse_qs, urlsplit

import pytest

from dispatch.errors import InvalidProblemError, NetworkError
from dispatch.itinerary import Itinerary, Leg, build_itineraries, navigation_links
from dispatch.matrix import TravelMatrix, build_matrix
from dispatch.model import (
    Case,
    Collector,
    Location,
    Plan,
    Problem,
    Reason,
    Route,
    Stop,
    TimeWindow,
    TravelMode,
    Unassigned,
)
from dispatch.network import RoadNetwork, load_network


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lon, lat) points in metres."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def line_length_m(coords) -> float:
    return sum(haversine_m(a, b) for a, b in itertools.pairwise(coords))


def make_problem() -> Problem:
    def case(case_id, lat, lon, **kw):
        return Case(case_id, Location(lat, lon), address=f"{case_id} street 1", **kw)

    morning = (TimeWindow(9 * 3600, 12 * 3600),)
    cases = (
        case("HEL-101", 60.16912, 24.94102, amount_cents=987_654, windows=morning),
        case("HEL-102", 60.17205, 24.94634, amount_cents=123_456, skills={"legal"}),
        case("HEL-103", 60.17488, 24.94210, amount_cents=55_501),
        case("HEL-201", 60.16603, 24.94987, amount_cents=44_401),
        # Two flats of the same building, visited one after the other.
        case("HEL-202", 60.16820, 24.95135, amount_cents=33_301),
        case("HEL-203", 60.16820, 24.95135, amount_cents=22_201),
        case("HEL-301", 60.17020, 24.93790, amount_cents=11_101, skills={"swedish"}),
        case("HEL-302", 60.17700, 24.95050, amount_cents=10_001),
    )
    shift = TimeWindow(8 * 3600, 16 * 3600)
    start_a = Location(60.17098, 24.94128)
    walk = TravelMode.WALK
    collectors = (
        Collector("K1", "Aino", start_a, start_a, shift, skills=frozenset({"legal"}), mode=walk),
        Collector(
            "K2",
            "Bertil",
            Location(60.16747, 24.94552),
            Location(60.1739, 24.9478),
            shift,
            mode=walk,
        ),
        Collector("K3", "Cecilia", start_a, start_a, shift, mode=walk),
    )
    return Problem(dt.date(2025, 6, 3), "Europe/Helsinki", cases, collectors)


def time_route(problem: Problem, matrix: TravelMatrix, collector_id: str, case_ids) -> Route:
    """Time a route by hand from the matrix: leave at shift start, wait for windows."""
    position = problem.collector_position(collector_id)
    collector = problem.collectors[position]
    clock = collector.shift.start_s
    previous = problem.start_index(position)
    stops = []
    for case_id in case_ids:
        index = problem.case_index(case_id)
        case = problem.cases[index]
        travel_s = int(matrix.duration_s[previous, index])
        arrival = clock + travel_s
        start = max(arrival, case.windows[0].start_s)
        end = start + case.service_s
        stops.append(
            Stop(case_id, arrival, start, end, travel_s, int(matrix.distance_m[previous, index]))
        )
        clock, previous = end, index
    end_index = problem.end_index(position)
    back_s = int(matrix.duration_s[previous, end_index])
    back_m = int(matrix.distance_m[previous, end_index])
    return Route(
        collector_id,
        collector.shift.start_s,
        clock + back_s,
        tuple(stops),
        travel_time_s=sum(s.travel_time_s for s in stops) + back_s,
        distance_m=sum(s.distance_m for s in stops) + back_m,
        return_travel_time_s=back_s,
        return_distance_m=back_m,
    )


def make_plan(problem: Problem, matrix: TravelMatrix) -> Plan:
    routes = (
        time_route(problem, matrix, "K1", ["HEL-101", "HEL-102", "HEL-103"]),
        time_route(problem, matrix, "K2", ["HEL-201", "HEL-202", "HEL-203"]),
        time_route(problem, matrix, "K3", []),
    )
    unassigned = (
        Unassigned("HEL-301", Reason.NO_QUALIFIED_COLLECTOR, "nobody on duty speaks swedish"),
        Unassigned("HEL-302", Reason.CAPACITY_EXHAUSTED, "every route was full"),
    )
    return Plan(routes, unassigned)


@pytest.fixture(scope="module")
def network() -> RoadNetwork:
    return load_network(None, mode=TravelMode.WALK)


@pytest.fixture(scope="module")
def problem() -> Problem:
    return make_problem()


@pytest.fixture(scope="module")
def matrix(network, problem) -> TravelMatrix:
    return build_matrix(network, problem.points())


@pytest.fixture(scope="module")
def plan(problem, matrix) -> Plan:
    return make_plan(problem, matrix)


@pytest.fixture(scope="module")
def itineraries(problem, plan, network, matrix) -> tuple[Itinerary, ...]:
    return build_itineraries(problem, plan, {TravelMode.WALK: network}, {TravelMode.WALK: matrix})


@pytest.fixture(scope="module")
def road_points(network) -> set[tuple[float, float]]:
    """Every coordinate that lies on a road: graph nodes and edge geometry vertices."""
    graph = network.graph
    points = {(float(d["x"]), float(d["y"])) for _, d in graph.nodes(data=True)}
    for _, _, data in graph.edges(data=True):
        if data.get("geometry") is not None:
            points.update((float(x), float(y)) for x, y in data["geometry"].coords)
    return points


def previous_points(problem: Problem, itinerary: Itinerary):
    """(lon, lat) of where each leg should start and end, return leg included."""
    collector = itinerary.collector
    places = [collector.start, *(s.case.location for s in itinerary.stops), collector.end]
    return [((a.lon, a.lat), (b.lon, b.lat)) for a, b in itertools.pairwise(places)]


def test_one_itinerary_per_route_with_stops_in_collector_order(problem, plan, itineraries):
    assert [it.collector.id for it in itineraries] == ["K1", "K2"]
    for itinerary in itineraries:
        route = plan.route_of(itinerary.collector.id)
        assert itinerary.route == route
        assert [s.number for s in itinerary.stops] == list(range(1, len(route.stops) + 1))
        assert [s.case.id for s in itinerary.stops] == list(route.case_ids)
        assert all(s.case == problem.case(s.case.id) for s in itinerary.stops)


def test_each_leg_runs_from_the_previous_point_to_the_stop(problem, itineraries):
    for itinerary in itineraries:
        for leg, (origin, destination) in zip(
            itinerary.legs, previous_points(problem, itinerary), strict=True
        ):
            assert haversine_m(leg.coords[0], origin) < 3.0
            assert haversine_m(leg.coords[-1], destination) < 3.0


def test_leg_geometry_follows_the_roads(itineraries, road_points):
    for itinerary in itineraries:
        for leg in itinerary.legs:
            # Between the two access segments every vertex is a road node or edge vertex.
            inner = leg.coords[1:-1]
            assert all(point in road_points for point in inner)
            assert line_length_m(leg.coords) == pytest.approx(leg.distance_m, rel=0.02, abs=5)


def test_leg_times_and_distances_are_the_plans_and_the_matrixs(problem, matrix, itineraries):
    for itinerary in itineraries:
        position = problem.collector_position(itinerary.collector.id)
        previous = problem.start_index(position)
        for item in itinerary.stops:
            index = problem.case_index(item.case.id)
            assert item.leg.travel_time_s == item.stop.travel_time_s
            assert item.leg.distance_m == item.stop.distance_m
            assert item.leg.travel_time_s == matrix.duration_s[previous, index]
            assert item.leg.distance_m == matrix.distance_m[previous, index]
            previous = index
        end = problem.end_index(position)
        assert itinerary.return_leg.travel_time_s == matrix.duration_s[previous, end]
        assert itinerary.return_leg.distance_m == matrix.distance_m[previous, end]


def test_itinerary_totals_equal_the_route_totals(itineraries):
    for itinerary in itineraries:
        route = itinerary.route
        assert itinerary.visits == len(route.stops)
        assert itinerary.travel_time_s == route.travel_time_s
        assert itinerary.distance_m == route.distance_m
        assert itinerary.start_s == route.start_s
        assert itinerary.first_stop_s == route.stops[0].start_s
        assert itinerary.last_stop_s == route.stops[-1].end_s
        assert itinerary.finish_s == route.end_s


def test_a_second_flat_in_the_same_building_is_a_short_walk_to_the_road_and_back(itineraries):
    second_flat = next(s for it in itineraries for s in it.stops if s.case.id == "HEL-203")
    assert second_flat.leg.coords[0] == second_flat.leg.coords[-1]
    assert line_length_m(second_flat.leg.coords) == pytest.approx(second_flat.leg.distance_m, abs=3)


def test_day_line_joins_the_legs_without_gaps(itineraries):
    for itinerary in itineraries:
        line = itinerary.coords
        start, end = itinerary.collector.start, itinerary.collector.end
        assert line[0] == (start.lon, start.lat)
        assert line[-1] == (end.lon, end.lat)
        assert line_length_m(line) == pytest.approx(
            sum(line_length_m(leg.coords) for leg in itinerary.legs), abs=0.01
        )


def test_a_missing_network_is_named(problem, plan, matrix):
    with pytest.raises(NetworkError, match="no walk road network"):
        build_itineraries(problem, plan, {}, {TravelMode.WALK: matrix})


def test_a_route_of_an_unknown_collector_is_rejected(problem, plan, network, matrix):
    stray = Plan((*plan.routes, Route("K9", 0, 0, (), 0, 0)), ())
    with pytest.raises(InvalidProblemError, match="K9"):
        build_itineraries(problem, stray, {TravelMode.WALK: network}, {TravelMode.WALK: matrix})


def test_leg_rejects_a_line_of_one_point():
    with pytest.raises(InvalidProblemError, match="at least 2"):
        Leg(10, 10, ((24.9, 60.1),))


@pytest.mark.parametrize(
    ("mode", "google", "osm", "apple"),
    [
        (TravelMode.WALK, "walking", "fossgis_osrm_foot", "w"),
        (TravelMode.BIKE, "bicycling", "fossgis_osrm_bike", None),
        (TravelMode.DRIVE, "driving", "fossgis_osrm_car", "d"),
    ],
)
def test_navigation_links_lead_to_the_destination(mode, google, osm, apple):
    links = navigation_links(Location(60.169123, 24.941021), mode=mode)
    assert set(links) == {"osm", "google", "apple"}
    for url in links.values():
        parts = urlsplit(url)
        assert parts.scheme == "https"
        assert " " not in url

    parts = urlsplit(links["google"])
    query = parse_qs(parts.query)
    assert (parts.netloc, parts.path) == ("www.google.com", "/maps/dir/")
    assert query == {"api": ["1"], "destination": ["60.169123,24.941021"], "travelmode": [google]}

    parts = urlsplit(links["osm"])
    query = parse_qs(parts.query)
    assert (parts.netloc, parts.path) == ("www.openstreetmap.org", "/directions")
    assert query["engine"] == [osm]
    assert query["route"] == [";60.169123,24.941021"]

    parts = urlsplit(links["apple"])
    query = parse_qs(parts.query)
    assert parts.netloc == "maps.apple.com"
    assert query["daddr"] == ["60.169123,24.941021"]
    assert query.get("dirflg") == ([apple] if apple else None)
