"""Reasons for unassigned cases, route timing, and an independent check of any plan.

Everything here recomputes times from the travel matrix of each collector's
mode; nothing trusts the solver. A visit's transit is its service time
followed by the travel to the next point; collectors may wait at a door for
a window to open. ``time_route`` ends each route as early as its order
allows and leaves the start as late as that end allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from dispatch.errors import InvalidProblemError
from dispatch.matrix import UNREACHABLE, TravelMatrix
from dispatch.model import (
    Case,
    Collector,
    Plan,
    Problem,
    Reason,
    Route,
    Stop,
    TimeWindow,
    TravelMode,
    Unassigned,
    format_clock,
)

# Collectors named in one detail sentence before the rest are summarised as "and N more".
_NAMED_MAX = 4


class ViolationCode(StrEnum):
    """Stable codes of the rules that ``check_plan`` enforces."""

    LATE = "LATE"
    """A time is earlier than physically possible, or a visit starts before the arrival."""
    OUTSIDE_WINDOW = "OUTSIDE_WINDOW"
    """A visit starts outside every window of its case."""
    SHIFT_START = "SHIFT_START"
    """A route leaves its start before the shift begins."""
    SHIFT_OVERRUN = "SHIFT_OVERRUN"
    """A route reaches its end after the shift is over."""
    MISSING_SKILL = "MISSING_SKILL"
    """A collector visits a case whose skills they do not all hold."""
    OFF_NETWORK = "OFF_NETWORK"
    """A routed case is farther than the snap limit from the collector's road network."""
    DUPLICATE_VISIT = "DUPLICATE_VISIT"
    """A case is on more than one stop."""
    DUPLICATE_UNASSIGNED = "DUPLICATE_UNASSIGNED"
    """A case is listed as unassigned more than once."""
    MISSING_CASE = "MISSING_CASE"
    """A case of the problem is neither on a route nor unassigned."""
    UNKNOWN_CASE = "UNKNOWN_CASE"
    """A stop or an unassigned entry names a case the problem does not have."""
    UNKNOWN_COLLECTOR = "UNKNOWN_COLLECTOR"
    """A route belongs to a collector the problem does not have."""
    MAX_VISITS = "MAX_VISITS"
    """A route has more stops than the collector's visit cap."""
    SERVICE_TOO_SHORT = "SERVICE_TOO_SHORT"
    """A visit ends before its service time has passed."""
    BAD_TOTALS = "BAD_TOTALS"
    """A leg or a route total disagrees with the matrix or with the sum of the legs."""
    DUPLICATE_ROUTE = "DUPLICATE_ROUTE"
    """A collector has more than one route."""
    UNASSIGNED_AND_ROUTED = "UNASSIGNED_AND_ROUTED"
    """A case is on a route and also listed as unassigned."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule in a plan, with a sentence that names the people, case and numbers."""

    code: str
    message: str
    collector_id: str | None = None
    case_id: str | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class Insertion:
    """The cheapest feasible place for a case on one collector's route.

    ``position`` is the index in the route's visit order where the case goes
    (0 = first visit). ``extra_travel_s`` is the travel the route gains; for a
    route without visits it is the whole start-case-end trip, because a
    collector without visits does not travel at all.
    """

    collector_id: str
    position: int
    extra_travel_s: int


