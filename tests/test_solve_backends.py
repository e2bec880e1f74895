"""Search backends behind solve(): PyVRP, OR-Tools, the automatic choice and the portfolio."""

from __future__ import annotations

import dataclasses
import os

import pytest
from synthetic_days import (
    BIKE,
    QUICK,
    WALK,
    hm,
    loaded_day,
    make_case,
    make_collector,
    make_matrices,
    make_problem,
    reasons,
    route_loads,
    rules_day,
    solve_checked,
)

from dispatch.errors import InvalidProblemError
from dispatch.model import Crew, Plan, Reason
from dispatch.solve import SolveParams, solve

pytest.importorskip("pyvrp", reason="the pyvrp extra is not installed")

# PyVRP stops on its iteration count long before the clock: the plan is repeatable.
PYVRP = SolveParams(time_limit_s=30.0, backend="pyvrp", iteration_limit=300)
TWO_CORES = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="a portfolio needs two CPU cores"
)


def backend_of(plan: Plan) -> str:
    (name,) = [k.removeprefix("backend_") for k in plan.stats if k.startswith("backend_")]
    return name


def unfit(plan: Plan) -> set[str]:
    return {k.removeprefix("pyvrp_unfit_") for k in plan.stats if k.startswith("pyvrp_unfit_")}


@pytest.mark.parametrize("seed", [3, 4])
def test_a_pyvrp_plan_keeps_every_rule_it_models(seed):
    # Split windows, skills, visit caps that bind, crews, appointments and preferences;
    # no breaks, which PyVRP cannot plan.
    problem = rules_day(40, 6, seed=seed, crews=1, lunch=False, max_visits=5)
    matrices = make_matrices(problem, uphill=0.1)
    plan = solve_checked(problem, matrices, PYVRP)
    assert backend_of(plan) == "pyvrp"
    assert plan.stats["stopped_by_time_limit"] == 0
    assert plan.stats["solutions_found"] >= 1
    assert plan.stats["inserted_after_search"] == 0
    assert len(plan.assigned_case_ids()) >= 20
    legal = {c.id for c in problem.cases if "legal" in c.skills}
    crewed = {c.id for c in problem.cases if c.min_crew > 1}
    for route in plan.routes:
        team = problem.team(route.collector_id)
        assert len(route.stops) <= (team.max_visits or len(problem.cases))
        if "legal" not in team.skills:
            assert not legal & set(route.case_ids)
        if team.size < 2:
            assert not crewed & set(route.case_ids)
    kept = {c.id for c in problem.cases if c.appointment_s is not None} - set(reasons(plan))
    assert kept <= plan.assigned_case_ids()


def test_pyvrp_visits_a_split_window_case_in_its_later_window():
    # A opens 08:00-08:30 and 11:00-11:30 but is 40 minutes' walk away; B is open 09:00-10:00
    # only. Visiting A first would start it at 11:00 and miss B, so B must come first.
    problem = make_problem(
        [
            make_case("A", 3000, 0, spans=("08:00-08:30", "11:00-11:30")),
            make_case("B", 3000, 300, spans=("09:00-10:00",)),
        ],
        [make_collector("K1")],
    )
    plan = solve_checked(problem, make_matrices(problem), PYVRP)
    route = plan.route_of("K1")
    assert route is not None
    assert route.case_ids == ("B", "A")
    assert route.stops[1].start_s == hm("11:00")


def test_pyvrp_keeps_the_valuable_cases_when_the_visit_cap_binds():
    values = [500, 90_000, 1_000, 70_000, 2_000, 80_000]
    cases = [
        make_case(f"C{i}", 100 * (i + 1), 100 * (i % 2), value=v) for i, v in enumerate(values)
    ]
    problem = make_problem(cases, [make_collector("K1", max_visits=3)])
    plan = solve_checked(problem, make_matrices(problem), PYVRP)
    assert set(plan.routes[0].case_ids) == {"C1", "C3", "C5"}
    assert set(reasons(plan).values()) == {Reason.CAPACITY_EXHAUSTED}


