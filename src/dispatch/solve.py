"""The OR-Tools routing model of a plan day: SolveParams, solve(problem, matrices) -> Plan.

``solve`` hands the search to a backend (``backends.SearchBackend``): this
module's OR-Tools model, or PyVRP (``solve_pyvrp``) for days that need no
rule PyVRP lacks. Screening, timing, repair, insertion and reasons are the
same whichever backend searched. Also forms two-person crews
(``pair_collectors``), since who works together is decided with the same
travel matrices, before the day is solved.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import multiprocessing
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2
from ortools.util.optional_boolean_pb2 import BOOL_TRUE

from dispatch.backends import (
    COST_PER_CENT,
    HORIZON_S,
    MAX_CENTS_PER_HOUR,
    SearchBackend,
    SearchDay,
    SearchResult,
    drop_penalty,
)
from dispatch.errors import InvalidProblemError
from dispatch.explain import (
    Insertion,
    ViolationCode,
    cheapest_insertions,
    check_plan,
    explain_dropped,
    feasible_collectors,
    screen_cases,
    time_route,
)
from dispatch.matrix import UNREACHABLE, TravelMatrix
from dispatch.model import (
    Case,
    Collector,
    Crew,
    Plan,
    Problem,
    Route,
    Team,
    TravelMode,
    Unassigned,
)
from dispatch.solve_pyvrp import PyvrpBackend

# EVALUATOR_STRATEGY needs a callback that is never set here: OR-Tools refuses it.
_FIRST_SOLUTIONS = frozenset(routing_enums_pb2.FirstSolutionStrategy.Value.keys()) - {
    "UNSET",
    "EVALUATOR_STRATEGY",
}
_METAHEURISTICS = frozenset(routing_enums_pb2.LocalSearchMetaheuristic.Value.keys()) - {"UNSET"}

# A continuity price up to 10**10 cents keeps it (times 3600) below the drop ceiling.
_MAX_CONTINUITY_CENTS = 10**10
_TIMED_OUT = (
    routing_enums_pb2.RoutingSearchStatus.ROUTING_FAIL_TIMEOUT,
    routing_enums_pb2.RoutingSearchStatus.ROUTING_PARTIAL_SUCCESS_LOCAL_OPTIMUM_NOT_REACHED,
)
# Seconds between two progress messages while the search improves.
_PROGRESS_EVERY_S = 1.0
_OBJECTIVES = ("travel", "balanced")
BACKENDS = ("auto", "ortools", "pyvrp")
# A portfolio's further OR-Tools searches start from these strategies, in this order: the
# two insertions that won most often against each other on the Solomon instances first.
_PORTFOLIO_FIRST_SOLUTIONS = (
    "LOCAL_CHEAPEST_INSERTION",
    "PARALLEL_CHEAPEST_INSERTION",
    "SEQUENTIAL_CHEAPEST_INSERTION",
    "SAVINGS",
)


@dataclass(frozen=True)
class SolveParams:
    """How ``solve`` searches.

    Parameters
    ----------
    time_limit_s
        Wall-clock limit of the search in seconds (> 0). Default 10 s.
    seed
        0 <= seed < 2**31. Seed 0 gives the cases to the search in problem
        order; any other seed in an order shuffled by that seed, which
        changes how the search breaks ties, so that several seeds give several
        (equally valid) plans to choose from. The seed also seeds the
        constraint solver's random generator, which the strategies offered
        here do not draw on in ortools 9.15, and PyVRP's. Default 0.
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
    objective
        ``"travel"`` (default): travel cost plus lost value, as above.
        ``"balanced"``: also price the working time (travel and visits) of the
        busiest team at ``balance_cost_cents_per_hour``, so that work is
        spread across the teams (an OR-Tools global span cost).
    balance_cost_cents_per_hour
        Price of one hour on the busiest team's day in balanced mode, in cents
        (0 <= x <= 10**7). Default 6000: twice the default travel price, so
        that moving an hour of work off the busiest team is worth up to two
        hours of extra travel.
    continuity_cost_cents
        Price of a case not visited by its ``preferred_collector`` when that
        collector (alone or in a crew) could visit it, in cents (0 <= x <=
        10**10). A case that nobody visits loses it too, so the price never
        makes a case worth dropping; it only steers the case to its preferred
        collector, who may spend up to this much more travel on it. Default
        1000 (10.00, twenty minutes of travel at the default price).
    backend
        Which search plans the day: ``"ortools"`` (the OR-Tools routing model
        of this module, which models every rule), ``"pyvrp"`` (PyVRP's
        iterated local search, ``solve_pyvrp``; the optional ``pyvrp``
        package; refused for a day with a rule it cannot model: breaks,
        kept visits, the balanced objective) or ``"auto"``: PyVRP when it is
        installed, the day fits it and no OR-Tools search setting
        (``first_solution``, ``metaheuristic``, ``solution_limit``) is
        changed from its default, else OR-Tools. ``Plan.stats`` says which
        backend searched (``backend_ortools`` or ``backend_pyvrp`` is 1) and,
        under ``"auto"``, why PyVRP did not (``pyvrp_unfit_<code>`` is 1).
        Default ``"auto"``: at the same time limit PyVRP's plans cost less
        on the Solomon instances (see ``bench/README.md``) and on most
        synthetic days without breaks (1-20 % on 7 of 8 days of 100-150
        cases at 10 s, 55 % on a day of 400 cases; 3-5 % more on one day
        where many appointments compete for binding visit caps).
    iteration_limit
        PyVRP only: stop after this many iterations (>= 1), or None for no
        limit. With it, a PyVRP search that ends before the time limit is
        deterministic for a seed. Default None.
    workers
        Searches run side by side in separate processes, each for the full
        time limit, keeping the plan with the lowest objective (the first
        search's on a tie) (>= 1). The first search is the chosen backend's
        with these settings; further ones are OR-Tools searches from other
        first-solution strategies (``LOCAL_CHEAPEST_INSERTION``,
        ``PARALLEL_CHEAPEST_INSERTION``, ...), or, when PyVRP searches first,
        OR-Tools with these settings. Capped at the number of CPU cores this
        process may use. Default 1.

    Notes
    -----
    The OR-Tools search is single-threaded and repeats itself exactly for
    the same problem, matrices and parameters, but it stops on the wall-clock
    ``time_limit_s``: a guided local search stopped by time returns
    whatever it reached, which depends on the machine's speed and load. The
    plan is deterministic when the search ends for another reason first:
    with ``solution_limit`` reached within the time limit, or with
    ``GREEDY_DESCENT`` reaching its local optimum within the time limit
    (``Plan.stats["stopped_by_time_limit"]`` is 0 then). A PyVRP search is
    deterministic for a seed when it stops on ``iteration_limit`` within
    the time limit. A portfolio keeps the cheapest plan, the first search's
    on a tie, so it is deterministic when each of its searches is. Everything
    after the search (timing, inserting cases the search left out although
    they pay, reasons) is deterministic.
    """

    time_limit_s: float = 10.0
    seed: int = 0
    max_snap_m: float = 300.0
    travel_cost_cents_per_hour: int = 3000
    span_cost_cents_per_hour: int = 0
    first_solution: str = "LOCAL_CHEAPEST_INSERTION"
    metaheuristic: str = "GUIDED_LOCAL_SEARCH"
    solution_limit: int | None = None
    objective: str = "travel"
    balance_cost_cents_per_hour: int = 6000
    continuity_cost_cents: int = 1000
    backend: str = "auto"
    iteration_limit: int | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.time_limit_s) and self.time_limit_s > 0):
            raise InvalidProblemError(f"time limit {self.time_limit_s} s must be positive")
        if not 0 <= self.seed < 2**31:
            raise InvalidProblemError(f"seed {self.seed} must be in 0..2**31-1")
        if not (math.isfinite(self.max_snap_m) and self.max_snap_m >= 0):
            raise InvalidProblemError(f"snap limit {self.max_snap_m} m must be >= 0")
        for name in (
            "travel_cost_cents_per_hour",
            "span_cost_cents_per_hour",
            "balance_cost_cents_per_hour",
        ):
            value = getattr(self, name)
            if not 0 <= value <= MAX_CENTS_PER_HOUR:
                raise InvalidProblemError(f"{name} {value} must be in 0..{MAX_CENTS_PER_HOUR}")
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
        if self.objective not in _OBJECTIVES:
            raise InvalidProblemError(
                f"objective '{self.objective}' is not one of {', '.join(_OBJECTIVES)}"
            )
        if not 0 <= self.continuity_cost_cents <= _MAX_CONTINUITY_CENTS:
            raise InvalidProblemError(
                f"continuity_cost_cents {self.continuity_cost_cents} must be in "
                f"0..{_MAX_CONTINUITY_CENTS}"
            )
        if self.backend not in BACKENDS:
            raise InvalidProblemError(
                f"backend '{self.backend}' is not one of {', '.join(BACKENDS)}"
            )
        if self.iteration_limit is not None and self.iteration_limit < 1:
            raise InvalidProblemError(f"iteration limit {self.iteration_limit} must be >= 1")
        if self.workers < 1:
            raise InvalidProblemError(f"workers {self.workers} must be >= 1")


def solve(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    *,
    params: SolveParams = SolveParams(),
    keep: Plan | Mapping[str, Sequence[str]] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> Plan:
    """Plan the day: which cases are visited, by whom, in what order and when.

    Each route belongs to a team (``Problem.teams()``): a collector alone or
    a crew, whose members then work only on the crew's route. Cases that no
    team could visit even alone are screened out first
    (``explain.screen_cases``). The rest go to a search backend
    (``SolveParams.backend``, see ``choose_backend``): the OR-Tools routing
    model of this module or PyVRP (``solve_pyvrp``), as optional visits
    whose dropping costs their value (an appointment's dropping costs more
    than any value, so it is kept whenever it fits); travel costs
    ``travel_cost_cents_per_hour``; breaks are break intervals of the
    OR-Tools time dimension; a visit by someone else than the case's
    preferred collector costs ``continuity_cost_cents``. With
    ``SolveParams.workers`` > 1, several searches run side by side and the
    cheapest plan is kept. Whichever backend searched, cases it left out
    although they fit somewhere for less travel than they are worth (and
    appointments that fit anywhere) are then inserted, routes are timed by
    ``explain.time_route``, and every case not on a route gets its reason.

    Parameters
    ----------
    problem
        The plan day.
    matrices
        Travel matrices by mode in ``Problem.points()`` order; one per mode in
        ``problem.modes()``.
    params
        Search settings; default ``SolveParams()``.
    keep
        Visits that must stay where they are: route id (or crew id, or a
        crew member's id) -> case ids in order, or a plan whose routes give
        them. Each team keeps those visits in that order; other visits may go
        before, between and after them. Raises ``InvalidProblemError`` when a
        kept visit is unknown, kept twice, not allowed for that team, or when
        a team cannot keep its visits in that order.
    on_progress
        Called with short progress sentences.

    Returns
    -------
    Plan
        Routes with stops (teams without visits have no route) and every
        other case in ``unassigned``, in case order. ``objective`` is the
        travel cost plus the value of the unassigned cases plus the
        continuity price of every case whose preferred collector is on duty
        but does not visit it (plus, in balanced mode, the balance price of
        the busiest team's working time), in cents. ``stats`` holds search
        figures and the day's measures (see ``plan_stats``).
    """
    report = on_progress or _silent
    began = time.perf_counter()
    for mode in problem.modes():
        _check_matrix(problem, matrices, mode)

    screened = screen_cases(problem, matrices, max_snap_m=params.max_snap_m)
    allowed = {
        case_id: teams
        for case_id, teams in feasible_collectors(
            problem, matrices, max_snap_m=params.max_snap_m
        ).items()
        if case_id not in screened
    }
    kept = _kept_orders(problem, matrices, keep, allowed, params)
    report(f"{len(screened)} of {len(problem.cases)} cases cannot be visited by anyone")
    candidates = [problem.case(case_id) for case_id in allowed]
    if params.seed:
        random.Random(params.seed).shuffle(candidates)
    day = SearchDay(problem, matrices, tuple(candidates), allowed, kept)

    backend, unfit = choose_backend(day, params)
    if unfit:
        report(f"searching with OR-Tools: {'; '.join(unfit.values())}")
    searches = _portfolio(backend, params) if candidates else [(backend, params)]
    results = _run_searches(day, searches, report) if candidates else [SearchResult(None, {})]
    outcomes = {
        i: _complete(day, result, params) for i, result in enumerate(results) if result is not None
    }
    # The lowest objective wins; on a tie the earlier search, so the choice is repeatable.
    winner = min(outcomes, key=lambda i: (outcomes[i].objective, i))
    outcome = outcomes[winner]
    stats: dict[str, float] = {"screened_cases": float(len(screened))}
    stats[f"backend_{searches[winner][0].name}"] = 1.0
    stats.update({f"pyvrp_unfit_{code}": 1.0 for code in unfit})
    if len(searches) > 1:
        stats["portfolio_searches"] = float(len(searches))
        stats["portfolio_failed"] = float(len(searches) - len(outcomes))
        stats["portfolio_winner"] = float(winner)
    stats.update(outcome.search_stats)
    stats["repaired_visits"] = float(len(outcome.repaired))
    stats["inserted_after_search"] = float(len(outcome.inserted))
    if outcome.inserted:
        report(f"inserted {len(outcome.inserted)} case(s) the search left out")

    dropped = explain_dropped(
        problem,
        matrices,
        outcome.routes,
        outcome.left_out,
        max_snap_m=params.max_snap_m,
        travel_cost_cents_per_hour=params.travel_cost_cents_per_hour,
        continuity_cost_cents=params.continuity_cost_cents,
        protected=[c for order in kept.values() for c in order],
    )
    unexplained = set(outcome.left_out) - set(dropped)
    if unexplained:
        raise AssertionError(f"cases fit profitably but were not inserted: {sorted(unexplained)}")
    reasons = {**screened, **dropped}
    unassigned = tuple(reasons[c.id] for c in problem.cases if c.id in reasons)
    report(
        f"planned {sum(len(r.stops) for r in outcome.routes)} visits on "
        f"{len(outcome.routes)} routes; {len(unassigned)} case(s) unassigned"
    )
    stats.update(plan_stats(problem, outcome.routes, unassigned))
    return Plan(
        routes=outcome.routes,
        unassigned=unassigned,
        objective=outcome.objective,
        solve_time_s=time.perf_counter() - began,
        stats=stats,
    )


_ORTOOLS_SETTINGS = ("first_solution", "metaheuristic", "solution_limit")


def choose_backend(day: SearchDay, params: SolveParams) -> tuple[SearchBackend, dict[str, str]]:
    """The backend that searches the day, and why PyVRP does not (code -> sentence).

    ``"ortools"`` and ``"pyvrp"`` are taken as asked; asking PyVRP for a day
    it cannot model raises ``InvalidProblemError`` naming what it lacks.
    ``"auto"`` takes PyVRP unless an OR-Tools search setting
    (``first_solution``, ``metaheuristic``, ``solution_limit``) differs from
    its default or PyVRP is unfit for the day (``PyvrpBackend.unfit``); the
    reasons are then returned.
    """
    if params.backend == "ortools":
        return ORTOOLS, {}
    defaults = SolveParams()
    changed = [n for n in _ORTOOLS_SETTINGS if getattr(params, n) != getattr(defaults, n)]
    unfit = PYVRP.unfit(day, params)
    if params.backend == "pyvrp":
        if unfit:
            raise InvalidProblemError(
                f"the pyvrp backend cannot plan this day: {'; '.join(unfit.values())}"
            )
        return PYVRP, {}
    if changed:
        given = f"OR-Tools search settings are given ({', '.join(changed)})"
        unfit = {"ortools_settings": given, **unfit}
    if unfit:
        return ORTOOLS, unfit
    return PYVRP, {}


def _portfolio(
    backend: SearchBackend, params: SolveParams
) -> list[tuple[SearchBackend, SolveParams]]:
    """The searches to run side by side: the chosen one first, then OR-Tools variants."""
    searches = [(backend, params)]
    workers = min(params.workers, _usable_cores())
    if backend is not ORTOOLS and workers > 1:
        searches.append((ORTOOLS, params))
    others = [s for s in _PORTFOLIO_FIRST_SOLUTIONS if s != params.first_solution]
    for strategy in others[: workers - len(searches)]:
        searches.append((ORTOOLS, dataclasses.replace(params, first_solution=strategy)))
    return searches


def _usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _run_searches(
    day: SearchDay,
    searches: Sequence[tuple[SearchBackend, SolveParams]],
    report: Callable[[str], None],
) -> list[SearchResult | None]:
    """Run the searches, the first here and the others in processes of their own.

    A search whose process fails is None; the first one never is.
    """
    (first, params), rest = searches[0], searches[1:]
    if not rest:
        return [first.search(day, params, report)]
    deadline = time.monotonic() + params.time_limit_s
    report(f"running {len(searches)} searches side by side")
    context = multiprocessing.get_context("forkserver")
    # Workers fork from a server that has imported the main module and this one once, so
    # that a search starts at once; forking this process could copy a lock held by a thread.
    context.set_forkserver_preload(["__main__", __name__])
    with ProcessPoolExecutor(max_workers=len(rest), mp_context=context) as pool:
        futures = [
            pool.submit(_search_apart, backend.name, day, other, deadline)
            for backend, other in rest
        ]
        results: list[SearchResult | None] = [first.search(day, params, report)]
        for future in futures:
            try:
                results.append(future.result())
            except BrokenProcessPool as error:
                # The first search's plan stands; a lost side search only loses its chance.
                report(f"a side search failed ({error}); keeping the others")
                results.append(None)
    return results


def _search_apart(
    backend_name: str, day: SearchDay, params: SolveParams, deadline: float
) -> SearchResult:
    """Run one search of a portfolio in a worker process, until the shared deadline."""
    backend = {b.name: b for b in (ORTOOLS, PYVRP)}[backend_name]
    # Starting the worker took some of the time; the search gets what is left of it.
    remaining_s = max(0.01, deadline - time.monotonic())
    return backend.search(day, dataclasses.replace(params, time_limit_s=remaining_s), _silent)


@dataclass(frozen=True)
class _Outcome:
    """A search's orders after repair and insertion, timed, with their objective in cents."""

    search_stats: dict[str, float]
    routes: tuple[Route, ...]
    repaired: list[str]
    inserted: list[str]
    left_out: list[str]
    objective: int


def _complete(day: SearchDay, searched: SearchResult, params: SolveParams) -> _Outcome:
    """Repair a search's orders, insert the cases that pay, and time the routes."""
    problem, matrices = day.problem, day.matrices
    orders: dict[str, list[str]] = {t.id: list(day.kept.get(t.id, ())) for t in problem.teams()}
    if searched.orders is not None:
        orders.update({team_id: list(order) for team_id, order in searched.orders.items()})
    repaired = _repair(problem, matrices, orders, day.kept, params)
    routed = {case_id for order in orders.values() for case_id in order}
    left_out = [c.id for c in day.cases if c.id not in routed]
    inserted = _insert_paying(problem, matrices, orders, left_out, day.allowed, params)
    routes = tuple(
        time_route(problem, matrices, t.id, orders[t.id]) for t in problem.teams() if orders[t.id]
    )
    visited = {case_id for order in orders.values() for case_id in order}
    unrouted = [c.id for c in problem.cases if c.id not in visited]
    return _Outcome(
        search_stats=searched.stats,
        routes=routes,
        repaired=repaired,
        inserted=inserted,
        left_out=[case_id for case_id in left_out if case_id not in inserted],
        objective=_objective_cents(problem, routes, unrouted, params),
    )


def plan_stats(
    problem: Problem, routes: Sequence[Route], unassigned: Sequence[Unassigned]
) -> dict[str, float]:
    """The day's measures that ``solve`` reports in ``Plan.stats``.

    ``value_planned_cents`` and ``value_dropped_cents``: value of the visited
    and of the unassigned cases. ``preferences_named`` and
    ``preferences_kept``: cases naming a preferred collector, and those
    visited by a route that collector works on. ``appointments_named`` and
    ``appointments_kept``: the same for appointments. Over the routes (the
    teams who work): ``visits_spread`` is the most minus the fewest visits,
    ``work_spread_s`` the longest minus the shortest working time (travel
    plus time at doors, in seconds), and ``breaks_planned`` the routes that
    take a break.
    """
    visitors = {s.case_id: r.members for r in routes for s in r.stops}
    named = [c for c in problem.cases if c.preferred_collector is not None]
    appointments = [c for c in problem.cases if c.appointment_s is not None]
    visits = [len(r.stops) for r in routes]
    work_s = [
        r.travel_time_s + sum(problem.case(s.case_id).service_s for s in r.stops) for r in routes
    ]
    return {
        "value_planned_cents": float(sum(problem.case(c).value for c in visitors)),
        "value_dropped_cents": float(sum(problem.case(u.case_id).value for u in unassigned)),
        "preferences_named": float(len(named)),
        "preferences_kept": float(
            sum(c.preferred_collector in visitors.get(c.id, ()) for c in named)
        ),
        "appointments_named": float(len(appointments)),
        "appointments_kept": float(sum(c.id in visitors for c in appointments)),
        "visits_spread": float(max(visits) - min(visits)) if routes else 0.0,
        "work_spread_s": float(max(work_s) - min(work_s)) if routes else 0.0,
        "breaks_planned": float(sum(r.break_start_s is not None for r in routes)),
    }


def pair_collectors(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    *,
    collector_ids: Iterable[str] | None = None,
    max_crews: int | None = None,
    max_apart_s: int = 1800,
    min_overlap_s: int = 4 * 3600,
) -> tuple[Crew, ...]:
    """Pair collectors into two-person crews: homes close together, shifts that overlap.

    Two collectors may pair when they travel in the same mode, their
    starts lie at most ``max_apart_s`` apart in that mode's matrix (the
    longer of both directions), their shifts overlap by ``min_overlap_s``
    or more, and their breaks (if any) fit into one shared span. Pairs are
    chosen greedily: first those that could make the most visits needing a
    crew (``Case.min_crew`` >= 2, whose skills the pair holds together),
    then the closest; each collector joins one crew at most. Collectors
    already in a crew of ``problem`` are left as they are.

    Parameters
    ----------
    problem
        The plan day; the crews are meant for ``dataclasses.replace(problem,
        crews=problem.crews + result)``, which keeps the matrices valid.
    matrices
        Travel matrices by mode in ``Problem.points()`` order.
    collector_ids
        Collectors who may be paired; default every collector on duty.
    max_crews
        Form at most this many crews; default as many as the rules allow.
    max_apart_s, min_overlap_s
        The limits above, in seconds.

    Returns
    -------
    tuple of Crew
        New crews with ids ``"<first>+<second>"``, the first member being the
        one listed first in ``problem.collectors`` (the crew starts and ends
        at that member's points).
    """
    taken = {m for crew in problem.crews for m in crew.member_ids}
    wanted = set(collector_ids) if collector_ids is not None else None
    free = [
        (p, k)
        for p, k in enumerate(problem.collectors)
        if k.id not in taken and (wanted is None or k.id in wanted)
    ]
    crew_cases = [c for c in problem.cases if c.min_crew >= 2]
    candidates: list[tuple[int, int, str, str, Collector, Collector]] = []
    for (pa, a), (pb, b) in itertools.combinations(free, 2):
        if a.mode != b.mode or not _can_pair(a, b, min_overlap_s):
            continue
        duration = matrices[a.mode].duration_s
        apart_s = int(
            max(
                duration[problem.start_index(pa), problem.start_index(pb)],
                duration[problem.start_index(pb), problem.start_index(pa)],
            )
        )
        if apart_s > max_apart_s:
            continue
        skills = a.skills | b.skills
        useful = sum(c.skills <= skills and c.min_crew <= 2 for c in crew_cases)
        candidates.append((-useful, apart_s, a.id, b.id, a, b))
    used_ids = {k.id for k in problem.collectors} | {w.id for w in problem.crews}
    paired: set[str] = set()
    crews: list[Crew] = []
    for *_, a, b in sorted(candidates, key=lambda c: c[:4]):
        if max_crews is not None and len(crews) >= max_crews:
            break
        if a.id in paired or b.id in paired:
            continue
        crew_id = f"{a.id}+{b.id}"
        for suffix in itertools.count(2):
            if crew_id not in used_ids:
                break
            crew_id = f"{a.id}+{b.id}-{suffix}"
        used_ids.add(crew_id)
        paired.update((a.id, b.id))
        crews.append(Crew(crew_id, (a.id, b.id)))
    return tuple(crews)


def _can_pair(a: Collector, b: Collector, min_overlap_s: int) -> bool:
    """Whether two collectors' shifts overlap long enough and their breaks fit together."""
    start_s = max(a.shift.start_s, b.shift.start_s)
    end_s = min(a.shift.end_s, b.shift.end_s)
    if end_s - start_s < max(min_overlap_s, 1):
        return False
    windows = [k.break_window for k in (a, b) if k.break_s > 0 and k.break_window is not None]
    if not windows:
        return True
    break_start_s = max([start_s, *(w.start_s for w in windows)])
    break_end_s = min([end_s, *(w.end_s for w in windows)])
    return break_end_s - break_start_s >= max(a.break_s, b.break_s)


def _kept_orders(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    keep: Plan | Mapping[str, Sequence[str]] | None,
    allowed: Mapping[str, Sequence[str]],
    params: SolveParams,
) -> dict[str, tuple[str, ...]]:
    """Check the visits to keep and key them by route id."""
    if keep is None:
        return {}
    given = {r.collector_id: r.case_ids for r in keep.routes} if isinstance(keep, Plan) else keep
    kept: dict[str, tuple[str, ...]] = {}
    seen: set[str] = set()
    for some_id, case_ids in given.items():
        try:
            team = problem.team(some_id)
        except KeyError:
            raise InvalidProblemError(f"kept visits name unknown collector '{some_id}'") from None
        if team.id in kept:
            raise InvalidProblemError(f"kept visits are given twice for {team.id}'s route")
        order = tuple(case_ids)
        for case_id in order:
            try:
                problem.case(case_id)
            except KeyError:
                raise InvalidProblemError(f"kept case '{case_id}' is not in the problem") from None
            if case_id in seen:
                raise InvalidProblemError(f"case {case_id} is kept more than once")
            seen.add(case_id)
            if team.id not in allowed.get(case_id, ()):
                raise InvalidProblemError(
                    f"kept case {case_id} cannot be visited by {team.id}'s route at all"
                )
        if order:
            route = time_route(problem, matrices, team.id, order)
            broken = [
                v
                for v in check_plan(
                    problem, matrices, Plan((route,), ()), max_snap_m=params.max_snap_m
                )
                if v.code != ViolationCode.MISSING_CASE
            ]
            if broken:
                raise InvalidProblemError(
                    f"{team.id}'s route cannot keep {', '.join(order)} in that order: "
                    f"{broken[0].message}"
                )
            kept[team.id] = order
    return kept


class OrtoolsBackend:
    """Search with the OR-Tools routing model of this module; it models every rule."""

    name = "ortools"

    def unfit(self, day: SearchDay, params: SolveParams) -> dict[str, str]:
        """OR-Tools models every rule of a day: nothing is unfit."""
        return {}

    def search(
        self, day: SearchDay, params: SolveParams, report: Callable[[str], None]
    ) -> SearchResult:
        """Build the routing model of the day and search it (``params`` as documented)."""
        model = _build_model(day.problem, day.matrices, day.cases, day.allowed, day.kept, params)
        orders, stats = _search(model, params, report)
        return SearchResult(orders, stats)


ORTOOLS = OrtoolsBackend()
PYVRP = PyvrpBackend()


@dataclass
class _Model:
    """An OR-Tools routing model and what its nodes and vehicles stand for."""

    manager: pywrapcp.RoutingIndexManager
    routing: pywrapcp.RoutingModel
    cases: Sequence[Case]
    """The case of each visit node (a case may have two nodes, see ``_Node``)."""
    fleet: Sequence[Team]
    breaks: list[pywrapcp.IntervalVar] = field(default_factory=list)


def _build_model(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    cases: Sequence[Case],
    allowed: Mapping[str, Sequence[str]],
    kept: Mapping[str, Sequence[str]],
    params: SolveParams,
) -> _Model:
    """Model the candidate cases as optional visits by the teams who could make them."""
    # Teams who could make none of the visits stay out: they would only add vehicles.
    usable = {t for teams in allowed.values() for t in teams}
    fleet = [t for t in problem.teams() if t.id in usable]
    vehicle_of = {t.id: v for v, t in enumerate(fleet)}
    nodes = _plan_nodes(problem, cases, allowed, kept, vehicle_of, params)
    n_nodes, n_vehicles = len(nodes), len(fleet)
    # Model nodes: the visit nodes, then each vehicle's start, then each vehicle's end.
    points = np.array(
        [problem.case_index(n.case.id) for n in nodes]
        + [problem.start_index(t.position) for t in fleet]
        + [problem.end_index(t.position) for t in fleet],
        dtype=np.int64,
    )
    manager = pywrapcp.RoutingIndexManager(
        len(points),
        n_vehicles,
        [n_nodes + v for v in range(n_vehicles)],
        [n_nodes + n_vehicles + v for v in range(n_vehicles)],
    )
    routing = pywrapcp.RoutingModel(manager)
    model = _Model(manager, routing, [n.case for n in nodes], fleet)

    # One transit matrix (travel + service at the origin) and one cost matrix per mode.
    service_s = np.zeros(len(points), dtype=np.int64)
    service_s[:n_nodes] = [n.case.service_s for n in nodes]
    # Leaving a visit made by someone else than the case's preferred collector costs the
    # continuity price (each visit is left exactly once).
    surcharge = np.zeros(len(points), dtype=np.int64)
    surcharge[:n_nodes] = [
        params.continuity_cost_cents * COST_PER_CENT if n.continuity else 0 for n in nodes
    ]
    transit_ids: dict[TravelMode, int] = {}
    cost_ids: dict[TravelMode, int] = {}
    for mode in sorted({t.mode for t in fleet}):
        duration = matrices[mode].duration_s[np.ix_(points, points)].astype(np.int64)
        unreachable = duration >= UNREACHABLE
        travel = np.where(unreachable, UNREACHABLE, duration)
        transit_ids[mode] = routing.RegisterTransitMatrix((travel + service_s[:, None]).tolist())
        # Arcs longer than the horizon are infeasible in time anyway; capping their price
        # keeps every sum of arc costs far from int64 overflow.
        priced = np.minimum(duration, HORIZON_S) * params.travel_cost_cents_per_hour
        cost_ids[mode] = routing.RegisterTransitMatrix((priced + surcharge[:, None]).tolist())
    for vehicle, team in enumerate(fleet):
        routing.SetArcCostEvaluatorOfVehicle(cost_ids[team.mode], vehicle)

    # Time: the cumul of a visit is its start; slack is waiting; shifts bound starts and ends.
    routing.AddDimensionWithVehicleTransits(
        [transit_ids[t.mode] for t in fleet], HORIZON_S, HORIZON_S, False, "time"
    )
    time_dimension = routing.GetDimensionOrDie("time")
    for vehicle, team in enumerate(fleet):
        for index in (routing.Start(vehicle), routing.End(vehicle)):
            time_dimension.CumulVar(index).SetRange(team.shift.start_s, team.shift.end_s)
        if params.span_cost_cents_per_hour:
            time_dimension.SetSpanCostCoefficientForVehicle(
                params.span_cost_cents_per_hour, vehicle
            )
    _add_breaks(model, time_dimension, service_s)

    if any(t.max_visits is not None for t in fleet):
        routing.AddDimensionWithVehicleCapacity(
            routing.RegisterUnaryTransitVector([1] * n_nodes + [0] * (2 * n_vehicles)),
            0,
            [n_nodes if t.max_visits is None else t.max_visits for t in fleet],
            True,
            "visits",
        )
    if any(t.capacity is not None for t in fleet):
        loads = [n.case.load for n in nodes]
        routing.AddDimensionWithVehicleCapacity(
            routing.RegisterUnaryTransitVector(loads + [0] * (2 * n_vehicles)),
            0,
            [sum(loads) if t.capacity is None else t.capacity for t in fleet],
            True,
            "load",
        )
    if params.objective == "balanced":
        # Working time (travel and visits, no waiting) from zero: its global span is the
        # busiest team's working time, which the balance price pushes down.
        routing.AddDimensionWithVehicleTransits(
            [transit_ids[t.mode] for t in fleet], 0, HORIZON_S, True, "work"
        )
        routing.GetDimensionOrDie("work").SetGlobalSpanCostCoefficient(
            params.balance_cost_cents_per_hour
        )

    indices_of: dict[str, list[int]] = {}
    for node, plan in enumerate(nodes):
        index = manager.NodeToIndex(node)
        indices_of.setdefault(plan.case.id, []).append(index)
        # The hull of the case's start windows minus the gaps between them.
        spans = plan.case.start_windows
        cumul = time_dimension.CumulVar(index)
        cumul.SetRange(spans[0].start_s, spans[-1].end_s)
        for before, after in itertools.pairwise(spans):
            if before.end_s + 1 <= after.start_s - 1:
                cumul.RemoveInterval(before.end_s + 1, after.start_s - 1)
        if len(plan.vehicles) < n_vehicles:
            _allow_vehicles(routing, index, list(plan.vehicles))
    kept_on = {c for order in kept.values() for c in order}
    for case in cases:
        indices = indices_of[case.id]
        if case.id in kept_on:
            # A kept visit is not optional: no disjunction, and only its team's vehicle.
            routing.VehicleVar(indices[0]).SetValue(
                nodes[manager.IndexToNode(indices[0])].vehicles[0]
            )
            continue
        continuity = any(nodes[manager.IndexToNode(i)].continuity for i in indices)
        penalty = drop_penalty(
            case, continuity_cents=params.continuity_cost_cents if continuity else 0
        )
        routing.AddDisjunction(indices, penalty, 1)
    # Kept visits stay in their order: each starts after the one before it has ended.
    for order in kept.values():
        for first, then in itertools.pairwise(order):
            time_dimension.AddNodePrecedence(
                indices_of[first][0], indices_of[then][0], problem.case(first).service_s
            )
    return model


@dataclass(frozen=True, slots=True)
class _Node:
    """A visit node of the routing model: which case, by which vehicles, at what surcharge.

    A case with a preferred collector who may visit it gets two nodes in one
    disjunction: one only that collector's vehicle may take, and one for the
    other vehicles that pays the continuity price. Per-node arc costs keep
    the search on its fast paths, where a per-vehicle rule would not.
    """

    case: Case
    vehicles: tuple[int, ...]
    continuity: bool = False


def _plan_nodes(
    problem: Problem,
    cases: Sequence[Case],
    allowed: Mapping[str, Sequence[str]],
    kept: Mapping[str, Sequence[str]],
    vehicle_of: Mapping[str, int],
    params: SolveParams,
) -> list[_Node]:
    kept_on = {c: vehicle_of[team_id] for team_id, order in kept.items() for c in order}
    nodes: list[_Node] = []
    for case in cases:
        if case.id in kept_on:
            nodes.append(_Node(case, (kept_on[case.id],)))
            continue
        vehicles = tuple(vehicle_of[t] for t in allowed[case.id])
        preferred = _preferred_vehicle(problem, case, allowed, vehicle_of)
        if preferred is None or not params.continuity_cost_cents:
            nodes.append(_Node(case, vehicles))
            continue
        nodes.append(_Node(case, (preferred,)))
        others = tuple(v for v in vehicles if v != preferred)
        if others:
            nodes.append(_Node(case, others, continuity=True))
    return nodes


def _add_breaks(
    model: _Model, time_dimension: pywrapcp.RoutingDimension, service_s: np.ndarray
) -> None:
    """Give each team with a due break one fixed-length break interval inside its window.

    A break may fall before the start, after the end, or between two visits,
    never over a visit (its service time is the node's visit transit); the
    time dimension's slack between two visits must hold the travel and the
    break.
    """
    routing, manager = model.routing, model.manager
    visit_s = [int(service_s[manager.IndexToNode(i)]) for i in range(routing.Size())]
    for vehicle, team in enumerate(model.fleet):
        if team.break_window is None or team.break_s <= 0:
            continue
        interval = routing.solver().FixedDurationIntervalVar(
            team.break_window.start_s,
            team.break_window.end_s - team.break_s,
            team.break_s,
            False,
            f"break {team.id}",
        )
        time_dimension.SetBreakIntervalsOfVehicle([interval], vehicle, visit_s)
        model.breaks.append(interval)


def _preferred_vehicle(
    problem: Problem,
    case: Case,
    allowed: Mapping[str, Sequence[str]],
    vehicle_of: Mapping[str, int],
) -> int | None:
    """The vehicle of the team the case's preferred collector works in, if it may visit it."""
    if case.preferred_collector is None:
        return None
    try:
        team = problem.team(case.preferred_collector)
    except KeyError:
        return None
    if team.id not in allowed[case.id]:
        return None
    return vehicle_of.get(team.id)


def _search(
    model: _Model, params: SolveParams, report: Callable[[str], None]
) -> tuple[dict[str, list[str]] | None, dict[str, float]]:
    """Run the OR-Tools search; return each team's visit order and search statistics.

    The orders are None when the search found no solution.
    """
    routing = model.routing
    search = pywrapcp.DefaultRoutingSearchParameters()
    search.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.Value.Value(
        params.first_solution
    )
    search.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.Value.Value(
        params.metaheuristic
    )
    # A case with a preferred collector has two alternative nodes (see _Node); moving it
    # from one to the other means swapping an active node for an inactive one anywhere.
    search.local_search_operators.use_extended_swap_active = BOOL_TRUE
    search.time_limit.FromMilliseconds(max(1, round(params.time_limit_s * 1000)))
    if params.solution_limit is not None:
        search.solution_limit = params.solution_limit
    routing.solver().ReSeed(params.seed)

    progress = _Progress(routing, report)
    routing.AddAtSolutionCallback(progress)
    who = "collectors" if all(t.crew_id is None for t in model.fleet) else "collectors and crews"
    n_cases = len({c.id for c in model.cases})
    report(
        f"searching {n_cases} cases x {len(model.fleet)} {who} for up to {params.time_limit_s:g} s"
    )
    started = time.perf_counter()
    solution = routing.SolveWithParameters(search)
    search_s = time.perf_counter() - started
    status = routing.status()
    solution_limit_reached = (
        params.solution_limit is not None and progress.solutions >= params.solution_limit
    )
    stats = {
        "modelled_cases": float(n_cases),
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
    if solution is None or progress.solutions == 0:
        report("the search found no solution; building routes by insertion")
        return None, stats
    stats["search_objective_cents"] = solution.ObjectiveValue() / COST_PER_CENT
    orders: dict[str, list[str]] = {t.id: [] for t in model.fleet}
    for vehicle, team in enumerate(model.fleet):
        index = solution.Value(routing.NextVar(routing.Start(vehicle)))
        while not routing.IsEnd(index):
            orders[team.id].append(model.cases[model.manager.IndexToNode(index)].id)
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
        self.best_cents = min(self.best_cents, self.routing.CostVar().Max() / COST_PER_CENT)
        now = time.perf_counter()
        if now - self.last_report_s >= _PROGRESS_EVERY_S:
            self.last_report_s = now
            plural = "" if self.solutions == 1 else "s"
            self.report(
                f"{self.solutions} solution{plural} searched; "
                f"best objective {self.best_cents / 100:.2f}"
            )


def _repair(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    orders: dict[str, list[str]],
    kept: Mapping[str, Sequence[str]],
    params: SolveParams,
) -> list[str]:
    """Take visits off any route the checker rejects, lowest value first; return them.

    The routing model and ``explain.time_route`` follow the same rules, so
    this guard should find nothing; it keeps a disagreement between them
    from ever reaching a plan. Kept visits stay (they were checked alone).
    """
    fixed = {c for order in kept.values() for c in order}
    removed: list[str] = []
    for team_id, order in orders.items():
        while order and not _keeps_rules(problem, matrices, team_id, order, params):
            movable = [c for c in order if c not in fixed]
            if not movable:
                break
            lowest = min(movable, key=lambda c: (problem.case(c).value, c))
            order.remove(lowest)
            removed.append(lowest)
    return removed


def _keeps_rules(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    team_id: str,
    order: Sequence[str],
    params: SolveParams,
) -> bool:
    route = time_route(problem, matrices, team_id, order)
    violations = check_plan(problem, matrices, Plan((route,), ()), max_snap_m=params.max_snap_m)
    return all(v.code == ViolationCode.MISSING_CASE for v in violations)


def _insert_paying(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix],
    orders: dict[str, list[str]],
    left_out: Sequence[str],
    allowed: Mapping[str, Sequence[str]],
    params: SolveParams,
) -> list[str]:
    """Insert left-out appointments that fit, then cases whose value beats their extra travel.

    Best first: appointments before other cases, then the largest gain (value,
    plus the continuity price on the preferred collector's route, minus the
    price of the extra travel). Changes ``orders`` in place and returns the
    inserted case ids. A search stopped early (or one that found nothing)
    can leave such cases out; after this no left-out case fits anywhere for
    less than it gains, and no left-out appointment fits at all.
    """
    fits = {
        case_id: cheapest_insertions(
            problem, matrices, orders, case_id, collector_ids=allowed[case_id]
        )
        for case_id in left_out
    }
    inserted: list[str] = []
    while True:
        best: tuple[tuple[bool, int], str, Insertion] | None = None
        for case_id, options in fits.items():
            case = problem.case(case_id)
            for fit in options.values():
                if not isinstance(fit, Insertion):
                    continue
                key = (case.appointment_s is not None, _gain(problem, case, fit, params))
                if (key[0] or key[1] > 0) and (best is None or key > best[0]):
                    best = (key, case_id, fit)
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


def _gain(problem: Problem, case: Case, fit: Insertion, params: SolveParams) -> int:
    """What visiting on this fit gains over leaving the case out, in objective units."""
    credit = case.value
    if case.preferred_collector in problem.team(fit.collector_id).member_ids:
        credit += params.continuity_cost_cents
    return credit * COST_PER_CENT - fit.extra_travel_s * params.travel_cost_cents_per_hour


def _objective_cents(
    problem: Problem,
    routes: Sequence[Route],
    unrouted: Iterable[str],
    params: SolveParams,
) -> int:
    """Travel cost, value of the cases not on a route, continuity lost (and balance), in cents."""
    travel_s = sum(r.travel_time_s for r in routes)
    span_s = sum(r.end_s - r.start_s for r in routes)
    priced = travel_s * params.travel_cost_cents_per_hour + span_s * params.span_cost_cents_per_hour
    if params.objective == "balanced" and routes:
        busiest_s = max(
            r.travel_time_s + sum(problem.case(s.case_id).service_s for s in r.stops)
            for r in routes
        )
        priced += busiest_s * params.balance_cost_cents_per_hour
    on_duty = {k.id for k in problem.collectors}
    visitors = {s.case_id: r.members for r in routes for s in r.stops}
    lost = sum(
        c.preferred_collector in on_duty and c.preferred_collector not in visitors.get(c.id, ())
        for c in problem.cases
    )
    return (
        round(priced / COST_PER_CENT)
        + sum(problem.case(case_id).value for case_id in unrouted)
        + lost * params.continuity_cost_cents
    )


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