def time_route(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    collector_id: str,
    case_ids: Sequence[str],
) -> Route:
    """Time an ordered list of visits for a collector, reading the matrix of their mode.

    The route reaches its end as early as the order allows, and leaves the
    start as late as it can without reaching the end any later (never before
    the shift starts): waiting that can be spent before leaving is not spent
    at a door. After that departure, each visit starts at the earliest moment
    inside one of its windows. A visit that cannot start inside any window
    (the collector arrives after the last one) starts on arrival; an order
    that cannot be kept yields a route that ``check_plan`` reports, rather
    than an error.

    Parameters
    ----------
    problem
        The plan day.
    matrices
        Travel matrices by mode, in ``Problem.points()`` order.
    collector_id
        Whose route it is.
    case_ids
        Visits in order.

    Returns
    -------
    Route
        Timed stops; ``travel_time_s`` and ``distance_m`` include the return leg
        to the collector's end point.
    """
    position = problem.collector_position(collector_id)
    collector = problem.collectors[position]
    matrix = _matrix_of(matrices, collector.mode, problem)
    duration, distance = matrix.duration_s, matrix.distance_m
    cases = [problem.case(c) for c in case_ids]
    points = (
        [problem.start_index(position)]
        + [problem.case_index(c) for c in case_ids]
        + [problem.end_index(position)]
    )
    legs_s = [int(t) for t in duration[points[:-1], points[1:]]]
    legs_m = [int(d) for d in distance[points[:-1], points[1:]]]
    depart_s = collector.shift.start_s
    times, end_s, kept = _forward(cases, legs_s, depart_s)
    if cases and kept:
        # The latest arrival at the first visit that still reaches the end at end_s.
        _, latest = _route_slack(problem, collector, case_ids, points, duration, end_by_s=end_s)
        depart_s = max(depart_s, latest[1] - legs_s[0])
    elif cases:
        depart_s = max(depart_s, times[0][1] - legs_s[0])
    times, end_s, _ = _forward(cases, legs_s, depart_s)
    stops = tuple(
        Stop(
            case_id=case.id,
            arrival_s=arrival_s,
            start_s=start_s,
            end_s=start_s + case.service_s,
            travel_time_s=legs_s[index],
            distance_m=legs_m[index],
        )
        for index, (case, (arrival_s, start_s)) in enumerate(zip(cases, times, strict=True))
    )
    return Route(
        collector_id=collector_id,
        start_s=depart_s,
        end_s=end_s,
        stops=stops,
        travel_time_s=sum(legs_s),
        distance_m=sum(legs_m),
        return_travel_time_s=legs_s[-1],
        return_distance_m=legs_m[-1],
    )


def _forward(
    cases: Sequence[Case], legs_s: Sequence[int], depart_s: int
) -> tuple[list[tuple[int, int]], int, bool]:
    """Arrival and earliest start at each visit, arrival at the end, and whether all fit.

    ``legs_s[i]`` leads to visit ``i``; the last leg leads to the end point.
    A visit reached after its last window starts on arrival (and does not fit).
    """
    times: list[tuple[int, int]] = []
    kept = all(leg < UNREACHABLE for leg in legs_s)
    for case, leg_s in zip(cases, legs_s, strict=False):
        arrival_s = depart_s + leg_s
        start_s = _earliest_start(case.windows, arrival_s)
        if start_s is None:
            kept = False
            start_s = arrival_s
        times.append((arrival_s, start_s))
        depart_s = start_s + case.service_s
    return times, depart_s + legs_s[-1], kept


def feasible_collectors(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    *,
    max_snap_m: float,
) -> dict[str, tuple[str, ...]]:
    """Collectors who could visit each case if it were their only visit of the day.

    A collector qualifies for a case when they hold all its skills, may make
    at least one visit, the case lies within ``max_snap_m`` of their mode's
    road network, the matrix has a path start-case-end, and leaving at shift
    start they can start the visit inside a window and reach their end by
    shift end.

    Returns
    -------
    dict
        Case id -> ids of such collectors, in ``problem.collectors`` order.
    """
    return {
        case.id: tuple(a.collector.id for a in _assess(problem, matrices, case, max_snap_m) if a.ok)
        for case in problem.cases
    }


def screen_cases(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    *,
    max_snap_m: float,
) -> dict[str, Unassigned]:
    """Find the cases that no collector could visit even alone, each with its reason.

    Reasons are tried in this order: no collector holds the skills
    (``NO_QUALIFIED_COLLECTOR``); the address is off the road network of every
    qualified collector's mode (``OFF_NETWORK``); the qualified collectors may
    make no visits (``CAPACITY_EXHAUSTED``, visit cap 0); no usable collector
    has a path start-case-end (``UNREACHABLE``); no usable, reachable collector
    can start the visit inside a window and end the shift on time
    (``NO_FEASIBLE_TIME``).

    Returns
    -------
    dict
        Case id -> ``Unassigned`` for the screened cases only, in case order.
    """
    screened: dict[str, Unassigned] = {}
    for case in problem.cases:
        assessments = _assess(problem, matrices, case, max_snap_m)
        if any(a.ok for a in assessments):
            continue
        reason, detail = _screen_reason(case, assessments, max_snap_m)
        screened[case.id] = Unassigned(case.id, reason, detail)
    return screened


