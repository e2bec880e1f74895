"""The PyVRP search backend: plan days that need no rule PyVRP lacks with its iterated local search.

PyVRP (an optional dependency, ``pip install 'dispatch[pyvrp]'``) is imported
only when a day is searched with it. The day maps onto PyVRP 0.14 as:

- teams the model cannot tell apart (the same start and end on every
  matrix, shift, caps, barred cases and profile) are one vehicle type with a
  vehicle each, and points no matrix tells apart are one depot; each route
  of a type goes back to a distinct team of it, in route order;
- a vehicle type starts and ends at its teams' points (depots), within their
  shift, on their travel mode's matrix (profile);
- each case is an optional client whose prize is what dropping it costs
  (``backends.drop_penalty``); a case with several start windows is one
  client per window in a mutually exclusive client group;
- travel is priced through the distance matrix (seconds x cents per hour, in
  the shared objective units) and the span price through the route duration;
- the visit cap is a load dimension (each visit loads 1), and so is the
  capacity (each visit loads its case's ``load``); teams that may not
  visit a case (skills, crew size, snap limit) get no room in a load
  dimension of that case's class;
- the continuity price is added to every arc into a case on the profiles of
  teams other than its preferred one.

Breaks, kept visits and the balanced objective have no PyVRP counterpart: a
day with any of them is ``unfit`` and ``solve`` plans it with OR-Tools.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dispatch.backends import (
    COST_PER_CENT,
    HORIZON_S,
    SearchDay,
    SearchResult,
    drop_penalty,
)
from dispatch.matrix import UNREACHABLE
from dispatch.model import Case, Team

if TYPE_CHECKING:
    from dispatch.solve import SolveParams

# Profiles hold two square matrices each; past this many cells in all (about 1.6 GB of
# int64) the model would not fit comfortably in memory, so the day goes to OR-Tools.
_MAX_PROFILE_CELLS = 10**8
# An arc longer than the horizon can be on no route; a shorter stand-in keeps PyVRP's
# time-warp arithmetic far from int64 overflow while still breaking every window.
_NEVER_S = HORIZON_S + 1
# The largest prize PyVRP gets, in its cost units (see ``_unit``).
_MAX_PRIZE = 10**10
# PyVRP adapts its penalties every 500 solutions by default. Prizes here span orders of
# magnitude (appointments above all) and days of 100-150 cases take 400-1000 iterations
# a second, so at 500 a search could spend a 10 s limit without one feasible candidate.
# Every 50 cut a synthetic day with 18 appointments by 20 % at 10 s and left other days
# and the Solomon gaps within noise.
_SOLUTIONS_BETWEEN_UPDATES = 50
# Seconds between two progress messages while the search improves.
_PROGRESS_EVERY_S = 1.0


def pyvrp_installed() -> bool:
    """Whether the optional ``pyvrp`` package can be imported."""
    return importlib.util.find_spec("pyvrp") is not None


class PyvrpBackend:
    """Search with PyVRP's iterated local search (see the module docstring)."""

    name = "pyvrp"

    def unfit(self, day: SearchDay, params: SolveParams) -> dict[str, str]:
        """The rules of the day PyVRP cannot model, with a sentence each; empty when none."""
        found: dict[str, str] = {}
        if not pyvrp_installed():
            found["not_installed"] = (
                "the pyvrp package is not installed (pip install 'dispatch[pyvrp]')"
            )
        fleet = day.fleet()
        breaking = [t.id for t in fleet if t.break_window is not None and t.break_s > 0]
        if breaking:
            found["breaks"] = f"PyVRP plans no breaks, and {_few(breaking)} take one"
        if any(day.kept.values()):
            found["kept_visits"] = "PyVRP cannot hold visits in place"
        if params.objective != "travel":
            found["objective"] = f"PyVRP has no '{params.objective}' objective"
        if fleet:
            cells = 2 * len(_profiles(day, fleet, params)) * (len(day.cases) + 2 * len(fleet)) ** 2
            if cells > _MAX_PROFILE_CELLS:
                found["size"] = (
                    f"the day needs {cells:,} matrix cells in PyVRP, more than "
                    f"{_MAX_PROFILE_CELLS:,}"
                )
        return found

    def search(
        self, day: SearchDay, params: SolveParams, report: Callable[[str], None]
    ) -> SearchResult:
        """Build the PyVRP data of the day, search it, and read back each team's order.

        Cases that any plan keeping the rules should visit (``_must_visit``)
        are optional clients only until the search has found a plan that
        visits them all; the search then goes on from that plan with them
        required, for the rest of the time and iterations. PyVRP's search
        with optional clients spends most of each iteration trying to insert
        and remove them (on Solomon R101, 4,100 iterations in 5 s against
        10,000 with every client required).
        """
        model = _build_data(day, params)
        must = _must_visit(day, model.fleet, params)
        progress = _progress(report, must, model.clients)
        report(
            f"searching {len(day.cases)} cases x {len(model.fleet)} teams with PyVRP "
            f"for up to {params.time_limit_s:g} s"
        )
        started = time.perf_counter()
        stop_when = [progress.covered] if must else []
        result = _run(model, params, progress, started, stop_when=stop_when)
        iterations = result.num_iterations
        required = 0
        left_s = params.time_limit_s - (time.perf_counter() - started)
        more = params.iteration_limit is None or iterations < params.iteration_limit
        if must and progress.covered.reached and left_s > 0 and more:
            report(f"all {len(must)} cases that must be visited are on routes; searching on")
            model = _build_data(day, params, required=must)
            initial = _carry(result.best, model.data)
            result = _run(model, params, progress, started, done=iterations, initial=initial)
            iterations += result.num_iterations
            required = len(must)
        search_s = time.perf_counter() - started
        stats = {
            "modelled_cases": float(len(day.cases)),
            "modelled_collectors": float(len(model.fleet)),
            "modelled_vehicle_types": float(len(model.types)),
            "search_time_s": search_s,
            "search_iterations": float(iterations),
            "solutions_found": float(progress.improvements),
            "stopped_by_time_limit": float(
                params.iteration_limit is None or iterations < params.iteration_limit
            ),
            "required_cases": float(required),
        }
        if not result.is_feasible():
            report("PyVRP found no solution that keeps every rule; building routes by insertion")
            return SearchResult(None, stats)
        stats["search_objective_cents"] = result.cost() * model.unit / COST_PER_CENT
        orders: dict[str, list[str]] = {t.id: [] for t in model.fleet}
        unused = [list(teams) for teams in model.types]
        for route in result.best.routes():
            team = unused[route.vehicle_type()].pop(0)
            orders[team.id] = [
                model.clients[visit.idx].id for visit in route.schedule() if visit.is_client()
            ]
        return SearchResult(orders, stats)


