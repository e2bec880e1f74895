"""Territories of large days: a workload-balanced geographic split, collectors per territory.

A day with more cases than one routing model handles well is split into
territories (``split_day``): compact areas of similar workload, each with the
teams that live nearest, such that every case's skills and crew size are held by
a team of its own territory whenever some team on duty holds them. Each
territory is an ordinary ``Problem`` (``territory_problem``) solved on its own;
``merge_plans`` joins the plans and ``combine_reasons`` says why a case is still
unassigned after its own territory and a neighbour both tried it.
``check_territories`` checks a merged plan territory by territory, so that a
day too large for one matrix is still checked in full.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from dispatch.errors import InvalidProblemError
from dispatch.explain import Violation, ViolationCode, check_plan
from dispatch.matrix import TravelMatrix, build_matrices
from dispatch.model import Case, Location, Plan, Problem, Reason, Team, TravelMode, Unassigned
from dispatch.network import RoadNetwork

# Builds the travel matrices of a problem (one per mode its collectors use).
MatrixSource = Callable[[Problem], Mapping[TravelMode, TravelMatrix]]

# Metres per degree of latitude (mean Earth radius 6,371,009 m).
_M_PER_DEG = 111_195.0

# Why a case is off the road, from the narrowest claim to the widest: when two groups
# of teams each give a reason, the reason for both groups together is the later one
# (a case that fits somewhere is no longer unreachable, and so on).
_REASON_ORDER = (
    Reason.NO_QUALIFIED_COLLECTOR,
    Reason.NO_CREW,
    Reason.OFF_NETWORK,
    Reason.UNREACHABLE,
    Reason.NO_FEASIBLE_TIME,
    Reason.APPOINTMENT_IMPOSSIBLE,
    Reason.CAPACITY_EXHAUSTED,
    Reason.NOT_WORTH_TRAVEL,
)


@dataclass(frozen=True)
class Territory:
    """An area of the day solved on its own: its cases and the collectors who work it.

    ``collector_ids`` lists whole teams (every member of a crew). ``neighbours``
    are the ids of the territories nearest to it, nearest first.
    """

    id: str
    case_ids: tuple[str, ...]
    collector_ids: tuple[str, ...]
    neighbours: tuple[str, ...] = ()


@dataclass(frozen=True)
class SplitParams:
    """How ``split_day`` cuts a day into territories.

    Parameters
    ----------
    max_cases
        Most cases in one territory (>= 1). Default 300: OR-Tools finds good
        routes for a few hundred visits within seconds and degrades above about
        a thousand.
    travel_allowance_s
        Travel time counted per visit when weighing workload, in seconds (>= 0),
        on top of the visit's service time. Default 600.
    neighbours
        How many nearest territories each territory lists (>= 0). Default 3.
    """

    max_cases: int = 300
    travel_allowance_s: int = 600
    neighbours: int = 3

    def __post_init__(self) -> None:
        if self.max_cases < 1:
            raise InvalidProblemError(f"max_cases {self.max_cases} must be at least 1")
        if self.travel_allowance_s < 0:
            raise InvalidProblemError(
                f"travel_allowance_s {self.travel_allowance_s} must not be negative"
            )
        if self.neighbours < 0:
            raise InvalidProblemError(f"neighbours {self.neighbours} must not be negative")


@dataclass
class _Split:
    """Work in progress: the territory of each case and of each team."""

    case_part: np.ndarray
    team_part: np.ndarray
    centres: np.ndarray
    teams: tuple[Team, ...] = field(repr=False)


def split_day(problem: Problem, *, params: SplitParams = SplitParams()) -> tuple[Territory, ...]:
    """Split a day into territories of at most ``params.max_cases`` cases.

    Cases are cut by recursive bisection along the wider side of their extent,
    each cut at the workload median (service time plus a travel allowance), so
    that territories are compact and of similar workload. Teams (a collector
    alone or a crew, see ``Problem.teams``) are then given to territories in
    proportion to workload, each to a territory near its start and end points
    (a minimum-cost assignment). Finally every case needing skills or a crew
    that no team of its territory has gets one: a qualified team is moved in
    from the nearest territory that can spare it, or, failing that, the case
    moves to the nearest territory that has one. A case that no team on duty
    could serve stays where it is (solving it gives the true reason).

    Returns
    -------
    tuple of Territory
        In a stable order; every case and every collector is in exactly one.
        A day that needs no split is one territory with everything.
    """
    teams = problem.teams()
    if not problem.cases or not teams:
        return (_whole(problem),)
    parts = min(math.ceil(len(problem.cases) / params.max_cases), len(teams))
    if parts <= 1:
        return (_whole(problem),)
    xy = _planar(problem, [c.location for c in problem.cases])
    workload = np.array([c.service_s + params.travel_allowance_s for c in problem.cases], float)
    case_part = np.empty(len(problem.cases), dtype=np.int64)
    _bisect(xy, workload, np.arange(len(xy)), parts, 0, case_part)
    centres = np.array([np.average(xy[case_part == p], axis=0) for p in range(parts)])
    split = _Split(
        case_part, _assign_teams(problem, teams, workload, case_part, centres), centres, teams
    )
    _give_skills(problem, split)
    return _territories(problem, split, params.neighbours)


def territory_problem(problem: Problem, territory: Territory) -> Problem:
    """The day restricted to one territory: its cases, its collectors and their crews."""
    collectors = set(territory.collector_ids)
    cases = set(territory.case_ids)
    return replace(
        problem,
        cases=tuple(c for c in problem.cases if c.id in cases),
        collectors=tuple(k for k in problem.collectors if k.id in collectors),
        crews=tuple(w for w in problem.crews if w.member_ids[0] in collectors),
    )


def sliced_matrices(problem: Problem, matrices: Mapping[TravelMode, TravelMatrix]) -> MatrixSource:
    """A ``MatrixSource`` that cuts any part of ``problem`` out of its full matrices."""

    def cut(part: Problem) -> dict[TravelMode, TravelMatrix]:
        rows = point_rows(problem, part)
        return {
            mode: TravelMatrix(
                mode=mode,
                duration_s=matrices[mode].duration_s[np.ix_(rows, rows)],
                distance_m=matrices[mode].distance_m[np.ix_(rows, rows)],
                nodes=matrices[mode].nodes[rows],
                snap_m=matrices[mode].snap_m[rows],
            )
            for mode in part.modes()
        }

    return cut


def built_matrices(
    networks: Mapping[TravelMode, RoadNetwork], *, cache_dir: Path | None = None
) -> MatrixSource:
    """A ``MatrixSource`` that builds each part's matrices from the road networks."""

    def build(part: Problem) -> dict[TravelMode, TravelMatrix]:
        return build_matrices(part, networks, cache_dir=cache_dir)

    return build