def cheapest_insertions(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    routes: Mapping[str, Sequence[str]],
    case_id: str,
    *,
    collector_ids: Iterable[str],
) -> dict[str, Insertion | str]:
    """Where a case fits at least extra travel into each given collector's route.

    The other visits keep their order and are retimed (earliest start); the
    insertion must keep every window, the shift and the visit cap.

    Parameters
    ----------
    routes
        Collector id -> case ids in visit order (missing means no visits).
    case_id
        The case to place.
    collector_ids
        Collectors to try (for example those from ``feasible_collectors``).

    Returns
    -------
    dict
        Collector id -> the cheapest ``Insertion``, or a sentence saying why
        the case does not fit.
    """
    case = problem.case(case_id)
    point = problem.case_index(case_id)
    result: dict[str, Insertion | str] = {}
    for collector_id in collector_ids:
        position = problem.collector_position(collector_id)
        collector = problem.collectors[position]
        order = list(routes.get(collector_id, ()))
        if collector.max_visits is not None and len(order) >= collector.max_visits:
            result[collector_id] = f"visit cap {collector.max_visits} reached"
            continue
        duration = _matrix_of(matrices, collector.mode, problem).duration_s
        points = (
            [problem.start_index(position)]
            + [problem.case_index(c) for c in order]
            + [problem.end_index(position)]
        )
        departs, latest = _route_slack(problem, collector, order, points, duration)
        best: Insertion | None = None
        for slot in range(len(points) - 1):
            before, after = points[slot], points[slot + 1]
            to_case = int(duration[before, point])
            from_case = int(duration[point, after])
            if to_case >= UNREACHABLE or from_case >= UNREACHABLE:
                continue
            start_s = _earliest_start(case.windows, departs[slot] + to_case)
            if start_s is None or start_s + case.service_s + from_case > latest[slot + 1]:
                continue
            extra_s = to_case + from_case
            if order:
                extra_s -= int(duration[before, after])
            if best is None or extra_s < best.extra_travel_s:
                best = Insertion(collector_id, slot, extra_s)
        if best is None:
            result[collector_id] = (
                f"no time left between its visits within shift {collector.shift}"
                f" and windows {_windows_text(case.windows)}"
            )
        else:
            result[collector_id] = best
    return result


def explain_dropped(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    routes: Sequence[Route],
    case_ids: Iterable[str],
    *,
    max_snap_m: float,
    travel_cost_cents_per_hour: int,
) -> dict[str, Unassigned]:
    """Say why each case that passed screening is still not on a route.

    ``CAPACITY_EXHAUSTED`` when no route of a collector who could visit it
    alone has room (visit cap, shift or windows, re-timing the route);
    ``NOT_WORTH_TRAVEL`` when it fits somewhere but the cheapest fit costs at
    least its value in travel (``travel_cost_cents_per_hour``). A case that
    fits and is worth more than its extra travel has no true reason to be
    left out; it is absent from the result (``solve`` inserts such cases
    before explaining). Screened cases get their screening reason.

    Returns
    -------
    dict
        Case id -> ``Unassigned``, in the order of ``case_ids``.
    """
    orders = {route.collector_id: route.case_ids for route in routes}
    explained: dict[str, Unassigned] = {}
    for case_id in case_ids:
        case = problem.case(case_id)
        assessments = _assess(problem, matrices, case, max_snap_m)
        usable = [a.collector.id for a in assessments if a.ok]
        if not usable:
            reason, detail = _screen_reason(case, assessments, max_snap_m)
            explained[case_id] = Unassigned(case_id, reason, detail)
            continue
        fits = cheapest_insertions(problem, matrices, orders, case_id, collector_ids=usable)
        options = [f for f in fits.values() if isinstance(f, Insertion)]
        if not options:
            why = [f"{k} ({text})" for k, text in fits.items()]
            explained[case_id] = Unassigned(
                case_id,
                Reason.CAPACITY_EXHAUSTED,
                f"no room left on the route of {_join(why)}",
            )
            continue
        best = min(options, key=lambda f: f.extra_travel_s)
        cost_x3600 = best.extra_travel_s * travel_cost_cents_per_hour
        if cost_x3600 < case.value * 3600:
            continue
        order = orders.get(best.collector_id, ())
        where = f"after {order[best.position - 1]}" if best.position else "as the first visit"
        if not order:
            where = "as its only visit"
        explained[case_id] = Unassigned(
            case_id,
            Reason.NOT_WORTH_TRAVEL,
            f"the cheapest fit, on {best.collector_id}'s route {where}, adds "
            f"{_duration(best.extra_travel_s)} of travel costing "
            f"{_money(round(cost_x3600 / 3600))}, not less than the case's value "
            f"{_money(case.value)}",
        )
    return explained


