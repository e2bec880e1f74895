"""The OR-Tools routing model of a plan day: SolveParams and solve(problem, matrices) -> Plan."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from dispatch.errors import InvalidProblemError
from dispatch.explain import (
    Insertion,
    cheapest_insertions,
    explain_dropped,
    feasible_collectors,
    screen_cases,
    time_route,
)
from dispatch.matrix import UNREACHABLE, TravelMatrix
from dispatch.model import DAY_S, Case, Collector, Plan, Problem, Route, TravelMode, Unassigned

_FIRST_SOLUTIONS = frozenset(routing_enums_pb2.FirstSolutionStrategy.Value.keys()) - {"UNSET"}
_METAHEURISTICS = frozenset(routing_enums_pb2.LocalSearchMetaheuristic.Value.keys()) - {"UNSET"}

# Objective units are 1/3600 cent, so that travel seconds times cents per hour is exact:
# an arc costs travel_time_s * cents_per_hour and dropping a case costs value_cents * 3600.
_COST_PER_CENT = 3600
# Ceilings that keep every sum of arc costs and penalties far below 2**63: an arc costs
# at most 2 days x 10**7 cents/h (1.7e12) and a drop 10**14 (a value of 2.8e10 cents;
# larger values count as that much), so even 10**4 cases sum to about 10**18.
_MAX_CENTS_PER_HOUR = 10**7
_MAX_PENALTY = 10**14
# Latest time any cumul may take: model windows end by the second midnight.
_HORIZON_S = 2 * DAY_S
_TIMED_OUT = (
    routing_enums_pb2.RoutingSearchStatus.ROUTING_FAIL_TIMEOUT,
    routing_enums_pb2.RoutingSearchStatus.ROUTING_PARTIAL_SUCCESS_LOCAL_OPTIMUM_NOT_REACHED,
)
# Seconds between two progress messages while the search improves.
_PROGRESS_EVERY_S = 1.0


@dataclass(frozen=True)
class SolveParams:
    """How ``solve`` searches.

    Parameters
    ----------
    time_limit_s
        Wall-clock limit of the OR-Tools search in seconds (> 0). Default 10 s.
    seed
        0 <= seed < 2**31. Seed 0 gives the cases to OR-Tools in problem
        order; any other seed in an order shuffled by that seed, which
        changes how the search breaks ties, so that several seeds give several
        (equally valid) plans to choose from. The seed also seeds the
        constraint solver's random generator, which the strategies offered
        here do not draw on in ortools 9.15. Default 0.
    max_snap_m
        A case farther than this from the road network of a collector's mode
        (``TravelMatrix.snap_m``) cannot be visited by that collector, in
        metres. Default 300 m.
    travel_cost_cents_per_hour
        Price of one hour of travel, in cents of the cases' value currency
        (0 <= x <= 10**7). A case is worth visiting when its value exceeds the
        price of the extra travel it causes. Default 3000 (30.00 per hour).
    span_cost_cents_per_hour
        Price of one hour between leaving the start and reaching the end
        (travel, visits and waiting), in cents (0 <= x <= 10**7), so that the
        search prefers compact routes with less waiting at doors. Default 0:
        the objective is then exactly travel cost plus lost value, the same
        measure the reasons use. Waiting that can be spent before leaving is
        removed anyway when routes are timed (``explain.time_route``). On
        synthetic 120-case days, 300 (a tenth of the travel price) cut the
        waiting left in routes by 60-90 % for 5-10 % more travel. Cases that
        the search drops only for their span cost are put back when they pay
        for their travel.
    first_solution
        OR-Tools ``FirstSolutionStrategy`` name. Default
        ``LOCAL_CHEAPEST_INSERTION``: insertion heuristics cope with windows
        and optional visits where arc-by-arc strategies (``PATH_CHEAPEST_ARC``,
        ``AUTOMATIC``) often find no first solution at all, and this one kept
        the most value on synthetic days where the visit caps bind.
    metaheuristic
        OR-Tools ``LocalSearchMetaheuristic`` name. Default
        ``GUIDED_LOCAL_SEARCH``; ``GREEDY_DESCENT`` stops at the first local
        optimum.
    solution_limit
        Stop the search after this many improving solutions (>= 1), or None
        for no limit. Default None.

    Notes
    -----
    The OR-Tools search is single-threaded and repeats itself exactly for
    the same problem, matrices and parameters, but it stops on the wall-clock
    ``time_limit_s``: a guided local search stopped by time returns
    whatever it reached, which depends on the machine's speed and load. The
    plan is deterministic when the search ends for another reason first:
    with ``solution_limit`` reached within the time limit, or with
    ``GREEDY_DESCENT`` reaching its local optimum within the time limit
    (``Plan.stats["stopped_by_time_limit"]`` is 0 then). Everything after
    the search (timing, inserting cases the search left out although they
    pay, reasons) is deterministic.
    """

    time_limit_s: float = 10.0
    seed: int = 0
    max_snap_m: float = 300.0
    travel_cost_cents_per_hour: int = 3000
    span_cost_cents_per_hour: int = 0
    first_solution: str = "LOCAL_CHEAPEST_INSERTION"
    metaheuristic: str = "GUIDED_LOCAL_SEARCH"
    solution_limit: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.time_limit_s) and self.time_limit_s > 0):
            raise InvalidProblemError(f"time limit {self.time_limit_s} s must be positive")
        if not 0 <= self.seed < 2**31:
            raise InvalidProblemError(f"seed {self.seed} must be in 0..2**31-1")
        if not (math.isfinite(self.max_snap_m) and self.max_snap_m >= 0):
            raise InvalidProblemError(f"snap limit {self.max_snap_m} m must be >= 0")
        for name in ("travel_cost_cents_per_hour", "span_cost_cents_per_hour"):
            value = getattr(self, name)
            if not 0 <= value <= _MAX_CENTS_PER_HOUR:
                raise InvalidProblemError(f"{name} {value} must be in 0..{_MAX_CENTS_PER_HOUR}")
        if self.first_solution not in _FIRST_SOLUTIONS:
            known = ", ".join(sorted(_FIRST_SOLUTIONS))
            raise InvalidProblemError(
                f"first solution strategy '{self.first_solution}' is not one of {known}"
            )
        if self.metaheuristic not in _METAHEURISTICS:
            known = ", ".join(sorted(_METAHEURISTICS))
            raise InvalidProblemError(f"metaheuristic '{self.metaheuristic}' is not one of {known}")
        if self.solution_limit is not None and self.solution_limit < 1:
            raise InvalidProblemError(f"solution limit {self.solution_limit} must be >= 1")


def solve(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    *,
    params: SolveParams = SolveParams(),
    on_progress: Callable[[str], None] | None = None,
) -> Plan:
    """Plan the day: which cases are visited, by whom, in what order and when.

    Cases that no collector could visit even alone are screened out first
    (``explain.screen_cases``). The rest go into an OR-Tools routing model as
    optional visits whose dropping costs their value; travel costs
    ``travel_cost_cents_per_hour``. After the search, cases it left out
    although they fit somewhere for less travel than they are worth are
    inserted (cheapest first), routes are timed by ``explain.time_route``,
    and every case not on a route gets its reason.

    Parameters
    ----------
    problem
        The plan day.
    matrices
        Travel matrices by mode in ``Problem.points()`` order; one per mode in
        ``problem.modes()``.
    params
        Search settings; default ``SolveParams()``.
    on_progress
        Called with short progress sentences.

    Returns
    -------
    Plan
        Routes with stops (collectors without visits have no route) and every
        other case in ``unassigned``, in case order. ``objective`` is the
        travel cost plus the value of the unassigned cases, in cents.
    """
    report = on_progress or _silent
    began = time.perf_counter()
    for mode in problem.modes():
        _check_matrix(problem, matrices, mode)

    screened = screen_cases(problem, matrices, max_snap_m=params.max_snap_m)
    allowed = {
        case_id: collectors
        for case_id, collectors in feasible_collectors(
            problem, matrices, max_snap_m=params.max_snap_m
        ).items()
        if case_id not in screened
    }
    report(f"{len(screened)} of {len(problem.cases)} cases cannot be visited by anyone")
    candidates = [problem.case(case_id) for case_id in allowed]
    if params.seed:
        random.Random(params.seed).shuffle(candidates)

    orders: dict[str, list[str]] = {k.id: [] for k in problem.collectors}
    stats: dict[str, float] = {"screened_cases": float(len(screened))}
    if candidates:
        model = _build_model(problem, matrices, candidates, allowed, params)
        searched, search_stats = _search(model, params, report)
        orders.update(searched)
        stats.update(search_stats)
    routed = {case_id for order in orders.values() for case_id in order}
    left_out = [c.id for c in candidates if c.id not in routed]
    inserted = _insert_paying(problem, matrices, orders, left_out, allowed, params)
    stats["inserted_after_search"] = float(len(inserted))
    if inserted:
        report(f"inserted {len(inserted)} paying case(s) the search left out")

    routes = tuple(
        time_route(problem, matrices, k.id, orders[k.id])
        for k in problem.collectors
        if orders[k.id]
    )
    still_out = [case_id for case_id in left_out if case_id not in inserted]
    dropped = explain_dropped(
        problem,
        matrices,
        routes,
        still_out,
        max_snap_m=params.max_snap_m,
        travel_cost_cents_per_hour=params.travel_cost_cents_per_hour,
    )
    unexplained = set(still_out) - set(dropped)
    if unexplained:
        raise AssertionError(f"cases fit profitably but were not inserted: {sorted(unexplained)}")
    reasons = {**screened, **dropped}
    unassigned = tuple(reasons[c.id] for c in problem.cases if c.id in reasons)
    report(
        f"planned {sum(len(r.stops) for r in routes)} visits on {len(routes)} routes; "
        f"{len(unassigned)} case(s) unassigned"
    )
    return Plan(
        routes=routes,
        unassigned=unassigned,
        objective=_objective_cents(problem, routes, unassigned, params),
        solve_time_s=time.perf_counter() - began,
        stats=stats,
    )


@dataclass
class _Model:
    """An OR-Tools routing model and what its nodes and vehicles stand for."""

    manager: pywrapcp.RoutingIndexManager
    routing: pywrapcp.RoutingModel
    cases: Sequence[Case]
    fleet: Sequence[Collector]


def _build_model(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    cases: Sequence[Case],
    allowed: Mapping[str, Sequence[str]],
    params: SolveParams,
) -> _Model:
    """Model the candidate cases as optional visits by the collectors who could make them."""
    # Collectors who could make none of the visits stay out: they would only add vehicles.
    usable = {k for collectors in allowed.values() for k in collectors}
    fleet = [(p, k) for p, k in enumerate(problem.collectors) if k.id in usable]
    n_cases, n_vehicles = len(cases), len(fleet)
    # Model nodes: the candidate cases, then each vehicle's start, then each vehicle's end.
    points = np.array(
        [problem.case_index(c.id) for c in cases]
        + [problem.start_index(p) for p, _ in fleet]
        + [problem.end_index(p) for p, _ in fleet],
        dtype=np.int64,
    )
    manager = pywrapcp.RoutingIndexManager(
        len(points),
        n_vehicles,
        [n_cases + v for v in range(n_vehicles)],
        [n_cases + n_vehicles + v for v in range(n_vehicles)],
    )
    routing = pywrapcp.RoutingModel(manager)
    collectors = [k for _, k in fleet]

    # One transit matrix (travel + service at the origin) and one cost matrix per mode.
    service_s = np.zeros(len(points), dtype=np.int64)
    service_s[:n_cases] = [c.service_s for c in cases]
    transit_ids: dict[TravelMode, int] = {}
    cost_ids: dict[TravelMode, int] = {}
    for mode in sorted({k.mode for k in collectors}):
        duration = matrices[mode].duration_s[np.ix_(points, points)].astype(np.int64)
        unreachable = duration >= UNREACHABLE
        travel = np.where(unreachable, UNREACHABLE, duration)
        transit_ids[mode] = routing.RegisterTransitMatrix((travel + service_s[:, None]).tolist())
        # Arcs longer than the horizon are infeasible in time anyway; capping their price
        # keeps every sum of arc costs far from int64 overflow.
        priced = np.minimum(duration, _HORIZON_S) * params.travel_cost_cents_per_hour
        cost_ids[mode] = routing.RegisterTransitMatrix(priced.tolist())
    for vehicle, collector in enumerate(collectors):
        routing.SetArcCostEvaluatorOfVehicle(cost_ids[collector.mode], vehicle)

    # Time: the cumul of a visit is its start; slack is waiting; shifts bound starts and ends.
    routing.AddDimensionWithVehicleTransits(
        [transit_ids[k.mode] for k in collectors], _HORIZON_S, _HORIZON_S, False, "time"
    )
    time_dimension = routing.GetDimensionOrDie("time")
    for vehicle, collector in enumerate(collectors):
        for index in (routing.Start(vehicle), routing.End(vehicle)):
            time_dimension.CumulVar(index).SetRange(collector.shift.start_s, collector.shift.end_s)
        if params.span_cost_cents_per_hour:
            time_dimension.SetSpanCostCoefficientForVehicle(
                params.span_cost_cents_per_hour, vehicle
            )

    if any(k.max_visits is not None for k in collectors):
        routing.AddDimensionWithVehicleCapacity(
            routing.RegisterUnaryTransitVector([1] * n_cases + [0] * (2 * n_vehicles)),
            0,
            [n_cases if k.max_visits is None else k.max_visits for k in collectors],
            True,
            "visits",
        )

    vehicle_of = {k.id: v for v, k in enumerate(collectors)}
    for node, case in enumerate(cases):
        index = manager.NodeToIndex(node)
        # The hull of the case's windows minus the gaps between them.
        cumul = time_dimension.CumulVar(index)
        cumul.SetRange(case.windows[0].start_s, case.windows[-1].end_s)
        for before, after in zip(case.windows, case.windows[1:], strict=False):
            if before.end_s + 1 <= after.start_s - 1:
                cumul.RemoveInterval(before.end_s + 1, after.start_s - 1)
        if len(allowed[case.id]) < n_vehicles:
            _allow_vehicles(routing, index, [vehicle_of[k] for k in allowed[case.id]])
        routing.AddDisjunction([index], min(case.value * _COST_PER_CENT, _MAX_PENALTY))
    return _Model(manager, routing, cases, collectors)


def _search(
    model: _Model, params: SolveParams, report: Callable[[str], None]
) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Run the OR-Tools search; return each collector's visit order and search statistics."""
    routing = model.routing
    search = pywrapcp.DefaultRoutingSearchParameters()
    search.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.Value.Value(
        params.first_solution
    )
    search.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.Value.Value(
        params.metaheuristic
    )
    search.time_limit.FromMilliseconds(max(1, round(params.time_limit_s * 1000)))
    if params.solution_limit is not None:
        search.solution_limit = params.solution_limit
    routing.solver().ReSeed(params.seed)

    progress = _Progress(routing, report)
    routing.AddAtSolutionCallback(progress)
    report(
        f"searching {len(model.cases)} cases x {len(model.fleet)} collectors for up to "
        f"{params.time_limit_s:g} s"
    )
    started = time.perf_counter()
    solution = routing.SolveWithParameters(search)
    search_s = time.perf_counter() - started
    status = routing.status()
    solution_limit_reached = (
        params.solution_limit is not None and progress.solutions >= params.solution_limit
    )
    stats = {
        "modelled_cases": float(len(model.cases)),
        "modelled_collectors": float(len(model.fleet)),
        "search_time_s": search_s,
        "solutions_found": float(progress.solutions),
        "search_status": float(status),
        # A guided search stopped by the clock still reports success: read the clock too.
        "stopped_by_time_limit": float(
            not solution_limit_reached
            and (status in _TIMED_OUT or search_s >= 0.99 * params.time_limit_s)
        ),
    }
    orders: dict[str, list[str]] = {k.id: [] for k in model.fleet}
    if solution is None or progress.solutions == 0:
        report("the search found no solution; building routes by insertion")
        return orders, stats
    stats["search_objective_cents"] = solution.ObjectiveValue() / _COST_PER_CENT
    for vehicle, collector in enumerate(model.fleet):
        index = solution.Value(routing.NextVar(routing.Start(vehicle)))
        while not routing.IsEnd(index):
            orders[collector.id].append(model.cases[model.manager.IndexToNode(index)].id)
            index = solution.Value(routing.NextVar(index))
    return orders, stats


