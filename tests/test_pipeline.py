"""screen_day splits the day between the solver and the cases kept off the road."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from dispatch import io
from dispatch.compliance import load_policy, read_history
from dispatch.model import Problem, Reason
from dispatch.pipeline import screen_day

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"


@pytest.fixture(scope="module")
def sample() -> Problem:
    cases = io.read_cases(SAMPLE / "cases.csv").items
    collectors = io.read_collectors(SAMPLE / "collectors.csv").items
    return Problem(dt.date(2026, 12, 1), "Europe/Helsinki", cases, collectors)


def test_without_policy_or_triage_the_solver_gets_every_case(sample):
    screening = screen_day(sample)
    assert screening.day == sample
    assert screening.held_back == ()
    assert screening.audit is None


@pytest.mark.parametrize("use_triage", [False, True])
def test_every_case_goes_to_the_solver_or_is_held_back_with_a_rule(sample, use_triage):
    screening = screen_day(
        sample,
        policy=load_policy(SAMPLE / "policy.yaml"),
        history=read_history(SAMPLE / "visit_history.csv"),
        use_triage=use_triage,
    )
    solver_ids = [c.id for c in screening.day.cases]
    held_ids = [u.case_id for u in screening.held_back]
    assert sorted(solver_ids + held_ids) == sorted(c.id for c in sample.cases)
    reasons = {u.reason for u in screening.held_back}
    # The sample history closes C-040 (paid) and holds C-025 (moved) before triage and policy.
    expected = {Reason.POLICY_EXCLUDED, Reason.CASE_CLOSED, Reason.ADDRESS_UNVERIFIED}
    assert reasons == expected | ({Reason.NOT_FOR_FIELD} if use_triage else set())
    held = {u.case_id: u.reason for u in screening.held_back}
    assert held["C-040"] is Reason.CASE_CLOSED and held["C-025"] is Reason.ADDRESS_UNVERIFIED
    assert all(u.detail.split(":")[0].isupper() for u in screening.held_back)
    # The policy only ever narrows a case's windows.
    for case in screening.day.cases:
        original = sample.case(case.id)
        for window in case.windows:
            assert any(
                w.start_s <= window.start_s and window.end_s <= w.end_s for w in original.windows
            )


def test_a_policy_crew_size_reaches_every_case_and_the_solver_honours_it(sample):
    from dispatch.matrix import build_matrices
    from dispatch.model import Crew
    from dispatch.network import load_networks
    from dispatch.policies import parse_policy
    from dispatch.solve import SolveParams, solve

    text = (SAMPLE / "policy.yaml").read_text().replace("min_crew: 1", "min_crew: 2")
    policy = parse_policy(text, source="two-person.yaml")
    # Two walkers with the same lunch form the only crew; everyone else works alone.
    walkers = [k.id for k in sample.collectors if k.mode.value == "walk"][1:3]
    day = dataclasses.replace(sample, crews=(Crew("CREW-1", tuple(walkers)),))
    screening = screen_day(day, policy=policy)
    # The policy's size is a floor: C-118, which needs three, keeps its own.
    assert {c.id: c.min_crew for c in screening.day.cases if c.min_crew != 2} == {"C-118": 3}
    matrices = build_matrices(screening.day, load_networks(None, screening.day.modes()))
    plan = solve(screening.day, matrices, params=SolveParams(time_limit_s=2))
    assert plan.routes, "the crew serves some cases"
    for route in plan.routes:
        if route.stops:
            assert set(route.members) == set(walkers)


@pytest.fixture(scope="module")
def walkers_day(sample) -> Problem:
    """The sample's walkers and the cases they can serve alone, without windows to wait for."""
    walkers = tuple(k for k in sample.collectors if k.mode.value == "walk")
    cases = tuple(
        c
        for c in sample.cases
        if any(k.can_serve(c) for k in walkers) and c.windows[0].duration_s > 8 * 3600
    )[:16]
    return dataclasses.replace(sample, cases=cases, collectors=walkers)


def test_plan_day_pairs_crews_and_keeps_visits_when_planning_again(walkers_day, tmp_path):
    from dispatch.explain import check_plan
    from dispatch.pipeline import plan_day
    from dispatch.solve import SolveParams

    params = SolveParams(time_limit_s=2, metaheuristic="GREEDY_DESCENT")
    first = plan_day(walkers_day, params=params, pair_crews=1, cache_dir=tmp_path)
    (crew,) = first.problem.crews
    assert first.screening.day.crews == first.problem.crews
    assert check_plan(first.screening.day, first.matrices, first.plan) == []
    crew_route = first.plan.route_of(crew.member_ids[0])
    assert crew_route is not None and crew_route.members == crew.member_ids
    # Each member has an itinerary of the crew's route.
    assert {it.collector.id for it in first.itineraries if it.route is crew_route} == set(
        crew.member_ids
    )

    # Planning again, keeping every visit of the first plan: each route keeps its order.
    assert sum(len(r.stops) for r in first.plan.routes) >= 8
    again = plan_day(
        dataclasses.replace(walkers_day, crews=first.problem.crews),
        params=params,
        keep=first.plan,
        cache_dir=tmp_path,
    )
    for route in first.plan.routes:
        kept = again.plan.route_of(route.collector_id)
        assert kept is not None
        assert [c for c in kept.case_ids if c in route.case_ids] == list(route.case_ids)