def _run(
    model: _Data,
    params: SolveParams,
    progress: Any,
    started: float,
    *,
    done: int = 0,
    stop_when: Sequence[Callable[[float], bool]] = (),
    initial: Any = None,
) -> Any:
    """Run PyVRP's search on the model until the time and iterations left are spent.

    ``done`` iterations were spent since ``started`` already; the search
    also stops as soon as one of ``stop_when`` is met, and starts from
    ``initial`` when given (else from PyVRP's own starting plan).
    """
    import pyvrp
    from pyvrp.exceptions import PenaltyBoundWarning
    from pyvrp.stop import MaxIterations, MaxRuntime, MultipleCriteria

    left_s = max(0.0, params.time_limit_s - (time.perf_counter() - started))
    stops: list[Any] = [MaxRuntime(left_s), *stop_when]
    if params.iteration_limit is not None:
        stops.append(MaxIterations(max(0, params.iteration_limit - done)))
    solver_params = pyvrp.SolveParams(
        ils=pyvrp.IteratedLocalSearchParams(callbacks=progress),
        penalty=model.penalties.params(),
    )
    with warnings.catch_warnings():
        # A penalty at its ceiling means the search keeps to plans without violations;
        # leaving every case out is always such a plan, so there is nothing to warn of.
        warnings.simplefilter("ignore", PenaltyBoundWarning)
        return pyvrp.solve(
            model.data,
            MultipleCriteria(stops),
            seed=params.seed,
            collect_stats=False,
            params=solver_params,
            initial_solution=initial,
        )


