"""A planned day's progress: stops done, missed or still planned, and each route's count."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from dispatch.compliance import Outcome, VisitRecord
from dispatch.model import Case, Collector, Location, Plan, Problem, Route, Stop, TimeWindow
from dispatch.progress import ReportedVisit, StopStatus, track_progress

HELSINKI = ZoneInfo("Europe/Helsinki")
DAY = dt.date(2026, 12, 1)
HOME = Location(60.17, 24.94)


def _day() -> tuple[Problem, Plan]:
    cases = tuple(Case(f"C-{i}", Location(60.17 + i * 0.001, 24.94)) for i in range(1, 5))
    collectors = tuple(
        Collector(k, k, HOME, HOME, TimeWindow(8 * 3600, 17 * 3600)) for k in ("K-1", "K-2")
    )
    problem = Problem(DAY, "Europe/Helsinki", cases, collectors)

    def stop(case_id: str, hour: int) -> Stop:
        return Stop(case_id, hour * 3600, hour * 3600, hour * 3600 + 900, 300, 200)

    routes = (
        Route("K-1", 8 * 3600, 12 * 3600, (stop("C-1", 9), stop("C-2", 10)), 600, 400),
        Route("K-2", 8 * 3600, 15 * 3600, (stop("C-3", 11), stop("C-4", 14)), 600, 400),
    )
    return problem, Plan(routes, ())


def _at(clock: str, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(clock), HELSINKI)


def test_stops_are_done_missed_or_planned_as_of_the_moment_asked():
    problem, plan = _day()
    reported = [
        ReportedVisit(VisitRecord("C-1", _at("09:05"), Outcome.NOT_HOME), "plan-a"),
        # Reported from the case system, without a plan, on the plan day: it counts.
        ReportedVisit(VisitRecord("C-3", _at("11:10"), Outcome.PAID), None, True),
        # Reported on another plan, or on another day: it does not.
        ReportedVisit(VisitRecord("C-2", _at("10:05"), Outcome.PAID), "plan-b"),
        ReportedVisit(VisitRecord("C-4", _at("14:00", DAY - dt.timedelta(days=1)), Outcome.PAID)),
    ]
    progress = track_progress(problem, plan, reported, plan_id="plan-a", now=_at("12:00"))

    status = {s.case_id: (s.status, s.outcome) for s in progress.stops}
    assert status == {
        "C-1": (StopStatus.DONE, Outcome.NOT_HOME),
        # C-2's visit ended at 10:15; at 12:00 the 30-minute grace is long over.
        "C-2": (StopStatus.MISSED, None),
        "C-3": (StopStatus.DONE, Outcome.PAID),
        "C-4": (StopStatus.PLANNED, None),
    }
    assert progress.of_case("C-3").far_from_address
    routes = {r.route_id: (r.done, r.missed, r.planned, r.next_case_id) for r in progress.routes}
    assert routes == {"K-1": (1, 1, 0, None), "K-2": (1, 0, 1, "C-4")}


def test_a_stop_is_not_missed_within_the_grace_after_its_visit():
    problem, plan = _day()
    # C-1's visit ends at 09:15; until 09:45 it may still be reported.
    early = track_progress(problem, plan, [], plan_id=None, now=_at("09:44"))
    late = track_progress(problem, plan, [], plan_id=None, now=_at("09:46"))
    assert early.of_case("C-1").status is StopStatus.PLANNED
    assert late.of_case("C-1").status is StopStatus.MISSED
