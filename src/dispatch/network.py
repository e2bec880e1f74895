"""Road networks per travel mode: OSM PBF extracts (pyrosm), GraphML, osmnx downloads."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from dispatch.model import TravelMode

# Fixed speeds for modes whose speed does not depend on the road class.
SPEED_KPH: dict[TravelMode, float] = {TravelMode.WALK: 4.5, TravelMode.BIKE: 15.0}


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