def point_rows(problem: Problem, part: Problem) -> np.ndarray:
    """Matrix rows of ``problem`` for each point of ``part`` (in ``part.points()`` order)."""
    positions = {k.id: p for p, k in enumerate(problem.collectors)}
    cases = [problem.case_index(c.id) for c in part.cases]
    starts = [problem.start_index(positions[k.id]) for k in part.collectors]
    ends = [problem.end_index(positions[k.id]) for k in part.collectors]
    return np.array(cases + starts + ends, dtype=np.int64)


def merge_plans(problem: Problem, plans: Iterable[Plan]) -> Plan:
    """Join territory plans into one plan of the day, cases in ``problem`` order.

    Routes keep the order of ``problem.teams()``; unassigned cases the order of
    ``problem.cases``; objective and solve time add up, and so do the numeric
    ``stats`` that count things.
    """
    routes = {}
    unassigned = {}
    objective = 0
    solve_time_s = 0.0
    stats: dict[str, float] = {}
    for plan in plans:
        routes.update({r.collector_id: r for r in plan.routes})
        unassigned.update({u.case_id: u for u in plan.unassigned})
        objective += plan.objective
        solve_time_s += plan.solve_time_s
        for name, value in plan.stats.items():
            stats[name] = stats.get(name, 0.0) + value
    return Plan(
        routes=tuple(routes[t.id] for t in problem.teams() if t.id in routes),
        unassigned=tuple(unassigned[c.id] for c in problem.cases if c.id in unassigned),
        objective=objective,
        solve_time_s=solve_time_s,
        stats=stats,
    )


def combine_reasons(home: Unassigned, elsewhere: Unassigned, territory_id: str) -> Unassigned:
    """Why a case is unassigned after its own territory and a neighbour both tried it.

    The reason that holds for both groups of teams together is the wider of
    the two (see ``_REASON_ORDER``): for example a case no team at home could
    reach in time, but for which a neighbour's routes had no room left, is
    ``CAPACITY_EXHAUSTED``. The detail keeps both sentences.
    """
    reason = max(home.reason, elsewhere.reason, key=_REASON_ORDER.index)
    detail = f"{home.detail}; in neighbouring territory {territory_id}: {elsewhere.detail}"
    return Unassigned(home.case_id, reason, detail)


