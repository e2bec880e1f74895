"""Route planner and field dispatch optimizer for door-to-door debt-collection visits."""

from dispatch.errors import DispatchError, InputError, InvalidProblemError, NetworkError, RowError
from dispatch.model import (
    Case,
    Collector,
    Crew,
    Location,
    Plan,
    Problem,
    Reason,
    Route,
    Stop,
    Team,
    TimeWindow,
    TravelMode,
    Unassigned,
)

__all__ = [
    "Case",
    "Collector",
    "Crew",
    "DispatchError",
    "InputError",
    "InvalidProblemError",
    "Location",
    "NetworkError",
    "Plan",
    "Problem",
    "Reason",
    "Route",
    "RowError",
    "Stop",
    "Team",
    "TimeWindow",
    "TravelMode",
    "Unassigned",
]
