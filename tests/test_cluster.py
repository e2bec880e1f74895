from dataclasses import replace

import numpy as np
import pytest
from synthetic_days import (
    QUICK,
    make_case,
    make_collector,
    make_matrices,
    make_problem,
    planar,
    rules_day,
)

from dispatch.cluster import (
    SplitParams,
    Territory,
    check_territories,
    combine_reasons,
    merge_plans,
    nearest_other_territory,
    plan_cost_cents,
    sliced_matrices,
    split_day,
    territory_problem,
)
from dispatch.explain import ViolationCode, check_plan
from dispatch.model import Plan, Reason, Unassigned
from dispatch.solve import solve


def test_split_covers_every_case_and_collector_once_in_compact_balanced_territories() -> None:
    problem = rules_day(240, 24, seed=4, size_m=6000)
    territories = split_day(problem, params=SplitParams(max_cases=60))

    assert len(territories) == 4
    case_ids = [c for t in territories for c in t.case_ids]
    collector_ids = [k for t in territories for k in t.collector_ids]
    assert sorted(case_ids) == sorted(c.id for c in problem.cases)
    assert sorted(collector_ids) == sorted(k.id for k in problem.collectors)
    assert all(len(t.case_ids) <= 66 for t in territories)
    # Workload (service time plus travel allowance) is even to within a few visits.
    workload = [sum(problem.case(c).service_s + 600 for c in t.case_ids) for t in territories]
    assert max(workload) / min(workload) < 1.15
    # Compact: a case is nearer its own territory's centre than most others are.
    centres = {
        t.id: np.mean([planar(problem.case(c).location) for c in t.case_ids], axis=0)
        for t in territories
    }
    closer = [
        np.hypot(*(planar(problem.case(c).location) - centres[t.id]))
        <= min(np.hypot(*(planar(problem.case(c).location) - centres[o])) for o in centres) + 1e-6
        for t in territories
        for c in t.case_ids
    ]
    assert np.mean(closer) > 0.85
    assert all(set(t.neighbours) <= set(centres) - {t.id} for t in territories)


def test_crews_stay_whole_and_crew_cases_go_where_a_crew_works() -> None:
    problem = rules_day(200, 20, seed=6, size_m=6000, crews=2)
    territories = split_day(problem, params=SplitParams(max_cases=50))
    assert len(territories) == 4
    for crew in problem.crews:
        homes = {t.id for t in territories for m in crew.member_ids if m in t.collector_ids}
        assert len(homes) == 1
    for territory in territories:
        part = territory_problem(problem, territory)
        for case in part.cases:
            assert any(team.can_serve(case) for team in part.teams()), (territory.id, case.id)


def test_every_case_has_a_qualified_team_in_its_territory() -> None:
    # The only legal collector lives in the far east; legal cases are everywhere.
    cases = [
        make_case(f"C{i:02d}", x, y, skills={"legal"} if i % 10 == 0 else ())
        for i, (x, y) in enumerate(
            (x, y) for x in range(0, 10_000, 1000) for y in range(0, 4000, 1000)
        )
    ]
    collectors = [make_collector(f"K{k}", 1000 * k, 2000) for k in range(9)]
    collectors.append(make_collector("LEGAL", 9500, 2000, skills={"legal"}))
    problem = make_problem(cases, collectors)
    territories = split_day(problem, params=SplitParams(max_cases=10))
    for territory in territories:
        part = territory_problem(problem, territory)
        for case in part.cases:
            assert any(team.can_serve(case) for team in part.teams()), (territory.id, case.id)


def test_a_case_nobody_can_serve_stays_put_and_is_explained() -> None:
    problem = rules_day(60, 8, seed=2)
    unservable = make_case("DIVER", 100, 100, skills={"diving"})
    problem = replace(problem, cases=(*problem.cases, unservable))
    territories = split_day(problem, params=SplitParams(max_cases=20))
    assert sum("DIVER" in t.case_ids for t in territories) == 1
    (home,) = [t for t in territories if "DIVER" in t.case_ids]
    part = territory_problem(problem, home)
    plan = solve(part, make_matrices(part), params=QUICK)
    (entry,) = [u for u in plan.unassigned if u.case_id == "DIVER"]
    assert entry.reason is Reason.NO_QUALIFIED_COLLECTOR


def test_a_small_day_is_one_territory() -> None:
    problem = rules_day(30, 4, seed=1)
    (only,) = split_day(problem, params=SplitParams(max_cases=50))
    assert only.case_ids == tuple(c.id for c in problem.cases)
    assert territory_problem(problem, only) == problem


