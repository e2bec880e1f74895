"""Travel-time and distance matrices between snapped points, one backend behind a Protocol."""

from __future__ import annotations

import hashlib
import os
import tempfile
import weakref
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree
from shapely.geometry import LineString

from dispatch.errors import NetworkError
from dispatch.model import Location, Problem, TravelMode
from dispatch.network import RoadNetwork

# Duration and distance given to pairs with no path; larger than any plan day.
UNREACHABLE: int = 10**9

# Mean Earth radius in metres (the one osmnx uses for great-circle lengths).
EARTH_RADIUS_M = 6_371_009.0

# Bump when cached matrices change meaning, so that old cache files are not reused.
MATRIX_CACHE_VERSION = 1

# Strongly connected parts of a graph with fewer nodes than this (or than half the
# largest part) are fragments that points never snap to: pieces cut off by the
# extract's edge, one-way stubs, indoor corridors (OSRM calls them tiny components).
FRAGMENT_NODES = 1000

# Dijkstra runs on batches of sources so that a batch's (sources x nodes) arrays stay
# below this many cells, whatever the size of the graph.
_MAX_BATCH_CELLS = 10_000_000


@dataclass(frozen=True)
class TravelMatrix:
    """Travel times and distances between points for one travel mode.

    ``duration_s[i, j]`` and ``distance_m[i, j]`` (int64) go from point ``i`` to
    point ``j``, including the access legs between each point and its road
    node; pairs with no path hold ``UNREACHABLE``. ``nodes[i]`` is the graph
    node point ``i`` snaps to and ``snap_m[i]`` the distance to it in metres.
    """

    mode: TravelMode
    duration_s: np.ndarray
    distance_m: np.ndarray
    nodes: np.ndarray
    snap_m: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.nodes)
        for name in ("duration_s", "distance_m"):
            shape = getattr(self, name).shape
            if shape != (n, n):
                raise ValueError(f"{name} has shape {shape}, expected ({n}, {n})")
        if self.snap_m.shape != (n,):
            raise ValueError(f"snap_m has shape {self.snap_m.shape}, expected ({n},)")

    @property
    def size(self) -> int:
        """Number of points."""
        return len(self.nodes)

    def reachable(self, i: int, j: int) -> bool:
        """Whether there is a path from point ``i`` to point ``j``."""
        return bool(self.duration_s[i, j] < UNREACHABLE)


