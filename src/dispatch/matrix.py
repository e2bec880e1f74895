"""Travel-time and distance matrices between snapped points, one backend behind a Protocol."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import weakref
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import networkx as nx
import numba
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

# Bump when the contraction hierarchy changes shape, so that old cache files are not reused.
HIERARCHY_CACHE_VERSION = 1

# Witness searches while building a hierarchy settle at most this many nodes: a search
# cut short only adds a shortcut that was not needed, never loses a path. Estimating a
# node's priority uses the smaller limit; contracting it the larger one.
_WITNESS_SETTLE_LIMIT = 100
_PRIORITY_SETTLE_LIMIT = 20
_WITNESS_HEAP_CAPACITY = 8192


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


@dataclass(frozen=True)
class _Hierarchy:
    """A contraction hierarchy: node ranks and the upward graph in both directions.

    ``up_*`` hold, per node, the edges to higher-ranked nodes (forward searches);
    ``down_*`` hold, per node, the edges that reach it from higher-ranked nodes
    (the backward searches and the downward sweep). Shortcut edges carry the travel
    time and the length of the path they stand for.
    """

    rank: np.ndarray
    up_ptr: np.ndarray
    up_head: np.ndarray
    up_time_s: np.ndarray
    up_length_m: np.ndarray
    down_ptr: np.ndarray
    down_tail: np.ndarray
    down_time_s: np.ndarray
    down_length_m: np.ndarray

    @property
    def shortcut_edges(self) -> int:
        """Number of upward edges, original and shortcut, in both directions."""
        return len(self.up_head) + len(self.down_tail)


class ContractionBackend:
    """Fastest paths over a contraction hierarchy, many-to-many by a restricted sweep.

    The road graph is contracted once (node by node, least important first,
    adding a shortcut wherever a witness search finds no other path as fast); the
    hierarchy is kept in memory per graph and, with a ``cache_dir``, on disk keyed
    by the graph's content, so later days on the same roads skip that step. A
    matrix then takes one upward search per source and one downward sweep over
    only the part of the hierarchy below the targets (RPHAST, Delling et al.
    2011), run on all cores. Travel times equal Dijkstra's up to float rounding;
    lengths are those of the fastest path found (paths tied on time may differ in
    length, as they may between any two exact methods). Compiled with numba:
    the first use in a fresh install compiles for about half a minute, and the
    compiled code is then cached beside the module.

    Parameters
    ----------
    cache_dir
        Folder for hierarchy files (``.npz``); ``None`` keeps them in memory only.
    threads
        Sweeps run in this many threads; default all cores.
    """

    def __init__(self, *, cache_dir: Path | None = None, threads: int | None = None) -> None:
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.threads = max(1, threads or os.cpu_count() or 1)

    def shortest_paths(
        self, network: RoadNetwork, sources: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Travel time (s) and length (m) of the fastest paths; see `MatrixBackend`."""
        index = _graph_index(network.graph)
        source_pos = np.array([index.position(n, network.mode) for n in sources], dtype=np.int64)
        target_pos = np.array([index.position(n, network.mode) for n in targets], dtype=np.int64)
        if len(source_pos) == 0 or len(target_pos) == 0:
            empty = np.zeros((len(source_pos), len(target_pos)))
            return empty, empty.copy()
        hierarchy = _hierarchy_of(index, self.cache_dir)
        return _many_to_many(hierarchy, source_pos, target_pos, self.threads)


