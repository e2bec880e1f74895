"""Route timing, screening reasons, insertion checks and the plan checker on synthetic days."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Mapping

import pytest
from grid_days import (
    BIKE,
    DRIVE,
    WALK,
    hm,
    make_case,
    make_collector,
    make_matrices,
    make_problem,
)

from dispatch.explain import (
    Insertion,
    Violation,
    ViolationCode,
    cheapest_insertions,
    check_plan,
    explain_dropped,
    feasible_collectors,
    screen_cases,
    time_route,
)
from dispatch.matrix import TravelMatrix
from dispatch.model import (
    Plan,
    Problem,
    Reason,
    Route,
    TravelMode,
    Unassigned,
)


def codes(violations: Iterable[Violation]) -> set[str]:
    return {v.code for v in violations}


# A walker starting at the origin; cases 1500 m apart take 20 minutes to walk between.
@pytest.fixture
def line_day() -> tuple[Problem, dict[TravelMode, TravelMatrix]]:
    cases = [
        make_case("A", 1500, 0),
        make_case("B", 3000, 0, spans=("09:00-09:30", "11:00-12:00")),
        make_case("C", 3000, 1500, skills={"legal"}),
        make_case("D", 1500, 1500),
    ]
    problem = make_problem(cases, [make_collector("K1", skills={"legal"}, max_visits=3)])
    return problem, make_matrices(problem)


def plan_of(problem: Problem, matrices, orders: Mapping[str, list[str]]) -> Plan:
    routes = tuple(time_route(problem, matrices, k, order) for k, order in orders.items())
    routed = {c for order in orders.values() for c in order}
    unassigned = tuple(
        Unassigned(c.id, Reason.CAPACITY_EXHAUSTED) for c in problem.cases if c.id not in routed
    )
    return Plan(routes, unassigned)


def test_time_route_spends_waiting_before_leaving_rather_than_at_a_door(line_day):
    problem, matrices = line_day
    route = time_route(problem, matrices, "K1", ["A", "B", "C"])
    a, b, c = route.stops
    # Leaving at 08:00, B (open from 09:00) would be reached 08:55; leaving at 08:05 the
    # route ends just as early (10:50) and nobody waits.
    assert route.start_s == hm("08:05")
    assert (a.arrival_s, a.start_s, a.end_s) == (hm("08:25"), hm("08:25"), hm("08:40"))
    assert (b.arrival_s, b.start_s, b.wait_s) == (hm("09:00"), hm("09:00"), 0)
    assert (c.arrival_s, c.start_s) == (hm("09:35"), hm("09:35"))
    assert route.return_travel_time_s == 60 * 60  # 4500 m home
    assert route.end_s == hm("10:50")
    assert route.travel_time_s == 3 * 20 * 60 + 60 * 60
    assert route.distance_m == 1500 + 1500 + 1500 + 4500


def test_time_route_uses_the_later_window_when_the_first_cannot_be_met(line_day):
    problem, matrices = line_day
    # Via C first, B cannot be reached by 09:30, so its visit is at 11:00; C (open all day)
    # moves to 10:25 and the collector leaves at 09:25 instead of waiting two hours at B.
    route = time_route(problem, matrices, "K1", ["C", "B"])
    assert route.stops[0].start_s == hm("10:25")
    assert route.stops[1].arrival_s == route.stops[1].start_s == hm("11:00")
    assert route.start_s == hm("09:25")
    assert route.end_s == hm("11:55")


def test_time_route_keeps_waiting_that_an_earlier_window_forces():
    problem = make_problem(
        [
            make_case("A", 1500, 0, spans=("08:00-08:30",)),
            make_case("B", 3000, 0, spans=("10:00-11:00",)),
        ],
        [make_collector("K1")],
    )
    route = time_route(problem, make_matrices(problem), "K1", ["A", "B"])
    assert route.start_s == hm("08:10")
    assert route.stops[0].start_s == hm("08:30")
    assert route.stops[1].arrival_s == hm("09:05")
    assert route.stops[1].wait_s == 55 * 60


def test_time_route_leaves_as_late_as_the_first_visit_allows(line_day):
    problem, matrices = line_day
    route = time_route(problem, matrices, "K1", ["B"])
    # 40 minutes' walk to a window opening at 09:00: leave at 08:20, not at shift start.
    assert route.start_s == hm("08:20")
    assert route.stops[0].arrival_s == route.stops[0].start_s == hm("09:00")
    full = plan_of(problem, matrices, {"K1": ["B", "A", "C"]})
    assert full.routes[0].start_s == hm("08:20")
    assert check_plan(problem, matrices, full) == []


def test_time_route_never_leaves_before_the_shift_starts():
    problem = make_problem([make_case("A", 1500, 0)], [make_collector("K1", shift="10:00-16:00")])
    route = time_route(problem, make_matrices(problem), "K1", ["A"])
    assert route.start_s == hm("10:00")
    assert route.stops[0].arrival_s == hm("10:20")


def test_time_route_reads_an_asymmetric_matrix_in_travel_direction():
    problem = make_problem([make_case("N", 0, 1500)], [make_collector("K1")])
    matrices = make_matrices(problem, uphill=0.2)
    route = time_route(problem, matrices, "K1", ["N"])
    assert route.stops[0].travel_time_s == 1440  # 1200 s northbound, 20 % slower
    assert route.return_travel_time_s == 960  # southbound, 20 % faster
    plan = plan_of(problem, matrices, {"K1": ["N"]})
    assert check_plan(problem, matrices, plan) == []


def test_screen_names_the_missing_skills_when_nobody_holds_all_of_them():
    problem = make_problem(
        [make_case("S", 100, 0, skills={"legal", "swedish"})],
        [make_collector("K1", skills={"legal"}), make_collector("K2", skills={"swedish"})],
    )
    screened = screen_cases(problem, make_matrices(problem), max_snap_m=300)
    assert screened["S"].reason == Reason.NO_QUALIFIED_COLLECTOR
    assert screened["S"].detail == "needs skills legal, swedish; no collector holds all of them"


def test_screen_reports_no_collector_on_duty():
    problem = make_problem([make_case("A", 0, 0)], [])
    screened = screen_cases(problem, {}, max_snap_m=300)
    assert screened["A"] == Unassigned(
        "A", Reason.NO_QUALIFIED_COLLECTOR, "no collector is on duty"
    )


def test_screen_calls_an_address_off_network_only_when_every_usable_mode_is_too_far():
    cases = [make_case("FAR", 100, 0), make_case("HALF", 200, 0)]
    problem = make_problem(cases, [make_collector("W", mode=WALK), make_collector("D", mode=DRIVE)])
    matrices = make_matrices(
        problem, snap_m={WALK: {0: 450.0, 1: 450.0}, DRIVE: {0: 520.0, 1: 10.0}}
    )
    screened = screen_cases(problem, matrices, max_snap_m=300)
    assert set(screened) == {"FAR"}
    assert screened["FAR"].reason == Reason.OFF_NETWORK
    assert "450 m from the nearest walk road" in screened["FAR"].detail
    assert "520 m from the nearest drive road" in screened["FAR"].detail
    assert feasible_collectors(problem, matrices, max_snap_m=300)["HALF"] == ("D",)


def test_screen_ignores_the_network_of_collectors_without_the_skills():
    # The drive network reaches the address, but only the walker is qualified.
    problem = make_problem(
        [make_case("L", 100, 0, skills={"legal"})],
        [make_collector("W", skills={"legal"}, mode=WALK), make_collector("D", mode=DRIVE)],
    )
    matrices = make_matrices(problem, snap_m={WALK: {0: 900.0}})
    assert screen_cases(problem, matrices, max_snap_m=300)["L"].reason == Reason.OFF_NETWORK


def test_screen_reports_unreachable_when_no_path_leads_there_and_back():
    problem = make_problem(
        [make_case("ISLAND", 500, 0), make_case("OK", 600, 0)],
        [make_collector("W", mode=WALK), make_collector("B", mode=BIKE)],
    )
    matrices = make_matrices(problem, cut={WALK: [0], BIKE: [0]})
    screened = screen_cases(problem, matrices, max_snap_m=300)
    assert set(screened) == {"ISLAND"}
    assert screened["ISLAND"].reason == Reason.UNREACHABLE
    assert "W (walk: no path to the address)" in screened["ISLAND"].detail


def test_screen_reports_no_feasible_time_for_windows_outside_every_shift():
    problem = make_problem(
        [
            make_case("DAWN", 100, 0, spans=("06:00-07:00",)),
            make_case("TOO_FAR_FOR_WINDOW", 6000, 0, spans=("08:00-09:00",)),
            make_case("LATE", 100, 0, spans=("15:55-18:00",), service_min=30),
        ],
        [make_collector("K1")],
    )
    screened = screen_cases(problem, make_matrices(problem), max_snap_m=300)
    assert {u.reason for u in screened.values()} == {Reason.NO_FEASIBLE_TIME}
    # 6 km on foot take 80 minutes: the window closes at 09:00.
    assert "arrives 09:20 at the earliest" in screened["TOO_FAR_FOR_WINDOW"].detail
    assert "after the shift ends at 16:00" in screened["LATE"].detail


def test_screen_treats_a_visit_cap_of_zero_as_no_capacity():
    problem = make_problem([make_case("A", 100, 0)], [make_collector("K1", max_visits=0)])
    screened = screen_cases(problem, make_matrices(problem), max_snap_m=300)
    assert screened["A"].reason == Reason.CAPACITY_EXHAUSTED
    assert "visit cap 0" in screened["A"].detail


def test_screen_names_the_load_a_too_small_capacity_cannot_carry():
    problem = make_problem(
        [make_case("HEAVY", 100, 0, load=7)],
        [make_collector("K1", capacity=5), make_collector("K2", capacity=6)],
    )
    matrices = make_matrices(problem)
    assert feasible_collectors(problem, matrices, max_snap_m=300) == {"HEAVY": ()}
    screened = screen_cases(problem, matrices, max_snap_m=300)
    assert screened["HEAVY"].reason == Reason.CAPACITY_EXHAUSTED
    assert screened["HEAVY"].detail == "the case's load 7 exceeds the capacity of K1 (5), K2 (6)"


def test_explain_dropped_names_load_when_capacity_is_what_ran_out():
    problem = make_problem(
        [make_case("A", 300, 0, load=3), make_case("B", 600, 0, load=3)],
        [make_collector("K1", capacity=5)],
    )
    matrices = make_matrices(problem)
    route = time_route(problem, matrices, "K1", ["A"])
    dropped = explain_dropped(
        problem, matrices, [route], ["B"], max_snap_m=300, travel_cost_cents_per_hour=3000
    )
    assert dropped["B"].reason == Reason.CAPACITY_EXHAUSTED
    assert "load 3 of capacity 5 used; the case's load 3 does not fit" in dropped["B"].detail


def test_insertion_respects_the_visit_cap_and_windows(line_day):
    problem, matrices = line_day
    full = cheapest_insertions(
        problem, matrices, {"K1": ["A", "B", "C"]}, "D", collector_ids=["K1"]
    )
    assert full == {"K1": "visit cap 3 reached"}
    fits = cheapest_insertions(problem, matrices, {"K1": ["A", "C"]}, "B", collector_ids=["K1"])
    # B goes between A and C: 1500 m + 1500 m instead of 3000 m from A to C, so no detour.
    assert fits == {"K1": Insertion("K1", 1, 0)}
    alone = cheapest_insertions(problem, matrices, {}, "B", collector_ids=["K1"])
    assert alone == {"K1": Insertion("K1", 0, 2 * 40 * 60)}


def keeps_every_rule(problem: Problem, matrices, route: Route) -> bool:
    """Whether the checker finds nothing wrong with this route (other cases aside)."""
    violations = check_plan(problem, matrices, Plan((route,), ()))
    return all(v.code == ViolationCode.MISSING_CASE for v in violations)


def brute_force_fits(problem, matrices, collector_id, order, case_id) -> dict[int, int]:
    """Extra travel at each position where inserting and retiming passes the checker."""
    before = time_route(problem, matrices, collector_id, order).travel_time_s if order else 0
    fits = {}
    for slot in range(len(order) + 1):
        route = time_route(problem, matrices, collector_id, [*order[:slot], case_id, *order[slot:]])
        if keeps_every_rule(problem, matrices, route):
            fits[slot] = route.travel_time_s - before
    return fits


@pytest.mark.parametrize("seed", range(16))
def test_insertion_agrees_with_retiming_every_position_by_brute_force(seed):
    # Tight shift and windows, some split in two, on an asymmetric matrix: over these
    # seeds about a third of the probes fit nowhere and most fit only at some positions.
    rnd = random.Random(seed)
    cases = []
    for i in range(10):
        opens = rnd.choice([8, 9, 10, 11])
        spans = rnd.choice(
            [
                (),
                (f"{opens:02d}:00-{opens:02d}:45",),
                (f"{opens:02d}:00-{opens:02d}:20", f"{opens + 1:02d}:30-{opens + 2:02d}:00"),
            ]
        )
        cases.append(make_case(f"C{i}", rnd.uniform(0, 2500), rnd.uniform(0, 2500), spans=spans))
    problem = make_problem(cases, [make_collector("K1", 1000, 1000, shift="08:00-12:30")])
    matrices = make_matrices(problem, uphill=0.15)
    # A feasible route of the first cases, grown by the checker's verdict.
    order: list[str] = []
    for case in cases[:6]:
        for slot in range(len(order) + 1):
            candidate = [*order[:slot], case.id, *order[slot:]]
            if keeps_every_rule(problem, matrices, time_route(problem, matrices, "K1", candidate)):
                order = candidate
                break
    for case in cases[6:]:
        expected = brute_force_fits(problem, matrices, "K1", order, case.id)
        found = cheapest_insertions(
            problem, matrices, {"K1": order}, case.id, collector_ids=["K1"]
        )["K1"]
        if expected:
            cheapest = min(expected.values())
            assert isinstance(found, Insertion)
            assert found.extra_travel_s == cheapest
            assert expected[found.position] == cheapest
        else:
            assert isinstance(found, str)


def test_explain_dropped_tells_capacity_from_travel_cost():
    cases = [
        make_case("NEAR", 300, 0),
        make_case("CHEAP_FAR", 0, 4500, value=100),
        make_case("PAYS", 0, 4500, value=1_000_000),
    ]
    problem = make_problem(
        cases, [make_collector("CAP1", max_visits=1), make_collector("K2", 100, 100)]
    )
    matrices = make_matrices(problem)
    routes = [time_route(problem, matrices, "CAP1", ["NEAR"])]
    explained = explain_dropped(
        problem,
        matrices,
        routes,
        ["CHEAP_FAR", "PAYS"],
        max_snap_m=300,
        travel_cost_cents_per_hour=3000,
    )
    # 9.4 km on foot cost far more than 1.00; the valuable case would pay and is not explained.
    assert set(explained) == {"CHEAP_FAR"}
    assert explained["CHEAP_FAR"].reason == Reason.NOT_WORTH_TRAVEL
    assert "K2's route as its only visit" in explained["CHEAP_FAR"].detail
    assert "value 1.00" in explained["CHEAP_FAR"].detail


def test_explain_dropped_names_the_full_routes():
    # K1 has made its one visit; K2's only hour is taken by a long visit.
    problem = make_problem(
        [
            make_case("A", 300, 0),
            make_case("B", 400, 0, spans=("08:00-08:30",)),
            make_case("LONG", 200, 0, service_min=50),
        ],
        [make_collector("K1", max_visits=1), make_collector("K2", shift="08:00-09:00")],
    )
    matrices = make_matrices(problem)
    routes = [
        time_route(problem, matrices, "K1", ["A"]),
        time_route(problem, matrices, "K2", ["LONG"]),
    ]
    explained = explain_dropped(
        problem, matrices, routes, ["B"], max_snap_m=300, travel_cost_cents_per_hour=3000
    )
    assert explained["B"].reason == Reason.CAPACITY_EXHAUSTED
    assert "K1 (visit cap 1 reached)" in explained["B"].detail
    assert "K2 (no time left" in explained["B"].detail


def test_check_plan_accepts_a_valid_plan_and_reports_nothing(line_day):
    problem, matrices = line_day
    plan = plan_of(problem, matrices, {"K1": ["A", "B", "C"]})
    assert check_plan(problem, matrices, plan) == []


def broken(plan: Plan, **changes) -> Plan:
    return dataclasses.replace(plan, **changes)


def replace_stop(route: Route, index: int, **changes) -> Route:
    stops = list(route.stops)
    stops[index] = dataclasses.replace(stops[index], **changes)
    return dataclasses.replace(route, stops=tuple(stops))


def test_check_plan_flags_a_visit_moved_into_the_gap_between_windows(line_day):
    problem, matrices = line_day
    plan = plan_of(problem, matrices, {"K1": ["A", "B", "C"]})
    route = plan.routes[0]
    # B's windows are 09:00-09:30 and 11:00-12:00; 10:00 lies in the gap.
    moved = replace_stop(route, 1, start_s=hm("10:00"), end_s=hm("10:15"))
    violations = check_plan(problem, matrices, broken(plan, routes=(moved,)))
    outside = [v for v in violations if v.code == ViolationCode.OUTSIDE_WINDOW]
    assert len(outside) == 1
    assert outside[0].case_id == "B" and outside[0].collector_id == "K1"
    assert "10:00" in outside[0].message and "09:00-09:30, 11:00-12:00" in outside[0].message


def test_check_plan_flags_a_legal_case_given_to_a_collector_without_the_skill():
    problem = make_problem(
        [make_case("L", 300, 0, skills={"legal"})],
        [make_collector("PLAIN"), make_collector("LAWYER", skills={"legal"})],
    )
    matrices = make_matrices(problem)
    plan = plan_of(problem, matrices, {"PLAIN": ["L"]})
    violations = check_plan(problem, matrices, plan)
    assert codes(violations) == {ViolationCode.MISSING_SKILL}
    assert violations[0].message == "PLAIN visits L without skill(s) legal"


def test_check_plan_flags_duplicates_and_missing_cases(line_day):
    problem, matrices = line_day
    plan = plan_of(problem, matrices, {"K1": ["A", "B"]})
    twice = dataclasses.replace(
        plan.routes[0], stops=(*plan.routes[0].stops, plan.routes[0].stops[0])
    )
    violations = check_plan(problem, matrices, broken(plan, routes=(twice,), unassigned=()))
    found = {(v.code, v.case_id) for v in violations}
    assert (ViolationCode.DUPLICATE_VISIT, "A") in found
    assert (ViolationCode.MISSING_CASE, "C") in found


def test_check_plan_flags_a_case_dropped_from_both_lists(line_day):
    problem, matrices = line_day
    plan = plan_of(problem, matrices, {"K1": ["A", "B"]})
    without_c = tuple(u for u in plan.unassigned if u.case_id != "C")
    violations = check_plan(problem, matrices, broken(plan, unassigned=without_c))
    assert [(v.code, v.case_id) for v in violations] == [(ViolationCode.MISSING_CASE, "C")]
    assert violations[0].message == "case C is neither on a route nor unassigned"


def test_check_plan_flags_a_shift_overrun():
    problem = make_problem(
        [make_case("A", 1500, 0), make_case("B", 3000, 0)],
        [make_collector("K1", shift="08:00-09:00")],
    )
    matrices = make_matrices(problem)
    plan = plan_of(problem, matrices, {"K1": ["A", "B"]})
    violations = check_plan(problem, matrices, plan)
    assert codes(violations) == {ViolationCode.SHIFT_OVERRUN}
    # 20 + 15 + 20 + 15 minutes out and 40 back from 08:00.
    assert violations[0].message == "K1 reaches the end at 09:50, after the shift ends at 09:00"


def test_check_plan_flags_impossible_times_and_short_visits(line_day):
    problem, matrices = line_day
    plan = plan_of(problem, matrices, {"K1": ["A", "B", "C"]})
    route = plan.routes[0]
    early = replace_stop(route, 0, arrival_s=route.stops[0].arrival_s - 60)
    before_arrival = replace_stop(route, 2, start_s=route.stops[2].arrival_s - 60)
    short = replace_stop(route, 2, end_s=route.stops[2].start_s + 60)
    too_soon = dataclasses.replace(route, start_s=hm("07:00"))
    assert codes(check_plan(problem, matrices, broken(plan, routes=(early,)))) == {"LATE"}
    assert ViolationCode.LATE in codes(
        check_plan(problem, matrices, broken(plan, routes=(before_arrival,)))
    )
    assert codes(check_plan(problem, matrices, broken(plan, routes=(short,)))) >= {
        ViolationCode.SERVICE_TOO_SHORT
    }
    assert codes(check_plan(problem, matrices, broken(plan, routes=(too_soon,)))) == {
        ViolationCode.SHIFT_START
    }
    late = check_plan(problem, matrices, broken(plan, routes=(early,)))[0]
    assert late.message == (
        "K1 arrives at A at 08:24, but leaving the start at 08:05 with 20 min of travel "
        "cannot arrive before 08:25"
    )


def test_check_plan_flags_totals_that_do_not_match_the_legs(line_day):
    problem, matrices = line_day
    plan = plan_of(problem, matrices, {"K1": ["A", "C"]})
    route = plan.routes[0]
    wrong_total = dataclasses.replace(route, distance_m=route.distance_m - 1)
    wrong_leg = replace_stop(route, 1, distance_m=1)
    assert codes(check_plan(problem, matrices, broken(plan, routes=(wrong_total,)))) == {
        ViolationCode.BAD_TOTALS
    }
    assert ViolationCode.BAD_TOTALS in codes(
        check_plan(problem, matrices, broken(plan, routes=(wrong_leg,)))
    )


def test_check_plan_flags_unknowns_duplicates_caps_and_double_listing(line_day):
    problem, matrices = line_day
    plan = plan_of(problem, matrices, {"K1": ["A", "B", "C"]})
    route = plan.routes[0]
    stranger = dataclasses.replace(route, collector_id="NOBODY")
    listed_too = (Unassigned("A", Reason.NOT_WORTH_TRAVEL), Unassigned("GHOST", Reason.UNREACHABLE))
    found = codes(
        check_plan(
            problem,
            matrices,
            broken(plan, routes=(route, route, stranger), unassigned=listed_too),
        )
    )
    assert found >= {
        ViolationCode.UNKNOWN_COLLECTOR,
        ViolationCode.DUPLICATE_ROUTE,
        ViolationCode.DUPLICATE_VISIT,
        ViolationCode.UNASSIGNED_AND_ROUTED,
        ViolationCode.UNKNOWN_CASE,
    }
    capped = make_problem(problem.cases, [make_collector("K1", skills={"legal"}, max_visits=2)])
    violations = check_plan(capped, matrices, plan)
    assert codes(violations) == {ViolationCode.MAX_VISITS}
    assert violations[0].message == "K1 has 3 visits, more than the cap of 2"


def test_check_plan_flags_a_routed_case_off_the_collectors_network(line_day):
    problem, _ = line_day
    far = make_matrices(problem, snap_m={WALK: {0: 800.0}})
    plan = plan_of(problem, far, {"K1": ["A", "B", "C"]})
    violations = check_plan(problem, far, plan, max_snap_m=300)
    assert [(v.code, v.case_id) for v in violations] == [(ViolationCode.OFF_NETWORK, "A")]
    assert check_plan(problem, far, plan, max_snap_m=1000) == []


def test_check_plan_flags_a_leg_without_a_path():
    problem = make_problem([make_case("A", 300, 0)], [make_collector("K1")])
    matrices = make_matrices(problem, cut={WALK: [0]})
    plan = plan_of(problem, matrices, {"K1": ["A"]})
    messages = [v.message for v in check_plan(problem, matrices, plan)]
    assert "K1 has no walk path from the start to A" in messages


def test_a_missing_matrix_is_an_error_not_a_violation(line_day):
    problem, _ = line_day
    with pytest.raises(ValueError, match="no travel matrix for mode walk"):
        time_route(problem, {}, "K1", ["A"])


def test_check_plan_flags_a_route_that_loads_more_than_its_capacity():
    problem = make_problem(
        [make_case("A", 300, 0, load=4), make_case("B", 600, 0, load=3)],
        [make_collector("K1", capacity=6)],
    )
    matrices = make_matrices(problem)
    violations = check_plan(problem, matrices, plan_of(problem, matrices, {"K1": ["A", "B"]}))
    assert [(v.code, v.collector_id, v.message) for v in violations] == [
        (ViolationCode.OVER_CAPACITY, "K1", "K1's visits load 7, more than the capacity of 6")
    ]
    assert check_plan(problem, matrices, plan_of(problem, matrices, {"K1": ["A"]})) == []
