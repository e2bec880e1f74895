import datetime as dt
import itertools
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from shapely.geometry import LineString

from dispatch import matrix as matrix_module
from dispatch.errors import NetworkError
from dispatch.matrix import (
    UNREACHABLE,
    ContractionBackend,
    ScipyBackend,
    TravelMatrix,
    build_matrices,
    build_matrix,
    route_path,
    snap_to_graph,
)
from dispatch.model import Case, Collector, Location, Problem, TimeWindow, TravelMode
from dispatch.network import RoadNetwork, load_networks

EARTH_RADIUS_M = 6_371_009.0


def great_circle_m(lat1, lon1, lat2, lon2):
    lat1, lon1, lat2, lon2 = map(np.radians, (lat1, lon1, lat2, lon2))
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a))


@pytest.fixture(scope="module")
def networks() -> dict[TravelMode, RoadNetwork]:
    return load_networks(None, list(TravelMode))


@pytest.fixture(scope="module")
def points() -> list[Location]:
    """Twelve addresses in central Helsinki (seeded), plus one repeated."""
    rng = np.random.default_rng(7)
    lats = rng.uniform(60.166, 60.176, 12)
    lons = rng.uniform(24.938, 24.950, 12)
    located = [Location(float(lat), float(lon)) for lat, lon in zip(lats, lons, strict=True)]
    return [*located, located[0]]


def core_of(graph: nx.MultiDiGraph) -> set:
    return max(nx.strongly_connected_components(graph), key=len)


def tiny_network(mode: TravelMode = TravelMode.WALK) -> RoadNetwork:
    """Two separate five-node streets, 1 km apart, each walkable both ways."""
    graph = nx.MultiDiGraph()
    for first, lon in ((1, 24.90), (11, 24.92)):
        for step in range(5):
            graph.add_node(first + step, x=lon + step * 0.001, y=60.0)
        for step in range(4):
            for u, v in ((first + step, first + step + 1), (first + step + 1, first + step)):
                graph.add_edge(u, v, length=55.6, travel_time=55.6 / 1.25)
    return RoadNetwork(mode=mode, graph=graph, source="tiny", access_speed_kph=4.5)


def fastest_path_by_networkx(graph: nx.MultiDiGraph, u: int, v: int) -> tuple[float, float]:
    path = nx.shortest_path(graph, u, v, weight="travel_time")
    time_s = length_m = 0.0
    for a, b in itertools.pairwise(path):
        edge = min(graph[a][b].values(), key=lambda d: d["travel_time"])
        time_s += edge["travel_time"]
        length_m += edge["length"]
    return time_s, length_m


@pytest.mark.parametrize("mode", list(TravelMode))
def test_matrix_agrees_with_networkx_plus_access_legs(
    networks: dict[TravelMode, RoadNetwork], points: list[Location], mode: TravelMode
) -> None:
    network = networks[mode]
    matrix = build_matrix(network, points)
    access_s = matrix.snap_m / (network.access_speed_kph / 3.6)
    pairs = [(0, 1), (1, 0), (2, 7), (7, 2), (3, 11), (5, 9), (10, 4)]
    for i, j in pairs:
        time_s, length_m = fastest_path_by_networkx(network.graph, matrix.nodes[i], matrix.nodes[j])
        assert matrix.duration_s[i, j] == pytest.approx(time_s + access_s[i] + access_s[j], abs=1)
        assert matrix.distance_m[i, j] == pytest.approx(
            length_m + matrix.snap_m[i] + matrix.snap_m[j], abs=1
        )


def test_matrix_shape_types_and_diagonal(
    networks: dict[TravelMode, RoadNetwork], points: list[Location]
) -> None:
    matrix = build_matrix(networks[TravelMode.DRIVE], points)
    n = len(points)
    assert matrix.mode is TravelMode.DRIVE
    assert matrix.duration_s.shape == matrix.distance_m.shape == (n, n)
    assert matrix.duration_s.dtype == matrix.distance_m.dtype == np.int64
    assert (np.diag(matrix.duration_s) == 0).all() and (np.diag(matrix.distance_m) == 0).all()
    # Every snapped point is in the connected core, so every pair is reachable.
    assert (matrix.duration_s < UNREACHABLE).all()
    assert (matrix.duration_s[~np.eye(n, dtype=bool)] > 0).all()