def _must_visit(day: SearchDay, fleet: Sequence[Team], params: SolveParams) -> frozenset[str]:
    """Cases that every best plan visits, as long as some plan keeping the rules visits them.

    The largest set of the most valuable cases where even the least valuable
    of them is worth more than the whole day's travel and span (every team's
    shift) plus every continuity price plus all the other cases together:
    a plan that leaves one of them out then always costs more than any plan
    that visits them all. Appointments are such cases by construction
    (``_prizes``); so are cases worth more than the day, as on the Solomon
    instances. Usually empty when cases are valued by expected recovery.
    """
    prizes = _prizes(day, fleet, params)
    rate = params.travel_cost_cents_per_hour + params.span_cost_cents_per_hour
    preferred = sum(day.preferred_team(c) is not None for c in day.cases)
    ceiling = sum(t.shift.duration_s for t in fleet) * rate
    ceiling += preferred * params.continuity_cost_cents * COST_PER_CENT
    ordered = sorted(prizes.items(), key=lambda item: item[1], reverse=True)
    rest = sum(prizes.values())
    chosen = 0
    for k, (_, prize) in enumerate(ordered, start=1):
        rest -= prize
        if prize > ceiling + rest:
            chosen = k
    return frozenset(case_id for case_id, _ in ordered[:chosen])


def _carry(solution: Any, data: Any) -> Any:
    """The same routes as a solution of other PyVRP data with the same clients and vehicles."""
    import pyvrp

    return pyvrp.Solution(
        data,
        [
            pyvrp.Route(
                data,
                [
                    pyvrp.Activity(pyvrp.ActivityType.CLIENT, visit.idx)
                    for visit in route.schedule()
                    if visit.is_client()
                ],
                route.vehicle_type(),
            )
            for route in solution.routes()
        ],
    )


@dataclass(frozen=True)
class _Data:
    """PyVRP problem data and what its clients and vehicle types stand for."""

    data: Any
    clients: Sequence[Case]
    """The case of each client (a case with several windows has several clients)."""
    fleet: Sequence[Team]
    """The teams of the day, in ``SearchDay.fleet`` order."""
    types: Sequence[Sequence[Team]]
    """The teams of each vehicle type, in fleet order (one vehicle each)."""
    penalties: Any
    """PyVRP penalty parameters scaled to the day (``_Penalties``)."""
    unit: int
    """Objective units (``backends.COST_PER_CENT``) per PyVRP cost unit."""


