"""Appointments, workload balance, continuity, kept visits, displacement reasons and day stats."""

from __future__ import annotations

import dataclasses

import pytest
from synthetic_days import (
    BIKE,
    QUICK,
    details,
    hm,
    make_case,
    make_collector,
    make_matrices,
    make_problem,
    reasons,
    rules_day,
    solve_checked,
)

from dispatch.errors import InvalidProblemError
from dispatch.explain import (
    Displacement,
    ViolationCode,
    check_plan,
    explain_dropped,
    find_displacements,
    time_route,
)
from dispatch.model import Crew, Plan, Reason
from dispatch.solve import SolveParams, solve


def params(**changes) -> SolveParams:
    return dataclasses.replace(QUICK, **changes)


def test_an_appointment_narrows_the_start_to_its_tolerance():
    case = make_case("A", 0, 0, spans=("09:00-12:00", "13:00-17:00"), appointment="12:05")
    assert [str(w) for w in case.start_windows] == ["11:55-12:00"]
    outside = make_case("B", 0, 0, spans=("09:00-11:00",), appointment="12:00")
    assert outside.start_windows == ()
    with pytest.raises(InvalidProblemError, match="tolerance"):
        make_case("C", 0, 0, appointment="12:00", tolerance_min=-1)
    with pytest.raises(InvalidProblemError, match="crew size 0"):
        make_case("D", 0, 0, min_crew=0)


def test_an_appointment_is_kept_within_its_tolerance():
    problem = make_problem(
        [
            make_case("MEET", 1500, 0, appointment="14:00"),
            make_case("NEAR", 1600, 0),
            make_case("EARLY", 1400, 100, spans=("09:00-10:00",)),
        ],
        [make_collector("K1")],
    )
    plan = solve_checked(problem, make_matrices(problem))
    route = plan.route_of("K1")
    assert route is not None and set(route.case_ids) == {"MEET", "NEAR", "EARLY"}
    meet = route.stops[route.case_ids.index("MEET")]
    assert hm("13:50") <= meet.start_s <= hm("14:10")
    assert plan.stats["appointments_named"] == 1 and plan.stats["appointments_kept"] == 1


def test_an_appointment_that_cannot_be_kept_is_never_moved_but_reported():
    problem = make_problem(
        [
            make_case("OUTSIDE", 500, 0, spans=("09:00-17:00",), appointment="18:00"),
            make_case("TOO_SOON", 3000, 0, appointment="08:05"),
            make_case("FINE", 600, 0),
        ],
        [make_collector("K1")],
    )
    plan = solve_checked(problem, make_matrices(problem))
    assert reasons(plan) == {
        "OUTSIDE": Reason.APPOINTMENT_IMPOSSIBLE,
        "TOO_SOON": Reason.APPOINTMENT_IMPOSSIBLE,
    }
    assert details(plan)["OUTSIDE"] == (
        "the appointment at 18:00 (±10 min) lies outside its windows 09:00-17:00"
    )
    assert details(plan)["TOO_SOON"] == (
        "no qualified collector can keep the appointment at 08:05 (±10 min) and end the shift "
        "on time: K1 (walk, shift 08:00-16:00) arrives 08:40 at the earliest"
    )


def test_of_two_appointments_at_once_far_apart_one_is_kept_and_the_other_reported():
    problem = make_problem(
        [
            make_case("EAST", 1500, 0, appointment="10:00", value=5_000),
            make_case("WEST", -1500, 0, appointment="10:00", value=9_000),
        ],
        [make_collector("K1")],
    )
    plan = solve_checked(problem, make_matrices(problem))
    assert plan.assigned_case_ids() == {"WEST"}
    assert reasons(plan) == {"EAST": Reason.APPOINTMENT_IMPOSSIBLE}
    assert details(plan)["EAST"].startswith(
        "no route that could keep the appointment at 10:00 (±10 min) has room: K1 (no time left"
    )


def test_an_appointment_is_kept_before_more_valuable_visits_and_whatever_its_travel():
    # One visit allowed: the promise made to a small debtor 4 km away beats a large case
    # next door, although walking there costs more than the small case is worth.
    problem = make_problem(
        [
            make_case("PROMISED", 4000, 0, appointment="11:00", value=100),
            make_case("LARGE", 100, 0, value=500_000),
        ],
        [make_collector("K1", max_visits=1)],
    )
    plan = solve_checked(problem, make_matrices(problem))
    assert plan.assigned_case_ids() == {"PROMISED"}
    assert reasons(plan) == {"LARGE": Reason.CAPACITY_EXHAUSTED}