def _allow_vehicles(routing: pywrapcp.RoutingModel, index: int, vehicles: list[int]) -> None:
    """Restrict a visit to some vehicles (it may still be left out through its disjunction)."""
    try:
        routing.SetAllowedVehiclesForIndex(vehicles, index)
    except TypeError:
        # The ortools 9.15 wrapper accepts no Python sequence for this absl::Span argument;
        # restricting the vehicle variable states the same constraint.
        routing.VehicleVar(index).SetValues([-1, *vehicles])


class _Progress:
    """At-solution callback: counts the search's solutions and reports now and then."""

    def __init__(self, routing: pywrapcp.RoutingModel, report: Callable[[str], None]):
        self.routing = routing
        self.report = report
        self.solutions = 0
        self.best_cents = math.inf
        self.last_report_s = -math.inf

    def __call__(self) -> None:
        self.solutions += 1
        # Metaheuristics also accept worse solutions, so the best one is tracked apart.
        self.best_cents = min(self.best_cents, self.routing.CostVar().Max() / _COST_PER_CENT)
        now = time.perf_counter()
        if now - self.last_report_s >= _PROGRESS_EVERY_S:
            self.last_report_s = now
            plural = "" if self.solutions == 1 else "s"
            self.report(
                f"{self.solutions} solution{plural} searched; "
                f"best objective {self.best_cents / 100:.2f}"
            )