def _build_data(
    day: SearchDay, params: SolveParams, *, required: frozenset[str] = frozenset()
) -> _Data:
    """Map the day onto PyVRP's ``ProblemData`` (see the module docstring).

    Cases in ``required`` become required clients (or required client groups).
    """
    import pyvrp

    problem = day.problem
    fleet = day.fleet()
    profiles = _profiles(day, fleet, params)
    # Locations: the distinct depots (teams' starts and ends), then each case.
    terminals = [problem.start_index(t.position) for t in fleet]
    terminals += [problem.end_index(t.position) for t in fleet]
    cases = [problem.case_index(c.id) for c in day.cases]
    depot_of = _depots(day, [mode for mode, _ in profiles], terminals, cases)
    n_depots = max(depot_of, default=-1) + 1
    depot_point: dict[int, int] = {}
    for point, depot in zip(terminals, depot_of, strict=True):
        depot_point.setdefault(depot, point)
    points = np.array([depot_point[d] for d in range(n_depots)] + cases, dtype=np.int64)
    locations = [pyvrp.Location(0.0, 0.0) for _ in points]
    depots = [pyvrp.Depot(location) for location in range(n_depots)]
    classes = _load_classes(day, fleet, params)
    capped = any(t.max_visits is not None for t in fleet)
    loaded = any(t.capacity is not None for t in fleet)
    total_load = sum(c.load for c in day.cases)
    prizes = _prizes(day, fleet, params)
    unit = _unit(max(prizes.values(), default=1))

    clients: list[Any] = []
    owners: list[Case] = []
    groups: list[list[int]] = []
    for offset, case in enumerate(day.cases):
        windows = case.start_windows
        group = None
        if len(windows) > 1:
            group = len(groups)
            groups.append(list(range(len(clients), len(clients) + len(windows))))
        load = [1] * capped + [case.load] * loaded
        load += [int(case.id in members) for members in classes.values()]
        for window in windows:
            clients.append(
                pyvrp.Client(
                    location=n_depots + offset,
                    delivery=load,
                    service_duration=case.service_s,
                    tw_early=window.start_s,
                    tw_late=window.end_s,
                    prize=max(1, prizes[case.id] // unit),
                    required=case.id in required and group is None,
                    group=group,
                    name=case.id,
                )
            )
            owners.append(case)

    profile_of = {key: index for index, key in enumerate(profiles)}
    # A team is what its vehicle is to PyVRP; teams with the same vehicle share a type.
    kinds: dict[tuple[Any, ...], list[Team]] = {}
    for vehicle, team in enumerate(fleet):
        cap = [len(clients) if team.max_visits is None else team.max_visits] * capped
        cap += [total_load if team.capacity is None else team.capacity] * loaded
        room = [0 if team.id in excluded else len(clients) for excluded in classes]
        kind = (
            tuple(cap + room),
            depot_of[vehicle],
            depot_of[len(fleet) + vehicle],
            team.shift.start_s,
            team.shift.end_s,
            profile_of[_profile_key(day, team, params)],
        )
        kinds.setdefault(kind, []).append(team)
    vehicle_types = [
        pyvrp.VehicleType(
            num_available=len(teams),
            capacity=list(capacity),
            start_depot=start,
            end_depot=end,
            tw_early=shift_start_s,
            tw_late=shift_end_s,
            unit_distance_cost=1,
            unit_duration_cost=round(params.span_cost_cents_per_hour / unit),
            profile=profile,
            name=",".join(t.id for t in teams),
        )
        for (capacity, start, end, shift_start_s, shift_end_s, profile), teams in kinds.items()
    ]
    distances: list[Any] = []
    durations: list[Any] = []
    for mode, preferred in profiles:
        duration = day.matrices[mode].duration_s[np.ix_(points, points)].astype(np.int64)
        unreachable = duration >= UNREACHABLE
        distance = np.minimum(duration, HORIZON_S) * params.travel_cost_cents_per_hour
        distance += _surcharges(day, params, preferred, n_depots)[None, :]
        np.fill_diagonal(distance, 0)
        durations.append(np.where(unreachable, _NEVER_S, np.minimum(duration, _NEVER_S)))
        distances.append(np.rint(distance / unit).astype(np.int64))
    data = pyvrp.ProblemData(
        locations=locations,
        clients=clients,
        depots=depots,
        vehicle_types=vehicle_types,
        distance_matrices=distances,
        duration_matrices=durations,
        groups=[
            pyvrp.ClientGroup(members, required=owners[members[0]].id in required)
            for members in groups
        ],
    )
    # Penalties start where a second late or a visit over a cap costs about what a second
    # of travel or a median visit is worth, and may grow until no violation ever pays.
    top = max(c.prize for c in clients) if clients else 1
    penalties = _Penalties(
        max_penalty=float(2 * top),
        initial_load=float(np.median([c.prize for c in clients])) if clients else 1.0,
        initial_time_warp=max(1.0, 10 * params.travel_cost_cents_per_hour / unit),
    )
    return _Data(data, owners, fleet, list(kinds.values()), penalties, unit)


def _depots(
    day: SearchDay, modes: Sequence[Any], terminals: Sequence[int], cases: Sequence[int]
) -> list[int]:
    """The PyVRP depot of each of the teams' starts and ends (matrix indices ``terminals``).

    Points whose travel times to and from every case are the same on every
    mode's matrix are one depot (usually one address: an office, a home
    two collectors share), numbered in order of first appearance. Travel
    between two depots counts only on a route without visits, which PyVRP
    never keeps, so it need not match.
    """
    depot_of: dict[bytes, int] = {}
    found = []
    for point in terminals:
        key = b"".join(
            day.matrices[mode].duration_s[point, cases].tobytes()
            + day.matrices[mode].duration_s[cases, point].tobytes()
            for mode in modes
        )
        found.append(depot_of.setdefault(key, len(depot_of)))
    return found


def _prizes(day: SearchDay, fleet: Sequence[Team], params: SolveParams) -> dict[str, int]:
    """What dropping each case costs, in objective units (``backends.COST_PER_CENT``).

    As ``backends.drop_penalty``, except that an appointment's surcharge is
    the most that the rest of the day could weigh (every other case's prize
    and every team's whole shift in travel and span) rather than a fixed
    ceiling: a surcharge far beyond the day's scale would keep PyVRP's
    penalties from ever making a late appointment cost more than it gains.
    """
    plain = {
        case.id: drop_penalty(
            dataclasses.replace(case, appointment_s=None),
            continuity_cents=params.continuity_cost_cents if day.preferred_team(case) else 0,
        )
        for case in day.cases
    }
    rate = params.travel_cost_cents_per_hour + params.span_cost_cents_per_hour
    surcharge = sum(plain.values()) + sum(t.shift.duration_s for t in fleet) * rate + 1
    return {
        case.id: plain[case.id] + (surcharge if case.appointment_s is not None else 0)
        for case in day.cases
    }


def _unit(top_prize: int) -> int:
    """Objective units per PyVRP cost unit: a power of ten that keeps prizes below 10**10.

    PyVRP's penalties must be able to exceed the largest prize per second
    late and per visit over a cap; below 10**10, a penalty times a horizon of
    late seconds on every route stays far from int64 overflow.
    """
    return 10 ** max(0, math.ceil(math.log10(max(top_prize, 1) / _MAX_PRIZE)))


def _load_classes(
    day: SearchDay, fleet: Sequence[Team], params: SolveParams
) -> dict[frozenset[str], set[str]]:
    """Teams barred from some cases (skills, crew size, snap limit) -> those cases.

    Each class becomes a load dimension where its cases load 1 and the barred
    teams have no room. Teams that may visit a case but cannot fit it in
    time need no class: PyVRP's windows and matrices already keep them off.
    """
    classes: dict[frozenset[str], set[str]] = {}
    for case in day.cases:
        barred = frozenset(t.id for t in fleet if not _qualified(day, t, case, params))
        if barred:
            classes.setdefault(barred, set()).add(case.id)
    return classes


def _qualified(day: SearchDay, team: Team, case: Case, params: SolveParams) -> bool:
    """Whether the team holds the case's skills and crew size and its mode reaches it."""
    snap_m = day.matrices[team.mode].snap_m[day.problem.case_index(case.id)]
    return team.can_serve(case) and bool(snap_m <= params.max_snap_m)


def _profile_key(day: SearchDay, team: Team, params: SolveParams) -> tuple[str, str | None]:
    """A team travels on its mode's profile, or its own when cases prefer it."""
    if params.continuity_cost_cents and any(day.preferred_team(c) == team.id for c in day.cases):
        return team.mode.value, team.id
    return team.mode.value, None


def _profiles(
    day: SearchDay, fleet: Sequence[Team], params: SolveParams
) -> list[tuple[Any, str | None]]:
    """Distinct (mode, preferred team) profiles of the fleet, in fleet order."""
    keys = dict.fromkeys(_profile_key(day, t, params) for t in fleet)
    modes = {t.mode.value: t.mode for t in fleet}
    return [(modes[mode], team_id) for mode, team_id in keys]


def _surcharges(
    day: SearchDay, params: SolveParams, team_id: str | None, n_depots: int
) -> np.ndarray:
    """Continuity price of arriving at each location on a profile, in objective units."""
    surcharge = np.zeros(n_depots + len(day.cases), dtype=np.int64)
    if not params.continuity_cost_cents:
        return surcharge
    for offset, case in enumerate(day.cases):
        preferred = day.preferred_team(case)
        if preferred is not None and preferred != team_id:
            surcharge[n_depots + offset] = params.continuity_cost_cents * COST_PER_CENT
    return surcharge


class _Covered:
    """A PyVRP stopping criterion met once a plan keeping every rule visits given cases."""

    def __init__(self, case_ids: frozenset[str]) -> None:
        self.case_ids = case_ids
        self.reached = False

    def see(self, solution: Any, clients: Sequence[Case]) -> None:
        """Note whether this solution keeps every rule and visits all the cases."""
        if self.reached or not solution.is_feasible():
            return
        visited = {
            clients[visit.idx].id
            for route in solution.routes()
            for visit in route.schedule()
            if visit.is_client()
        }
        self.reached = self.case_ids <= visited

    def __call__(self, best_cost: float) -> bool:
        return self.reached


def _progress(report: Callable[[str], None], must: frozenset[str], clients: Sequence[Case]) -> Any:
    """PyVRP search callbacks that count the best plans found and report now and then.

    Their ``covered`` criterion is met once a best plan visits every case in ``must``.
    """
    from pyvrp import IteratedLocalSearchCallbacks

    class Progress(IteratedLocalSearchCallbacks):  # type: ignore[misc]
        def __init__(self) -> None:
            self.improvements = 0
            self.last_report_s = -math.inf
            self.covered = _Covered(must)

        def on_start(self, ils: Any) -> None:
            # The starting plan counts as the first one found when it keeps every rule (a
            # search that goes on from an earlier one's best has counted it already).
            if self.improvements == 0:
                self.improvements += int(ils.initial_solution.is_feasible())
            self.covered.see(ils.initial_solution, clients)

        def on_best(self, best: Any) -> None:
            self.improvements += 1
            self.covered.see(best, clients)
            now = time.perf_counter()
            if now - self.last_report_s >= _PROGRESS_EVERY_S:
                self.last_report_s = now
                plural = "" if self.improvements == 1 else "s"
                report(f"{self.improvements} improvement{plural} found by PyVRP")

    return Progress()


@dataclass(frozen=True)
class _Penalties:
    """Where PyVRP's penalties start and how high they may grow, in its cost units."""

    max_penalty: float
    initial_load: float
    initial_time_warp: float

    def params(self) -> Any:
        """PyVRP ``PenaltyParams`` that start from these values instead of the midpoint."""
        from pyvrp import PenaltyParams

        start = self

        class Scaled(PenaltyParams):  # type: ignore[misc]
            def midpoint_penalties(self, data: Any) -> tuple[list[float], float, float]:
                loads = [start.initial_load] * data.num_load_dimensions
                return loads, start.initial_time_warp, start.max_penalty

        return Scaled(
            max_penalty=self.max_penalty, solutions_between_updates=_SOLUTIONS_BETWEEN_UPDATES
        )


def _few(team_ids: Sequence[str]) -> str:
    """Name a few teams for a sentence: ``K1, K2, K3 and 4 more``."""
    shown = ", ".join(team_ids[:3])
    more = len(team_ids) - 3
    return f"{shown} and {more} more" if more > 0 else shown
