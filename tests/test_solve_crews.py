"""Two-person crews: forming them, planning with them, and checking that they stay together."""

from __future__ import annotations

import dataclasses

import pytest
from synthetic_days import (
    BIKE,
    DRIVE,
    WALK,
    details,
    make_case,
    make_collector,
    make_matrices,
    make_problem,
    reasons,
    rules_day,
    solve_checked,
)

from dispatch.errors import InvalidProblemError
from dispatch.explain import ViolationCode, check_plan, time_route
from dispatch.model import Crew, Plan, Reason, Unassigned
from dispatch.solve import SolveParams, pair_collectors


def test_a_crew_combines_its_members_into_one_team():
    problem = make_problem(
        [],
        [
            make_collector("A", 0, 0, shift="08:00-15:00", skills={"legal"}, max_visits=6),
            make_collector("B", 500, 0, shift="09:00-17:00", skills={"swedish"}, max_visits=4),
            make_collector("SOLO", 900, 0),
        ],
        [Crew("PAIR", ("A", "B"))],
    )
    pair = problem.team("PAIR")
    assert [t.id for t in problem.teams()] == ["A", "SOLO"]
    assert pair is problem.team("A") is problem.team("B")
    assert pair.member_ids == ("A", "B") and pair.crew_id == "PAIR"
    assert str(pair.shift) == "09:00-15:00"
    assert pair.skills == {"legal", "swedish"}
    assert pair.max_visits == 4
    assert problem.crew_of("B") == Crew("PAIR", ("A", "B"))
    assert problem.crew_of("SOLO") is None


@pytest.mark.parametrize(
    ("collectors", "crews", "message"),
    [
        ([make_collector("A")], [Crew("X", ("A", "GHOST"))], "collector 'GHOST' is not on duty"),
        (
            [make_collector("A"), make_collector("B"), make_collector("C")],
            [Crew("X", ("A", "B")), Crew("Y", ("B", "C"))],
            "collector B is in crews X and Y",
        ),
        (
            [make_collector("A", mode=WALK), make_collector("B", mode=DRIVE)],
            [Crew("X", ("A", "B"))],
            "members travel in different modes",
        ),
        (
            [make_collector("A", shift="08:00-12:00"), make_collector("B", shift="12:00-16:00")],
            [Crew("X", ("A", "B"))],
            "shifts do not overlap",
        ),
        (
            [
                make_collector("A", lunch="11:00-12:00"),
                make_collector("B", lunch="12:00-13:00"),
            ],
            [Crew("X", ("A", "B"))],
            "fits into no span shared by the members' break windows",
        ),
        ([make_collector("A"), make_collector("B")], [Crew("A", ("A", "B"))], "also a collector"),
    ],
)
def test_a_crew_that_cannot_work_together_is_refused(collectors, crews, message):
    with pytest.raises(InvalidProblemError, match=message):
        make_problem([], collectors, crews)


def test_a_crew_needs_two_different_members():
    with pytest.raises(InvalidProblemError, match="fewer than two"):
        Crew("X", ("A",))
    with pytest.raises(InvalidProblemError, match="more than once"):
        Crew("X", ("A", "A"))


@pytest.fixture
def crew_day():
    # Two lone collectors live next to the two-person visits; the crew lives 2 km away.
    cases = [
        make_case("PAIR1", 300, 0, min_crew=2),
        make_case("PAIR2", 400, 100, min_crew=2),
        make_case("ALONE", 350, 50),
    ]
    collectors = [
        make_collector("NEAR1", 300, 50),
        make_collector("NEAR2", 350, 0),
        make_collector("LEAD", 2000, 0, mode=BIKE),
        make_collector("MATE", 2100, 0, mode=BIKE),
    ]
    problem = make_problem(cases, collectors, [Crew("CREW", ("LEAD", "MATE"))])
    return problem, make_matrices(problem)


def test_two_person_visits_go_only_to_the_crew(crew_day):
    problem, matrices = crew_day
    plan = solve_checked(problem, matrices)
    crew = plan.route_of("LEAD")
    assert crew is not None
    assert {"PAIR1", "PAIR2"} <= set(crew.case_ids)
    assert crew.member_ids == ("LEAD", "MATE")
    for route in plan.routes:
        if len(route.members) < 2:
            assert not {"PAIR1", "PAIR2"} & set(route.case_ids)
    # The crew leaves from its first member's start on the mode they share.
    first = crew.stops[0]
    start = problem.start_index(problem.collector_position("LEAD"))
    assert (
        first.travel_time_s == matrices[BIKE].duration_s[start, problem.case_index(first.case_id)]
    )


def test_each_member_sees_the_crew_route_and_has_no_route_of_their_own(crew_day):
    problem, matrices = crew_day
    plan = solve_checked(problem, matrices)
    crew = plan.route_of("LEAD")
    assert plan.routes_of_member("MATE") == (crew,)
    assert plan.routes_of_member("LEAD") == (crew,)
    assert plan.route_of("MATE") is None
    assert all(r.collector_id != "MATE" for r in plan.routes)
    assert sum("MATE" in r.members for r in plan.routes) == 1


def test_without_a_crew_a_two_person_visit_says_so(crew_day):
    problem, matrices = crew_day
    alone = dataclasses.replace(problem, crews=())
    plan = solve_checked(alone, matrices)
    assert reasons(plan) == {"PAIR1": Reason.NO_CREW, "PAIR2": Reason.NO_CREW}
    assert details(plan)["PAIR1"] == "needs a crew of 2; no crew that large works today"