def test_check_plan_flags_an_appointment_moved_inside_the_window():
    problem = make_problem(
        [make_case("MEET", 1500, 0, appointment="14:00")], [make_collector("K1")]
    )
    matrices = make_matrices(problem)
    route = time_route(problem, matrices, "K1", ["MEET"])
    late = dataclasses.replace(
        route,
        stops=(dataclasses.replace(route.stops[0], start_s=hm("14:20"), end_s=hm("14:35")),),
        end_s=hm("14:55"),
    )
    violations = check_plan(problem, matrices, Plan((late,), ()))
    assert [v.code for v in violations] == [ViolationCode.APPOINTMENT_MISSED]
    assert violations[0].message == (
        "K1 starts MEET at 14:20, not within 10 min of its appointment at 14:00"
    )


@pytest.fixture
def lopsided_day():
    # Seven cases around A's home, one near B's; both cycle, so sharing costs little travel.
    cases = [make_case(f"A{i}", 100 * i, 200, service_min=30) for i in range(7)]
    cases.append(make_case("B0", 2400, 200, service_min=30))
    collectors = [
        make_collector("A", 300, 0, mode=BIKE),
        make_collector("B", 2500, 0, mode=BIKE),
    ]
    problem = make_problem(cases, collectors)
    return problem, make_matrices(problem)


def test_balanced_mode_spreads_the_work_that_travel_mode_piles_on_one_collector(lopsided_day):
    problem, matrices = lopsided_day
    travel = solve_checked(problem, matrices, params())
    balanced = solve_checked(problem, matrices, params(objective="balanced"))
    assert travel.stats["visits_spread"] == 6
    assert balanced.stats["visits_spread"] < travel.stats["visits_spread"]
    assert balanced.stats["work_spread_s"] < travel.stats["work_spread_s"]
    assert balanced.unassigned == travel.unassigned == ()
    # Balance is bought with travel, and the objective says how much.
    assert sum(r.travel_time_s for r in balanced.routes) > sum(
        r.travel_time_s for r in travel.routes
    )


def test_continuity_is_kept_when_it_costs_little_travel():
    problem = make_problem(
        [make_case("C", 500, 0, preferred="FAMILIAR")],
        [make_collector("NEAREST", 400, 0), make_collector("FAMILIAR", 700, 0)],
    )
    matrices = make_matrices(problem)
    plan = solve_checked(problem, matrices)
    assert plan.route_of("FAMILIAR") is not None and plan.route_of("NEAREST") is None
    assert (plan.stats["preferences_named"], plan.stats["preferences_kept"]) == (1, 1)
    indifferent = solve_checked(problem, matrices, params(continuity_cost_cents=0))
    assert indifferent.route_of("NEAREST") is not None
    assert indifferent.stats["preferences_kept"] == 0


def test_continuity_gives_way_when_it_costs_more_than_its_price():
    problem = make_problem(
        [make_case("C", 500, 0, preferred="FAR")],
        [make_collector("NEAREST", 400, 0), make_collector("FAR", 5000, 0)],
    )
    plan = solve_checked(problem, make_matrices(problem))
    assert plan.route_of("NEAREST") is not None
    assert (plan.stats["preferences_named"], plan.stats["preferences_kept"]) == (1, 0)
    # The lost continuity is part of the objective: 2 x 2 min 40 s of walking plus 10.00.
    assert plan.objective == round(2 * 80 * 3000 / 3600) + 1000


def test_continuity_never_makes_a_case_worth_dropping_and_counts_crew_members():
    # The preferred collector's crew walks 4 km for a 5.00 case worth keeping with them;
    # a stranger nearby would take it if the continuity price were zero.
    problem = make_problem(
        [make_case("LOYAL", 4000, 0, value=500, preferred="MATE")],
        [make_collector("LEAD"), make_collector("MATE", 100, 0)],
        [Crew("CREW", ("LEAD", "MATE"))],
    )
    matrices = make_matrices(problem)
    cheap = solve_checked(problem, matrices, params(continuity_cost_cents=0))
    assert reasons(cheap) == {"LOYAL": Reason.NOT_WORTH_TRAVEL}
    loyal = solve_checked(problem, matrices, params(continuity_cost_cents=10_000))
    assert loyal.routes_of_member("MATE")[0].case_ids == ("LOYAL",)
    assert loyal.stats["preferences_kept"] == 1