def test_no_points_give_an_empty_matrix(networks: dict[TravelMode, RoadNetwork]) -> None:
    matrix = build_matrix(networks[TravelMode.WALK], [])
    assert matrix.size == 0
    assert matrix.duration_s.shape == matrix.distance_m.shape == (0, 0)


def test_the_same_address_twice_costs_the_walk_to_the_road_and_back(
    networks: dict[TravelMode, RoadNetwork], points: list[Location]
) -> None:
    network = networks[TravelMode.DRIVE]
    matrix = build_matrix(network, points)
    last = len(points) - 1
    assert matrix.nodes[0] == matrix.nodes[last]
    access_s = matrix.snap_m[0] / (network.access_speed_kph / 3.6)
    assert matrix.duration_s[0, last] == round(2 * access_s)
    assert matrix.distance_m[0, last] == round(2 * matrix.snap_m[0])


def test_walk_times_are_distances_at_walking_speed(
    networks: dict[TravelMode, RoadNetwork], points: list[Location]
) -> None:
    matrix = build_matrix(networks[TravelMode.WALK], points)
    expected_s = matrix.distance_m / (4.5 / 3.6)
    assert np.abs(matrix.duration_s - expected_s).max() <= 1.0


def test_one_way_street_makes_drive_asymmetric_but_walk_symmetric(
    networks: dict[TravelMode, RoadNetwork],
) -> None:
    drive = networks[TravelMode.DRIVE]
    core = core_of(drive.graph)
    u, v, data = next(
        (u, v, d)
        for u, v, d in drive.graph.edges(data=True)
        if d["oneway"] and u in core and v in core and d["length"] > 50
    )
    ends = [Location(drive.graph.nodes[n]["y"], drive.graph.nodes[n]["x"]) for n in (u, v)]

    by_car = build_matrix(drive, ends)
    assert list(by_car.nodes) == [u, v]
    assert by_car.snap_m == pytest.approx([0, 0], abs=0.01)
    assert by_car.duration_s[0, 1] == round(data["travel_time"])
    assert by_car.distance_m[0, 1] == round(data["length"])
    # Against the one-way direction the car goes around the block.
    assert by_car.duration_s[1, 0] > by_car.duration_s[0, 1] + 10
    assert by_car.distance_m[1, 0] > by_car.distance_m[0, 1] + 50

    on_foot = build_matrix(networks[TravelMode.WALK], ends)
    assert abs(on_foot.duration_s[0, 1] - on_foot.duration_s[1, 0]) <= 1


def test_walk_matrix_is_symmetric(
    networks: dict[TravelMode, RoadNetwork], points: list[Location]
) -> None:
    matrix = build_matrix(networks[TravelMode.WALK], points)
    assert np.abs(matrix.duration_s - matrix.duration_s.T).max() <= 1
    assert np.abs(matrix.distance_m - matrix.distance_m.T).max() <= 1


def test_separate_parts_of_a_network_are_unreachable_not_infinite() -> None:
    network = tiny_network()
    near = [Location(60.0001, 24.9001), Location(60.0, 24.902), Location(60.0, 24.9212)]
    matrix = build_matrix(network, near)
    assert list(matrix.nodes) == [1, 3, 12]
    assert matrix.duration_s[0, 1] == round(2 * 55.6 / 1.25 + matrix.snap_m[0] / 1.25)
    for i, j in ((0, 2), (2, 0), (1, 2), (2, 1)):
        assert matrix.duration_s[i, j] == UNREACHABLE
        assert matrix.distance_m[i, j] == UNREACHABLE
        assert not matrix.reachable(i, j)
    assert matrix.reachable(0, 1) and matrix.reachable(1, 0)
    assert (np.diag(matrix.duration_s) == 0).all()