class MatrixBackend(Protocol):
    """Many-to-many fastest paths between nodes of a road network."""

    def shortest_paths(
        self, network: RoadNetwork, sources: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Travel time and length of the fastest path from each source to each target node.

        Parameters
        ----------
        network
            The road network; edges weigh ``travel_time`` (s) and ``length`` (m).
        sources, targets
            Graph node ids.

        Returns
        -------
        tuple of numpy.ndarray
            ``(travel_time_s, distance_m)``, float arrays of shape
            ``(len(sources), len(targets))``; ``inf`` where no path exists.
            ``distance_m`` is the length of the fastest path, not the shortest one.
        """
        ...


@dataclass(frozen=True)
class _GraphIndex:
    """A road graph in array form: compressed adjacency, node positions, a KD-tree."""

    node_ids: np.ndarray
    positions: dict[Any, int]
    lon: np.ndarray
    lat: np.ndarray
    snappable: np.ndarray
    tree: cKDTree
    travel_time_s: csr_matrix
    length_m: np.ndarray
    edge_keys: np.ndarray
    entry_keys: np.ndarray
    fingerprint: str
    node_count: int

    def position(self, node: Any, mode: TravelMode) -> int:
        """Position of a graph node id in the arrays."""
        try:
            return self.positions[node]
        except (KeyError, TypeError):
            raise NetworkError(f"node {node} is not in the {mode} network") from None

    def entries(self, tails: np.ndarray, heads: np.ndarray) -> np.ndarray:
        """Positions in the adjacency data of the edges ``tails[i] -> heads[i]``."""
        return np.searchsorted(self.entry_keys, tails.astype(np.int64) * len(self.lon) + heads)


class ScipyBackend:
    """Fastest paths with ``scipy.sparse.csgraph.dijkstra`` (C) from each unique source.

    The distance of a pair is the length of its fastest path: the Dijkstra run on
    travel time also returns each source's predecessor tree, and the lengths of
    the tree's edges are summed back from every target to its source, all pairs
    of a batch at once.
    """

    def shortest_paths(
        self, network: RoadNetwork, sources: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Travel time (s) and length (m) of the fastest paths; see `MatrixBackend`."""
        index = _graph_index(network.graph)
        source_pos = np.array([index.position(n, network.mode) for n in sources], dtype=np.int64)
        target_pos = np.array([index.position(n, network.mode) for n in targets], dtype=np.int64)
        travel_time_s = np.empty((len(source_pos), len(target_pos)))
        distance_m = np.empty_like(travel_time_s)
        batch = max(1, _MAX_BATCH_CELLS // max(1, len(index.lon)))
        for start in range(0, len(source_pos), batch):
            rows = slice(start, start + batch)
            times, predecessors = dijkstra(
                index.travel_time_s,
                directed=True,
                indices=source_pos[rows],
                return_predecessors=True,
            )
            travel_time_s[rows] = times[:, target_pos]
            distance_m[rows] = _tree_lengths(index, predecessors, target_pos)
        distance_m[~np.isfinite(travel_time_s)] = np.inf
        return travel_time_s, distance_m


_DEFAULT_BACKEND = ScipyBackend()
_INDEXES: weakref.WeakKeyDictionary[nx.MultiDiGraph, _GraphIndex] = weakref.WeakKeyDictionary()


def snap_to_graph(
    network: RoadNetwork, locations: Sequence[Location]
) -> tuple[np.ndarray, np.ndarray]:
    """Snap each location to its nearest graph node outside fragments.

    Fragments are strongly connected parts with fewer than ``FRAGMENT_NODES``
    nodes or than half the largest part: snapping there would make a point
    unreachable although a connected road is a few metres further. Points in
    separate large parts (islands) stay mutually unreachable.

    The nearest node is found with a KD-tree on points of the unit sphere, so the
    choice is exact at any latitude and extent; distances are great-circle metres.
    Snapping goes to nodes, not to the nearest point of an edge: PBF networks keep
    every OSM node of every way, so on city streets a node is rarely far from the
    nearest point of the road, and the snap distance is the access leg actually
    walked to reach the graph.

    Returns
    -------
    tuple of numpy.ndarray
        Node ids (one per location) and snap distances in metres (float).
    """
    index = _graph_index(network.graph)
    if not locations:
        return index.node_ids[:0].copy(), np.zeros(0)
    lat = np.array([loc.lat for loc in locations], dtype=float)
    lon = np.array([loc.lon for loc in locations], dtype=float)
    chord, nearest = index.tree.query(_unit_vectors(lat, lon))
    snap_m = 2.0 * EARTH_RADIUS_M * np.arcsin(np.minimum(chord / 2.0, 1.0))
    return index.node_ids[index.snappable[nearest]], snap_m


def build_matrix(
    network: RoadNetwork,
    locations: Sequence[Location],
    *,
    backend: MatrixBackend | None = None,
    cache_dir: Path | None = None,
) -> TravelMatrix:
    """Travel times and distances between all pairs of locations on one network.

    Each location snaps to its nearest node (see `snap_to_graph`). For ``i != j``
    the duration adds the access legs at both ends, ``snap_m / access_speed_kph``,
    to the fastest road path between the nodes, and the distance adds the snap
    distances to that path's length. The diagonal is 0; pairs with no road path
    hold ``UNREACHABLE``. Durations are rounded to whole seconds, distances to
    whole metres.

    Parameters
    ----------
    network
        The road network of one travel mode.
    locations
        The points, in matrix order.
    backend
        Many-to-many shortest paths; `ScipyBackend` by default.
    cache_dir
        Folder for cached matrices (``.npz``), keyed by the graph's content, the
        access speed, the backend and the exact coordinates; ``None`` caches nothing.
    """
    backend = backend or _DEFAULT_BACKEND
    nodes, snap_m = snap_to_graph(network, locations)
    if len(nodes) == 0:
        empty = np.zeros((0, 0), dtype=np.int64)
        return TravelMatrix(network.mode, empty, empty.copy(), nodes, snap_m)
    cache_path = None
    if cache_dir is not None and nodes.dtype.kind in "iu":
        cache_path = _matrix_cache_path(Path(cache_dir), network, backend, nodes, locations)
        cached = _read_matrix(cache_path, network.mode, len(nodes))
        if cached is not None:
            return cached
    unique, inverse = np.unique(nodes, return_inverse=True)
    node_time_s, node_distance_m = backend.shortest_paths(network, unique, unique)
    road_time_s = node_time_s[np.ix_(inverse, inverse)]
    road_distance_m = node_distance_m[np.ix_(inverse, inverse)]
    access_s = snap_m / (network.access_speed_kph / 3.6)
    duration_s = _to_matrix(road_time_s + access_s[:, None] + access_s[None, :])
    distance_m = _to_matrix(road_distance_m + snap_m[:, None] + snap_m[None, :])
    matrix = TravelMatrix(
        mode=network.mode,
        duration_s=duration_s,
        distance_m=distance_m,
        nodes=nodes,
        snap_m=snap_m,
    )
    if cache_path is not None:
        _write_matrix(cache_path, matrix)
    return matrix


def build_matrices(
    problem: Problem,
    networks: Mapping[TravelMode, RoadNetwork],
    *,
    backend: MatrixBackend | None = None,
    cache_dir: Path | None = None,
) -> dict[TravelMode, TravelMatrix]:
    """One matrix over ``problem.points()`` per travel mode the collectors use."""
    points = problem.points()
    matrices = {}
    for mode in problem.modes():
        if mode not in networks:
            have = ", ".join(str(m) for m in networks) or "none"
            raise NetworkError(f"no {mode} road network was loaded (loaded: {have})")
        matrices[mode] = build_matrix(networks[mode], points, backend=backend, cache_dir=cache_dir)
    return matrices


def route_path(network: RoadNetwork, from_node: Any, to_node: Any) -> list[tuple[float, float]]:
    """Coordinates ``(lon, lat)`` along the fastest road path between two graph nodes.

    The path is the one `ScipyBackend` measures for the matrix, and follows edge
    geometries where edges have them. A path from a node to itself is that node.

    Raises
    ------
    NetworkError
        A node is not in the network, or no road path leads from one to the other.
    """
    index = _graph_index(network.graph)
    source = index.position(from_node, network.mode)
    target = index.position(to_node, network.mode)
    if source == target:
        return [(float(index.lon[source]), float(index.lat[source]))]
    times, predecessors = dijkstra(
        index.travel_time_s, directed=True, indices=source, return_predecessors=True
    )
    if not np.isfinite(times[target]):
        raise NetworkError(
            f"no {network.mode} road path leads from node {from_node} to node {to_node}"
        )
    chain = [target]
    while chain[-1] != source:
        chain.append(int(predecessors[chain[-1]]))
    path = np.array(chain[::-1], dtype=np.int64)
    keys = index.edge_keys[index.entries(path[:-1], path[1:])]
    coords = [(float(index.lon[source]), float(index.lat[source]))]
    edges = network.graph.edges
    for tail, head, key in zip(path[:-1], path[1:], keys, strict=True):
        end = (float(index.lon[head]), float(index.lat[head]))
        geometry = edges[index.node_ids[tail], index.node_ids[head], key].get("geometry")
        if isinstance(geometry, LineString) and len(geometry.coords) > 2:
            inner = [(float(x), float(y)) for x, y, *_ in geometry.coords]
            # Stored geometries run u -> v; a reused one may still run the other way.
            if _squared(inner[0], end) < _squared(inner[-1], end):
                inner.reverse()
            coords.extend(inner[1:-1])
        coords.append(end)
    return coords


def _squared(a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2


def _to_matrix(values: np.ndarray) -> np.ndarray:
    matrix = np.full(values.shape, UNREACHABLE, dtype=np.int64)
    finite = np.isfinite(values)
    matrix[finite] = np.minimum(np.rint(values[finite]), UNREACHABLE - 1).astype(np.int64)
    np.fill_diagonal(matrix, 0)
    return matrix


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    lat_r, lon_r = np.radians(lat), np.radians(lon)
    return np.column_stack(
        (np.cos(lat_r) * np.cos(lon_r), np.cos(lat_r) * np.sin(lon_r), np.sin(lat_r))
    )


def _tree_lengths(index: _GraphIndex, predecessors: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Length (m) of the tree path from each row's source to each target, summed backwards.

    Every (source, target) pair steps one edge towards its source per round, all
    pairs together; a pair drops out when it reaches the source (or has no path).
    """
    rows = np.repeat(np.arange(predecessors.shape[0]), len(targets))
    current = np.tile(targets, predecessors.shape[0])
    total = np.zeros(len(rows))
    active = np.flatnonzero(predecessors[rows, current] >= 0)
    while active.size:
        heads = current[active]
        tails = predecessors[rows[active], heads].astype(np.int64)
        total[active] += index.length_m[index.entries(tails, heads)]
        current[active] = tails
        active = active[predecessors[rows[active], tails] >= 0]
    return total.reshape(predecessors.shape[0], len(targets))


def _graph_index(graph: nx.MultiDiGraph) -> _GraphIndex:
    """Return the array form of a graph, built once per graph object.

    Road graphs are read-only once loaded; as a cheap guard the index is rebuilt
    when the node count changes (counting multigraph edges costs a full pass).
    """
    index = _INDEXES.get(graph)
    if index is None or index.node_count != graph.number_of_nodes():
        index = _build_index(graph)
        _INDEXES[graph] = index
    return index


def _build_index(graph: nx.MultiDiGraph) -> _GraphIndex:
    nodes = list(graph.nodes)
    n = len(nodes)
    if n == 0:
        raise NetworkError("the road network has no nodes")
    positions = {node: i for i, node in enumerate(nodes)}
    node_ids = np.array(nodes) if all(isinstance(x, int) for x in nodes) else _objects(nodes)
    try:
        lon = np.array([graph.nodes[x]["x"] for x in nodes], dtype=float)
        lat = np.array([graph.nodes[x]["y"] for x in nodes], dtype=float)
    except KeyError as error:
        raise NetworkError(f"a road network node lacks the coordinate {error}") from None

    tails, heads, keys, times, lengths = [], [], [], [], []
    for u, v, key, data in graph.edges(keys=True, data=True):
        if u == v:
            continue
        if "travel_time" not in data or "length" not in data:
            raise NetworkError(f"road network edge {u}->{v} lacks travel_time or length")
        tails.append(positions[u])
        heads.append(positions[v])
        keys.append(key)
        times.append(data["travel_time"])
        lengths.append(data["length"])
    tail = np.array(tails, dtype=np.int64)
    head = np.array(heads, dtype=np.int64)
    time_s = np.array(times, dtype=float)
    # Sort by (tail, head, time) and keep the fastest of parallel edges.
    order = np.lexsort((time_s, head, tail))
    tail, head, time_s = tail[order], head[order], time_s[order]
    length_m = np.array(lengths, dtype=float)[order]
    edge_keys = _objects(keys)[order]
    first = np.ones(len(tail), dtype=bool)
    first[1:] = (tail[1:] != tail[:-1]) | (head[1:] != head[:-1])
    tail, head, time_s, length_m, edge_keys = (
        a[first] for a in (tail, head, time_s, length_m, edge_keys)
    )
    indptr = np.searchsorted(tail, np.arange(n + 1))
    # Built from sorted arrays directly: entries stay aligned with length_m and
    # edge_keys, and zero travel times stay explicit edges (csgraph keeps them).
    travel_time_s = csr_matrix((time_s, head, indptr), shape=(n, n))

    _, part = connected_components(travel_time_s, directed=True, connection="strong")
    part_nodes = np.bincount(part)
    fragment_below = min(FRAGMENT_NODES, part_nodes.max() / 2)
    snappable = np.flatnonzero(part_nodes[part] >= fragment_below)

    digest = hashlib.sha256()
    digest.update(repr(nodes).encode() if node_ids.dtype == object else node_ids.tobytes())
    for array in (lon, lat, indptr, head, time_s, length_m):
        digest.update(np.ascontiguousarray(array).tobytes())
    return _GraphIndex(
        node_ids=node_ids,
        positions=positions,
        lon=lon,
        lat=lat,
        snappable=snappable,
        tree=cKDTree(_unit_vectors(lat[snappable], lon[snappable])),
        travel_time_s=travel_time_s,
        length_m=length_m,
        edge_keys=edge_keys,
        entry_keys=tail * n + head,
        fingerprint=digest.hexdigest(),
        node_count=n,
    )


def _objects(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _matrix_cache_path(
    cache_dir: Path,
    network: RoadNetwork,
    backend: MatrixBackend,
    nodes: np.ndarray,
    locations: Sequence[Location],
) -> Path:
    digest = hashlib.sha256()
    backend_name = f"{type(backend).__module__}.{type(backend).__qualname__}"
    header = (MATRIX_CACHE_VERSION, str(network.mode), network.access_speed_kph, backend_name)
    digest.update(repr(header).encode())
    digest.update(_graph_index(network.graph).fingerprint.encode())
    digest.update(np.array([(loc.lat, loc.lon) for loc in locations], dtype=float).tobytes())
    digest.update(nodes.astype(np.int64).tobytes())
    return cache_dir.expanduser() / f"matrix-{network.mode}-{digest.hexdigest()[:24]}.npz"


def _read_matrix(path: Path, mode: TravelMode, size: int) -> TravelMatrix | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            matrix = TravelMatrix(
                mode=mode,
                duration_s=data["duration_s"],
                distance_m=data["distance_m"],
                nodes=data["nodes"],
                snap_m=data["snap_m"],
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    return matrix if matrix.size == size else None


def _write_matrix(path: Path, matrix: TravelMatrix) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a reader never sees half a file.
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(
                file,
                duration_s=matrix.duration_s,
                distance_m=matrix.distance_m,
                nodes=matrix.nodes,
                snap_m=matrix.snap_m,
            )
        os.replace(temp_name, path)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