def _insert_paying(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    orders: dict[str, list[str]],
    left_out: Sequence[str],
    allowed: Mapping[str, Sequence[str]],
    params: SolveParams,
) -> list[str]:
    """Insert left-out cases whose value beats their extra travel, best gain first.

    Changes ``orders`` in place and returns the inserted case ids. A search
    stopped early (or one that found nothing) can leave such cases out; after
    this no left-out case fits anywhere for less than its value.
    """
    rate = params.travel_cost_cents_per_hour
    fits = {
        case_id: cheapest_insertions(
            problem, matrices, orders, case_id, collector_ids=allowed[case_id]
        )
        for case_id in left_out
    }
    inserted: list[str] = []
    while True:
        best: tuple[int, str, Insertion] | None = None
        for case_id, options in fits.items():
            value_x3600 = problem.case(case_id).value * _COST_PER_CENT
            for fit in options.values():
                if isinstance(fit, Insertion):
                    gain = value_x3600 - fit.extra_travel_s * rate
                    if gain > 0 and (best is None or gain > best[0]):
                        best = (gain, case_id, fit)
        if best is None:
            return inserted
        _, case_id, fit = best
        orders[fit.collector_id].insert(fit.position, case_id)
        inserted.append(case_id)
        del fits[case_id]
        # Only places on the route that changed need a new look.
        for other, options in fits.items():
            if fit.collector_id in options:
                options.update(
                    cheapest_insertions(
                        problem, matrices, orders, other, collector_ids=[fit.collector_id]
                    )
                )


def _objective_cents(
    problem: Problem,
    routes: Sequence[Route],
    unassigned: Sequence[Unassigned],
    params: SolveParams,
) -> int:
    travel_s = sum(r.travel_time_s for r in routes)
    span_s = sum(r.end_s - r.start_s for r in routes)
    priced = travel_s * params.travel_cost_cents_per_hour + span_s * params.span_cost_cents_per_hour
    return round(priced / _COST_PER_CENT) + sum(problem.case(u.case_id).value for u in unassigned)


def _check_matrix(
    problem: Problem, matrices: Mapping[TravelMode, TravelMatrix], mode: TravelMode
) -> None:
    if mode not in matrices:
        raise InvalidProblemError(f"no travel matrix for mode {mode}")
    expected = len(problem.cases) + 2 * len(problem.collectors)
    if matrices[mode].size != expected:
        raise InvalidProblemError(
            f"the {mode} matrix has {matrices[mode].size} points; the problem has {expected}"
            " (cases, then collector starts, then collector ends)"
        )


def _silent(_message: str) -> None:
    """Progress sink used when the caller passes none."""
