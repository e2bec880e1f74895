"""Reasons for unassigned cases, route timing, and an independent check of any plan.

Everything here recomputes times from the travel matrix of each team's mode;
nothing trusts the solver. A team is a collector alone or a crew
(``model.Team``); its route starts and ends at its first member's points. A
visit's transit is its service time followed by the travel to the next
point; collectors may wait at a door for a window to open. A due break is
taken in one piece between two visits (at a door, or on the way, when the
gap holds both the travel and the break), before leaving, or after reaching
the end, never during a visit. ``time_route`` ends each route as early as
its order allows and leaves the start as late as that end allows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from dispatch.errors import InvalidProblemError
from dispatch.matrix import UNREACHABLE, TravelMatrix
from dispatch.model import (
    Case,
    Plan,
    Problem,
    Reason,
    Route,
    Stop,
    Team,
    TimeWindow,
    TravelMode,
    Unassigned,
    format_clock,
)

# Collectors named in one detail sentence before the rest are summarised as "and N more".
_NAMED_MAX = 4
# A displacement check tries removing up to this many visits from one route, and for pairs
# only among this many of the route's lowest-value visits.
_DISPLACE_MAX = 2
_DISPLACE_PAIRS_AMONG = 6


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
    """A collector (or crew) visits a case whose skills they do not all hold."""
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
    OVER_CAPACITY = "OVER_CAPACITY"
    """A route's visits load more than the collector's (or crew's) capacity."""
    SERVICE_TOO_SHORT = "SERVICE_TOO_SHORT"
    """A visit ends before its service time has passed."""
    BAD_TOTALS = "BAD_TOTALS"
    """A leg or a route total disagrees with the matrix or with the sum of the legs."""
    DUPLICATE_ROUTE = "DUPLICATE_ROUTE"
    """A collector has more than one route (alone or in a crew)."""
    UNASSIGNED_AND_ROUTED = "UNASSIGNED_AND_ROUTED"
    """A case is on a route and also listed as unassigned."""
    CREW_TOO_SMALL = "CREW_TOO_SMALL"
    """A case is visited by fewer collectors than its crew size."""
    CREW_SPLIT = "CREW_SPLIT"
    """A crew member has a route of their own instead of working on the crew's."""
    CREW_MEMBERS = "CREW_MEMBERS"
    """A route's members are not the collector alone or exactly their crew."""
    BREAK_MISSING = "BREAK_MISSING"
    """A route of a team with a due break does not say when it is taken."""
    BREAK_TOO_SHORT = "BREAK_TOO_SHORT"
    """A break is shorter than the longest break its members are due."""
    BREAK_OUTSIDE_WINDOW = "BREAK_OUTSIDE_WINDOW"
    """A break does not lie inside its window (cut to the shift)."""
    BREAK_OVERLAPS_VISIT = "BREAK_OVERLAPS_VISIT"
    """A break overlaps a visit."""
    BREAK_OVERLAPS_TRAVEL = "BREAK_OVERLAPS_TRAVEL"
    """A break leaves too little time for the travel around it."""
    APPOINTMENT_MISSED = "APPOINTMENT_MISSED"
    """A visit with an appointment starts outside the appointment's tolerance."""


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
    """The cheapest feasible place for a case on one team's route.

    ``collector_id`` is the route's id (``Team.id``). ``position`` is the
    index in the route's visit order where the case goes (0 = first visit).
    ``extra_travel_s`` is the travel the route gains; for a route without
    visits it is the whole start-case-end trip, because a collector without
    visits does not travel at all.
    """

    collector_id: str
    position: int
    extra_travel_s: int


@dataclass(frozen=True, slots=True)
class Displacement:
    """Planned visits whose removal from one route would make room for a case.

    ``value_cents`` is what the removed visits are worth together.
    """

    collector_id: str
    case_ids: tuple[str, ...]
    value_cents: int


@dataclass(frozen=True, slots=True)
class _Break:
    """A team's due break: its length and the span (inside the shift) it must lie in."""

    window: TimeWindow
    length_s: int

    @property
    def latest_start_s(self) -> int:
        return self.window.end_s - self.length_s

    def ready_after(self, depart_s: int, travel_s: int) -> int | None:
        """Earliest moment ready at the next door, taking the break on the way.

        The break starts on leaving or when its window opens, whichever is
        later (travel pauses for it, or it is taken at the next door); None
        when it could no longer start inside its window.
        """
        if max(depart_s, self.window.start_s) > self.latest_start_s:
            return None
        return max(depart_s + travel_s, self.window.start_s) + self.length_s

    def arrival_at_end(self, depart_s: int, travel_s: int) -> int | None:
        """Earliest arrival at the end point with the break taken after arriving or on the way."""
        if depart_s + travel_s <= self.latest_start_s:
            return depart_s + travel_s
        if depart_s <= self.latest_start_s:
            return depart_s + travel_s + self.length_s
        return None

    def latest_departure(self, ready_by_s: int, travel_s: int) -> int | None:
        """Latest departure that is ready at the next door by ``ready_by_s``, break taken."""
        if self.window.start_s + self.length_s > ready_by_s:
            return None
        return min(ready_by_s - travel_s - self.length_s, self.latest_start_s)

    def latest_departure_to_end(self, arrive_by_s: int, travel_s: int) -> int | None:
        """Latest departure that reaches the end by ``arrive_by_s`` and still takes the break."""
        after = min(self.latest_start_s, arrive_by_s) - travel_s
        on_the_way = min(self.latest_start_s, arrive_by_s - travel_s - self.length_s)
        return max(after, on_the_way)


def _break_of(team: Team) -> _Break | None:
    if team.break_window is None or team.break_s <= 0:
        return None
    return _Break(team.break_window, team.break_s)


def _earlier(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _later(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _reach(
    brk: _Break | None, travel_s: int, due_s: int | None, done_s: int | None, *, to_end: bool
) -> tuple[int | None, int | None, bool]:
    """Earliest ready time at the next point, break still due and break taken.

    ``due_s`` and ``done_s`` are the earliest departures with the break still
    due and already taken. The third value says whether the taken state is
    reached by taking the break on this leg (rather than earlier).
    """
    ready_due = None if due_s is None else due_s + travel_s
    carried = None if done_s is None else done_s + travel_s
    taken = None
    if brk is not None and due_s is not None:
        taken = brk.arrival_at_end(due_s, travel_s) if to_end else brk.ready_after(due_s, travel_s)
    ready_done = _earlier(carried, taken)
    fresh = taken is not None and (carried is None or taken < carried)
    return ready_due, ready_done, fresh


def _leave_by(
    brk: _Break | None,
    travel_s: int,
    due_by_s: int | None,
    done_by_s: int | None,
    *,
    to_end: bool,
) -> tuple[int | None, int | None]:
    """Latest departures (break due, break taken) that reach the next point in time.

    ``due_by_s`` and ``done_by_s`` are the latest ready times at the next
    point that keep the rest of the route, with the break due and taken.
    """
    leave_done = None if done_by_s is None else done_by_s - travel_s
    leave_due = None if due_by_s is None else due_by_s - travel_s
    if brk is not None and done_by_s is not None:
        via = (
            brk.latest_departure_to_end(done_by_s, travel_s)
            if to_end
            else brk.latest_departure(done_by_s, travel_s)
        )
        leave_due = _later(leave_due, via)
    return leave_due, leave_done


def _leave(case: Case, ready_s: int | None) -> int | None:
    """When a visit ends if the collector is ready at the door at ``ready_s``."""
    if ready_s is None:
        return None
    start_s = _earliest_start(case.start_windows, ready_s)
    return None if start_s is None else start_s + case.service_s


def _arrive_by(case: Case, leave_by_s: int | None) -> int | None:
    """Latest ready time at the door that still ends the visit by ``leave_by_s``."""
    if leave_by_s is None:
        return None
    return _latest_start(case.start_windows, leave_by_s - case.service_s)


@dataclass(frozen=True, slots=True)
class _Sweep:
    """Earliest departures and latest arrivals along a fixed visit order.

    Points are the start (0), the visits (1..n) and the end (n + 1); each is
    tracked with the break still due and with it taken (teams without a
    break use the due state only). ``due``/``done`` give the earliest
    departure from points 0..n; ``due_by``/``done_by`` the latest ready time
    at points 1..n+1 that keeps the rest of the route. With waiting allowed,
    arriving earlier never hurts, so a new visit fits between points k and
    k + 1 exactly when some state leaves k early enough to make the visit and
    reach k + 1 by its latest time.
    """

    due: list[int | None]
    done: list[int | None]
    due_by: list[int | None]
    done_by: list[int | None]

    @property
    def end_s(self) -> int | None:
        """Earliest arrival at the end (the break taken when one is due), or None."""
        return self.due[-1] if self.done[-1] is None else self.done[-1]


def _sweep(
    cases: Sequence[Case],
    legs_s: Sequence[int],
    depart_s: int,
    arrive_by_s: int,
    brk: _Break | None,
) -> tuple[_Sweep, list[bool]]:
    """Sweep a visit order forwards from ``depart_s`` and backwards from ``arrive_by_s``.

    Returns the sweep (``due``/``done`` extended by the end point) and, per
    point, whether the earliest break-taken state took its break on the leg
    leading there.
    """
    n = len(cases)
    due: list[int | None] = [depart_s]
    done: list[int | None] = [None]
    fresh = [False]
    for index in range(n + 1):
        to_end = index == n
        ready_due, ready_done, took = _reach(brk, legs_s[index], due[-1], done[-1], to_end=to_end)
        if to_end:
            due.append(ready_due if brk is None else None)
            done.append(ready_done)
        else:
            due.append(_leave(cases[index], ready_due))
            done.append(_leave(cases[index], ready_done))
        fresh.append(took)
    due_by: list[int | None] = [None] * (n + 2)
    done_by: list[int | None] = [None] * (n + 2)
    if brk is None:
        due_by[n + 1] = arrive_by_s
    else:
        done_by[n + 1] = arrive_by_s
    for point in range(n, 0, -1):
        leave_due, leave_done = _leave_by(
            brk, legs_s[point], due_by[point + 1], done_by[point + 1], to_end=point == n
        )
        due_by[point] = _arrive_by(cases[point - 1], leave_due)
        done_by[point] = _arrive_by(cases[point - 1], leave_done)
    return _Sweep(due, done, due_by, done_by), fresh


def _latest_departure(
    sweep: _Sweep, legs_s: Sequence[int], brk: _Break | None, n_cases: int
) -> int | None:
    """Latest departure from the start that keeps the route (break due on leaving)."""
    leave_due, _ = _leave_by(brk, legs_s[0], sweep.due_by[1], sweep.done_by[1], to_end=n_cases == 0)
    return leave_due


def time_route(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    collector_id: str,
    case_ids: Sequence[str],
) -> Route:
    """Time an ordered list of visits for a team, reading the matrix of its mode.

    The route reaches its end as early as the order allows, and leaves the
    start as late as it can without reaching the end any later (never before
    the shift starts): waiting that can be spent before leaving is not spent
    at a door. After that departure, each visit starts at the earliest moment
    inside one of its start windows (``Case.start_windows``), and a due break
    is taken at the first place that keeps that end. An order that cannot be
    kept (a visit reached after its last window, or no room for the break)
    is timed without the break, each such visit starting on arrival; it
    yields a route that ``check_plan`` reports, rather than an error.

    Parameters
    ----------
    problem
        The plan day.
    matrices
        Travel matrices by mode, in ``Problem.points()`` order.
    collector_id
        Whose route it is: a collector, a crew, or any crew member's id (a
        crew's route carries its first member's id).
    case_ids
        Visits in order.

    Returns
    -------
    Route
        Timed stops; ``travel_time_s`` and ``distance_m`` include the return leg
        to the team's end point; crews list their members; a due break is set.
    """
    team = problem.team(collector_id)
    matrix = _matrix_of(matrices, team.mode, problem)
    cases = [problem.case(c) for c in case_ids]
    points = _points_of(problem, team, case_ids)
    legs_s = [int(t) for t in matrix.duration_s[points[:-1], points[1:]]]
    legs_m = [int(d) for d in matrix.distance_m[points[:-1], points[1:]]]
    brk = _break_of(team)
    shift = team.shift
    schedule = None
    if all(leg < UNREACHABLE for leg in legs_s):
        first, _ = _sweep(cases, legs_s, shift.start_s, shift.end_s, brk)
        if first.end_s is not None and first.end_s <= shift.end_s:
            # The latest departure that still reaches the end at that earliest time.
            ends, _ = _sweep(cases, legs_s, shift.start_s, first.end_s, brk)
            latest = _latest_departure(ends, legs_s, brk, len(cases))
            depart_s = shift.start_s if latest is None else max(shift.start_s, latest)
            schedule = _schedule(cases, legs_s, depart_s, first.end_s, brk)
    if schedule is None:
        schedule = _schedule_unkept(cases, legs_s, shift.start_s)
    stops = tuple(
        Stop(
            case_id=case.id,
            arrival_s=arrival_s,
            start_s=start_s,
            end_s=start_s + case.service_s,
            travel_time_s=legs_s[index],
            distance_m=legs_m[index],
        )
        for index, (case, (arrival_s, start_s)) in enumerate(
            zip(cases, schedule.times, strict=True)
        )
    )
    return Route(
        collector_id=team.id,
        start_s=schedule.depart_s,
        end_s=schedule.end_s,
        stops=stops,
        travel_time_s=sum(legs_s),
        distance_m=sum(legs_m),
        return_travel_time_s=legs_s[-1],
        return_distance_m=legs_m[-1],
        member_ids=team.member_ids if team.crew_id is not None else (),
        break_start_s=schedule.break_start_s,
        break_end_s=None
        if schedule.break_start_s is None
        else schedule.break_start_s + team.break_s,
    )


@dataclass(frozen=True, slots=True)
class _Schedule:
    """Times of a route: departure, (arrival, start) per visit, arrival at the end, break."""

    depart_s: int
    times: list[tuple[int, int]]
    end_s: int
    break_start_s: int | None


def _schedule(
    cases: Sequence[Case],
    legs_s: Sequence[int],
    depart_s: int,
    arrive_by_s: int,
    brk: _Break | None,
) -> _Schedule | None:
    """Time a keepable order from ``depart_s``: earliest starts, the break where it first fits."""
    sweep, fresh = _sweep(cases, legs_s, depart_s, arrive_by_s, brk)
    if sweep.end_s is None or sweep.end_s > arrive_by_s:
        return None
    # The leg on which the earliest break-taken state took its break, found backwards.
    break_leg = None
    if brk is not None:
        point = len(cases) + 1
        while not fresh[point]:
            point -= 1
        break_leg = point - 1
    times: list[tuple[int, int]] = []
    break_start_s = None
    leave_s = depart_s
    for index, leg_s in enumerate(legs_s):
        to_end = index == len(cases)
        arrival_s = ready_s = leave_s + leg_s
        if brk is not None and index == break_leg:
            if to_end and arrival_s <= brk.latest_start_s:
                break_start_s = max(arrival_s, brk.window.start_s)
            else:
                break_start_s = max(leave_s, brk.window.start_s)
                # Taken on leaving or on the way, the break delays the arrival.
                if break_start_s < arrival_s or break_start_s == leave_s:
                    arrival_s = ready_s = arrival_s + brk.length_s
                else:
                    ready_s = break_start_s + brk.length_s
        if to_end:
            end_s = arrival_s
            break
        case = cases[index]
        start_s = _earliest_start(case.start_windows, ready_s)
        assert start_s is not None, "a swept order keeps every window"
        times.append((arrival_s, start_s))
        leave_s = start_s + case.service_s
    if brk is not None and break_leg == 0 and break_start_s == depart_s:
        # A break that starts on leaving is taken before leaving.
        depart_s += brk.length_s
    return _Schedule(depart_s, times, end_s, break_start_s)


def _schedule_unkept(cases: Sequence[Case], legs_s: Sequence[int], depart_s: int) -> _Schedule:
    """Time an order that cannot be kept: no break, a visit past its windows starts on arrival."""
    times, end_s = _forward(cases, legs_s, depart_s)
    if times:
        depart_s = max(depart_s, times[0][1] - legs_s[0])
        times, end_s = _forward(cases, legs_s, depart_s)
    return _Schedule(depart_s, times, end_s, None)


def _forward(
    cases: Sequence[Case], legs_s: Sequence[int], depart_s: int
) -> tuple[list[tuple[int, int]], int]:
    """Arrival and earliest start at each visit, and the arrival at the end, without a break.

    ``legs_s[i]`` leads to visit ``i``; the last leg leads to the end point.
    A visit reached after its last window starts on arrival.
    """
    times: list[tuple[int, int]] = []
    for case, leg_s in zip(cases, legs_s, strict=False):
        arrival_s = depart_s + leg_s
        start_s = _earliest_start(case.start_windows, arrival_s)
        start_s = arrival_s if start_s is None else start_s
        times.append((arrival_s, start_s))
        depart_s = start_s + case.service_s
    return times, depart_s + legs_s[-1]


def feasible_collectors(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    *,
    max_snap_m: float,
) -> dict[str, tuple[str, ...]]:
    """Teams that could visit each case if it were their only visit of the day.

    A team qualifies for a case when it holds all the case's skills and is
    at least as large as its crew size, may make at least one visit, has
    the capacity for the case's load, the
    case lies within ``max_snap_m`` of its mode's road network, the matrix
    has a path start-case-end, and leaving at shift start it can start the
    visit inside a start window, take its break, and reach its end by shift
    end.

    Returns
    -------
    dict
        Case id -> route ids (``Team.id``) of such teams, in
        ``problem.teams()`` order.
    """
    return {
        case.id: tuple(a.team.id for a in _assess(problem, matrices, case, max_snap_m) if a.ok)
        for case in problem.cases
    }


def screen_cases(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    *,
    max_snap_m: float,
) -> dict[str, Unassigned]:
    """Find the cases that no team could visit even alone, each with its reason.

    Reasons are tried in this order: some required skill is held by nobody
    on duty, or (for a case visited alone) by no collector or crew
    (``NO_QUALIFIED_COLLECTOR``); no crew large enough holds the skills
    (``NO_CREW``); the address is off the road network of every qualified
    team's mode (``OFF_NETWORK``); the qualified teams may make no visits
    (``CAPACITY_EXHAUSTED``: visit cap 0, or a capacity below the case's
    load); no usable team has a path
    start-case-end (``UNREACHABLE``); no usable, reachable team can start the
    visit in time, take its break and end the shift on time
    (``APPOINTMENT_IMPOSSIBLE`` for a case with an appointment, else
    ``NO_FEASIBLE_TIME``).

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
        reason, detail = _screen_reason(problem, case, assessments, max_snap_m)
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
    """Where a case fits at least extra travel into each given team's route.

    The other visits keep their order and are retimed (earliest start); the
    insertion must keep every start window, the shift, the break, the
    visit cap and the capacity (the route's load).

    Parameters
    ----------
    routes
        Route id -> case ids in visit order (missing means no visits).
    case_id
        The case to place.
    collector_ids
        Route ids of the teams to try (for example from ``feasible_collectors``).

    Returns
    -------
    dict
        Route id -> the cheapest ``Insertion``, or a sentence saying why
        the case does not fit.
    """
    case = problem.case(case_id)
    result: dict[str, Insertion | str] = {}
    for collector_id in collector_ids:
        team = problem.team(collector_id)
        result[team.id] = _best_insertion(
            problem, matrices, team, list(routes.get(team.id, ())), case
        )
    return result


def _best_insertion(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    team: Team,
    order: Sequence[str],
    case: Case,
) -> Insertion | str:
    if team.max_visits is not None and len(order) >= team.max_visits:
        return f"visit cap {team.max_visits} reached"
    if team.capacity is not None:
        load = sum(problem.case(c).load for c in order)
        if load + case.load > team.capacity:
            return (
                f"load {load} of capacity {team.capacity} used; the case's load "
                f"{case.load} does not fit"
            )
    duration = _matrix_of(matrices, team.mode, problem).duration_s
    points = _points_of(problem, team, order)
    cases = [problem.case(c) for c in order]
    legs_s = [int(t) for t in duration[points[:-1], points[1:]]]
    brk = _break_of(team)
    sweep, _ = _sweep(cases, legs_s, team.shift.start_s, team.shift.end_s, brk)
    point = problem.case_index(case.id)
    best: Insertion | None = None
    for slot in range(len(points) - 1):
        before, after = points[slot], points[slot + 1]
        to_case = int(duration[before, point])
        from_case = int(duration[point, after])
        if to_case >= UNREACHABLE or from_case >= UNREACHABLE:
            continue
        ready_due, ready_done, _ = _reach(
            brk, to_case, sweep.due[slot], sweep.done[slot], to_end=False
        )
        leave_due, leave_done = _leave_by(
            brk,
            from_case,
            sweep.due_by[slot + 1],
            sweep.done_by[slot + 1],
            to_end=slot == len(order),
        )
        due_s, done_s = _leave(case, ready_due), _leave(case, ready_done)
        fits = (due_s is not None and leave_due is not None and due_s <= leave_due) or (
            done_s is not None and leave_done is not None and done_s <= leave_done
        )
        if not fits:
            continue
        extra_s = to_case + from_case
        if order:
            extra_s -= legs_s[slot]
        if best is None or extra_s < best.extra_travel_s:
            best = Insertion(team.id, slot, extra_s)
    if best is not None:
        return best
    brk_text = f", a {_duration(team.break_s)} break in {team.break_window}" if brk else ""
    return (
        f"no time left between its visits within shift {team.shift}{brk_text}"
        f" and {_start_text(case)}"
    )


def find_displacements(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    routes: Mapping[str, Sequence[str]],
    case_id: str,
    *,
    collector_ids: Iterable[str],
    protected: Iterable[str] = (),
) -> list[Displacement]:
    """Which planned visits, removed from a route, would make room for a case.

    For each given team's route, the lowest-value set of at most two
    visits whose removal lets the case fit (retiming the rest); visits in
    ``protected`` and visits with an appointment are never removed.

    Returns
    -------
    list of Displacement
        One per route where removing visits makes room, lowest value first.
    """
    case = problem.case(case_id)
    keep = set(protected)
    found: list[Displacement] = []
    for collector_id in collector_ids:
        team = problem.team(collector_id)
        order = list(routes.get(team.id, ()))
        removable = sorted(
            (c for c in order if c not in keep and problem.case(c).appointment_s is None),
            key=lambda c: (problem.case(c).value, c),
        )
        options: list[tuple[int, tuple[str, ...]]] = []
        for size in range(1, _DISPLACE_MAX + 1):
            pool = removable if size == 1 else removable[:_DISPLACE_PAIRS_AMONG]
            for removed in itertools.combinations(pool, size):
                rest = [c for c in order if c not in removed]
                fit = _best_insertion(problem, matrices, team, rest, case)
                if isinstance(fit, Insertion):
                    options.append((sum(problem.case(c).value for c in removed), removed))
            if options:
                break
        if options:
            value, removed = min(options)
            found.append(Displacement(team.id, removed, value))
    return sorted(found, key=lambda d: (d.value_cents, d.collector_id))


def explain_dropped(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    routes: Sequence[Route],
    case_ids: Iterable[str],
    *,
    max_snap_m: float,
    travel_cost_cents_per_hour: int,
    continuity_cost_cents: int = 0,
    protected: Iterable[str] = (),
) -> dict[str, Unassigned]:
    """Say why each case that passed screening is still not on a route.

    When no route of a team that could visit it alone has room (visit cap,
    capacity left for the case's load, shift, windows or break, re-timing
    the route), the reason is
    ``APPOINTMENT_IMPOSSIBLE`` for a case with an appointment and
    ``CAPACITY_EXHAUSTED`` otherwise; the detail then also names the
    lowest-value planned visits whose removal would make room
    (``find_displacements``; visits in ``protected`` stay). When it fits
    somewhere but every fit costs at least its value in travel
    (``travel_cost_cents_per_hour``), it is ``NOT_WORTH_TRAVEL``; a fit on
    the route of its preferred collector is credited
    ``continuity_cost_cents``, which the case would otherwise lose. A case
    that fits and pays, or an appointment that fits at all, has no true
    reason to be left out; it is absent from the result (``solve`` inserts
    such cases before explaining). Screened cases get their screening reason.

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
        usable = [a.team.id for a in assessments if a.ok]
        if not usable:
            reason, detail = _screen_reason(problem, case, assessments, max_snap_m)
            explained[case_id] = Unassigned(case_id, reason, detail)
            continue
        fits = cheapest_insertions(problem, matrices, orders, case_id, collector_ids=usable)
        options = [f for f in fits.values() if isinstance(f, Insertion)]
        if not options:
            why = _join([f"{_who(problem.team(k))} ({text})" for k, text in fits.items()])
            displaced = find_displacements(
                problem, matrices, orders, case_id, collector_ids=usable, protected=protected
            )
            if case.appointment_s is not None:
                reason = Reason.APPOINTMENT_IMPOSSIBLE
                detail = f"no route that could keep {_start_text(case)} has room: {why}"
            else:
                reason = Reason.CAPACITY_EXHAUSTED
                detail = f"no room left on the route of {why}"
            explained[case_id] = Unassigned(
                case_id, reason, detail + _displacement_text(problem, case, displaced)
            )
            continue
        if case.appointment_s is not None:
            continue
        rate = travel_cost_cents_per_hour
        best = max(
            options,
            key=lambda f: (_gain(problem, case, f, rate, continuity_cost_cents), -f.extra_travel_s),
        )
        if _gain(problem, case, best, rate, continuity_cost_cents) > 0:
            continue
        order = orders.get(best.collector_id, ())
        where = f"after {order[best.position - 1]}" if best.position else "as the first visit"
        if not order:
            where = "as its only visit"
        credit = _continuity_credit(problem, case, best, continuity_cost_cents)
        also = f" plus {_money(credit)} for its preferred collector" if credit else ""
        explained[case_id] = Unassigned(
            case_id,
            Reason.NOT_WORTH_TRAVEL,
            f"the cheapest fit, on {_whose(problem.team(best.collector_id))} route {where}, "
            f"adds {_duration(best.extra_travel_s)} of travel costing "
            f"{_money(round(best.extra_travel_s * rate / 3600))}, not less than the case's "
            f"value {_money(case.value)}{also}",
        )
    return explained


def _gain(
    problem: Problem, case: Case, fit: Insertion, rate: int, continuity_cost_cents: int
) -> int:
    """What visiting on this fit gains over leaving the case out, in 1/3600 cent."""
    credit = case.value + _continuity_credit(problem, case, fit, continuity_cost_cents)
    return credit * 3600 - fit.extra_travel_s * rate


def _continuity_credit(problem: Problem, case: Case, fit: Insertion, cost_cents: int) -> int:
    """What visiting on this route keeps of the case's continuity, in cents."""
    preferred = case.preferred_collector
    if not cost_cents or preferred is None:
        return 0
    return cost_cents if preferred in problem.team(fit.collector_id).member_ids else 0


def _displacement_text(problem: Problem, case: Case, displaced: Sequence[Displacement]) -> str:
    if not displaced:
        return ""
    best = displaced[0]
    listed = ", ".join(f"{c} ({_money(problem.case(c).value)})" for c in best.case_ids)
    whose = _whose(problem.team(best.collector_id))
    if case.appointment_s is not None:
        return f"; removing {listed} from {whose} route would make room"
    if best.value_cents < case.value:
        return (
            f"; lower-value {listed} on {whose} route took the room it needed "
            f"(this case is worth {_money(case.value)})"
        )
    return f"; making room would mean dropping {listed} from {whose} route, worth as much or more"


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
    travel time of the team's mode (plus the break, when it is taken on the
    way). A crew's route must carry its first member's id and list exactly
    its members; a collector works on one route at most. Nothing from the
    solver is trusted.

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
    routes_of: dict[str, list[str]] = {}
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
        team = problem.team(route.collector_id)
        for member in sorted({route.collector_id, *team.member_ids, *route.members}):
            routes_of.setdefault(member, []).append(route.collector_id)
        misfits = _check_members(team, route)
        violations.extend(misfits)
        if not any(v.code == ViolationCode.CREW_SPLIT for v in misfits):
            violations.extend(_check_route(problem, matrices, team, route, max_snap_m))

    for collector_id, route_ids in routes_of.items():
        if len(route_ids) > 1:
            violations.append(
                Violation(
                    ViolationCode.DUPLICATE_ROUTE,
                    f"collector {collector_id} has more than one route",
                    collector_id=collector_id,
                )
            )
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


def _check_members(team: Team, route: Route) -> list[Violation]:
    """A crew works on its first member's route, listing exactly its members."""
    who = route.collector_id
    if team.crew_id is not None and team.id != who:
        return [
            Violation(
                ViolationCode.CREW_SPLIT,
                f"{who} works in crew {team.crew_id} today, on {team.id}'s route, not alone",
                collector_id=who,
            )
        ]
    if route.members != team.member_ids:
        expected = (
            f"crew {team.crew_id}'s members {', '.join(team.member_ids)}"
            if team.crew_id is not None
            else f"{who} alone"
        )
        return [
            Violation(
                ViolationCode.CREW_MEMBERS,
                f"{who}'s route lists {', '.join(route.members)}, not {expected}",
                collector_id=who,
            )
        ]
    return []


@dataclass(frozen=True, slots=True)
class _Gap:
    """The time between leaving one point and starting at the next, as a route states it."""

    leave_s: int
    arrival_s: int
    start_s: int
    travel_s: int
    origin: str
    target: str


def _check_route(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    team: Team,
    route: Route,
    max_snap_m: float,
) -> list[Violation]:
    matrix = _matrix_of(matrices, team.mode, problem)
    who = _who(team)
    found: list[Violation] = []

    def report(code: ViolationCode, message: str, case_id: str | None = None) -> None:
        found.append(Violation(code, message, collector_id=route.collector_id, case_id=case_id))

    if route.start_s < team.shift.start_s:
        report(
            ViolationCode.SHIFT_START,
            f"{who} leaves at {_clock(route.start_s)}, before the shift starts at "
            f"{_clock(team.shift.start_s)}",
        )
    if team.max_visits is not None and len(route.stops) > team.max_visits:
        report(
            ViolationCode.MAX_VISITS,
            f"{who} has {len(route.stops)} visits, more than the cap of {team.max_visits}",
        )
    if team.capacity is not None:
        visited = set(route.case_ids)
        load = sum(c.load for c in problem.cases if c.id in visited)
        if load > team.capacity:
            report(
                ViolationCode.OVER_CAPACITY,
                f"{who}'s visits load {load}, more than the capacity of {team.capacity}",
            )
    brk = _break_of(team)
    # Break placement is judged against the stated times; the travel rules below add the
    # break to a leg only when the route takes it on that leg.
    break_span = None
    if route.break_start_s is not None and route.break_end_s is not None:
        break_span = (route.break_start_s, route.break_end_s)
    previous = problem.start_index(team.position)
    previous_name = "the start"
    depart_s = route.start_s
    travel_total_s = 0
    distance_total_m = 0
    gaps: list[_Gap] = []
    visits: list[tuple[int, int, str]] = []
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
        _check_visitor(team, case, who, report)
        snap_m = float(matrix.snap_m[point])
        if snap_m > max_snap_m:
            report(
                ViolationCode.OFF_NETWORK,
                f"{case.id} is {snap_m:.0f} m from {_whose(team)} {team.mode} network "
                f"(limit {max_snap_m:.0f} m)",
                case.id,
            )
        travel_s = int(matrix.duration_s[previous, point])
        distance_m = int(matrix.distance_m[previous, point])
        if stop.travel_time_s != travel_s or stop.distance_m != distance_m:
            report(
                ViolationCode.BAD_TOTALS,
                f"{_whose(team)} leg from {previous_name} to {case.id} says "
                f"{stop.travel_time_s} s and {stop.distance_m} m; the {team.mode} matrix "
                f"says {travel_s} s and {distance_m} m",
                case.id,
            )
        if travel_s >= UNREACHABLE:
            report(
                ViolationCode.LATE,
                f"{who} has no {team.mode} path from {previous_name} to {case.id}",
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
        if case.appointment_s is not None and (
            abs(stop.start_s - case.appointment_s) > case.appointment_tolerance_s
        ):
            report(
                ViolationCode.APPOINTMENT_MISSED,
                f"{who} starts {case.id} at {_clock(stop.start_s)}, not within "
                f"{_duration(case.appointment_tolerance_s)} of its appointment at "
                f"{_clock(case.appointment_s)}",
                case.id,
            )
        if stop.end_s - stop.start_s < case.service_s:
            report(
                ViolationCode.SERVICE_TOO_SHORT,
                f"{_whose(team)} visit to {case.id} lasts "
                f"{_duration(stop.end_s - stop.start_s)}, less than its service time of "
                f"{_duration(case.service_s)}",
                case.id,
            )
        gaps.append(_Gap(depart_s, stop.arrival_s, stop.start_s, travel_s, previous_name, case.id))
        visits.append((stop.start_s, stop.end_s, case.id))
        travel_total_s += stop.travel_time_s
        distance_total_m += stop.distance_m
        previous, previous_name, depart_s = point, case.id, stop.end_s

    end_point = problem.end_index(team.position)
    return_s = int(matrix.duration_s[previous, end_point])
    return_m = int(matrix.distance_m[previous, end_point])
    gaps.append(_Gap(depart_s, route.end_s, route.end_s, return_s, previous_name, "the end"))
    if route.return_travel_time_s != return_s or route.return_distance_m != return_m:
        report(
            ViolationCode.BAD_TOTALS,
            f"{_whose(team)} return leg from {previous_name} says "
            f"{route.return_travel_time_s} s and {route.return_distance_m} m; the "
            f"{team.mode} matrix says {return_s} s and {return_m} m",
        )
    if return_s >= UNREACHABLE:
        report(
            ViolationCode.LATE,
            f"{who} has no {team.mode} path from {previous_name} to the end point",
        )
    elif route.end_s < depart_s + return_s:
        report(
            ViolationCode.LATE,
            f"{who} reaches the end at {_clock(route.end_s)}, but leaving {previous_name} at "
            f"{_clock(depart_s)} cannot arrive before {_clock(depart_s + return_s)}",
        )
    arrive_end_s = max(route.end_s, depart_s + min(return_s, UNREACHABLE))
    if arrive_end_s > team.shift.end_s:
        report(
            ViolationCode.SHIFT_OVERRUN,
            f"{who} reaches the end at {_clock(arrive_end_s)}, after the shift ends at "
            f"{_clock(team.shift.end_s)}",
        )
    travel_total_s += route.return_travel_time_s
    distance_total_m += route.return_distance_m
    if route.travel_time_s != travel_total_s or route.distance_m != distance_total_m:
        report(
            ViolationCode.BAD_TOTALS,
            f"{_whose(team)} route totals say {route.travel_time_s} s and {route.distance_m} m; "
            f"its legs add up to {travel_total_s} s and {distance_total_m} m",
        )
    if brk is not None:
        for code, message in _check_break(team, brk, route, break_span, gaps, visits):
            report(code, message)
    return found


def _check_visitor(
    team: Team, case: Case, who: str, report: Callable[[ViolationCode, str, str | None], None]
) -> None:
    """Whether the team holds the case's skills and is large enough for it."""
    if not case.skills <= team.skills:
        missing = ", ".join(sorted(case.skills - team.skills))
        report(
            ViolationCode.MISSING_SKILL,
            f"{who} visits {case.id} without skill(s) {missing}",
            case.id,
        )
    if team.size < case.min_crew:
        report(
            ViolationCode.CREW_TOO_SMALL,
            f"{who} visits {case.id}, which needs a crew of {case.min_crew}, with "
            f"{team.size} collector{'s' if team.size > 1 else ''}",
            case.id,
        )


def _check_break(
    team: Team,
    brk: _Break,
    route: Route,
    span: tuple[int, int] | None,
    gaps: Sequence[_Gap],
    visits: Sequence[tuple[int, int, str]],
) -> list[tuple[ViolationCode, str]]:
    """The due break is stated, long enough, inside its window, and clear of visits and travel."""
    who = _who(team)
    if span is None:
        return [
            (
                ViolationCode.BREAK_MISSING,
                f"{who} is due a {_duration(brk.length_s)} break in {brk.window} but the "
                "route states none",
            )
        ]
    start_s, end_s = span
    found: list[tuple[ViolationCode, str]] = []
    stated = f"{_clock(start_s)}-{_clock(end_s)}"
    if end_s - start_s < brk.length_s:
        found.append(
            (
                ViolationCode.BREAK_TOO_SHORT,
                f"{_whose(team)} break {stated} is shorter than {_duration(brk.length_s)}",
            )
        )
    if start_s < brk.window.start_s or end_s > brk.window.end_s:
        found.append(
            (
                ViolationCode.BREAK_OUTSIDE_WINDOW,
                f"{_whose(team)} break {stated} is not inside {brk.window}",
            )
        )
    if end_s <= route.start_s or start_s >= route.end_s:
        return found
    for visit_start_s, visit_end_s, case_id in visits:
        if start_s < visit_end_s and visit_start_s < end_s:
            found.append(
                (
                    ViolationCode.BREAK_OVERLAPS_VISIT,
                    f"{_whose(team)} break {stated} overlaps the visit to {case_id} "
                    f"({_clock(visit_start_s)}-{_clock(visit_end_s)})",
                )
            )
            return found
    length_s = end_s - start_s
    for gap in gaps:
        on_the_way = (
            gap.leave_s <= start_s
            and end_s <= gap.arrival_s
            and gap.arrival_s - gap.leave_s >= gap.travel_s + length_s
        )
        at_the_door = gap.arrival_s <= start_s and end_s <= gap.start_s
        if on_the_way or at_the_door:
            return found
    found.append(
        (
            ViolationCode.BREAK_OVERLAPS_TRAVEL,
            f"{_whose(team)} break {stated} leaves too little time for the travel around it",
        )
    )
    return found


@dataclass(frozen=True, slots=True)
class _Assessment:
    """Whether one team could visit one case alone, and if not, the first reason."""

    team: Team
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
    for team in problem.teams():
        if not team.can_serve(case):
            assessments.append(_Assessment(team, skilled=False))
            continue
        matrix = _matrix_of(matrices, team.mode, problem)
        snap_m = float(matrix.snap_m[point])
        if snap_m > max_snap_m:
            assessments.append(_Assessment(team, True, snap_m, on_network=False))
            continue
        if team.max_visits == 0:
            assessments.append(_Assessment(team, True, snap_m, capped=True))
            continue
        if team.capacity is not None and case.load > team.capacity:
            note = f"{_who(team)} ({team.capacity})"
            assessments.append(_Assessment(team, True, snap_m, capped=True, note=note))
            continue
        to_case = int(matrix.duration_s[problem.start_index(team.position), point])
        from_case = int(matrix.duration_s[point, problem.end_index(team.position)])
        who = _who(team)
        if to_case >= UNREACHABLE or from_case >= UNREACHABLE:
            leg = "to" if to_case >= UNREACHABLE else "back from"
            assessments.append(
                _Assessment(
                    team,
                    True,
                    snap_m,
                    reachable=False,
                    note=f"{who} ({team.mode}: no path {leg} the address)",
                )
            )
            continue
        shift = team.shift
        arrival_s = shift.start_s + to_case
        start_s = _earliest_start(case.start_windows, arrival_s)
        if start_s is None:
            note = (
                f"{who} ({team.mode}, shift {shift}) arrives {format_clock(arrival_s)} "
                "at the earliest"
            )
        elif start_s + case.service_s + from_case > shift.end_s:
            note = (
                f"{who} ({team.mode}) could start at {format_clock(start_s)} "
                f"but would reach the end at "
                f"{format_clock(start_s + case.service_s + from_case)}, after the shift "
                f"ends at {format_clock(shift.end_s)}"
            )
        else:
            sweep, _ = _sweep(
                [case], [to_case, from_case], shift.start_s, shift.end_s, _break_of(team)
            )
            fits = sweep.end_s is not None and sweep.end_s <= shift.end_s
            note = (
                ""
                if fits
                else f"{who} cannot fit the visit around a {_duration(team.break_s)} break "
                f"in {team.break_window}"
            )
        assessments.append(_Assessment(team, True, snap_m, timely=not note, note=note))
    return assessments


def _screen_reason(
    problem: Problem, case: Case, assessments: Sequence[_Assessment], max_snap_m: float
) -> tuple[Reason, str]:
    if not assessments:
        return Reason.NO_QUALIFIED_COLLECTOR, "no collector is on duty"
    skilled = [a for a in assessments if a.skilled]
    if not skilled:
        return _unqualified(problem, case)
    if not any(a.on_network for a in skilled):
        nearest: dict[str, float] = {}
        for a in skilled:
            nearest[a.team.mode] = a.snap_m
        roads = ", ".join(
            f"{snap:.0f} m from the nearest {mode} road" for mode, snap in nearest.items()
        )
        return (
            Reason.OFF_NETWORK,
            f"the address is {roads} (limit {max_snap_m:.0f} m)",
        )
    usable = [a for a in skilled if a.on_network and not a.capped]
    if not usable:
        # A capped assessment carries a note when capacity, not a visit cap of 0, stops it.
        idle = [_who(a.team) for a in skilled if a.capped and not a.note]
        small = [a.note for a in skilled if a.capped and a.note]
        off = [_who(a.team) for a in skilled if not a.on_network]
        parts = []
        if idle:
            parts.append(
                f"qualified collector(s) {_join(idle)} may make no visits today (visit cap 0)"
            )
        if small:
            parts.append(f"the case's load {case.load} exceeds the capacity of {_join(small)}")
        detail = "; ".join(parts)
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
    if case.appointment_s is not None:
        if not case.start_windows:
            return (
                Reason.APPOINTMENT_IMPOSSIBLE,
                f"{_appointment_text(case)} lies outside its windows {_windows_text(case.windows)}",
            )
        return (
            Reason.APPOINTMENT_IMPOSSIBLE,
            f"no qualified collector can keep {_appointment_text(case)} and end the shift "
            f"on time: {_join([a.note for a in reachable])}",
        )
    return (
        Reason.NO_FEASIBLE_TIME,
        f"no qualified collector can start the visit inside {_windows_text(case.windows)} "
        f"and end the shift on time: {_join([a.note for a in reachable])}",
    )


def _unqualified(problem: Problem, case: Case) -> tuple[Reason, str]:
    """Why no team may visit: a skill nobody holds, no crew large enough, or skills spread."""
    needs = sorted(case.skills)
    what = f"skill {needs[0]}" if len(needs) == 1 else f"skills {', '.join(needs)}"
    held = frozenset().union(*(k.skills for k in problem.collectors))
    if not case.skills <= held:
        if len(needs) == 1:
            return Reason.NO_QUALIFIED_COLLECTOR, f"needs {what}; no collector has it"
        missing = ", ".join(sorted(case.skills - held))
        return Reason.NO_QUALIFIED_COLLECTOR, f"needs {what}; no collector on duty holds {missing}"
    if case.min_crew > 1:
        large = [t for t in problem.teams() if t.size >= case.min_crew]
        crew_text = f"needs a crew of {case.min_crew}"
        if not large:
            return Reason.NO_CREW, f"{crew_text}; no crew that large works today"
        lacking = [f"{_who(t)} lacks {', '.join(sorted(case.skills - t.skills))}" for t in large]
        return Reason.NO_CREW, f"{crew_text} holding {what}; {_join(lacking)}"
    holds = "has it" if len(needs) == 1 else "holds all of them"
    who = "collector or crew" if problem.crews else "collector"
    return Reason.NO_QUALIFIED_COLLECTOR, f"needs {what}; no {who} {holds}"


def _points_of(problem: Problem, team: Team, case_ids: Sequence[str]) -> list[int]:
    """Matrix indices of a route: the team's start, the visits, the team's end."""
    return (
        [problem.start_index(team.position)]
        + [problem.case_index(c) for c in case_ids]
        + [problem.end_index(team.position)]
    )


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


def _appointment_text(case: Case) -> str:
    assert case.appointment_s is not None
    return (
        f"the appointment at {_clock(case.appointment_s)} "
        f"(±{_duration(case.appointment_tolerance_s)})"
    )


def _start_text(case: Case) -> str:
    """The case's start rule in words: its windows, or its appointment."""
    if case.appointment_s is None:
        return f"windows {_windows_text(case.windows)}"
    return _appointment_text(case)


def _who(team: Team) -> str:
    """A team as a detail sentence names it: the collector, or the crew."""
    return team.id if team.crew_id is None else f"crew {team.crew_id}"


def _whose(team: Team) -> str:
    return f"{_who(team)}'s"


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