def check_territories(
    problem: Problem,
    plan: Plan,
    territories: Sequence[Territory],
    matrices_for: MatrixSource,
    *,
    max_snap_m: float = 300.0,
) -> list[Violation]:
    """Check a merged plan of a whole day with one matrix per territory.

    Each territory's routes, with every case on them and every unassigned case
    of the territory, are checked by ``explain.check_plan`` on matrices of that
    part alone; cases missing from the plan, or unknown to the day, are
    reported as the full check would. Equivalent to ``check_plan`` on the whole
    day for a plan whose routes each stay within their team's territory's
    matrices, without a matrix of the whole day.
    """
    violations: list[Violation] = []
    home = {c: t.id for t in territories for c in t.case_ids}
    team_home = {k: t.id for t in territories for k in t.collector_ids}
    known = {c.id for c in problem.cases}
    routes_of: dict[str, list] = {t.id: [] for t in territories}
    cases_of: dict[str, set[str]] = {t.id: set() for t in territories}
    unassigned_of: dict[str, list[Unassigned]] = {t.id: [] for t in territories}
    for route in plan.routes:
        where = team_home.get(route.collector_id)
        if where is None:
            violations.append(
                Violation(
                    ViolationCode.UNKNOWN_COLLECTOR,
                    f"route of unknown collector {route.collector_id}",
                    collector_id=route.collector_id,
                )
            )
            continue
        routes_of[where].append(route)
        cases_of[where].update(s.case_id for s in route.stops if s.case_id in known)
    for entry in plan.unassigned:
        if entry.case_id in home:
            unassigned_of[home[entry.case_id]].append(entry)
            cases_of[home[entry.case_id]].add(entry.case_id)
    for case_id in [s.case_id for r in plan.routes for s in r.stops] + [
        u.case_id for u in plan.unassigned
    ]:
        if case_id not in known:
            violations.append(
                Violation(
                    ViolationCode.UNKNOWN_CASE,
                    f"case {case_id} is not in the problem",
                    case_id=case_id,
                )
            )
    seen = set().union(*cases_of.values()) if cases_of else set()
    for case in problem.cases:
        if case.id not in seen:
            violations.append(
                Violation(
                    ViolationCode.MISSING_CASE,
                    f"case {case.id} is neither on a route nor unassigned",
                    case_id=case.id,
                )
            )
    owners: dict[str, list[str]] = {}
    for territory_id, case_ids in cases_of.items():
        for case_id in case_ids:
            owners.setdefault(case_id, []).append(territory_id)
    for territory in territories:
        collectors = set(territory.collector_ids)
        ids = cases_of[territory.id]
        part = replace(
            problem,
            cases=tuple(c for c in problem.cases if c.id in ids),
            collectors=tuple(k for k in problem.collectors if k.id in collectors),
            crews=tuple(w for w in problem.crews if w.member_ids[0] in collectors),
        )
        part_plan = Plan(tuple(routes_of[territory.id]), tuple(unassigned_of[territory.id]))
        found = check_plan(part, matrices_for(part), part_plan, max_snap_m=max_snap_m)
        # A case routed or listed in another territory is not missing from this one.
        violations.extend(v for v in found if v.code != ViolationCode.MISSING_CASE)
    for case_id, holders in owners.items():
        if len(holders) > 1:
            violations.append(
                Violation(
                    ViolationCode.DUPLICATE_VISIT,
                    f"case {case_id} appears in territories {', '.join(sorted(holders))}",
                    case_id=case_id,
                )
            )
    return violations


def plan_cost_cents(problem: Problem, plan: Plan, *, travel_cost_cents_per_hour: int) -> int:
    """Travel cost of the routes plus the value of the unassigned cases, in cents.

    The measure both a decomposed and a single solve minimise (without the
    optional span, balance and continuity prices), to compare the two.
    """
    travel_s = sum(r.travel_time_s for r in plan.routes)
    lost = sum(problem.case(u.case_id).value for u in plan.unassigned)
    return round(travel_s * travel_cost_cents_per_hour / 3600) + lost