def test_pyvrp_gives_skilled_and_unreachable_cases_to_who_can_make_them():
    # The plain walker lives next to the legal cases and the island; neither is theirs.
    problem = make_problem(
        [
            make_case("LEGAL", 200, 0, skills={"legal"}),
            make_case("ISLAND", 300, 0),
            make_case("PLAIN", 250, 100),
        ],
        [
            make_collector("WALKER", 300, 50, mode=WALK),
            make_collector("LAWYER", 1500, 0, skills={"legal"}, mode=BIKE),
        ],
    )
    plan = solve_checked(problem, make_matrices(problem, cut={WALK: [1]}), PYVRP)
    lawyer = plan.route_of("LAWYER")
    assert lawyer is not None and {"LEGAL", "ISLAND"} <= set(lawyer.case_ids)
    walker = plan.route_of("WALKER")
    assert walker is None or set(walker.case_ids) <= {"PLAIN"}
    assert plan.unassigned == ()


def test_pyvrp_keeps_an_appointment_over_a_more_valuable_case():
    # One visit fits before the shift ends; the appointment is kept although it is worth less.
    problem = make_problem(
        [
            make_case("APPT", 1200, 0, value=100, appointment="08:30"),
            make_case("RICH", -1200, 0, value=90_000),
        ],
        [make_collector("K1", shift="08:00-09:00")],
    )
    plan = solve_checked(problem, make_matrices(problem), PYVRP)
    assert plan.assigned_case_ids() == {"APPT"}
    assert reasons(plan) == {"RICH": Reason.CAPACITY_EXHAUSTED}


def test_pyvrp_steers_a_case_to_its_preferred_collector():
    # K2 is a little further away, but the continuity price outweighs the extra walk.
    problem = make_problem(
        [make_case("C", 500, 0, preferred="K2")],
        [make_collector("K1", 400, 0), make_collector("K2", 800, 0)],
    )
    plan = solve_checked(problem, make_matrices(problem), PYVRP)
    assert plan.route_of("K2") is not None and plan.route_of("K1") is None
    assert plan.stats["preferences_kept"] == 1


def test_pyvrp_with_a_seed_and_an_iteration_limit_repeats_its_plan():
    problem = rules_day(40, 5, seed=8, lunch=False, max_visits=6)
    matrices = make_matrices(problem)
    first = solve_checked(problem, matrices, dataclasses.replace(PYVRP, seed=3))
    second = solve_checked(problem, matrices, dataclasses.replace(PYVRP, seed=3))
    assert first.routes == second.routes
    assert first.unassigned == second.unassigned
    assert first.objective == second.objective


def test_auto_takes_pyvrp_when_the_day_fits_it():
    problem = rules_day(20, 3, seed=2, lunch=False)
    plan = solve_checked(
        problem, make_matrices(problem), dataclasses.replace(PYVRP, backend="auto")
    )
    assert backend_of(plan) == "pyvrp"
    assert unfit(plan) == set()


def test_auto_plans_breaks_with_ortools_and_says_why():
    problem = rules_day(20, 4, seed=2, lunch=True)
    assert any(t.break_s for t in problem.teams())
    messages: list[str] = []
    auto = dataclasses.replace(PYVRP, backend="auto", time_limit_s=0.5)
    plan = solve(problem, make_matrices(problem), params=auto, on_progress=messages.append)
    assert backend_of(plan) == "ortools"
    assert unfit(plan) == {"breaks"}
    assert any("PyVRP plans no breaks" in m for m in messages)
    assert plan.stats["breaks_planned"] > 0


def test_auto_keeps_visits_in_place_with_ortools():
    problem = rules_day(20, 3, seed=2, lunch=False)
    matrices = make_matrices(problem)
    auto = dataclasses.replace(PYVRP, backend="auto", time_limit_s=0.5)
    first = solve_checked(problem, matrices, auto)
    route = first.routes[0]
    again = solve_checked(problem, matrices, auto, keep={route.collector_id: route.case_ids[:2]})
    assert backend_of(again) == "ortools"
    assert unfit(again) == {"kept_visits"}
    kept = again.route_of(route.collector_id)
    assert kept is not None
    assert [c for c in kept.case_ids if c in route.case_ids[:2]] == list(route.case_ids[:2])