def test_value_planned_and_dropped_add_up_to_the_day():
    problem = rules_day(30, 3, seed=4)
    plan = solve_checked(problem, make_matrices(problem), params(time_limit_s=1.0))
    total = sum(c.value for c in problem.cases)
    assert plan.stats["value_planned_cents"] + plan.stats["value_dropped_cents"] == total
    assert plan.stats["value_planned_cents"] == sum(
        problem.case(c).value for c in plan.assigned_case_ids()
    )


@pytest.fixture
def keep_day():
    cases = [make_case(f"C{i}", 300 * i, 100 * (i % 2)) for i in range(8)]
    collectors = [make_collector("K1", 0, 0), make_collector("K2", 2100, 0)]
    problem = make_problem(cases, collectors)
    return problem, make_matrices(problem)


def test_kept_visits_stay_with_their_collector_in_their_order(keep_day):
    problem, matrices = keep_day
    free = solve_checked(problem, matrices)
    assert "C6" in free.route_of("K2").case_ids and "C0" in free.route_of("K1").case_ids
    # Against the grain: K1 keeps C6 then C1, K2 keeps C0.
    kept = solve_checked(problem, matrices, keep={"K1": ["C6", "C1"], "K2": ["C0"]})
    k1 = kept.route_of("K1").case_ids
    assert {"C6", "C1"} <= set(k1) and k1.index("C6") < k1.index("C1")
    assert "C0" in kept.route_of("K2").case_ids
    assert kept.unassigned == ()


def test_a_plan_can_be_kept_while_new_cases_are_planned_around_it(keep_day):
    problem, matrices = keep_day
    morning = solve_checked(problem, matrices)
    grown = make_problem(
        [*problem.cases, make_case("NEW1", 1000, 300), make_case("NEW2", 50, 50)],
        problem.collectors,
    )
    matrices = make_matrices(grown)
    later = solve_checked(grown, matrices, keep=morning)
    for route in morning.routes:
        now = later.route_of(route.collector_id).case_ids
        assert [c for c in now if c in route.case_ids] == list(route.case_ids)
    assert {"NEW1", "NEW2"} <= later.assigned_case_ids()


def test_visits_that_cannot_be_kept_are_refused_with_the_reason(keep_day):
    problem, matrices = keep_day
    with pytest.raises(InvalidProblemError, match="kept case 'NOPE' is not in the problem"):
        solve(problem, matrices, params=QUICK, keep={"K1": ["NOPE"]})
    with pytest.raises(InvalidProblemError, match="case C1 is kept more than once"):
        solve(problem, matrices, params=QUICK, keep={"K1": ["C1"], "K2": ["C1"]})
    with pytest.raises(InvalidProblemError, match="unknown collector 'K9'"):
        solve(problem, matrices, params=QUICK, keep={"K9": ["C1"]})
    timed = make_problem(
        [
            make_case("NINE", 300, 0, spans=("09:00-09:05",)),
            make_case("TEN", 300, 0, spans=("10:00-10:05",)),
            make_case("LEGAL", 300, 0, skills={"legal"}),
        ],
        [make_collector("K1"), make_collector("LAWYER", skills={"legal"})],
    )
    timed_matrices = make_matrices(timed)
    with pytest.raises(InvalidProblemError, match="cannot keep TEN, NINE in that order"):
        solve(timed, timed_matrices, params=QUICK, keep={"K1": ["TEN", "NINE"]})
    with pytest.raises(InvalidProblemError, match="LEGAL cannot be visited by K1"):
        solve(timed, timed_matrices, params=QUICK, keep={"K1": ["LEGAL"]})


def test_a_crew_keeps_its_visits_under_its_crew_id():
    problem = make_problem(
        [make_case("X", 1000, 0), make_case("Y", 200, 0, min_crew=2)],
        [make_collector("LEAD"), make_collector("MATE", 50, 0), make_collector("K3", 900, 0)],
        [Crew("CREW", ("LEAD", "MATE"))],
    )
    plan = solve_checked(problem, make_matrices(problem), keep={"CREW": ["X", "Y"]})
    assert plan.route_of("LEAD").case_ids == ("X", "Y")