def test_points_never_snap_to_a_small_fragment() -> None:
    network = tiny_network()
    graph = network.graph
    # A two-node footway by itself, cut off from the streets.
    graph.add_node(21, x=24.93, y=60.0)
    graph.add_node(22, x=24.9301, y=60.0)
    graph.add_edge(21, 22, length=5.6, travel_time=4.5)
    graph.add_edge(22, 21, length=5.6, travel_time=4.5)
    nodes, snap_m = snap_to_graph(network, [Location(60.0, 24.93)])
    assert nodes[0] == 15
    assert snap_m[0] == pytest.approx(great_circle_m(60.0, 24.93, 60.0, 24.924), rel=1e-6)


def test_snap_distance_of_a_point_out_at_sea(networks: dict[TravelMode, RoadNetwork]) -> None:
    # About 600 m south of the extract's southern edge, in the harbour basin.
    at_sea = Location(60.1587, 24.9450)
    for network in networks.values():
        nodes, snap_m = snap_to_graph(network, [at_sea])
        core = list(core_of(network.graph))
        lat = np.array([network.graph.nodes[n]["y"] for n in core])
        lon = np.array([network.graph.nodes[n]["x"] for n in core])
        distances = great_circle_m(at_sea.lat, at_sea.lon, lat, lon)
        assert nodes[0] == core[int(np.argmin(distances))]
        assert snap_m[0] == pytest.approx(distances.min(), abs=0.5)
        assert snap_m[0] > 500


def test_snapping_a_node_location_returns_that_node_at_zero_metres(
    networks: dict[TravelMode, RoadNetwork],
) -> None:
    graph = networks[TravelMode.WALK].graph
    node = sorted(core_of(graph))[100]
    here = Location(graph.nodes[node]["y"], graph.nodes[node]["x"])
    nodes, snap_m = snap_to_graph(networks[TravelMode.WALK], [here])
    assert nodes[0] == node
    assert snap_m[0] < 0.01
    empty_nodes, empty_snap = snap_to_graph(networks[TravelMode.WALK], [])
    assert empty_nodes.shape == empty_snap.shape == (0,)


def test_explicit_backend_gives_the_same_matrix(
    networks: dict[TravelMode, RoadNetwork], points: list[Location]
) -> None:
    default = build_matrix(networks[TravelMode.BIKE], points)
    explicit = build_matrix(networks[TravelMode.BIKE], points, backend=ContractionBackend())
    assert (default.duration_s == explicit.duration_s).all()
    assert (default.distance_m == explicit.distance_m).all()


def lattice_network(side: int, *, seed: int = 3) -> RoadNetwork:
    """A driving grid with faster arterials, uneven block lengths and one-way streets."""
    rng = np.random.default_rng(seed)
    graph = nx.MultiDiGraph()
    for r in range(side):
        for c in range(side):
            graph.add_node(r * side + c, x=24.9 + c * 0.0015, y=60.1 + r * 0.0008)
    for horizontal in (True, False):
        for line in range(side):
            speed_kph = 50.0 if line % 4 == 0 else 30.0
            one_way = speed_kph == 30.0 and rng.random() < 0.3
            for step in range(side - 1):
                a, b = (line, step), (line, step + 1)
                if not horizontal:
                    a, b = a[::-1], b[::-1]
                u, v = a[0] * side + a[1], b[0] * side + b[1]
                length_m = 85.0 * rng.uniform(1.0, 1.2)
                time_s = length_m / (speed_kph * rng.uniform(0.85, 1.0) / 3.6)
                graph.add_edge(u, v, length=length_m, travel_time=time_s)
                if not one_way:
                    graph.add_edge(v, u, length=length_m, travel_time=time_s)
    return RoadNetwork(TravelMode.DRIVE, graph, "lattice", access_speed_kph=4.5)


