"""Itineraries on the real Helsinki walking network: legs follow roads and match the plan."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
from urllib.parse import parse_qs, urlsplit

import pytest

from dispatch.errors import InvalidProblemError, NetworkError
from dispatch.itinerary import (
    Itinerary,
    Leg,
    build_itineraries,
    navigation_links,
    parse_navigation,
)
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


# --- crews and breaks -----------------------------------------------------------------------

LUNCH = TimeWindow(11 * 3600, 13 * 3600 + 1800)


@pytest.fixture(scope="module")
def crew_day(problem, matrix, network):
    """K1 and K3 (same start, a lunch each) work as crew W; K2 works alone."""
    from dispatch.explain import time_route as timed_route
    from dispatch.model import Crew

    collectors = tuple(
        dataclasses.replace(k, break_window=LUNCH, break_s=1800) if k.id != "K2" else k
        for k in problem.collectors
    )
    # A visit after lunch, so that the break falls between visits.
    cases = tuple(
        dataclasses.replace(c, windows=(TimeWindow(12 * 3600 + 2700, 14 * 3600),))
        if c.id == "HEL-103"
        else c
        for c in problem.cases
    )
    day = dataclasses.replace(
        problem, cases=cases, collectors=collectors, crews=(Crew("W", ("K1", "K3")),)
    )
    matrices = {TravelMode.WALK: matrix}
    routes = (
        timed_route(day, matrices, "K1", ["HEL-101", "HEL-102", "HEL-103"]),
        timed_route(day, matrices, "K2", ["HEL-201", "HEL-202"]),
    )
    plan = Plan(routes, ())
    return day, plan, build_itineraries(day, plan, {TravelMode.WALK: network}, matrices)


def test_each_crew_member_gets_the_crews_stops(crew_day):
    _, plan, itineraries = crew_day
    assert [it.collector.id for it in itineraries] == ["K1", "K2", "K3"]
    crew_route = plan.routes[0]
    assert crew_route.member_ids == ("K1", "K3")
    first, alone, second = itineraries
    for member in (first, second):
        assert member.route == crew_route
        assert [s.case.id for s in member.stops] == ["HEL-101", "HEL-102", "HEL-103"]
        assert [k.id for k in member.members] == ["K1", "K3"]
        assert member.crew_id == "W"
    assert [k.id for k in first.partners] == ["K3"]
    assert [k.id for k in second.partners] == ["K1"]
    # Both members travel the same lines from the crew's start, K1's.
    assert second.coords == first.coords
    assert (alone.members, alone.crew_id, alone.partners) == ((), None, ())


def test_the_break_is_an_item_of_the_timeline(crew_day):
    _, _, itineraries = crew_day
    assert [it.rest_break is not None for it in itineraries] == [True, False, True]
    for itinerary in (itineraries[0], itineraries[2]):
        route = itinerary.route
        rest = itinerary.rest_break
        assert route.break_start_s is not None and rest is not None
        assert 0 < rest.after < itinerary.visits
        assert (rest.start_s, rest.end_s) == (route.break_start_s, route.break_end_s)
        timeline = itinerary.timeline()
        assert timeline[rest.after] is rest
        assert [i for i in timeline if i is not rest] == list(itinerary.stops)
        # Everything before it ends by its start; everything after starts after its end.
        for item in timeline[: rest.after]:
            assert item.stop.end_s <= rest.start_s
        for item in timeline[rest.after + 1 :]:
            assert item.stop.start_s >= rest.end_s


def with_break(route: Route, after: int, shift_s: int, *, at_door: bool = False) -> Route:
    """Insert a break of ``shift_s`` after ``after`` visits, delaying what follows by as much."""
    stops = list(route.stops)
    leave_s = route.start_s if after == 0 else stops[after - 1].end_s
    for index in range(after, len(stops)):
        stop = stops[index]
        moved = dataclasses.replace(
            stop,
            arrival_s=stop.arrival_s + (0 if at_door and index == after else shift_s),
            start_s=stop.start_s + shift_s,
            end_s=stop.end_s + shift_s,
        )
        stops[index] = moved
    begins = stops[after].arrival_s if at_door else leave_s + 60
    return dataclasses.replace(
        route,
        stops=tuple(stops),
        end_s=route.end_s + shift_s,
        break_start_s=begins,
        break_end_s=begins + shift_s,
    )


def test_a_break_at_the_door_is_not_counted_as_waiting(problem, plan, itineraries):
    from dispatch.itinerary import BreakPlace

    base = itineraries[0]
    route = with_break(base.route, 1, 1800, at_door=True)
    itinerary = dataclasses.replace(
        base,
        route=route,
        stops=tuple(
            dataclasses.replace(item, stop=stop)
            for item, stop in zip(base.stops, route.stops, strict=True)
        ),
    )
    rest = itinerary.rest_break
    assert (rest.place, rest.after) == (BreakPlace.AT_THE_DOOR, 1)
    second = itinerary.stops[1]
    assert rest.point == second.leg.destination
    assert second.stop.wait_s == base.stops[1].stop.wait_s + 1800
    assert (second.break_s, second.wait_s) == (1800, base.stops[1].stop.wait_s)
    assert [s.break_s for s in itinerary.stops] == [0, 1800, 0]


def test_a_break_on_the_way_is_placed_along_the_leg(problem, itineraries):
    from dispatch.itinerary import BreakPlace

    base = itineraries[0]
    route = with_break(base.route, 1, 1800)
    itinerary = dataclasses.replace(
        base,
        route=route,
        stops=tuple(
            dataclasses.replace(item, stop=stop)
            for item, stop in zip(base.stops, route.stops, strict=True)
        ),
    )
    rest = itinerary.rest_break
    leg = itinerary.stops[1].leg
    assert (rest.place, rest.after) == (BreakPlace.ON_THE_WAY, 1)
    # A minute into the leg: that far along its line, at an even pace.
    expected_m = line_length_m(leg.coords) * 60 / leg.travel_time_s
    assert haversine_m(leg.origin, rest.point) <= expected_m + 1
    assert min(haversine_m(rest.point, p) for p in leg.coords) < 60
    assert all(s.break_s == 0 for s in itinerary.stops)
    assert itinerary.stops[1].wait_s == itinerary.stops[1].stop.wait_s


@pytest.mark.parametrize("where", ["start", "end"])
def test_a_break_before_leaving_or_after_arriving_is_at_the_start_or_the_end(itineraries, where):
    from dispatch.itinerary import BreakPlace

    base = itineraries[1]
    route = base.route
    begins = route.start_s - 1800 if where == "start" else route.end_s
    route = dataclasses.replace(route, break_start_s=begins, break_end_s=begins + 1800)
    rest = dataclasses.replace(base, route=route).rest_break
    if where == "start":
        assert (rest.place, rest.after, rest.point) == (BreakPlace.START, 0, base.legs[0].origin)
    else:
        assert (rest.place, rest.after) == (BreakPlace.END, base.visits)
        assert rest.point == base.return_leg.destination


def test_visits_that_need_a_crew_are_marked(crew_day):
    _, _, itineraries = crew_day
    item = itineraries[0].stops[0]
    assert not item.needs_crew
    two = dataclasses.replace(item, case=dataclasses.replace(item.case, min_crew=2))
    assert two.needs_crew


def test_a_collector_on_two_routes_is_refused(problem, plan, network, matrix):
    doubled = dataclasses.replace(plan.routes[1], member_ids=("K2", "K1"))
    with pytest.raises(InvalidProblemError, match="K1 works on 2 routes"):
        build_itineraries(
            problem,
            Plan((plan.routes[0], doubled), ()),
            {TravelMode.WALK: network},
            {TravelMode.WALK: matrix},
        )


def test_navigation_apps_are_chosen_and_ordered_by_configuration():
    place = Location(39.908823, 116.397470)
    links = navigation_links(place, mode=TravelMode.BIKE, apps=parse_navigation("amap, geo,baidu"))
    assert list(links) == ["amap", "geo", "baidu"]

    parts = urlsplit(links["amap"])
    query = parse_qs(parts.query)
    assert (parts.netloc, parts.path) == ("uri.amap.com", "/navigation")
    # Amap wants longitude first, and converts from WGS84 itself.
    assert query["to"] == ["116.397470,39.908823,Visit"]
    assert (query["mode"], query["coordinate"]) == (["ride"], ["wgs84"])

    assert links["geo"] == "geo:39.908823,116.397470?q=39.908823,116.397470"

    query = parse_qs(urlsplit(links["baidu"]).query)
    assert query["destination"] == ["latlng:39.908823,116.397470|name:Visit"]
    assert (query["mode"], query["coord_type"]) == (["riding"], ["wgs84"])


def test_an_unknown_navigation_app_is_named():
    with pytest.raises(ValueError, match=r"navigation app.*tomtom.*choose from osm"):
        parse_navigation("osm,tomtom")
    with pytest.raises(ValueError, match="none given"):
        parse_navigation(" , ")