def check_plan(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    plan: Plan,
    *,
    max_snap_m: float = 300.0,
) -> list[Violation]:
    """Check a plan against the problem, recomputing every time from the matrices.

    Each route is followed from its stated departure: a stop may not be
    reached earlier than the previous point's stated end plus the matrix
    travel time of the collector's mode. Nothing from the solver is trusted.

    Returns
    -------
    list of Violation
        Every broken rule; empty when the plan is valid. Codes are the values
        of ``ViolationCode``.
    """
    violations: list[Violation] = []
    known_collectors = {k.id for k in problem.collectors}
    known_cases = {c.id for c in problem.cases}
    routed: dict[str, list[str]] = {}
    seen_routes: set[str] = set()
    for route in plan.routes:
        for stop in route.stops:
            routed.setdefault(stop.case_id, []).append(route.collector_id)
        if route.collector_id not in known_collectors:
            violations.append(
                Violation(
                    ViolationCode.UNKNOWN_COLLECTOR,
                    f"route of unknown collector {route.collector_id}",
                    collector_id=route.collector_id,
                )
            )
            continue
        if route.collector_id in seen_routes:
            violations.append(
                Violation(
                    ViolationCode.DUPLICATE_ROUTE,
                    f"collector {route.collector_id} has more than one route",
                    collector_id=route.collector_id,
                )
            )
        seen_routes.add(route.collector_id)
        violations.extend(_check_route(problem, matrices, route, max_snap_m))

    for case_id, collectors in routed.items():
        if len(collectors) > 1:
            violations.append(
                Violation(
                    ViolationCode.DUPLICATE_VISIT,
                    f"case {case_id} is visited {len(collectors)} times"
                    f" (by {', '.join(collectors)})",
                    case_id=case_id,
                )
            )
    unassigned: set[str] = set()
    for entry in plan.unassigned:
        if entry.case_id not in known_cases:
            violations.append(
                Violation(
                    ViolationCode.UNKNOWN_CASE,
                    f"unassigned case {entry.case_id} is not in the problem",
                    case_id=entry.case_id,
                )
            )
        elif entry.case_id in unassigned:
            violations.append(
                Violation(
                    ViolationCode.DUPLICATE_UNASSIGNED,
                    f"case {entry.case_id} is listed as unassigned more than once",
                    case_id=entry.case_id,
                )
            )
        if entry.case_id in routed:
            violations.append(
                Violation(
                    ViolationCode.UNASSIGNED_AND_ROUTED,
                    f"case {entry.case_id} is unassigned ({entry.reason}) but visited by "
                    f"{', '.join(routed[entry.case_id])}",
                    case_id=entry.case_id,
                )
            )
        unassigned.add(entry.case_id)
    for case in problem.cases:
        if case.id not in routed and case.id not in unassigned:
            violations.append(
                Violation(
                    ViolationCode.MISSING_CASE,
                    f"case {case.id} is neither on a route nor unassigned",
                    case_id=case.id,
                )
            )
    return violations


@dataclass(frozen=True, slots=True)
class _Assessment:
    """Whether one collector could visit one case alone, and if not, the first reason."""

    collector: Collector
    skilled: bool
    snap_m: float = 0.0
    on_network: bool = True
    capped: bool = False
    reachable: bool = True
    timely: bool = True
    note: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.skilled and self.on_network and not self.capped and self.reachable and self.timely
        )


