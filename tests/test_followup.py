"""The next plan follows what the latest visits found: closures, address holds, disputes, bands."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from dispatch.compliance import Outcome, VisitRecord, load_policy
from dispatch.followup import (
    AvailabilityParams,
    Band,
    address_key,
    follow_up,
    learn_availability,
)
from dispatch.model import (
    ALL_DAY,
    Case,
    Collector,
    Location,
    Problem,
    Reason,
    TimeWindow,
    parse_clock,
)
from dispatch.pipeline import screen_day

HELSINKI = ZoneInfo("Europe/Helsinki")
PLAN_DATE = dt.date(2026, 12, 2)
DEPOT = Location(60.1699, 24.9384)


def case(case_id: str, lat: float = 60.17, lon: float = 24.94, **values) -> Case:
    values.setdefault("address", f"Mannerheimintie {case_id[-2:]}, Helsinki")
    values.setdefault("amount_cents", 200_000)
    values.setdefault("days_past_due", 120)
    return Case(case_id, Location(lat, lon), **values)


def day(*cases: Case) -> Problem:
    collector = Collector("K-01", "Aino", DEPOT, DEPOT, TimeWindow(8 * 3600, 21 * 3600))
    return Problem(PLAN_DATE, "Europe/Helsinki", cases, (collector,))


def visit(case_id: str, when: str, outcome: Outcome, **values) -> VisitRecord:
    moment = dt.datetime.fromisoformat(when).replace(tzinfo=HELSINKI)
    return VisitRecord(case_id, moment, outcome, **values)


def test_a_paid_visit_closes_the_case_and_a_partial_payment_does_not():
    problem = day(case("C-01"), case("C-02"))
    history = [
        visit("C-01", "2026-11-30T10:00", Outcome.NOT_HOME),
        visit("C-01", "2026-12-01T11:00", Outcome.PAID),
        visit("C-02", "2026-12-01T11:30", Outcome.PARTIAL_PAYMENT),
    ]
    followed = follow_up(problem, history)
    assert [c.id for c in followed.problem.cases] == ["C-02"]
    (closed,) = followed.held_back
    assert closed.case_id == "C-01" and closed.reason is Reason.CASE_CLOSED
    assert "paid in full at the visit on 2026-12-01 11:00" in closed.detail


@pytest.mark.parametrize("outcome", [Outcome.MOVED, Outcome.WRONG_ADDRESS])
def test_an_address_failure_holds_the_case_until_its_address_changes(outcome):
    visited = case("C-03", address="Aleksanterinkatu 5 A 7, Helsinki")
    history = [visit("C-03", "2026-12-01T10:00", outcome, address=visited.address)]

    held = follow_up(day(visited), history)
    assert held.problem.cases == ()
    assert [(u.case_id, u.reason) for u in held.held_back] == [("C-03", Reason.ADDRESS_UNVERIFIED)]
    # The same address written differently is still the same address.
    rewritten = dataclasses.replace(visited, address="ALEKSANTERINKATU 5a7 helsinki")
    assert address_key(rewritten.address, rewritten.location) != address_key(
        "Aleksanterinkatu 5 A 8, Helsinki", rewritten.location
    )
    rewritten = dataclasses.replace(visited, address="aleksanterinkatu 5 a 7,  HELSINKI")
    assert follow_up(day(rewritten), history).held_back
    # A new address from the case system puts the case back on the road.
    moved = dataclasses.replace(
        visited, address="Hämeentie 12, Helsinki", location=Location(60.185, 24.96)
    )
    followed = follow_up(day(moved), history)
    assert followed.held_back == () and followed.problem.cases == (moved,)


def test_a_later_visit_that_found_the_debtor_lifts_an_address_hold():
    history = [
        visit("C-04", "2026-11-20T10:00", Outcome.MOVED),
        visit("C-04", "2026-11-27T18:00", Outcome.PROMISE_TO_PAY, promise_due=PLAN_DATE),
    ]
    assert follow_up(day(case("C-04")), history).held_back == ()


def test_a_dispute_flags_the_case_and_the_policy_blocks_it():
    problem = day(case("C-05"), case("C-06"))
    history = [visit("C-05", "2026-12-01T10:00", Outcome.DISPUTED)]
    followed = follow_up(problem, history)
    assert followed.disputed == ("C-05",)
    assert "dispute" in followed.problem.case("C-05").flags
    assert "dispute" not in followed.problem.case("C-06").flags

    screening = screen_day(problem, policy=load_policy("us-federal"), history=history)
    reasons = {u.case_id: (u.reason, u.detail) for u in screening.held_back}
    assert reasons["C-05"][0] is Reason.POLICY_EXCLUDED
    assert "dispute" in reasons["C-05"][1]
    assert [c.id for c in screening.day.cases] == ["C-06"]


def test_not_home_in_the_morning_moves_the_next_visit_out_of_the_morning():
    problem = day(case("C-07", windows=(TimeWindow(parse_clock("08:00"), parse_clock("20:00")),)))
    history = [visit("C-07", "2026-12-01T09:30", Outcome.NOT_HOME)]
    narrowed, notes = learn_availability(problem, history)
    (note,) = notes
    assert note.case_id == "C-07" and note.source == "case" and note.applied
    assert [b.name for b in note.avoided] == ["morning"]
    windows = narrowed.case("C-07").windows
    # Every start time left is at noon or later: no visit starts in the morning band.
    assert min(w.start_s for w in windows) == parse_clock("12:00")
    assert max(w.end_s for w in windows) == parse_clock("20:00")


def test_a_band_where_the_debtor_was_found_more_often_stays_open():
    problem = day(case("C-08"))
    history = [
        visit("C-08", "2026-11-20T09:30", Outcome.NOT_HOME),
        visit("C-08", "2026-11-24T10:30", Outcome.REFUSED),
        visit("C-08", "2026-11-26T11:00", Outcome.PROMISE_TO_PAY, promise_due=PLAN_DATE),
    ]
    narrowed, notes = learn_availability(problem, history)
    assert notes == () and narrowed == problem


def test_when_every_open_time_was_a_miss_the_case_keeps_its_windows():
    only_morning = (TimeWindow(parse_clock("09:00"), parse_clock("11:00")),)
    problem = day(case("C-09", windows=only_morning))
    history = [visit("C-09", "2026-12-01T10:00", Outcome.NOT_HOME)]
    narrowed, (note,) = learn_availability(problem, history)
    assert not note.applied
    assert narrowed.case("C-09").windows == only_morning


def test_a_case_without_visits_learns_from_its_neighbours_and_not_from_far_away():
    near = case("C-10", 60.1700, 24.9400)
    neighbours = [case(f"C-2{i}", 60.1700 + i * 0.0005, 24.9400) for i in range(3)]
    far = case("C-30", 60.2500, 25.1000)
    problem = day(near, far, *neighbours)
    history = [
        visit("C-20", "2026-11-25T18:30", Outcome.NOT_HOME),
        visit("C-21", "2026-11-26T19:00", Outcome.NOT_HOME),
        visit("C-22", "2026-11-27T18:00", Outcome.THIRD_PARTY),
    ]
    narrowed, notes = learn_availability(problem, history, params=AvailabilityParams(radius_m=300))
    by_case = {n.case_id: n for n in notes}
    assert by_case["C-10"].source == "area"
    assert [b.name for b in by_case["C-10"].avoided] == ["evening"]
    assert "nobody home at 2 of 3 case(s) nearby" in by_case["C-10"].detail
    evening = (parse_clock("17:00"), parse_clock("21:00"))
    windows = narrowed.case("C-10").windows
    assert all(w.end_s < evening[0] or w.start_s >= evening[1] for w in windows)
    assert "C-30" not in by_case
    assert narrowed.case("C-30").windows == (ALL_DAY,)
    # One neighbour never home is not enough to learn from, however often it was tried.
    lone = [visit("C-20", f"2026-11-{day}T18:30", Outcome.NOT_HOME) for day in ("23", "25", "27")]
    _, notes = learn_availability(problem, lone)
    assert "C-10" not in {n.case_id for n in notes}


def test_bands_must_not_overlap():
    with pytest.raises(ValueError, match="overlap"):
        AvailabilityParams(bands=(Band("a", 8 * 3600, 13 * 3600), Band("b", 12 * 3600, 18 * 3600)))
    with pytest.raises(ValueError, match="not a part of one day"):
        Band("late", 20 * 3600, 25 * 3600)
