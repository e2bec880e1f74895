"""Travel-time and distance matrices between snapped points, one backend behind a Protocol."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dispatch.model import TravelMode

# Duration and distance given to pairs with no path; larger than any plan day.
UNREACHABLE: int = 10**9


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