def _assess(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    case: Case,
    max_snap_m: float,
) -> list[_Assessment]:
    point = problem.case_index(case.id)
    assessments: list[_Assessment] = []
    for position, collector in enumerate(problem.collectors):
        if not collector.can_serve(case):
            assessments.append(_Assessment(collector, skilled=False))
            continue
        matrix = _matrix_of(matrices, collector.mode, problem)
        snap_m = float(matrix.snap_m[point])
        if snap_m > max_snap_m:
            assessments.append(_Assessment(collector, True, snap_m, on_network=False))
            continue
        if collector.max_visits == 0:
            assessments.append(_Assessment(collector, True, snap_m, capped=True))
            continue
        to_case = int(matrix.duration_s[problem.start_index(position), point])
        from_case = int(matrix.duration_s[point, problem.end_index(position)])
        if to_case >= UNREACHABLE or from_case >= UNREACHABLE:
            leg = "to" if to_case >= UNREACHABLE else "back from"
            assessments.append(
                _Assessment(
                    collector,
                    True,
                    snap_m,
                    reachable=False,
                    note=f"{collector.id} ({collector.mode}: no path {leg} the address)",
                )
            )
            continue
        arrival_s = collector.shift.start_s + to_case
        start_s = _earliest_start(case.windows, arrival_s)
        if start_s is None:
            note = (
                f"{collector.id} ({collector.mode}, shift {collector.shift}) "
                f"arrives {format_clock(arrival_s)} at the earliest"
            )
        elif start_s + case.service_s + from_case > collector.shift.end_s:
            note = (
                f"{collector.id} ({collector.mode}) could start at {format_clock(start_s)} "
                f"but would reach the end at "
                f"{format_clock(start_s + case.service_s + from_case)}, after the shift "
                f"ends at {format_clock(collector.shift.end_s)}"
            )
        else:
            note = ""
        assessments.append(_Assessment(collector, True, snap_m, timely=not note, note=note))
    return assessments


def _screen_reason(
    case: Case, assessments: Sequence[_Assessment], max_snap_m: float
) -> tuple[Reason, str]:
    if not assessments:
        return Reason.NO_QUALIFIED_COLLECTOR, "no collector is on duty"
    skilled = [a for a in assessments if a.skilled]
    if not skilled:
        needs = sorted(case.skills)
        what = f"skill {needs[0]}" if len(needs) == 1 else f"skills {', '.join(needs)}"
        holds = "has it" if len(needs) == 1 else "holds all of them"
        return Reason.NO_QUALIFIED_COLLECTOR, f"needs {what}; no collector {holds}"
    if not any(a.on_network for a in skilled):
        nearest: dict[str, float] = {}
        for a in skilled:
            nearest[a.collector.mode] = a.snap_m
        roads = ", ".join(
            f"{snap:.0f} m from the nearest {mode} road" for mode, snap in nearest.items()
        )
        return (
            Reason.OFF_NETWORK,
            f"the address is {roads} (limit {max_snap_m:.0f} m)",
        )
    usable = [a for a in skilled if a.on_network and not a.capped]
    if not usable:
        capped = [a.collector.id for a in skilled if a.capped]
        off = [a.collector.id for a in skilled if not a.on_network]
        detail = f"qualified collector(s) {_join(capped)} may make no visits today (visit cap 0)"
        if off:
            detail += f"; the address is off the road network of {_join(off)}"
        return Reason.CAPACITY_EXHAUSTED, detail
    reachable = [a for a in usable if a.reachable]
    if not reachable:
        return (
            Reason.UNREACHABLE,
            f"no road path from the start to the address and on to the end for "
            f"{_join([a.note for a in usable])}",
        )
    return (
        Reason.NO_FEASIBLE_TIME,
        f"no qualified collector can start the visit inside {_windows_text(case.windows)} "
        f"and end the shift on time: {_join([a.note for a in reachable])}",
    )