@pytest.mark.parametrize("mode", list(TravelMode))
def test_contraction_hierarchy_gives_the_scipy_matrix_on_helsinki(
    networks: dict[TravelMode, RoadNetwork], mode: TravelMode
) -> None:
    rng = np.random.default_rng(11)
    lats = rng.uniform(60.160, 60.178, 150)
    lons = rng.uniform(24.925, 24.960, 150)
    spread = [Location(float(a), float(b)) for a, b in zip(lats, lons, strict=True)]
    fast = build_matrix(networks[mode], spread, backend=ContractionBackend())
    exact = build_matrix(networks[mode], spread, backend=ScipyBackend())
    assert np.abs(fast.duration_s - exact.duration_s).max() <= 1
    assert np.abs(fast.distance_m - exact.distance_m).max() <= 1
    assert ((fast.duration_s == UNREACHABLE) == (exact.duration_s == UNREACHABLE)).all()


def test_contraction_hierarchy_on_a_one_way_lattice_and_between_parts() -> None:
    network = lattice_network(24)
    graph = network.graph
    # A separate two-street island the lattice cannot reach, and that cannot reach it.
    for node, x in ((9001, 25.2), (9002, 25.201), (9003, 25.202)):
        graph.add_node(node, x=x, y=60.1)
    for u, v in ((9001, 9002), (9002, 9003), (9003, 9002), (9002, 9001)):
        graph.add_edge(u, v, length=55.0, travel_time=6.6)
    nodes = np.array([*list(graph.nodes)[::7], 9001, 9003])
    fast_s, fast_m = ContractionBackend(threads=2).shortest_paths(network, nodes, nodes[::-1])
    exact_s, exact_m = ScipyBackend().shortest_paths(network, nodes, nodes[::-1])
    assert np.array_equal(np.isfinite(fast_s), np.isfinite(exact_s))
    assert not np.isfinite(fast_s[0, 0])  # the lattice to the island
    finite = np.isfinite(exact_s)
    assert np.abs(fast_s[finite] - exact_s[finite]).max() < 1e-6
    assert np.abs(fast_m[finite] - exact_m[finite]).max() < 1e-6
    # One-way streets make the lattice asymmetric, and the hierarchy keeps that.
    forward_s, _ = ContractionBackend().shortest_paths(network, nodes[:40], nodes[:40])
    assert np.abs(forward_s - forward_s.T).max() > 10


def test_hierarchy_is_cached_on_disk_and_reused(tmp_path: Path) -> None:
    network = lattice_network(12, seed=5)
    corners = [Location(60.1, 24.9), Location(60.1088, 24.9165), Location(60.105, 24.905)]
    first = build_matrix(network, corners, backend=ContractionBackend(cache_dir=tmp_path))
    (cache_file,) = tmp_path.glob("hierarchy-*.npz")
    # Mark the cached shortcut times: a backend that reads the file returns the mark.
    matrix_module._HIERARCHIES.clear()
    with np.load(cache_file) as data:
        arrays = dict(data)
    arrays["up_time_s"] = arrays["up_time_s"] + 1000.0
    arrays["down_time_s"] = arrays["down_time_s"] + 1000.0
    np.savez(cache_file, **arrays)
    again = build_matrix(network, corners, backend=ContractionBackend(cache_dir=tmp_path))
    off = ~np.eye(3, dtype=bool)
    assert (again.duration_s[off] >= first.duration_s[off] + 1000).all()
    matrix_module._HIERARCHIES.clear()
    cached = build_matrix(network, corners, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("hierarchy-*.npz"))) == 1
    assert len(list(tmp_path.glob("matrix-drive-*.npz"))) == 1
    assert (cached.duration_s[off] > first.duration_s[off]).all()


def test_matrix_cache_file_is_written_and_reused(
    networks: dict[TravelMode, RoadNetwork], points: list[Location], tmp_path: Path
) -> None:
    network = networks[TravelMode.DRIVE]
    first = build_matrix(network, points, cache_dir=tmp_path)
    (cache_file,) = tmp_path.glob("matrix-drive-*.npz")

    # Mark the cached durations: a build that returns the mark read the cache.
    with np.load(cache_file) as data:
        arrays = dict(data)
    arrays["duration_s"] = arrays["duration_s"] + 1
    np.savez(cache_file, **arrays)
    again = build_matrix(network, points, cache_dir=tmp_path)
    assert (again.duration_s == first.duration_s + 1).all()
    assert (again.distance_m == first.distance_m).all()

    moved = [Location(p.lat + 0.0001, p.lon) for p in points]
    build_matrix(network, moved, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("matrix-drive-*.npz"))) == 2


