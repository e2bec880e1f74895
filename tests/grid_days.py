"""Grid plan days for the solver and checker tests: points in metres, matrices at fixed speeds."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterable, Mapping

import numpy as np

from dispatch.explain import check_plan
from dispatch.matrix import UNREACHABLE, TravelMatrix
from dispatch.model import (
    Case,
    Collector,
    Location,
    Plan,
    Problem,
    Reason,
    TimeWindow,
    TravelMode,
    parse_clock,
)
from dispatch.solve import SolveParams, solve

WALK, BIKE, DRIVE = TravelMode.WALK, TravelMode.BIKE, TravelMode.DRIVE
SPEED_M_PER_S = {WALK: 1.25, BIKE: 15 / 3.6, DRIVE: 30 / 3.6}
LAT0, LON0 = 60.17, 24.94
M_PER_DEG_LAT = 111_320.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(LAT0))
# Searches in these tests end by themselves (greedy descent) long before this.
QUICK = SolveParams(time_limit_s=2.0, metaheuristic="GREEDY_DESCENT")


def at(x_m: float, y_m: float) -> Location:
    """Place a point x metres east and y metres north of a fixed origin."""
    return Location(LAT0 + y_m / M_PER_DEG_LAT, LON0 + x_m / M_PER_DEG_LON)


def planar(location: Location) -> tuple[float, float]:
    return (location.lon - LON0) * M_PER_DEG_LON, (location.lat - LAT0) * M_PER_DEG_LAT


def windows(*spans: str) -> tuple[TimeWindow, ...]:
    return tuple(TimeWindow(*(parse_clock(t) for t in span.split("-"))) for span in spans)


def make_case(
    case_id: str,
    x_m: float,
    y_m: float,
    *,
    value: int = 10_000,
    skills: Iterable[str] = (),
    service_min: int = 15,
    spans: tuple[str, ...] = (),
    load: int = 0,
) -> Case:
    return Case(
        case_id,
        at(x_m, y_m),
        value_cents=value,
        skills=frozenset(skills),
        service_s=service_min * 60,
        windows=windows(*spans) if spans else windows("00:00-24:00"),
        load=load,
    )


def make_collector(
    collector_id: str,
    x_m: float = 0.0,
    y_m: float = 0.0,
    *,
    end: tuple[float, float] | None = None,
    shift: str = "08:00-16:00",
    skills: Iterable[str] = (),
    max_visits: int | None = None,
    mode: TravelMode = WALK,
    capacity: int | None = None,
) -> Collector:
    return Collector(
        collector_id,
        collector_id,
        at(x_m, y_m),
        at(*end) if end else at(x_m, y_m),
        windows(shift)[0],
        skills=frozenset(skills),
        max_visits=max_visits,
        mode=mode,
        capacity=capacity,
    )


def make_problem(cases: Iterable[Case], collectors: Iterable[Collector]) -> Problem:
    return Problem(dt.date(2026, 12, 1), "Europe/Helsinki", tuple(cases), tuple(collectors))


def make_matrices(
    problem: Problem,
    *,
    uphill: float = 0.0,
    cut: Mapping[TravelMode, Iterable[int]] | None = None,
    snap_m: Mapping[TravelMode, Mapping[int, float]] | None = None,
) -> dict[TravelMode, TravelMatrix]:
    """Manhattan-distance matrices at fixed speeds, one per mode of the problem.

    ``uphill`` makes northbound travel slower and southbound faster by that
    fraction (an asymmetric matrix); ``cut`` isolates points in a mode (every
    pair with them is UNREACHABLE); ``snap_m`` sets snap distances.
    """
    xy = np.array([planar(p) for p in problem.points()])
    distance = np.abs(xy[:, None, :] - xy[None, :, :]).sum(axis=-1)
    north = np.sign(xy[None, :, 1] - xy[:, None, 1])
    matrices = {}
    for mode in problem.modes():
        duration = np.rint(distance * (1 + uphill * north) / SPEED_M_PER_S[mode]).astype(np.int64)
        metres = np.rint(distance).astype(np.int64)
        for point in (cut or {}).get(mode, ()):
            for array in (duration, metres):
                array[point, :] = UNREACHABLE
                array[:, point] = UNREACHABLE
                array[point, point] = 0
        snaps = np.zeros(len(xy))
        for point, metres_off in (snap_m or {}).get(mode, {}).items():
            snaps[point] = metres_off
        matrices[mode] = TravelMatrix(mode, duration, metres, np.arange(len(xy)), snaps)
    return matrices


def random_day(
    n_cases: int, n_collectors: int, *, seed: int, size_m: float = 4000, max_visits: int = 8
) -> Problem:
    """Build a day with all-day, single and split windows, legal cases and three modes."""
    rnd = random.Random(seed)
    cases = []
    for i in range(n_cases):
        kind = rnd.random()
        opens = rnd.choice(range(8, 15))
        if kind < 0.5:
            spans: tuple[str, ...] = ()
        elif kind < 0.8:
            spans = (f"{opens:02d}:00-{opens + 2:02d}:00",)
        else:
            spans = ("09:00-10:30", "15:00-17:00")
        cases.append(
            make_case(
                f"C{i:03d}",
                rnd.uniform(0, size_m),
                rnd.uniform(0, size_m),
                value=rnd.randint(500, 20_000),
                skills={"legal"} if rnd.random() < 0.2 else (),
                service_min=rnd.choice([10, 15, 20]),
                spans=spans,
            )
        )
    collectors = [
        make_collector(
            f"K{k}",
            rnd.uniform(0, size_m),
            rnd.uniform(0, size_m),
            skills={"legal"} if k % 3 == 0 else (),
            max_visits=max_visits,
            mode=(WALK, BIKE, DRIVE)[k % 3],
        )
        for k in range(n_collectors)
    ]
    return make_problem(cases, collectors)


def loaded_day(n_cases: int = 12, *, capacity: int = 10) -> Problem:
    """Two collectors with ``capacity`` each, and cases of load 1 to 4 along a street.

    Together the cases load far more than both collectors can carry, and
    every case is worth its travel, so capacity alone decides who is left out.
    """
    rnd = random.Random(7)
    cases = [
        make_case(f"C{i:02d}", 150 * (i + 1), 80 * (i % 3), value=50_000, load=rnd.randint(1, 4))
        for i in range(n_cases)
    ]
    collectors = [
        make_collector("K1", 0, 0, capacity=capacity),
        make_collector("K2", 600, 200, capacity=capacity),
    ]
    return make_problem(cases, collectors)


def route_loads(problem: Problem, plan: Plan) -> dict[str, int]:
    """Total load of each route's visits."""
    return {r.collector_id: sum(problem.case(c).load for c in r.case_ids) for r in plan.routes}


def solve_checked(problem: Problem, matrices, params: SolveParams = QUICK) -> Plan:
    """Solve, then insist that the independent checker finds nothing wrong."""
    plan = solve(problem, matrices, params=params)
    assert check_plan(problem, matrices, plan, max_snap_m=params.max_snap_m) == []
    accounted = [s.case_id for r in plan.routes for s in r.stops]
    accounted += [u.case_id for u in plan.unassigned]
    assert sorted(accounted) == sorted(c.id for c in problem.cases)
    return plan


def hm(text: str) -> int:
    return parse_clock(text)


def reasons(plan: Plan) -> dict[str, Reason]:
    return {u.case_id: u.reason for u in plan.unassigned}