def _check_route(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    route: Route,
    max_snap_m: float,
) -> list[Violation]:
    position = problem.collector_position(route.collector_id)
    collector = problem.collectors[position]
    matrix = _matrix_of(matrices, collector.mode, problem)
    who = collector.id
    found: list[Violation] = []

    def report(code: ViolationCode, message: str, case_id: str | None = None) -> None:
        found.append(Violation(code, message, collector_id=who, case_id=case_id))

    if route.start_s < collector.shift.start_s:
        report(
            ViolationCode.SHIFT_START,
            f"{who} leaves at {_clock(route.start_s)}, before the shift starts at "
            f"{_clock(collector.shift.start_s)}",
        )
    if collector.max_visits is not None and len(route.stops) > collector.max_visits:
        report(
            ViolationCode.MAX_VISITS,
            f"{who} has {len(route.stops)} visits, more than the cap of {collector.max_visits}",
        )
    previous = problem.start_index(position)
    previous_name = "the start"
    depart_s = route.start_s
    travel_total_s = 0
    distance_total_m = 0
    for stop in route.stops:
        try:
            case = problem.case(stop.case_id)
        except KeyError:
            report(
                ViolationCode.UNKNOWN_CASE,
                f"{who} visits unknown case {stop.case_id}",
                stop.case_id,
            )
            continue
        point = problem.case_index(case.id)
        if not collector.can_serve(case):
            missing = ", ".join(sorted(case.skills - collector.skills))
            report(
                ViolationCode.MISSING_SKILL,
                f"{who} visits {case.id} without skill(s) {missing}",
                case.id,
            )
        snap_m = float(matrix.snap_m[point])
        if snap_m > max_snap_m:
            report(
                ViolationCode.OFF_NETWORK,
                f"{case.id} is {snap_m:.0f} m from {who}'s {collector.mode} network "
                f"(limit {max_snap_m:.0f} m)",
                case.id,
            )
        travel_s = int(matrix.duration_s[previous, point])
        distance_m = int(matrix.distance_m[previous, point])
        if stop.travel_time_s != travel_s or stop.distance_m != distance_m:
            report(
                ViolationCode.BAD_TOTALS,
                f"{who}'s leg from {previous_name} to {case.id} says "
                f"{stop.travel_time_s} s and {stop.distance_m} m; the {collector.mode} matrix "
                f"says {travel_s} s and {distance_m} m",
                case.id,
            )
        if travel_s >= UNREACHABLE:
            report(
                ViolationCode.LATE,
                f"{who} has no {collector.mode} path from {previous_name} to {case.id}",
                case.id,
            )
        elif stop.arrival_s < depart_s + travel_s:
            report(
                ViolationCode.LATE,
                f"{who} arrives at {case.id} at {_clock(stop.arrival_s)}, but leaving "
                f"{previous_name} at {_clock(depart_s)} with {_duration(travel_s)} of travel "
                f"cannot arrive before {_clock(depart_s + travel_s)}",
                case.id,
            )
        if stop.start_s < stop.arrival_s:
            report(
                ViolationCode.LATE,
                f"{who} starts {case.id} at {_clock(stop.start_s)}, before arriving at "
                f"{_clock(stop.arrival_s)}",
                case.id,
            )
        if not any(w.start_s <= stop.start_s <= w.end_s for w in case.windows):
            report(
                ViolationCode.OUTSIDE_WINDOW,
                f"{who} starts {case.id} at {_clock(stop.start_s)}, outside its window(s) "
                f"{_windows_text(case.windows)}",
                case.id,
            )
        if stop.end_s - stop.start_s < case.service_s:
            report(
                ViolationCode.SERVICE_TOO_SHORT,
                f"{who}'s visit to {case.id} lasts {_duration(stop.end_s - stop.start_s)}, "
                f"less than its service time of {_duration(case.service_s)}",
                case.id,
            )
        travel_total_s += stop.travel_time_s
        distance_total_m += stop.distance_m
        previous, previous_name, depart_s = point, case.id, stop.end_s

    end_point = problem.end_index(position)
    return_s = int(matrix.duration_s[previous, end_point])
    return_m = int(matrix.distance_m[previous, end_point])
    if route.return_travel_time_s != return_s or route.return_distance_m != return_m:
        report(
            ViolationCode.BAD_TOTALS,
            f"{who}'s return leg from {previous_name} says {route.return_travel_time_s} s and "
            f"{route.return_distance_m} m; the {collector.mode} matrix says {return_s} s "
            f"and {return_m} m",
        )
    if return_s >= UNREACHABLE:
        report(
            ViolationCode.LATE,
            f"{who} has no {collector.mode} path from {previous_name} to the end point",
        )
    elif route.end_s < depart_s + return_s:
        report(
            ViolationCode.LATE,
            f"{who} reaches the end at {_clock(route.end_s)}, but leaving {previous_name} at "
            f"{_clock(depart_s)} cannot arrive before {_clock(depart_s + return_s)}",
        )
    arrive_end_s = max(route.end_s, depart_s + min(return_s, UNREACHABLE))
    if arrive_end_s > collector.shift.end_s:
        report(
            ViolationCode.SHIFT_OVERRUN,
            f"{who} reaches the end at {_clock(arrive_end_s)}, after the shift ends at "
            f"{_clock(collector.shift.end_s)}",
        )
    travel_total_s += route.return_travel_time_s
    distance_total_m += route.return_distance_m
    if route.travel_time_s != travel_total_s or route.distance_m != distance_total_m:
        report(
            ViolationCode.BAD_TOTALS,
            f"{who}'s route totals say {route.travel_time_s} s and {route.distance_m} m; "
            f"its legs add up to {travel_total_s} s and {distance_total_m} m",
        )
    return found