@pytest.fixture
def full_route_day():
    cases = [
        make_case("LOW", 200, 0, value=100),
        make_case("HIGH", 300, 0, value=50_000),
        make_case("MID", 400, 0, value=10_000),
        make_case("TINY", 500, 0, value=50),
    ]
    problem = make_problem(cases, [make_collector("K1", max_visits=2)])
    matrices = make_matrices(problem)
    return problem, matrices, [time_route(problem, matrices, "K1", ["LOW", "HIGH"])]


def test_a_capacity_drop_names_the_lower_value_visit_that_took_its_place(full_route_day):
    problem, matrices, routes = full_route_day
    orders = {r.collector_id: r.case_ids for r in routes}
    assert find_displacements(problem, matrices, orders, "MID", collector_ids=["K1"]) == [
        Displacement("K1", ("LOW",), 100)
    ]
    assert (
        find_displacements(
            problem, matrices, orders, "MID", collector_ids=["K1"], protected=["LOW", "HIGH"]
        )
        == []
    )
    explained = explain_dropped(
        problem, matrices, routes, ["MID", "TINY"], max_snap_m=300, travel_cost_cents_per_hour=3000
    )
    assert explained["MID"].reason == Reason.CAPACITY_EXHAUSTED
    assert explained["MID"].detail == (
        "no room left on the route of K1 (visit cap 2 reached); lower-value LOW (1.00) on "
        "K1's route took the room it needed (this case is worth 100.00)"
    )
    assert explained["TINY"].detail.endswith(
        "making room would mean dropping LOW (1.00) from K1's route, worth as much or more"
    )


def test_an_appointment_left_without_room_names_the_visits_in_its_way(full_route_day):
    problem = full_route_day[0]
    with_appointment = make_problem(
        [*problem.cases, make_case("MEET", 450, 0, appointment="12:00")], problem.collectors
    )
    matrices = make_matrices(with_appointment)
    explained = explain_dropped(
        with_appointment,
        matrices,
        [time_route(with_appointment, matrices, "K1", ["LOW", "HIGH"])],
        ["MEET"],
        max_snap_m=300,
        travel_cost_cents_per_hour=3000,
    )
    assert explained["MEET"].reason == Reason.APPOINTMENT_IMPOSSIBLE
    assert explained["MEET"].detail == (
        "no route that could keep the appointment at 12:00 (±10 min) has room: "
        "K1 (visit cap 2 reached); removing LOW (1.00) from K1's route would make room"
    )


def test_a_displacement_is_found_when_time_not_the_cap_is_short():
    # A two-hour shift: the long low-value visit blocks the short valuable one.
    problem = make_problem(
        [
            make_case("LONG", 300, 0, value=200, service_min=90),
            make_case("SHORT", 400, 0, value=20_000, service_min=30, spans=("08:30-09:30",)),
        ],
        [make_collector("K1", shift="08:00-10:00")],
    )
    matrices = make_matrices(problem)
    routes = [time_route(problem, matrices, "K1", ["LONG"])]
    explained = explain_dropped(
        problem, matrices, routes, ["SHORT"], max_snap_m=300, travel_cost_cents_per_hour=3000
    )
    assert "lower-value LONG (2.00) on K1's route took the room it needed" in (
        explained["SHORT"].detail
    )


@pytest.mark.parametrize("seed", range(3))
def test_every_rule_at_once_in_balanced_mode_with_kept_visits(seed):
    problem = rules_day(50, 7, seed=seed, crews=1, appointments=0.15, preferred=0.3)
    matrices = make_matrices(problem, uphill=0.1)
    first = solve_checked(problem, matrices, SolveParams(time_limit_s=0.7))
    keep = {r.collector_id: r.case_ids[:2] for r in first.routes}
    plan = solve_checked(
        problem, matrices, SolveParams(time_limit_s=0.7, objective="balanced"), keep=keep
    )
    for team_id, order in keep.items():
        now = plan.route_of(team_id).case_ids
        assert [c for c in now if c in order] == list(order)
    for entry in plan.unassigned:
        if problem.case(entry.case_id).appointment_s is not None:
            assert entry.reason == Reason.APPOINTMENT_IMPOSSIBLE
    for route in plan.routes:
        for stop in route.stops:
            case = problem.case(stop.case_id)
            if case.appointment_s is not None:
                assert abs(stop.start_s - case.appointment_s) <= case.appointment_tolerance_s
