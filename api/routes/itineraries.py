"""Collector itineraries of a plan: JSON, the phone page, and reporting outcomes.

Each route here opens with a collector link (``?link=``) for exactly its plan
and collector, or with an API key.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

from api.deps import (
    ItineraryAccess,
    ItineraryReader,
    OutcomeReporter,
    PlanIdPath,
    PlansReader,
    SettingsDep,
    StoreDep,
)
from api.errors import ApiError, not_found, responses
from api.pages import collector_html
from api.routes.outcomes import record_outcome
from api.schemas import (
    ItineraryOut,
    ItinerarySummaryOut,
    OutcomeIn,
    OutcomeOut,
    itinerary_out,
)
from dispatch.itinerary import parse_navigation
from dispatch.store import Store, StoredItinerary

router = APIRouter(prefix="/plans/{plan_id}/itineraries", tags=["itineraries"])


def _itinerary(store: Store, access: ItineraryAccess) -> StoredItinerary:
    stored = store.get_itinerary(access.plan_id, access.collector_id)
    if stored is None:
        raise ApiError(
            404,
            "not_found",
            f"plan '{access.plan_id}' has no itinerary for collector '{access.collector_id}'",
        )
    return stored


@router.get("", response_model=list[ItinerarySummaryOut], responses=responses(401, 403, 404, 422))
def list_itineraries(
    plan_id: PlanIdPath, store: StoreDep, _: PlansReader
) -> list[ItinerarySummaryOut]:
    """Each collector's day in the plan, in brief (a crew's members share their route)."""
    stored = store.get_plan(plan_id)
    if stored is None:
        raise not_found("plan", plan_id)
    problem = stored.problem
    positions = {k.id: i for i, k in enumerate(problem.collectors)}
    days = [
        ItinerarySummaryOut(
            collector_id=member,
            member_ids=list(route.members),
            visits=len(route.stops),
            start=problem.to_datetime(route.start_s),
            end=problem.to_datetime(route.end_s),
            travel_time_s=route.travel_time_s,
            distance_m=route.distance_m,
        )
        for route in stored.plan.routes
        if route.stops
        for member in route.members
    ]
    return sorted(days, key=lambda day: positions.get(day.collector_id, len(positions)))


@router.get("/{collector_id}", response_model=ItineraryOut, responses=responses(401, 403, 404, 422))
def read_itinerary(access: ItineraryReader, store: StoreDep, settings: SettingsDep) -> ItineraryOut:
    """A collector's day: stops in order with ETAs, road lines and navigation links.

    Case data is shown only as the plan's policy lets collectors see it.
    """
    navigation = parse_navigation(settings.navigation_apps)
    return itinerary_out(_itinerary(store, access), navigation=navigation)


@router.get(
    "/{collector_id}/page",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "The collector's map page"}}
    | responses(401, 403, 404, 422),
)
def read_itinerary_page(
    access: ItineraryReader, store: StoreDep, settings: SettingsDep
) -> HTMLResponse:
    """The collector's phone page: their route on a map, the stops, and an outcome form per stop.

    The page keeps outcomes entered without a connection and sends them when
    it is back, each under its own id so that none is recorded twice.
    """
    stored = _itinerary(store, access)
    cases = [s.case.id for s in stored.itinerary.stops]
    # What the page shows of a stop already reported: the outcome and when, nothing more.
    reported = {
        o.visit.case_id: {
            "outcome": o.visit.outcome.value,
            "visited_at": o.visit.visited_at.isoformat(),
        }
        for o in store.outcomes_of_day(access.plan_id, stored.problem, cases)
    }
    navigation = parse_navigation(settings.navigation_apps)
    page = collector_html(stored, navigation=navigation, reported=reported)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.post(
    "/{collector_id}/outcomes",
    response_model=OutcomeOut,
    status_code=201,
    responses={200: {"model": OutcomeOut, "description": "Reported before under this id"}}
    | responses(400, 401, 403, 404, 409, 413, 422),
)
def report_outcome(
    access: OutcomeReporter,
    body: OutcomeIn,
    store: StoreDep,
    settings: SettingsDep,
    response: Response,
) -> OutcomeOut:
    """Report the outcome of a visit on this itinerary (only its own cases)."""
    case_ids = store.route_case_ids(access.plan_id, access.collector_id)
    if not case_ids:
        raise ApiError(
            404,
            "not_found",
            f"plan '{access.plan_id}' has no itinerary for collector '{access.collector_id}'",
        )
    if body.case_id not in case_ids:
        raise ApiError(
            403,
            "forbidden",
            f"case '{body.case_id}' is not on this itinerary",
            field="case_id",
        )
    return record_outcome(
        store,
        body,
        response,
        checkin_radius_m=settings.checkin_radius_m,
        collector_id=access.collector_id,
        plan_id=access.plan_id,
    )