_DEFAULT_BACKEND = ContractionBackend()
_INDEXES: weakref.WeakKeyDictionary[nx.MultiDiGraph, _GraphIndex] = weakref.WeakKeyDictionary()
_HIERARCHIES: dict[str, _Hierarchy] = {}
_HIERARCHY_LOCK = threading.Lock()
# Hierarchies kept in memory at once (per process), most recently built last.
_MAX_HIERARCHIES = 8


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
        Many-to-many shortest paths; `ContractionBackend` by default (keeping its
        hierarchy in ``cache_dir`` when one is given).
    cache_dir
        Folder for cached matrices (``.npz``), keyed by the graph's content, the
        access speed, the backend and the exact coordinates; ``None`` caches nothing.
    """
    if backend is None:
        backend = _DEFAULT_BACKEND if cache_dir is None else ContractionBackend(cache_dir=cache_dir)
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

    The path is the one `ScipyBackend` measures; its travel time is the matrix's
    with either backend (paths tied on time may differ). It follows edge
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
    arrays = {
        "duration_s": matrix.duration_s,
        "distance_m": matrix.distance_m,
        "nodes": matrix.nodes,
        "snap_m": matrix.snap_m,
    }
    _write_arrays(path, arrays)


def _write_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a reader never sees half a file.
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)  # type: ignore[arg-type]
        os.replace(temp_name, path)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)


def _hierarchy_of(index: _GraphIndex, cache_dir: Path | None) -> _Hierarchy:
    """The contraction hierarchy of a graph: from memory, from disk, or built now."""
    key = f"{HIERARCHY_CACHE_VERSION}-{index.fingerprint}"
    with _HIERARCHY_LOCK:
        hierarchy = _HIERARCHIES.get(key)
        if hierarchy is None and cache_dir is not None:
            hierarchy = _read_hierarchy(_hierarchy_path(cache_dir, key), len(index.lon))
        if hierarchy is None:
            hierarchy = _build_hierarchy(index)
            if cache_dir is not None:
                _write_arrays(_hierarchy_path(cache_dir, key), vars(hierarchy))
        _HIERARCHIES.pop(key, None)
        _HIERARCHIES[key] = hierarchy
        while len(_HIERARCHIES) > _MAX_HIERARCHIES:
            del _HIERARCHIES[next(iter(_HIERARCHIES))]
    return hierarchy


def _hierarchy_path(cache_dir: Path, key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return Path(cache_dir).expanduser() / f"hierarchy-{digest}.npz"


def _read_hierarchy(path: Path, node_count: int) -> _Hierarchy | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            hierarchy = _Hierarchy(**{name: data[name] for name in _Hierarchy.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return None
    if len(hierarchy.rank) != node_count or len(hierarchy.up_ptr) != node_count + 1:
        return None
    return hierarchy


def _build_hierarchy(index: _GraphIndex) -> _Hierarchy:
    adjacency = index.travel_time_s
    n = adjacency.shape[0]
    tail = np.repeat(np.arange(n, dtype=np.int64), np.diff(adjacency.indptr))
    (
        rank,
        up_tail,
        up_head,
        up_time_s,
        up_length_m,
        down_head,
        down_tail,
        down_time_s,
        down_length_m,
    ) = _contract(
        n,
        tail,
        adjacency.indices.astype(np.int64),
        adjacency.data.astype(np.float64),
        index.length_m.astype(np.float64),
        _WITNESS_SETTLE_LIMIT,
        _PRIORITY_SETTLE_LIMIT,
        _WITNESS_HEAP_CAPACITY,
    )
    up = _csr(n, up_tail, up_head, up_time_s, up_length_m)
    down = _csr(n, down_head, down_tail, down_time_s, down_length_m)
    return _Hierarchy(rank, *up, *down)


def _csr(
    n: int, rows: np.ndarray, cols: np.ndarray, time_s: np.ndarray, length_m: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(rows, kind="stable")
    ptr = np.searchsorted(rows[order], np.arange(n + 1)).astype(np.int64)
    return ptr, cols[order], time_s[order], length_m[order]


def _many_to_many(
    hierarchy: _Hierarchy, sources: np.ndarray, targets: np.ndarray, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """Travel time and length from every source to every target (positions), inf if none."""
    n = len(hierarchy.rank)
    # Only nodes from which a target is reached downwards take part in the sweep,
    # visited from the highest rank down.
    selected = _select_below(targets, hierarchy.down_ptr, hierarchy.down_tail, n)
    selected = selected[np.argsort(-hierarchy.rank[selected], kind="stable")]
    local = np.full(n, -1, dtype=np.int64)
    local[selected] = np.arange(len(selected))
    starts = hierarchy.down_ptr[selected]
    counts = hierarchy.down_ptr[selected + 1] - starts
    ptr = np.zeros(len(selected) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    entries = np.arange(ptr[-1], dtype=np.int64) - np.repeat(ptr[:-1] - starts, counts)
    sweep = (
        ptr,
        local[hierarchy.down_tail[entries]],
        hierarchy.down_time_s[entries],
        hierarchy.down_length_m[entries],
    )
    time_s = np.empty((len(sources), len(targets)))
    length_m = np.empty_like(time_s)
    target_local = local[targets]
    chunks = [c for c in np.array_split(np.arange(len(sources)), threads) if len(c)]

    def run(rows: np.ndarray) -> None:
        _sweep(
            sources[rows],
            target_local,
            hierarchy.up_ptr,
            hierarchy.up_head,
            hierarchy.up_time_s,
            hierarchy.up_length_m,
            *sweep,
            local,
            time_s[rows[0] : rows[-1] + 1],
            length_m[rows[0] : rows[-1] + 1],
        )

    if len(chunks) == 1:
        run(chunks[0])
    else:
        # The compiled sweep releases the GIL, so plain threads use every core.
        with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            list(pool.map(run, chunks))
    return time_s, length_m


@numba.njit(cache=True, inline="always")
def _heap_push(keys, values, size, key, value):  # type: ignore[no-untyped-def]
    """Push onto a binary min-heap held in two arrays; return the new size."""
    i = size
    keys[i] = key
    values[i] = value
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] <= keys[i]:
            break
        keys[parent], keys[i] = keys[i], keys[parent]
        values[parent], values[i] = values[i], values[parent]
        i = parent
    return size + 1


@numba.njit(cache=True, inline="always")
def _heap_pop(keys, values, size):  # type: ignore[no-untyped-def]
    """Pop the smallest key; return (key, value, new size)."""
    key = keys[0]
    value = values[0]
    size -= 1
    keys[0] = keys[size]
    values[0] = values[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] < keys[child]:
            child += 1
        if keys[i] <= keys[child]:
            break
        keys[child], keys[i] = keys[i], keys[child]
        values[child], values[i] = values[i], values[child]
        i = child
    return key, value, size


@numba.njit(cache=True)
def _grow(array, size):  # type: ignore[no-untyped-def]
    grown = np.empty(size, array.dtype)
    grown[: len(array)] = array
    return grown


@numba.njit(cache=True)
def _witness_search(  # type: ignore[no-untyped-def]
    source,
    skip,
    max_time,
    settle_limit,
    graph,
    contracted,
    dist,
    stamp,
    run,
    heap_keys,
    heap_values,
):
    """Dijkstra from source around node skip, up to max_time or settle_limit nodes.

    Reached nodes get ``stamp == run`` and their distance in ``dist``. Running out
    of heap stops the search early, which (like the limits) only costs a shortcut.
    """
    first_out, next_out, edge_head, edge_time = graph
    stamp[source] = run
    dist[source] = 0.0
    size = _heap_push(heap_keys, heap_values, 0, 0.0, source)
    settled = 0
    while size > 0:
        d, x, size = _heap_pop(heap_keys, heap_values, size)
        if d > dist[x]:
            continue
        if d > max_time:
            return
        settled += 1
        if settled > settle_limit:
            return
        e = first_out[x]
        while e >= 0:
            y = edge_head[e]
            if y != skip and not contracted[y]:
                nd = d + edge_time[e]
                if stamp[y] != run or nd < dist[y]:
                    stamp[y] = run
                    dist[y] = nd
                    if size >= len(heap_keys):
                        return
                    size = _heap_push(heap_keys, heap_values, size, nd, y)
            e = next_out[e]


@numba.njit(cache=True)
def _count_shortcuts(  # type: ignore[no-untyped-def]
    v, adjacency, contracted, dist, stamp, run, heap_keys, heap_values, settle_limit
):
    """Shortcuts that contracting v would add and edges it would remove: (added, removed, run)."""
    first_out, first_in, next_out, next_in, edge_tail, edge_head, edge_time = adjacency
    graph = (first_out, next_out, edge_head, edge_time)
    added = 0
    removed = 0
    e = first_out[v]
    while e >= 0:
        if not contracted[edge_head[e]]:
            removed += 1
        e = next_out[e]
    incoming = first_in[v]
    while incoming >= 0:
        u = edge_tail[incoming]
        if not contracted[u]:
            removed += 1
            time_in = edge_time[incoming]
            longest = -1.0
            e = first_out[v]
            while e >= 0:
                w = edge_head[e]
                if w != u and not contracted[w] and edge_time[e] > longest:
                    longest = edge_time[e]
                e = next_out[e]
            if longest >= 0:
                run += 1
                _witness_search(
                    u, v, time_in + longest, settle_limit, graph, contracted, dist, stamp,
                    run, heap_keys, heap_values,
                )  # fmt: skip
                e = first_out[v]
                while e >= 0:
                    w = edge_head[e]
                    unmatched = stamp[w] != run or dist[w] > time_in + edge_time[e]
                    if w != u and not contracted[w] and unmatched:
                        added += 1
                    e = next_out[e]
        incoming = next_in[incoming]
    return added, removed, run


@numba.njit(cache=True)
def _relink(used, edges, first_out, first_in, contracted):  # type: ignore[no-untyped-def]
    """Drop edges that touch contracted nodes and relink the rest; return their count."""
    edge_tail, edge_head, edge_time, edge_length, next_out, next_in = edges
    first_out[:] = -1
    first_in[:] = -1
    kept = 0
    for e in range(used):
        u = edge_tail[e]
        w = edge_head[e]
        if contracted[u] or contracted[w]:
            continue
        edge_tail[kept] = u
        edge_head[kept] = w
        edge_time[kept] = edge_time[e]
        edge_length[kept] = edge_length[e]
        next_out[kept] = first_out[u]
        first_out[u] = kept
        next_in[kept] = first_in[w]
        first_in[w] = kept
        kept += 1
    return kept


@numba.njit(cache=True)
def _contract(  # type: ignore[no-untyped-def]
    n, tail, head, time_s, length_m, settle_limit, priority_settle_limit, heap_capacity
):
    """Contract every node of a directed graph; return ranks and the upward edges.

    Nodes go least important first, by edge difference (shortcuts added minus
    edges removed), contracted neighbours and level, re-evaluated lazily. Returns
    ``(rank, up_tail, up_head, up_time, up_length, down_head, down_tail,
    down_time, down_length)``: up edges leave a node towards higher ranks, down
    edges reach a node from higher ranks.
    """
    m = len(tail)
    capacity = max(16, 2 * m)
    edge_tail = np.empty(capacity, np.int64)
    edge_head = np.empty(capacity, np.int64)
    edge_time = np.empty(capacity, np.float64)
    edge_length = np.empty(capacity, np.float64)
    next_out = np.empty(capacity, np.int64)
    next_in = np.empty(capacity, np.int64)
    edge_tail[:m] = tail
    edge_head[:m] = head
    edge_time[:m] = time_s
    edge_length[:m] = length_m
    first_out = np.full(n, -1, np.int64)
    first_in = np.full(n, -1, np.int64)
    contracted = np.zeros(n, np.bool_)
    used = _relink(
        m, (edge_tail, edge_head, edge_time, edge_length, next_out, next_in),
        first_out, first_in, contracted,
    )  # fmt: skip

    deleted = np.zeros(n, np.int64)
    level = np.zeros(n, np.int64)
    dist = np.empty(n, np.float64)
    stamp = np.zeros(n, np.int64)
    run = 0
    heap_keys = np.empty(heap_capacity, np.float64)
    heap_values = np.empty(heap_capacity, np.int64)

    priority = np.empty(n, np.float64)
    queue_keys = np.empty(2 * n + 16, np.float64)
    queue_values = np.empty(2 * n + 16, np.int64)
    queued = 0
    for v in range(n):
        adjacency = (first_out, first_in, next_out, next_in, edge_tail, edge_head, edge_time)
        added, removed, run = _count_shortcuts(
            v, adjacency, contracted, dist, stamp, run, heap_keys, heap_values,
            priority_settle_limit,
        )  # fmt: skip
        priority[v] = 2.0 * (added - removed)
        queued = _heap_push(queue_keys, queue_values, queued, priority[v], v)

    rank = np.empty(n, np.int64)
    up_tail = np.empty(capacity, np.int64)
    up_head = np.empty(capacity, np.int64)
    up_time = np.empty(capacity, np.float64)
    up_length = np.empty(capacity, np.float64)
    ups = 0
    down_head = np.empty(capacity, np.int64)
    down_tail = np.empty(capacity, np.int64)
    down_time = np.empty(capacity, np.float64)
    down_length = np.empty(capacity, np.float64)
    downs = 0
    order = 0
    since_relink = 0
    while queued > 0:
        key, v, queued = _heap_pop(queue_keys, queue_values, queued)
        if contracted[v] or key != priority[v]:
            continue
        adjacency = (first_out, first_in, next_out, next_in, edge_tail, edge_head, edge_time)
        added, removed, run = _count_shortcuts(
            v, adjacency, contracted, dist, stamp, run, heap_keys, heap_values,
            priority_settle_limit,
        )  # fmt: skip
        fresh = 2.0 * (added - removed) + deleted[v] + level[v]
        if queued > 0 and fresh > queue_keys[0]:
            priority[v] = fresh
            if queued >= len(queue_keys):
                queue_keys = _grow(queue_keys, 2 * len(queue_keys))
                queue_values = _grow(queue_values, 2 * len(queue_values))
            queued = _heap_push(queue_keys, queue_values, queued, fresh, v)
            continue

        # The edges v keeps to uncontracted nodes are its upward edges.
        e = first_out[v]
        while e >= 0:
            w = edge_head[e]
            if not contracted[w]:
                if ups >= len(up_tail):
                    up_tail = _grow(up_tail, 2 * len(up_tail))
                    up_head = _grow(up_head, 2 * len(up_head))
                    up_time = _grow(up_time, 2 * len(up_time))
                    up_length = _grow(up_length, 2 * len(up_length))
                up_tail[ups] = v
                up_head[ups] = w
                up_time[ups] = edge_time[e]
                up_length[ups] = edge_length[e]
                ups += 1
            e = next_out[e]
        e = first_in[v]
        while e >= 0:
            u = edge_tail[e]
            if not contracted[u]:
                if downs >= len(down_head):
                    down_head = _grow(down_head, 2 * len(down_head))
                    down_tail = _grow(down_tail, 2 * len(down_tail))
                    down_time = _grow(down_time, 2 * len(down_time))
                    down_length = _grow(down_length, 2 * len(down_length))
                down_head[downs] = v
                down_tail[downs] = u
                down_time[downs] = edge_time[e]
                down_length[downs] = edge_length[e]
                downs += 1
            e = next_in[e]

        # Shortcuts u -> w for every path u -> v -> w that no witness matches.
        incoming = first_in[v]
        while incoming >= 0:
            u = edge_tail[incoming]
            if contracted[u]:
                incoming = next_in[incoming]
                continue
            time_in = edge_time[incoming]
            length_in = edge_length[incoming]
            longest = -1.0
            e = first_out[v]
            while e >= 0:
                w = edge_head[e]
                if w != u and not contracted[w] and edge_time[e] > longest:
                    longest = edge_time[e]
                e = next_out[e]
            if longest >= 0:
                run += 1
                _witness_search(
                    u, v, time_in + longest, settle_limit,
                    (first_out, next_out, edge_head, edge_time),
                    contracted, dist, stamp, run, heap_keys, heap_values,
                )  # fmt: skip
                e = first_out[v]
                while e >= 0:
                    w = edge_head[e]
                    through_s = time_in + edge_time[e]
                    if w != u and not contracted[w] and (stamp[w] != run or dist[w] > through_s):
                        existing = first_out[u]
                        while existing >= 0 and edge_head[existing] != w:
                            existing = next_out[existing]
                        if existing >= 0:
                            if edge_time[existing] > through_s:
                                edge_time[existing] = through_s
                                edge_length[existing] = length_in + edge_length[e]
                        else:
                            if used >= len(edge_tail):
                                size = 2 * len(edge_tail)
                                edge_tail = _grow(edge_tail, size)
                                edge_head = _grow(edge_head, size)
                                edge_time = _grow(edge_time, size)
                                edge_length = _grow(edge_length, size)
                                next_out = _grow(next_out, size)
                                next_in = _grow(next_in, size)
                            edge_tail[used] = u
                            edge_head[used] = w
                            edge_time[used] = through_s
                            edge_length[used] = length_in + edge_length[e]
                            next_out[used] = first_out[u]
                            first_out[u] = used
                            next_in[used] = first_in[w]
                            first_in[w] = used
                            used += 1
                    e = next_out[e]
            incoming = next_in[incoming]

        contracted[v] = True
        rank[v] = order
        order += 1
        # Neighbours lose an edge and gain a level; their priorities change.
        for side in range(2):
            e = first_out[v] if side == 0 else first_in[v]
            while e >= 0:
                x = edge_head[e] if side == 0 else edge_tail[e]
                if not contracted[x]:
                    deleted[x] += 1
                    level[x] = max(level[x], level[v] + 1)
                    adjacency = (
                        first_out, first_in, next_out, next_in, edge_tail, edge_head, edge_time
                    )  # fmt: skip
                    added, removed, run = _count_shortcuts(
                        x, adjacency, contracted, dist, stamp, run, heap_keys, heap_values,
                        priority_settle_limit,
                    )  # fmt: skip
                    fresh = 2.0 * (added - removed) + deleted[x] + level[x]
                    if fresh != priority[x]:
                        priority[x] = fresh
                        if queued >= len(queue_keys):
                            queue_keys = _grow(queue_keys, 2 * len(queue_keys))
                            queue_values = _grow(queue_values, 2 * len(queue_values))
                        queued = _heap_push(queue_keys, queue_values, queued, fresh, x)
                e = next_out[e] if side == 0 else next_in[e]
        # Edges of contracted nodes only slow the searches down: drop them now and then.
        since_relink += 1
        if since_relink >= max(64, (n - order) // 16):
            used = _relink(
                used, (edge_tail, edge_head, edge_time, edge_length, next_out, next_in),
                first_out, first_in, contracted,
            )  # fmt: skip
            since_relink = 0
    return (
        rank,
        up_tail[:ups].copy(),
        up_head[:ups].copy(),
        up_time[:ups].copy(),
        up_length[:ups].copy(),
        down_head[:downs].copy(),
        down_tail[:downs].copy(),
        down_time[:downs].copy(),
        down_length[:downs].copy(),
    )


@numba.njit(cache=True)
def _select_below(targets, down_ptr, down_tail, n):  # type: ignore[no-untyped-def]
    """Nodes from which some target is reached by downward edges (targets included)."""
    marked = np.zeros(n, np.bool_)
    stack = np.empty(n, np.int64)
    count = 0
    for target in targets:
        if marked[target]:
            continue
        marked[target] = True
        count += 1
        stack[0] = target
        top = 1
        while top > 0:
            top -= 1
            x = stack[top]
            for j in range(down_ptr[x], down_ptr[x + 1]):
                u = down_tail[j]
                if not marked[u]:
                    marked[u] = True
                    count += 1
                    stack[top] = u
                    top += 1
    selected = np.empty(count, np.int64)
    k = 0
    for x in range(n):
        if marked[x]:
            selected[k] = x
            k += 1
    return selected


@numba.njit(cache=True, nogil=True)
def _sweep(  # type: ignore[no-untyped-def]
    sources,
    target_local,
    up_ptr,
    up_head,
    up_time,
    up_length,
    sweep_ptr,
    sweep_tail,
    sweep_time,
    sweep_length,
    local,
    out_time,
    out_length,
):
    """For each source: an upward search, then the downward sweep over the selection."""
    n = len(up_ptr) - 1
    selected = len(sweep_ptr) - 1
    dist = np.empty(n, np.float64)
    length = np.empty(n, np.float64)
    stamp = np.full(n, -1, np.int64)
    settled = np.empty(n, np.int64)
    heap_keys = np.empty(1024, np.float64)
    heap_values = np.empty(1024, np.int64)
    best = np.empty(selected, np.float64)
    best_length = np.empty(selected, np.float64)
    for row in range(len(sources)):
        source = sources[row]
        stamp[source] = row
        dist[source] = 0.0
        length[source] = 0.0
        size = _heap_push(heap_keys, heap_values, 0, 0.0, source)
        reached = 0
        while size > 0:
            d, x, size = _heap_pop(heap_keys, heap_values, size)
            if d > dist[x]:
                continue
            settled[reached] = x
            reached += 1
            for j in range(up_ptr[x], up_ptr[x + 1]):
                y = up_head[j]
                nd = d + up_time[j]
                if stamp[y] != row or nd < dist[y]:
                    stamp[y] = row
                    dist[y] = nd
                    length[y] = length[x] + up_length[j]
                    if size >= len(heap_keys):
                        heap_keys = _grow(heap_keys, 2 * len(heap_keys))
                        heap_values = _grow(heap_values, 2 * len(heap_values))
                    size = _heap_push(heap_keys, heap_values, size, nd, y)
        best[:] = np.inf
        best_length[:] = np.inf
        for k in range(reached):
            i = local[settled[k]]
            if i >= 0:
                best[i] = dist[settled[k]]
                best_length[i] = length[settled[k]]
        for i in range(selected):
            time_i = best[i]
            length_i = best_length[i]
            for j in range(sweep_ptr[i], sweep_ptr[i + 1]):
                through = best[sweep_tail[j]] + sweep_time[j]
                if through < time_i:
                    time_i = through
                    length_i = best_length[sweep_tail[j]] + sweep_length[j]
            best[i] = time_i
            best_length[i] = length_i
        for k in range(len(target_local)):
            out_time[row, k] = best[target_local[k]]
            out_length[row, k] = best_length[target_local[k]]
