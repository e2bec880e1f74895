"""Synthetic plan days on a flat grid, shared by the crew, break and rule tests of the solver."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Mapping

import numpy as np
from grid_days import (  # noqa: F401  (re-exported to the rule tests)
    BIKE,
    DRIVE,
    LAT0,
    LON0,
    M_PER_DEG_LAT,
    M_PER_DEG_LON,
    QUICK,
    SPEED_M_PER_S,
    WALK,
    at,
    hm,
    loaded_day,
    planar,
    route_loads,
)

from dispatch.explain import check_plan
from dispatch.matrix import UNREACHABLE, TravelMatrix
from dispatch.model import (
    Case,
    Collector,
    Crew,
    Plan,
    Problem,
    Reason,
    TimeWindow,
    TravelMode,
)
from dispatch.solve import SolveParams, solve


def span(text: str) -> TimeWindow:
    start, end = text.split("-")
    return TimeWindow(hm(start), hm(end))


def make_case(
    case_id: str,
    x_m: float,
    y_m: float,
    *,
    value: int = 10_000,
    skills: Iterable[str] = (),
    service_min: int = 15,
    spans: tuple[str, ...] = (),
    min_crew: int = 1,
    appointment: str | None = None,
    tolerance_min: int = 10,
    preferred: str | None = None,
    load: int = 0,
) -> Case:
    return Case(
        case_id,
        at(x_m, y_m),
        value_cents=value,
        skills=frozenset(skills),
        service_s=service_min * 60,
        windows=tuple(span(s) for s in spans) if spans else (span("00:00-24:00"),),
        min_crew=min_crew,
        appointment_s=None if appointment is None else hm(appointment),
        appointment_tolerance_s=tolerance_min * 60,
        preferred_collector=preferred,
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
    lunch: str | None = None,
    lunch_min: int = 30,
    capacity: int | None = None,
) -> Collector:
    return Collector(
        collector_id,
        collector_id,
        at(x_m, y_m),
        at(*end) if end else at(x_m, y_m),
        span(shift),
        skills=frozenset(skills),
        max_visits=max_visits,
        mode=mode,
        break_window=None if lunch is None else span(lunch),
        break_s=0 if lunch is None else lunch_min * 60,
        capacity=capacity,
    )


def make_problem(
    cases: Iterable[Case], collectors: Iterable[Collector], crews: Iterable[Crew] = ()
) -> Problem:
    return Problem(
        dt.date(2026, 12, 1), "Europe/Helsinki", tuple(cases), tuple(collectors), tuple(crews)
    )


def make_matrices(
    problem: Problem,
    *,
    uphill: float = 0.0,
    cut: Mapping[TravelMode, Iterable[int]] | None = None,
) -> dict[TravelMode, TravelMatrix]:
    """Manhattan-distance matrices at fixed speeds, one per mode of the problem.

    ``uphill`` makes northbound travel slower and southbound faster by that
    fraction (an asymmetric matrix); ``cut`` isolates points in a mode.
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
        matrices[mode] = TravelMatrix(mode, duration, metres, np.arange(len(xy)), np.zeros(len(xy)))
    return matrices


def rules_day(
    n_cases: int,
    n_collectors: int,
    *,
    seed: int,
    size_m: float = 3000,
    crews: int = 0,
    lunch: bool = True,
    appointments: float = 0.1,
    crew_cases: float = 0.1,
    preferred: float = 0.2,
    max_visits: int | None = 8,
) -> Problem:
    """A day with every rule in play: split windows, breaks, crews, appointments, preferences.

    Shifts are staggered and some tight (4 hours, without lunch); lunch
    windows and lengths vary per collector;
    the first ``2 * crews`` collectors (all on bikes) form ``crews`` crews;
    a share of the cases need a crew, have an appointment or name a
    preferred collector.
    """
    rnd = random.Random(seed)
    collectors = []
    for k in range(n_collectors):
        begins = rnd.choice([7, 8, 9])
        ends = begins + rnd.choice([4, 6, 8])
        opens = rnd.choice([11, 12])
        collectors.append(
            make_collector(
                f"K{k}",
                rnd.uniform(0, size_m),
                rnd.uniform(0, size_m),
                shift=f"{begins:02d}:00-{ends:02d}:00",
                skills={"legal"} if k % 3 == 0 else (),
                max_visits=max_visits,
                mode=BIKE if k < 2 * crews else (WALK, BIKE, DRIVE)[k % 3],
                lunch=(
                    f"{opens:02d}:00-{opens + 2:02d}:00"
                    if lunch and ends - begins >= 6 and rnd.random() < 0.8
                    else None
                ),
                lunch_min=rnd.choice([20, 30, 45]),
            )
        )
    # Crew members share a shift and a lunch window, so that every crew can work together.
    for k in range(2 * crews):
        collectors[k] = make_collector(
            f"K{k}",
            *planar(collectors[k].start),
            shift="08:00-16:00",
            skills=collectors[k].skills,
            max_visits=max_visits,
            mode=BIKE,
            lunch="11:30-13:30" if lunch else None,
        )
    cases = []
    for i in range(n_cases):
        kind = rnd.random()
        opens = rnd.choice(range(8, 15))
        spans: tuple[str, ...]
        if kind < 0.4:
            spans = ()
        elif kind < 0.75:
            spans = (f"{opens:02d}:00-{opens + 2:02d}:00",)
        else:
            spans = ("09:00-10:30", "12:00-12:45", "15:00-17:00")
        appointment = None
        if rnd.random() < appointments:
            appointment = f"{rnd.choice(range(9, 15)):02d}:{rnd.choice(['00', '30'])}"
        cases.append(
            make_case(
                f"C{i:03d}",
                rnd.uniform(0, size_m),
                rnd.uniform(0, size_m),
                value=rnd.randint(500, 20_000),
                skills={"legal"} if rnd.random() < 0.15 else (),
                service_min=rnd.choice([10, 15, 20]),
                spans=spans,
                min_crew=2 if crews and rnd.random() < crew_cases else 1,
                appointment=appointment,
                preferred=f"K{rnd.randrange(n_collectors)}" if rnd.random() < preferred else None,
            )
        )
    pairs = [Crew(f"CREW{w}", (f"K{2 * w}", f"K{2 * w + 1}")) for w in range(crews)]
    return make_problem(cases, collectors, pairs)


def solve_checked(problem: Problem, matrices, params: SolveParams = QUICK, **options) -> Plan:
    """Solve, then insist that the independent checker finds nothing wrong."""
    plan = solve(problem, matrices, params=params, **options)
    assert check_plan(problem, matrices, plan, max_snap_m=params.max_snap_m) == []
    # The routing model and the route timing agree: no route needed repairing.
    assert plan.stats["repaired_visits"] == 0
    accounted = [s.case_id for r in plan.routes for s in r.stops]
    accounted += [u.case_id for u in plan.unassigned]
    assert sorted(accounted) == sorted(c.id for c in problem.cases)
    return plan


def reasons(plan: Plan) -> dict[str, Reason]:
    return {u.case_id: u.reason for u in plan.unassigned}


def details(plan: Plan) -> dict[str, str]:
    return {u.case_id: u.detail for u in plan.unassigned}