def _route_slack(
    problem: Problem,
    collector: Collector,
    order: Sequence[str],
    points: Sequence[int],
    duration: np.ndarray,
    *,
    end_by_s: int | None = None,
) -> tuple[list[int], list[int]]:
    """Earliest departure from each point and latest allowed arrival at each point.

    ``departs[i]`` is when the collector can leave ``points[i]`` at the
    earliest; ``latest[i]`` is the latest arrival at ``points[i]`` that keeps
    the rest of the route feasible, reaching the end by ``end_by_s`` (default:
    the shift's end). Inserting between ``i`` and ``i + 1`` is
    feasible when the arrival at ``i + 1`` is at most ``latest[i + 1]``: with
    waiting allowed an earlier arrival never hurts, so this is exact even
    with several windows per case.
    """
    cases = [problem.case(c) for c in order]
    departs = [collector.shift.start_s]
    for index, case in enumerate(cases):
        arrival_s = departs[-1] + int(duration[points[index], points[index + 1]])
        start_s = _earliest_start(case.windows, arrival_s)
        departs.append((arrival_s if start_s is None else start_s) + case.service_s)
    latest = [0] * len(points)
    latest[-1] = collector.shift.end_s if end_by_s is None else end_by_s
    for index in range(len(cases), 0, -1):
        case = cases[index - 1]
        leave_by = latest[index + 1] - int(duration[points[index], points[index + 1]])
        start_by = _latest_start(case.windows, leave_by - case.service_s)
        # An unkeepable route admits no insertion: -1 is earlier than any arrival.
        latest[index] = -1 if start_by is None else start_by
    return departs, latest


def _earliest_start(windows: Sequence[TimeWindow], arrival_s: int) -> int | None:
    for window in windows:
        if arrival_s <= window.end_s:
            return max(arrival_s, window.start_s)
    return None


def _latest_start(windows: Sequence[TimeWindow], bound_s: int) -> int | None:
    for window in reversed(windows):
        if window.start_s <= bound_s:
            return min(bound_s, window.end_s)
    return None


def _matrix_of(
    matrices: Mapping[TravelMode, TravelMatrix], mode: TravelMode, problem: Problem
) -> TravelMatrix:
    try:
        matrix = matrices[mode]
    except KeyError:
        raise InvalidProblemError(f"no travel matrix for mode {mode}") from None
    expected = len(problem.cases) + 2 * len(problem.collectors)
    if matrix.size != expected:
        raise InvalidProblemError(
            f"the {mode} matrix has {matrix.size} points; the problem has {expected} "
            "(cases, then collector starts, then collector ends)"
        )
    return matrix


def _windows_text(windows: Sequence[TimeWindow]) -> str:
    return ", ".join(str(w) for w in windows)


def _join(items: Sequence[str]) -> str:
    if len(items) <= _NAMED_MAX:
        return ", ".join(items)
    return f"{', '.join(items[:_NAMED_MAX])} and {len(items) - _NAMED_MAX} more"


def _clock(seconds: int) -> str:
    """``HH:MM``, with ``:SS`` added when the seconds matter."""
    text = format_clock(seconds)
    return text if seconds % 60 == 0 else f"{text}:{seconds % 60:02d}"


def _duration(seconds: int) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _money(cents: int) -> str:
    return f"{cents / 100:.2f}"
