"""Lunch breaks: placed by the solver and by route timing, and checked by the plan checker."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest
from synthetic_days import (
    QUICK,
    SolveParams,
    details,
    hm,
    make_case,
    make_collector,
    make_matrices,
    make_problem,
    reasons,
    rules_day,
    solve_checked,
    span,
)

from dispatch.errors import InvalidProblemError
from dispatch.explain import (
    Insertion,
    ViolationCode,
    cheapest_insertions,
    check_plan,
    time_route,
)
from dispatch.model import Plan, Problem, Reason, Route, Stop


def lone_route_violations(problem: Problem, matrices, route: Route) -> set[str]:
    """Codes the checker finds in one route, other cases aside."""
    return {
        v.code
        for v in check_plan(problem, matrices, Plan((route,), ()))
        if v.code != ViolationCode.MISSING_CASE
    }


def assert_break_inside(route: Route, window: str, length_min: int) -> None:
    assert route.break_start_s is not None and route.break_end_s is not None
    assert route.break_end_s - route.break_start_s == length_min * 60
    assert span(window).start_s <= route.break_start_s
    assert route.break_end_s <= span(window).end_s


def test_a_collector_needs_a_window_that_holds_the_break_inside_the_shift():
    with pytest.raises(InvalidProblemError, match="needs a window"):
        dataclasses.replace(make_collector("K1"), break_s=1800)
    with pytest.raises(InvalidProblemError, match="does not fit into break window 15:00-17:00"):
        make_collector("K1", shift="08:00-15:20", lunch="15:00-17:00", lunch_min=30)
    with pytest.raises(InvalidProblemError, match="negative"):
        dataclasses.replace(make_collector("K1"), break_s=-5)
    # The window may reach past the shift as long as the break fits inside both.
    assert make_collector("K1", shift="08:00-15:30", lunch="15:00-17:00").break_s == 1800


def test_time_route_takes_the_break_between_visits_that_leave_room_for_it():
    # A at 11:00-11:15, B at 12:30 (fixed): 20 minutes' walk between them leaves 75 minutes.
    problem = make_problem(
        [
            make_case("A", 1500, 0, spans=("11:00-11:00",)),
            make_case("B", 3000, 0, spans=("12:30-12:30",)),
        ],
        [make_collector("K1", lunch="11:00-13:00", lunch_min=45)],
    )
    matrices = make_matrices(problem)
    route = time_route(problem, matrices, "K1", ["A", "B"])
    assert_break_inside(route, "11:00-13:00", 45)
    a, b = route.stops
    assert a.end_s <= route.break_start_s and route.break_end_s <= b.start_s
    assert lone_route_violations(problem, matrices, route) == set()


def test_a_break_too_long_for_any_gap_makes_the_order_unkeepable():
    # Only 55 minutes between A's end and B's start, 20 of them walking: no room for 45 minutes.
    problem = make_problem(
        [
            make_case("A", 1500, 0, spans=("11:00-11:00",)),
            make_case("B", 3000, 0, spans=("12:10-12:10",)),
        ],
        [make_collector("K1", lunch="11:00-12:30", lunch_min=45)],
    )
    matrices = make_matrices(problem)
    route = time_route(problem, matrices, "K1", ["A", "B"])
    assert route.break_start_s is None
    assert ViolationCode.BREAK_MISSING in lone_route_violations(problem, matrices, route)
    fits = cheapest_insertions(problem, matrices, {"K1": ["A"]}, "B", collector_ids=["K1"])
    assert isinstance(fits["K1"], str)
    assert "a 45 min break in 11:00-12:30" in fits["K1"]


def test_a_break_on_the_way_delays_the_arrival_by_its_length():
    # Leaving A at 11:15 with the lunch window open: the walk to B pauses for lunch.
    problem = make_problem(
        [
            make_case("A", 1500, 0, spans=("11:00-11:00",)),
            make_case("B", 3000, 0, spans=("11:30-13:00",)),
        ],
        [make_collector("K1", lunch="11:10-11:50", lunch_min=30)],
    )
    matrices = make_matrices(problem)
    route = time_route(problem, matrices, "K1", ["A", "B"])
    a, b = route.stops
    assert route.break_start_s == a.end_s == hm("11:15")
    assert b.arrival_s == hm("11:15") + 30 * 60 + 20 * 60
    assert lone_route_violations(problem, matrices, route) == set()


def test_a_short_morning_route_takes_its_break_after_reaching_the_end():
    problem = make_problem(
        [make_case("A", 1500, 0, spans=("08:30-09:00",))],
        [make_collector("K1", lunch="11:00-13:00", lunch_min=30)],
    )
    matrices = make_matrices(problem)
    route = time_route(problem, matrices, "K1", ["A"])
    assert route.end_s == hm("09:05")
    assert route.break_start_s == hm("11:00")
    assert lone_route_violations(problem, matrices, route) == set()


def test_an_afternoon_route_takes_its_break_before_leaving():
    problem = make_problem(
        [make_case("A", 1500, 0, spans=("14:00-14:30",))],
        [make_collector("K1", lunch="11:00-13:00", lunch_min=30)],
    )
    matrices = make_matrices(problem)
    route = time_route(problem, matrices, "K1", ["A"])
    assert route.break_end_s is not None and route.break_end_s <= route.start_s
    assert route.stops[0].start_s == hm("14:00")
    assert lone_route_violations(problem, matrices, route) == set()


def test_a_break_before_a_visit_at_the_start_point_is_taken_before_leaving():
    problem = make_problem(
        [make_case("HOME", 0, 0, spans=("11:30-12:00",))],
        [make_collector("K1", lunch="11:00-11:30", lunch_min=30)],
    )
    matrices = make_matrices(problem)
    route = time_route(problem, matrices, "K1", ["HOME"])
    assert (route.break_start_s, route.break_end_s) == (hm("11:00"), hm("11:30"))
    assert route.start_s == route.stops[0].arrival_s == hm("11:30")
    assert lone_route_violations(problem, matrices, route) == set()


@pytest.fixture
def lunch_day() -> tuple[Problem, dict]:
    cases = [
        make_case("A", 1500, 0, spans=("11:00-11:30",)),
        make_case("B", 3000, 0, spans=("12:00-13:00",)),
        make_case("C", 3000, 1500),
    ]
    problem = make_problem(cases, [make_collector("K1", lunch="11:00-13:00", lunch_min=30)])
    return problem, make_matrices(problem)


def with_break(route: Route, start: str, minutes: int = 30) -> Route:
    return dataclasses.replace(route, break_start_s=hm(start), break_end_s=hm(start) + minutes * 60)


def test_check_plan_names_every_way_a_break_can_be_wrong(lunch_day):
    problem, matrices = lunch_day
    route = time_route(problem, matrices, "K1", ["A", "B", "C"])
    assert lone_route_violations(problem, matrices, route) == set()
    a = route.stops[0]
    missing = dataclasses.replace(route, break_start_s=None, break_end_s=None)
    short = dataclasses.replace(route, break_end_s=route.break_start_s + 600)
    early = with_break(route, "10:00")
    over_a = dataclasses.replace(
        route, break_start_s=a.start_s + 60, break_end_s=a.start_s + 60 + 1800
    )
    # After A, lunch on the way to B, but B's arrival leaves 45 minutes for 20 of walking
    # and 30 of lunch.
    a2, b2 = time_route(problem, matrices, "K1", ["A", "B"]).stops
    crammed = dataclasses.replace(
        route,
        stops=(a2, dataclasses.replace(b2, arrival_s=a2.end_s + 2700, start_s=a2.end_s + 2700)),
        break_start_s=a2.end_s,
        break_end_s=a2.end_s + 1800,
        end_s=hm("15:00"),
        return_travel_time_s=b2.travel_time_s,
    )
    assert lone_route_violations(problem, matrices, missing) == {ViolationCode.BREAK_MISSING}
    assert ViolationCode.BREAK_TOO_SHORT in lone_route_violations(problem, matrices, short)
    assert ViolationCode.BREAK_OUTSIDE_WINDOW in lone_route_violations(problem, matrices, early)
    assert ViolationCode.BREAK_OVERLAPS_VISIT in lone_route_violations(problem, matrices, over_a)
    found = check_plan(problem, matrices, Plan((crammed,), ()))
    overlaps = [v for v in found if v.code == ViolationCode.BREAK_OVERLAPS_TRAVEL]
    assert overlaps and overlaps[0].collector_id == "K1"
    assert "leaves too little time for the travel" in overlaps[0].message


def test_a_break_while_waiting_at_a_door_is_fine(lunch_day):
    problem, matrices = lunch_day
    route = time_route(problem, matrices, "K1", ["A", "B"])
    a, b = route.stops
    # Arrive at B 20 minutes after leaving A, lunch at the door, then visit.
    arrival_s = a.end_s + 1200
    start_s = arrival_s + 1800
    waiting = dataclasses.replace(
        route,
        stops=(a, Stop("B", arrival_s, start_s, start_s + 900, b.travel_time_s, 1500)),
        break_start_s=arrival_s,
        break_end_s=start_s,
        end_s=start_s + 900 + route.return_travel_time_s,
    )
    assert lone_route_violations(problem, matrices, waiting) == set()


def test_the_solver_keeps_the_lunch_window_free_when_a_visit_would_block_it():
    # The window is 12:00-12:30 for a 30-minute lunch: a visit fixed at 12:10 cannot be
    # made by K1, so it goes to K2, who has no break, although K1 lives next door.
    problem = make_problem(
        [make_case("NOON", 300, 0, spans=("12:10-12:10",)), make_case("LATER", -300, 0)],
        [
            make_collector("K1", 0, 0, lunch="12:00-12:30", lunch_min=30),
            make_collector("K2", 2500, 0),
        ],
    )
    plan = solve_checked(problem, make_matrices(problem))
    k2 = plan.route_of("K2")
    assert k2 is not None and "NOON" in k2.case_ids
    k1 = plan.route_of("K1")
    assert k1 is not None and k1.case_ids == ("LATER",)
    assert_break_inside(k1, "12:00-12:30", 30)


def test_a_visit_only_the_lunch_break_blocks_is_explained_as_such():
    problem = make_problem(
        [make_case("NOON", 300, 0, spans=("12:10-12:10",))],
        [make_collector("K1", lunch="12:00-12:30", lunch_min=30)],
    )
    plan = solve_checked(problem, make_matrices(problem))
    assert reasons(plan) == {"NOON": Reason.NO_FEASIBLE_TIME}
    assert "cannot fit the visit around a 30 min break in 12:00-12:30" in details(plan)["NOON"]


def test_a_crowded_day_with_lunches_passes_the_checker_and_every_route_breaks_in_its_window():
    problem = make_problem(
        [
            make_case(f"C{i}", 200 * (i % 7), 300 * (i // 7), spans=spans)
            for i, spans in enumerate(
                [(), ("11:00-12:00",), ("12:00-12:40",), ("09:00-09:30", "12:15-13:00")] * 6
            )
        ],
        [
            make_collector("K1", lunch="11:30-12:30", lunch_min=45),
            make_collector("K2", 600, 600, shift="10:00-14:00", lunch="11:00-13:00"),
            make_collector("K3", 300, 900, shift="11:00-13:00", lunch="11:45-12:30"),
            make_collector("IDLE", 9000, 9000, shift="12:00-12:40", lunch="12:00-12:40"),
        ],
    )
    matrices = make_matrices(problem, uphill=0.1)
    plan = solve_checked(problem, matrices)
    windows = {"K1": "11:30-12:30", "K2": "11:00-13:00", "K3": "11:45-12:30"}
    assert {r.collector_id for r in plan.routes} == set(windows)
    for route in plan.routes:
        length = problem.collector(route.collector_id).break_s // 60
        assert_break_inside(route, windows[route.collector_id], length)
    assert plan.stats["breaks_planned"] == 3


@pytest.mark.parametrize("seed", range(4))
def test_random_days_with_breaks_crews_and_appointments_pass_the_checker(seed):
    problem = rules_day(45, 6, seed=seed, crews=1)
    matrices = make_matrices(problem, uphill=0.1)
    plan = solve_checked(problem, matrices, SolveParams(time_limit_s=1.0))
    for route in plan.routes:
        team = problem.team(route.collector_id)
        if team.break_s:
            assert route.break_start_s is not None
            assert team.break_window.start_s <= route.break_start_s
            assert route.break_end_s <= team.break_window.end_s
    assert plan.stats["repaired_visits"] == 0


def simulate(problem, collector_id, order, break_leg, break_start_s, matrices) -> Route | None:
    """Time an order literally: leave at shift start, pause for the break at a given moment."""
    team = problem.team(collector_id)
    duration = matrices[team.mode].duration_s
    points = (
        [problem.start_index(team.position)]
        + [problem.case_index(c) for c in order]
        + [problem.end_index(team.position)]
    )
    leave_s, stops = team.shift.start_s, []
    for leg, (origin, target) in enumerate(itertools.pairwise(points)):
        travel_s = int(duration[origin, target])
        arrival_s = ready_s = leave_s + travel_s
        if leg == break_leg:
            if break_start_s < leave_s:
                return None
            if break_start_s < arrival_s:
                arrival_s = ready_s = arrival_s + team.break_s
            else:
                ready_s = break_start_s + team.break_s
        if leg == len(order):
            break
        case = problem.case(order[leg])
        start_s = next(
            (max(ready_s, w.start_s) for w in case.start_windows if ready_s <= w.end_s), None
        )
        if start_s is None:
            return None
        stops.append(Stop(case.id, arrival_s, start_s, start_s + case.service_s, travel_s, 0))
        leave_s = start_s + case.service_s
    return Route(
        collector_id,
        team.shift.start_s,
        arrival_s,
        tuple(stops),
        0,
        0,
        break_start_s=break_start_s,
        break_end_s=break_start_s + team.break_s,
    )


def break_free_legs(problem, matrices, collector_id, order) -> list[tuple[int, int]]:
    """Leaving and arrival moments of each leg without a break, as far as the order holds."""
    team = problem.team(collector_id)
    duration = matrices[team.mode].duration_s
    points = (
        [problem.start_index(team.position)]
        + [problem.case_index(c) for c in order]
        + [problem.end_index(team.position)]
    )
    leave_s, legs = team.shift.start_s, []
    for leg, (origin, target) in enumerate(itertools.pairwise(points)):
        arrival_s = leave_s + int(duration[origin, target])
        legs.append((leave_s, arrival_s))
        if leg == len(order):
            break
        case = problem.case(order[leg])
        start_s = next(
            (max(arrival_s, w.start_s) for w in case.start_windows if arrival_s <= w.end_s), None
        )
        if start_s is None:
            break
        leave_s = start_s + case.service_s
    return legs


def keepable_by_brute_force(problem, matrices, collector_id, order) -> bool:
    """Whether some break moment on some leg gives a route the checker accepts (times only).

    Tries every 5 minutes of the window, its last moment, and the moments of leaving and
    arriving on each leg.
    """
    team = problem.team(collector_id)
    window = team.break_window
    latest_s = window.end_s - team.break_s
    grid = set(range(window.start_s, latest_s + 1, 300)) | {latest_s}
    for leg, (leave_s, arrive_s) in enumerate(
        break_free_legs(problem, matrices, collector_id, order)
    ):
        moments = grid | {m for m in (leave_s, arrive_s) if window.start_s <= m <= latest_s}
        for moment in sorted(moments):
            route = simulate(problem, collector_id, order, leg, moment, matrices)
            if route is None:
                continue
            found = {
                v.code
                for v in check_plan(problem, matrices, Plan((route,), ()))
                if v.code not in (ViolationCode.MISSING_CASE, ViolationCode.BAD_TOTALS)
            }
            if not found:
                return True
    return False


@pytest.mark.parametrize("seed", range(8))
def test_break_aware_insertion_agrees_with_trying_every_break_moment(seed):
    # Tight windows, split windows and a lunch window that often collides with them: the
    # fast insertion test must accept exactly the positions where some literal placement
    # of the break gives a route the checker accepts.
    rnd = random.Random(seed)
    cases = []
    for i in range(8):
        opens = rnd.choice([9, 10, 11, 12])
        spans = rnd.choice(
            [
                (),
                (f"{opens:02d}:00-{opens:02d}:40",),
                (f"{opens:02d}:00-{opens:02d}:20", f"{opens + 1:02d}:30-{opens + 2:02d}:00"),
            ]
        )
        cases.append(make_case(f"C{i}", rnd.uniform(0, 2000), rnd.uniform(0, 2000), spans=spans))
    lunch_opens = rnd.choice(["11:00", "11:30", "12:00"])
    collector = make_collector(
        "K1",
        1000,
        1000,
        shift="09:00-14:00",
        lunch=f"{lunch_opens}-{hm(lunch_opens) // 3600 + 1:02d}:{lunch_opens[3:]}",
        lunch_min=rnd.choice([30, 45]),
    )
    problem = make_problem(cases, [collector])
    matrices = make_matrices(problem, uphill=0.15)
    order: list[str] = []
    for case in cases[:5]:
        for slot in range(len(order) + 1):
            candidate = [*order[:slot], case.id, *order[slot:]]
            if keepable_by_brute_force(problem, matrices, "K1", candidate):
                order = candidate
                break
    for case in cases[5:]:
        found = cheapest_insertions(problem, matrices, {"K1": order}, case.id, collector_ids=["K1"])
        fits = {
            slot
            for slot in range(len(order) + 1)
            if keepable_by_brute_force(
                problem, matrices, "K1", [*order[:slot], case.id, *order[slot:]]
            )
        }
        assert isinstance(found["K1"], Insertion) == bool(fits)
        if fits:
            assert found["K1"].position in fits
            timed = time_route(
                problem,
                matrices,
                "K1",
                [*order[: found["K1"].position], case.id, *order[found["K1"].position :]],
            )
            assert lone_route_violations(problem, matrices, timed) == set()


def test_a_break_makes_the_solver_drop_the_cheapest_case_not_break_the_rules():
    # Five hours of visits fill a five-hour shift; the 45-minute lunch pushes one out.
    cases = [make_case(f"C{i}", 100, 0, service_min=60, value=10_000 + i) for i in range(5)]
    problem = make_problem(
        cases, [make_collector("K1", shift="09:00-14:05", lunch="11:00-13:00", lunch_min=45)]
    )
    plan = solve_checked(problem, make_matrices(problem), QUICK)
    assert len(plan.routes[0].stops) == 4
    assert reasons(plan) == {"C0": Reason.CAPACITY_EXHAUSTED}