def nearest_other_territory(
    problem: Problem, territories: Sequence[Territory], case_ids: Iterable[str]
) -> dict[str, str]:
    """For each case, the territory (other than its own) with the case nearest to it."""
    home = {c: t.id for t in territories for c in t.case_ids}
    ids = [c.id for c in problem.cases if c.id in home]
    wanted = [c for c in case_ids if c in home]
    if len({home[c] for c in ids}) < 2 or not wanted:
        return {}
    xy = _planar(problem, [problem.case(c).location for c in ids])
    labels = np.array([home[c] for c in ids], dtype=object)
    tree = cKDTree(xy)
    where = _planar(problem, [problem.case(c).location for c in wanted])
    found: dict[str, str] = {}
    k = min(len(ids), 16)
    while len(found) < len(wanted):
        _, near = tree.query(where, k=k)
        near = near.reshape(len(wanted), -1)
        for row, case_id in enumerate(wanted):
            if case_id in found:
                continue
            for other in labels[near[row]]:
                if other != home[case_id]:
                    found[case_id] = str(other)
                    break
        if k == len(ids):
            break
        k = min(len(ids), k * 4)
    return found


def _whole(problem: Problem) -> Territory:
    return Territory(
        "T1", tuple(c.id for c in problem.cases), tuple(k.id for k in problem.collectors)
    )


def _planar(problem: Problem, locations: Sequence[Location]) -> np.ndarray:
    """Metres east and north of the day's mean point (equirectangular; fine for a city)."""
    everything = [c.location for c in problem.cases] + [k.start for k in problem.collectors]
    lat0 = float(np.mean([p.lat for p in everything]))
    lon0 = float(np.mean([p.lon for p in everything]))
    scale = math.cos(math.radians(lat0))
    lat = np.array([p.lat for p in locations], float)
    lon = np.array([p.lon for p in locations], float)
    return np.column_stack(((lon - lon0) * _M_PER_DEG * scale, (lat - lat0) * _M_PER_DEG))


def _bisect(
    xy: np.ndarray, weight: np.ndarray, members: np.ndarray, parts: int, first: int, out: np.ndarray
) -> None:
    """Recursive coordinate bisection into ``parts`` parts numbered from ``first``."""
    if parts == 1:
        out[members] = first
        return
    left_parts = parts // 2
    spread = xy[members].max(axis=0) - xy[members].min(axis=0)
    axis = int(np.argmax(spread))
    order = members[np.argsort(xy[members, axis], kind="stable")]
    cumulative = np.cumsum(weight[order])
    cut = int(np.searchsorted(cumulative, cumulative[-1] * left_parts / parts))
    # Every part keeps at least one case.
    cut = min(max(cut + 1, left_parts), len(order) - (parts - left_parts))
    _bisect(xy, weight, order[:cut], left_parts, first, out)
    _bisect(xy, weight, order[cut:], parts - left_parts, first + left_parts, out)


def _team_capacity_s(team: Team, mean_visit_s: float) -> float:
    capacity_s = float(team.shift.duration_s - team.break_s)
    if team.max_visits is not None:
        capacity_s = min(capacity_s, team.max_visits * mean_visit_s)
    return max(capacity_s, 1.0)


def _assign_teams(
    problem: Problem,
    teams: Sequence[Team],
    workload: np.ndarray,
    case_part: np.ndarray,
    centres: np.ndarray,
) -> np.ndarray:
    """Give each team a territory: shares by workload, nearest homes by min-cost assignment."""
    parts = len(centres)
    demand = np.bincount(case_part, weights=workload, minlength=parts)
    capacity = np.array([_team_capacity_s(t, float(workload.mean())) for t in teams])
    # Slots per territory in proportion to workload (largest remainders), at least one each.
    share = demand / demand.sum() * len(teams)
    slots = np.maximum(1, np.floor(share)).astype(int)
    while slots.sum() > len(teams):
        slots[int(np.argmax(slots - share))] -= 1
    while slots.sum() < len(teams):
        slots[int(np.argmax(share - slots))] += 1
    slot_part = np.repeat(np.arange(parts), slots)
    starts = _planar(problem, [t.members[0].start for t in teams])
    ends = _planar(problem, [t.members[0].end for t in teams])
    cost = np.hypot(*(starts[:, None, :] - centres[slot_part][None, :, :]).transpose(2, 0, 1))
    cost += np.hypot(*(ends[:, None, :] - centres[slot_part][None, :, :]).transpose(2, 0, 1))
    # Large teams and long shifts go where the work is: cheaper per unit of capacity.
    cost = cost / capacity[:, None] * capacity.mean()
    rows, cols = linear_sum_assignment(cost)
    team_part = np.empty(len(teams), dtype=np.int64)
    team_part[rows] = slot_part[cols]
    return team_part


def _needs(case: Case) -> tuple[frozenset[str], int]:
    return case.skills, case.min_crew


