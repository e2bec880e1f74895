"""How far the day has gone: each planned stop's status and each collector's progress.

A stop is ``done`` once an outcome is recorded for its case on the plan (or,
reported by the case system without a plan, on the plan day); ``missed``
when none is recorded by the end of its planned visit plus a grace period;
``planned`` until then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from dispatch.compliance import Outcome, VisitRecord
from dispatch.model import Plan, Problem

MISSED_GRACE_S = 30 * 60


class StopStatus(StrEnum):
    """Where a planned stop stands."""

    PLANNED = "planned"
    DONE = "done"
    MISSED = "missed"


@dataclass(frozen=True, slots=True)
class ReportedVisit:
    """An outcome as progress sees it: the visit, the plan it was reported on (if any)."""

    visit: VisitRecord
    plan_id: str | None = None
    far_from_address: bool = False


@dataclass(frozen=True, slots=True)
class StopProgress:
    """One stop of the plan and its status; ``outcome`` is the latest one recorded."""

    route_id: str
    number: int
    case_id: str
    planned_start: dt.datetime
    status: StopStatus
    outcome: Outcome | None = None
    reported_at: dt.datetime | None = None
    far_from_address: bool = False


@dataclass(frozen=True, slots=True)
class RouteProgress:
    """One route's progress; ``next_case_id`` is the first stop still planned."""

    route_id: str
    member_ids: tuple[str, ...]
    stops: int
    done: int
    missed: int
    next_case_id: str | None

    @property
    def planned(self) -> int:
        """Stops neither done nor missed."""
        return self.stops - self.done - self.missed


@dataclass(frozen=True, slots=True)
class Progress:
    """The day's progress as of an instant."""

    as_of: dt.datetime
    stops: tuple[StopProgress, ...]
    routes: tuple[RouteProgress, ...]

    def of_case(self, case_id: str) -> StopProgress | None:
        """The stop of a case, if it is on a route."""
        return next((s for s in self.stops if s.case_id == case_id), None)


def track_progress(
    problem: Problem,
    plan: Plan,
    reported: Iterable[ReportedVisit],
    *,
    plan_id: str | None,
    now: dt.datetime,
    grace_s: int = MISSED_GRACE_S,
) -> Progress:
    """Each stop's status and each route's progress at ``now`` (an aware instant).

    Parameters
    ----------
    problem, plan
        The planned day.
    reported
        Recorded outcomes; those reported on another plan do not count, nor
        those without a plan that fall on another day.
    plan_id
        The plan's id in the store, None when it has none.
    now
        The instant to judge ``missed`` at.
    grace_s
        How long after the planned end of a visit it counts as missed.
    """
    latest: dict[str, ReportedVisit] = {}
    for item in reported:
        on_plan = (
            item.plan_id == plan_id
            if item.plan_id is not None
            else (item.visit.visited_at.astimezone(problem.tz).date() == problem.date)
        )
        if not on_plan:
            continue
        seen = latest.get(item.visit.case_id)
        if seen is None or item.visit.visited_at >= seen.visit.visited_at:
            latest[item.visit.case_id] = item
    stops: list[StopProgress] = []
    routes: list[RouteProgress] = []
    for route in plan.routes:
        if not route.stops:
            continue
        ours = []
        for number, stop in enumerate(route.stops, start=1):
            found = latest.get(stop.case_id)
            if found is not None:
                status = StopStatus.DONE
            elif now > problem.to_datetime(stop.end_s + grace_s):
                status = StopStatus.MISSED
            else:
                status = StopStatus.PLANNED
            ours.append(
                StopProgress(
                    route.collector_id,
                    number,
                    stop.case_id,
                    problem.to_datetime(stop.start_s),
                    status,
                    None if found is None else found.visit.outcome,
                    None if found is None else found.visit.visited_at,
                    False if found is None else found.far_from_address,
                )
            )
        stops.extend(ours)
        routes.append(
            RouteProgress(
                route.collector_id,
                route.members,
                len(ours),
                sum(s.status is StopStatus.DONE for s in ours),
                sum(s.status is StopStatus.MISSED for s in ours),
                next((s.case_id for s in ours if s.status is StopStatus.PLANNED), None),
            )
        )
    return Progress(now, tuple(stops), tuple(routes))