def test_a_crew_holding_the_skills_only_together_may_make_the_visit():
    problem = make_problem(
        [
            make_case("BOTH", 500, 0, skills={"legal", "swedish"}, min_crew=2),
            make_case("BOTH_ALONE", 600, 0, skills={"legal", "swedish"}),
            make_case("RUSSIAN", 700, 0, skills={"legal"}, min_crew=2),
        ],
        [
            make_collector("LAWYER", skills={"legal"}),
            make_collector("SWEDE", 100, 0, skills={"swedish"}),
            make_collector("OTHER", 200, 0),
            make_collector("THIRD", 300, 0),
        ],
        [Crew("MIXED", ("LAWYER", "SWEDE")), Crew("PLAIN", ("OTHER", "THIRD"))],
    )
    plan = solve_checked(problem, make_matrices(problem))
    mixed = plan.route_of("LAWYER")
    assert mixed is not None and {"BOTH", "BOTH_ALONE", "RUSSIAN"} == set(mixed.case_ids)
    without = make_problem(problem.cases, problem.collectors, [Crew("PLAIN", ("OTHER", "THIRD"))])
    plan = solve_checked(without, make_matrices(without))
    assert reasons(plan) == {
        "BOTH": Reason.NO_CREW,
        "BOTH_ALONE": Reason.NO_QUALIFIED_COLLECTOR,
        "RUSSIAN": Reason.NO_CREW,
    }
    assert details(plan)["BOTH"] == (
        "needs a crew of 2 holding skills legal, swedish; crew PLAIN lacks legal, swedish"
    )
    assert details(plan)["BOTH_ALONE"] == (
        "needs skills legal, swedish; no collector or crew holds all of them"
    )


def test_a_crew_works_only_when_both_members_are_on_shift():
    # LEAD works 08-16, MATE only 12-16: the 09:00 visit is too early for the crew.
    problem = make_problem(
        [make_case("MORNING", 500, 0, spans=("09:00-09:30",), min_crew=2)],
        [make_collector("LEAD"), make_collector("MATE", shift="12:00-16:00")],
        [Crew("CREW", ("LEAD", "MATE"))],
    )
    plan = solve_checked(problem, make_matrices(problem))
    assert reasons(plan) == {"MORNING": Reason.NO_FEASIBLE_TIME}
    assert "crew CREW (walk, shift 12:00-16:00)" in details(plan)["MORNING"]


def test_check_plan_keeps_crews_together_and_large_enough(crew_day):
    problem, matrices = crew_day
    solo = time_route(problem, matrices, "NEAR1", ["PAIR1"])
    crew = time_route(problem, matrices, "CREW", ["PAIR2"])
    assert crew.collector_id == "LEAD" and crew.member_ids == ("LEAD", "MATE")
    rest = (Unassigned("ALONE", Reason.CAPACITY_EXHAUSTED),)

    def found(*routes) -> set[str]:
        return {v.code for v in check_plan(problem, matrices, Plan(routes, rest))}

    assert found(crew) == {ViolationCode.MISSING_CASE}
    assert ViolationCode.CREW_TOO_SMALL in found(solo, crew)
    mate_alone = dataclasses.replace(
        time_route(problem, matrices, "NEAR2", ["PAIR1"]), collector_id="MATE"
    )
    assert {ViolationCode.CREW_SPLIT, ViolationCode.DUPLICATE_ROUTE} <= found(crew, mate_alone)
    unlisted = dataclasses.replace(crew, member_ids=())
    assert ViolationCode.CREW_MEMBERS in found(unlisted)
    violations = check_plan(problem, matrices, Plan((solo, crew), rest))
    small = next(v for v in violations if v.code == ViolationCode.CREW_TOO_SMALL)
    assert small.message == "NEAR1 visits PAIR1, which needs a crew of 2, with 1 collector"


def test_pairing_puts_neighbours_on_overlapping_shifts_together():
    problem = make_problem(
        [make_case("PAIR", 500, 0, min_crew=2, skills={"legal"})],
        [
            make_collector("A", 0, 0),
            make_collector("B", 4000, 0),
            make_collector("C", 100, 0),
            make_collector("D", 4100, 0, skills={"legal"}),
            make_collector("E", 200, 0, shift="13:00-16:00"),
            make_collector("F", 150, 0, mode=BIKE),
        ],
    )
    matrices = make_matrices(problem)
    crews = pair_collectors(problem, matrices, max_apart_s=3600)
    # B and D hold the skill the two-person case needs together, so they pair first;
    # then the nearest of the rest. E's short shift and F's bike leave them alone.
    assert crews == (Crew("B+D", ("B", "D")), Crew("A+C", ("A", "C")))
    assert pair_collectors(problem, matrices, max_crews=1, max_apart_s=3600) == crews[:1]
    nearby = pair_collectors(problem, matrices, collector_ids=["A", "B", "C"], max_apart_s=3600)
    assert nearby == (Crew("A+C", ("A", "C")),)
    assert pair_collectors(problem, matrices, collector_ids=["A", "E"]) == ()
    crewed = dataclasses.replace(problem, crews=crews)
    plan = solve_checked(crewed, matrices)
    assert plan.routes_of_member("D")[0].case_ids == ("PAIR",)


@pytest.mark.parametrize("seed", range(3))
def test_random_days_with_crews_never_give_a_two_person_visit_to_one_collector(seed):
    problem = rules_day(50, 8, seed=seed, crews=2, crew_cases=0.25, lunch=False)
    matrices = make_matrices(problem, uphill=0.1)
    plan = solve_checked(problem, matrices, SolveParams(time_limit_s=1.0))
    needs_two = {c.id for c in problem.cases if c.min_crew == 2}
    assert needs_two & plan.assigned_case_ids()
    for route in plan.routes:
        if len(route.members) == 1:
            assert not needs_two & set(route.case_ids)
    members = [m for r in plan.routes for m in r.members]
    assert len(members) == len(set(members))