def test_build_matrices_gives_one_matrix_per_mode_in_point_order(
    networks: dict[TravelMode, RoadNetwork], points: list[Location]
) -> None:
    cases = tuple(Case(id=f"C{i}", location=p) for i, p in enumerate(points[:5]))
    shift = TimeWindow(8 * 3600, 16 * 3600)
    collectors = (
        Collector("K1", "Aino", points[5], points[6], shift, mode=TravelMode.WALK),
        Collector("K2", "Eero", points[7], points[7], shift, mode=TravelMode.DRIVE),
    )
    problem = Problem(dt.date(2026, 3, 2), "Europe/Helsinki", cases, collectors)
    matrices = build_matrices(problem, networks)
    assert set(matrices) == {TravelMode.WALK, TravelMode.DRIVE}
    for mode, matrix in matrices.items():
        alone = build_matrix(networks[mode], problem.points())
        assert isinstance(matrix, TravelMatrix) and matrix.size == 9
        assert (matrix.duration_s == alone.duration_s).all()
    with pytest.raises(NetworkError, match="no drive road network was loaded"):
        build_matrices(problem, {TravelMode.WALK: networks[TravelMode.WALK]})


@pytest.mark.parametrize("mode", [TravelMode.WALK, TravelMode.DRIVE])
def test_route_path_follows_the_roads_the_matrix_measured(
    networks: dict[TravelMode, RoadNetwork], points: list[Location], mode: TravelMode
) -> None:
    network = networks[mode]
    matrix = build_matrix(network, points)
    for i, j in ((0, 1), (4, 9), (9, 4)):
        coords = route_path(network, matrix.nodes[i], matrix.nodes[j])
        start, end = (network.graph.nodes[matrix.nodes[k]] for k in (i, j))
        assert coords[0] == (start["x"], start["y"])
        assert coords[-1] == (end["x"], end["y"])
        lon, lat = np.array(coords).T
        drawn_m = great_circle_m(lat[:-1], lon[:-1], lat[1:], lon[1:]).sum()
        road_m = matrix.distance_m[i, j] - matrix.snap_m[i] - matrix.snap_m[j]
        assert drawn_m == pytest.approx(road_m, rel=0.01, abs=2)


def test_route_path_follows_curved_edge_geometries_in_travel_direction() -> None:
    network = tiny_network()
    graph = network.graph
    bend = LineString([(24.900, 60.0), (24.9005, 60.0003), (24.901, 60.0)])
    for key in graph[1][2]:
        graph.edges[1, 2, key]["geometry"] = bend
    # The way back reuses the same geometry, stored in the other direction.
    for key in graph[2][1]:
        graph.edges[2, 1, key]["geometry"] = bend
    xy = {n: (d["x"], d["y"]) for n, d in graph.nodes(data=True)}
    assert route_path(network, 1, 3) == [xy[1], (24.9005, 60.0003), xy[2], xy[3]]
    assert route_path(network, 3, 1) == [xy[3], xy[2], (24.9005, 60.0003), xy[1]]


def test_route_path_edge_cases() -> None:
    network = tiny_network()
    xy = {n: (d["x"], d["y"]) for n, d in network.graph.nodes(data=True)}
    assert route_path(network, 2, 2) == [xy[2]]
    assert route_path(network, 1, 3) == [xy[1], xy[2], xy[3]]
    assert route_path(network, 3, 1) == [xy[3], xy[2], xy[1]]
    with pytest.raises(NetworkError, match="no walk road path leads from node 1 to node 12"):
        route_path(network, 1, 12)
    with pytest.raises(NetworkError, match="node 99 is not in the walk network"):
        route_path(network, 1, 99)