def test_auto_balances_work_with_ortools():
    problem = rules_day(20, 3, seed=2, lunch=False)
    balanced = dataclasses.replace(PYVRP, backend="auto", objective="balanced", time_limit_s=0.5)
    plan = solve_checked(problem, make_matrices(problem), balanced)
    assert backend_of(plan) == "ortools"
    assert unfit(plan) == {"objective"}


def test_auto_follows_ortools_search_settings_when_they_are_given():
    problem = rules_day(20, 3, seed=2, lunch=False)
    plan = solve_checked(
        problem, make_matrices(problem), dataclasses.replace(QUICK, backend="auto")
    )
    assert backend_of(plan) == "ortools"
    assert unfit(plan) == {"ortools_settings"}


def test_asking_pyvrp_for_a_day_with_breaks_is_refused():
    problem = rules_day(10, 3, seed=2, lunch=True)
    with pytest.raises(InvalidProblemError, match="pyvrp backend cannot plan this day: PyVRP"):
        solve(problem, make_matrices(problem), params=PYVRP)


@TWO_CORES
def test_a_portfolio_keeps_the_better_of_two_strategies():
    # Greedy descent ends by itself, so each search is repeatable and the winner is known;
    # the time limit is only a safety net, wide enough for a busy machine.
    problem = rules_day(50, 5, seed=6, lunch=True, max_visits=6)
    matrices = make_matrices(problem, uphill=0.1)
    ample = dataclasses.replace(QUICK, time_limit_s=60.0)
    alone = [
        solve_checked(problem, matrices, dataclasses.replace(ample, first_solution=strategy))
        for strategy in ("LOCAL_CHEAPEST_INSERTION", "PARALLEL_CHEAPEST_INSERTION")
    ]
    both = solve_checked(problem, matrices, dataclasses.replace(ample, workers=2))
    assert not both.stats.get("stopped_by_time_limit")
    assert both.stats["portfolio_searches"] == 2
    winner = min(range(2), key=lambda i: (alone[i].objective, i))
    assert both.stats["portfolio_winner"] == winner
    assert both.routes == alone[winner].routes
    assert both.objective == min(p.objective for p in alone)


@TWO_CORES
def test_a_portfolio_runs_ortools_beside_pyvrp():
    problem = rules_day(30, 4, seed=9, lunch=False)
    matrices = make_matrices(problem)
    params = dataclasses.replace(PYVRP, backend="auto", workers=2, time_limit_s=2.0)
    plan = solve_checked(problem, matrices, params)
    assert plan.stats["portfolio_searches"] == 2
    assert backend_of(plan) == ("pyvrp", "ortools")[int(plan.stats["portfolio_winner"])]


def test_one_worker_runs_one_search():
    problem = rules_day(10, 2, seed=2, lunch=False)
    plan = solve_checked(problem, make_matrices(problem), QUICK)
    assert "portfolio_searches" not in plan.stats
    assert backend_of(plan) == "ortools"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backend": "gurobi"}, "backend 'gurobi' is not one of auto, ortools, pyvrp"),
        ({"iteration_limit": 0}, "iteration limit 0"),
        ({"workers": 0}, "workers 0"),
    ],
)
def test_backend_settings_refuse_values_that_make_no_sense(changes, message):
    with pytest.raises(InvalidProblemError, match=message):
        SolveParams(**changes)


def test_pyvrp_keeps_each_route_within_its_capacity():
    problem = loaded_day()
    plan = solve_checked(problem, make_matrices(problem), PYVRP)
    assert backend_of(plan) == "pyvrp"
    assert plan.stats["inserted_after_search"] == 0
    loads = route_loads(problem, plan)
    assert all(load <= 10 for load in loads.values())
    assert sum(loads.values()) >= 18
    assert set(reasons(plan).values()) == {Reason.CAPACITY_EXHAUSTED}