def _serves(team: Team, need: tuple[frozenset[str], int]) -> bool:
    return need[0] <= team.skills and team.size >= need[1]


def _give_skills(problem: Problem, split: _Split) -> None:
    """Make sure each territory has a team for every skill set and crew size its cases need."""
    teams = split.teams
    parts = len(split.centres)
    special = {_needs(c) for c in problem.cases if c.skills or c.min_crew > 1}
    for need in sorted(special, key=lambda n: (sorted(n[0]), n[1])):
        qualified = [i for i, t in enumerate(teams) if _serves(t, need)]
        if not qualified:
            continue
        for part in range(parts):
            cases = [
                i
                for i, c in enumerate(problem.cases)
                if split.case_part[i] == part and _needs(c) == need
            ]
            if not cases or any(split.team_part[i] == part for i in qualified):
                continue
            moved = _borrow_team(problem, split, part, need, qualified)
            if not moved:
                _move_cases(split, cases, need, qualified)


def _borrow_team(
    problem: Problem,
    split: _Split,
    part: int,
    need: tuple[frozenset[str], int],
    qualified: Sequence[int],
) -> bool:
    """Move the nearest spare qualified team into ``part``; swap one back if it can."""
    teams = split.teams
    distance = np.hypot(*(split.centres - split.centres[part]).T)
    for other in np.argsort(distance):
        if other == part:
            continue
        for candidate in qualified:
            if split.team_part[candidate] != other or not _spare(problem, split, candidate):
                continue
            split.team_part[candidate] = part
            # Send back a team this territory can spare, so that team counts stay even.
            for back, team in enumerate(teams):
                if (
                    back != candidate
                    and split.team_part[back] == part
                    and not _serves(team, need)
                    and _spare(problem, split, back)
                ):
                    split.team_part[back] = other
                    break
            return True
    return False


def _spare(problem: Problem, split: _Split, index: int) -> bool:
    """Whether a team's territory keeps a team for every need of its cases without it."""
    part = split.team_part[index]
    others = [t for i, t in enumerate(split.teams) if split.team_part[i] == part and i != index]
    if not others:
        return False
    needs = {_needs(c) for i, c in enumerate(problem.cases) if split.case_part[i] == part}
    return all(any(_serves(t, n) for t in others) for n in needs if n[0] or n[1] > 1)


def _move_cases(
    split: _Split, cases: Sequence[int], need: tuple[frozenset[str], int], qualified: Sequence[int]
) -> None:
    """Move cases to the nearest territory that has a team able to serve them."""
    served = {int(split.team_part[i]) for i in qualified}
    for i in cases:
        here = split.centres[split.case_part[i]]
        split.case_part[i] = min(served, key=lambda p: float(np.hypot(*(split.centres[p] - here))))


def _territories(problem: Problem, split: _Split, neighbours: int) -> tuple[Territory, ...]:
    parts = len(split.centres)
    tree = cKDTree(split.centres)
    k = min(parts, neighbours + 1)
    _, near = tree.query(split.centres, k=k)
    near = np.asarray(near).reshape(parts, k)
    territories = []
    for part in range(parts):
        collectors = tuple(
            member.id
            for i, team in enumerate(split.teams)
            if split.team_part[i] == part
            for member in team.members
        )
        cases = tuple(c.id for i, c in enumerate(problem.cases) if split.case_part[i] == part)
        if not cases and not collectors:
            continue
        named = tuple(f"T{int(p) + 1}" for p in near[part] if p != part)
        territories.append(Territory(f"T{part + 1}", cases, collectors, named))
    # A territory whose collectors all went elsewhere gives its cases to its nearest one.
    return _adopt_orphans(problem, tuple(territories))


def _adopt_orphans(problem: Problem, territories: tuple[Territory, ...]) -> tuple[Territory, ...]:
    staffed = {t.id for t in territories if t.collector_ids}
    kept = {t.id: t for t in territories if t.collector_ids}
    for territory in territories:
        if territory.collector_ids:
            continue
        heir = next((n for n in territory.neighbours if n in staffed), next(iter(staffed)))
        kept[heir] = replace(kept[heir], case_ids=kept[heir].case_ids + territory.case_ids)
    order = {c.id: i for i, c in enumerate(problem.cases)}
    return tuple(
        replace(
            t,
            case_ids=tuple(sorted(t.case_ids, key=order.__getitem__)),
            neighbours=tuple(n for n in t.neighbours if n in staffed),
        )
        for t in kept.values()
    )