def test_sliced_matrices_are_the_full_matrices_restricted_to_the_part() -> None:
    problem = rules_day(80, 10, seed=3)
    full = make_matrices(problem)
    territories = split_day(problem, params=SplitParams(max_cases=30))
    part = territory_problem(problem, territories[1])
    sliced = sliced_matrices(problem, full)(part)
    direct = make_matrices(part)
    assert set(sliced) == set(part.modes())
    for mode, matrix in sliced.items():
        assert (matrix.duration_s == direct[mode].duration_s).all()


def test_merged_plan_of_territories_passes_both_checks_and_costs_about_a_single_solve() -> None:
    problem = rules_day(150, 16, seed=8, size_m=5000, crews=1)
    full = make_matrices(problem)
    territories = split_day(problem, params=SplitParams(max_cases=50))
    source = sliced_matrices(problem, full)
    plans = []
    for territory in territories:
        part = territory_problem(problem, territory)
        plans.append(solve(part, source(part), params=QUICK))
    merged = merge_plans(problem, plans)

    assert check_plan(problem, full, merged) == []
    assert check_territories(problem, merged, territories, source) == []
    single = solve(problem, full, params=QUICK)
    rate = QUICK.travel_cost_cents_per_hour
    split_cost = plan_cost_cents(problem, merged, travel_cost_cents_per_hour=rate)
    single_cost = plan_cost_cents(problem, single, travel_cost_cents_per_hour=rate)
    # Borders cost something, but not much on a day this size.
    assert split_cost <= single_cost * 1.25


def test_check_territories_reports_a_lost_and_a_doubled_case() -> None:
    problem = rules_day(90, 10, seed=5)
    full = make_matrices(problem)
    territories = split_day(problem, params=SplitParams(max_cases=30))
    source = sliced_matrices(problem, full)
    parts = [territory_problem(problem, t) for t in territories]
    merged = merge_plans(problem, [solve(p, source(p), params=QUICK) for p in parts])
    routed = next(r for r in merged.routes if r.stops)
    lost = Plan(
        merged.routes,
        tuple(u for u in merged.unassigned if u.case_id != merged.unassigned[0].case_id),
    )
    codes = {v.code for v in check_territories(problem, lost, territories, source)}
    assert ViolationCode.MISSING_CASE in codes
    doubled = Plan(
        merged.routes,
        (*merged.unassigned, Unassigned(routed.stops[0].case_id, Reason.CAPACITY_EXHAUSTED)),
    )
    codes = {v.code for v in check_territories(problem, doubled, territories, source)}
    assert ViolationCode.UNASSIGNED_AND_ROUTED in codes


def test_combined_reason_is_the_one_true_for_both_territories() -> None:
    home = Unassigned("C1", Reason.NO_FEASIBLE_TIME, "nobody here reaches it in time")
    there = Unassigned("C1", Reason.CAPACITY_EXHAUSTED, "no room on K7's route")
    combined = combine_reasons(home, there, "T3")
    assert combined.reason is Reason.CAPACITY_EXHAUSTED
    assert "nobody here" in combined.detail and "T3: no room" in combined.detail
    worth = Unassigned("C1", Reason.NOT_WORTH_TRAVEL, "too far for its value")
    assert combine_reasons(there, worth, "T2").reason is Reason.NOT_WORTH_TRAVEL
    off = Unassigned("C1", Reason.OFF_NETWORK, "off the walking network")
    assert combine_reasons(off, home, "T2").reason is Reason.NO_FEASIBLE_TIME


def test_nearest_other_territory_is_across_the_nearest_border() -> None:
    cases = [make_case(f"W{i}", 100 * i, 0) for i in range(5)]
    cases += [make_case(f"E{i}", 2000 + 100 * i, 0) for i in range(5)]
    cases += [make_case(f"N{i}", 100 * i, 5000) for i in range(5)]
    problem = make_problem(cases, [make_collector("K1"), make_collector("K2")])
    territories = (
        Territory("W", tuple(f"W{i}" for i in range(5)), ("K1",)),
        Territory("E", tuple(f"E{i}" for i in range(5)), ("K2",)),
        Territory("N", tuple(f"N{i}" for i in range(5)), ()),
    )
    found = nearest_other_territory(problem, territories, ["W4", "E0", "N2"])
    assert found == {"W4": "E", "E0": "W", "N2": "W"}


def test_split_params_are_validated() -> None:
    with pytest.raises(ValueError, match="max_cases 0 must be at least 1"):
        SplitParams(max_cases=0)