def test_a_crew_carries_what_its_smallest_member_can():
    cases = [make_case(f"C{i}", 200 * (i + 1), 0, load=2) for i in range(5)]
    problem = make_problem(
        cases,
        [make_collector("A", capacity=8), make_collector("B", capacity=4)],
        crews=[Crew("A+B", ("A", "B"))],
    )
    assert problem.team("A").capacity == 4
    for params in (QUICK, PYVRP):
        plan = solve_checked(problem, make_matrices(problem), params)
        assert route_loads(problem, plan) == {"A": 4}


def test_pyvrp_requires_cases_worth_more_than_the_day_once_a_plan_visits_them_all():
    # Each case is worth more than every collector's whole shift in travel plus all the
    # other cases: any plan that visits them all beats any plan that drops one.
    cases = [make_case(f"C{i}", 250 * (i % 5), 250 * (i // 5), value=10**9) for i in range(15)]
    problem = make_problem(cases, [make_collector("K1"), make_collector("K2", 1000, 500)])
    plan = solve_checked(problem, make_matrices(problem), PYVRP)
    assert plan.stats["required_cases"] == 15
    assert plan.stats["search_iterations"] == 300
    assert plan.unassigned == ()


def test_pyvrp_keeps_cases_optional_while_no_plan_can_visit_them_all():
    # Two appointments at the same time far apart: one walker can keep only one of them.
    problem = make_problem(
        [
            make_case("EAST", 1000, 0, appointment="10:00"),
            make_case("WEST", -1000, 0, appointment="10:00"),
            make_case("NEAR", 200, 0),
        ],
        [make_collector("K1")],
    )
    plan = solve_checked(problem, make_matrices(problem), PYVRP)
    assert plan.stats["required_cases"] == 0
    assert len(plan.assigned_case_ids() & {"EAST", "WEST"}) == 1
    assert set(reasons(plan).values()) == {Reason.APPOINTMENT_IMPOSSIBLE}


def test_pyvrp_gives_each_route_of_interchangeable_collectors_to_a_distinct_one():
    # K1-K4 are alike and share one PyVRP vehicle type; LAWYER alone holds `legal`, LATE
    # alone works the evening and the crew alone makes two-person visits, so none of
    # them is merged with K1-K4, and their cases end on their routes.
    alike = [make_collector(f"K{k}", max_visits=3) for k in range(1, 5)]
    others = [
        make_collector("LAWYER", skills={"legal"}, max_visits=3),
        make_collector("LATE", shift="12:00-20:00", max_visits=3),
        make_collector("P1", max_visits=3),
        make_collector("P2", max_visits=3),
    ]
    cases = [make_case(f"C{k}", 150 * (k % 4) - 200, 120 * (k // 4) - 150) for k in range(12)]
    cases += [
        make_case("LEGAL", 300, 200, skills={"legal"}),
        make_case("EVENING", -250, 300, spans=("18:00-19:00",)),
        make_case("PAIR", 100, -300, min_crew=2),
    ]
    problem = make_problem(cases, alike + others, [Crew("W", ("P1", "P2"))])
    plan = solve_checked(problem, make_matrices(problem), PYVRP)
    assert backend_of(plan) == "pyvrp"
    assert plan.stats["modelled_collectors"] == 7
    assert plan.stats["modelled_vehicle_types"] == 4
    assert plan.unassigned == ()
    collectors = [route.collector_id for route in plan.routes]
    assert len(collectors) == len(set(collectors))
    assert set(collectors) <= {t.id for t in problem.teams()}
    assert len(set(collectors) & {"K1", "K2", "K3", "K4"}) >= 2
    assert "LEGAL" in plan.route_of("LAWYER").case_ids
    assert "EVENING" in plan.route_of("LATE").case_ids
    assert "PAIR" in plan.route_of("P1").case_ids


def test_pyvrp_keeps_a_preferred_collector_apart_from_collectors_like_them():
    problem = make_problem(
        [make_case("C", 400, 0, preferred="K2"), make_case("D", -400, 0)],
        [make_collector(f"K{k}") for k in range(1, 4)],
    )
    plan = solve_checked(problem, make_matrices(problem), PYVRP)
    assert plan.stats["modelled_vehicle_types"] == 2
    assert "C" in plan.route_of("K2").case_ids
    assert plan.stats["preferences_kept"] == 1
