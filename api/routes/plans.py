"""Plans: ask for one (an async job), then read it, its unassigned cases, audit and map."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse

from api.deps import (
    Limit,
    Offset,
    PlanIdPath,
    PlansReader,
    PlansWriter,
    PlanViewer,
    SettingsDep,
    StoreDep,
)
from api.errors import ApiError, not_found, responses
from api.pages import overview_html
from api.planning import resolve_policy
from api.schemas import (
    AuditOut,
    JobOut,
    PageOut,
    PlanOut,
    PlanRequestIn,
    PlanSummaryOut,
    ProgressOut,
    UnassignedOut,
    audit_out,
    job_out,
    plan_out,
    plan_summary_out,
    progress_out,
)
from dispatch.compliance import PolicyError
from dispatch.model import Plan, Problem, Reason
from dispatch.progress import Progress, ReportedVisit, track_progress
from dispatch.store import Store

router = APIRouter(prefix="/plans", tags=["plans"])


def _check_request(body: PlanRequestIn, store: StoreDep, settings: SettingsDep) -> None:
    """Refuse what would only fail later in the worker."""
    if not 2000 <= body.date.year <= 2100:
        raise ApiError(422, "invalid_request", "plan a day between 2000 and 2100", field="date")
    if body.time_limit_s > settings.max_time_limit_s:
        raise ApiError(
            422,
            "invalid_request",
            f"time_limit_s may be at most {settings.max_time_limit_s:g} s here",
            field="time_limit_s",
        )
    if body.timezone is not None:
        try:
            ZoneInfo(body.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ApiError(
                422, "invalid_request", f"unknown time zone '{body.timezone}'", field="timezone"
            ) from None
    if body.policy is not None:
        try:
            resolve_policy(store, body.policy)
        except PolicyError as exc:
            raise ApiError(422, "unknown_policy", "; ".join(exc.problems), field="policy") from None


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses=responses(400, 401, 403, 413, 422),
)
def submit_plan(
    body: PlanRequestIn,
    store: StoreDep,
    settings: SettingsDep,
    _: PlansWriter,
    response: Response,
) -> JobOut:
    """Plan a day with every stored case, collector and crew, in a worker.

    Answers at once with the job (poll ``/v1/jobs/{id}``). While an identical
    request on the same data is queued or running, that job is the answer.
    """
    _check_request(body, store, settings)
    job, _created = store.submit_job(body.model_dump(mode="json"))
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job_out(job)


@router.get("", response_model=PageOut[PlanSummaryOut], responses=responses(401, 403, 422))
def list_plans(
    store: StoreDep,
    _: PlansReader,
    date: Annotated[dt.date | None, Query(description="Plans of this day only.")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PageOut[PlanSummaryOut]:
    """Stored plans, newest first."""
    page = store.list_plans(date=date, limit=limit, offset=offset)
    items = [plan_summary_out(p) for p in page.items]
    return PageOut[PlanSummaryOut](items=items, total=page.total, limit=limit, offset=offset)


@router.get("/{plan_id}", response_model=PlanOut, responses=responses(401, 403, 404, 422))
def read_plan(plan_id: PlanIdPath, store: StoreDep, _: PlansReader) -> PlanOut:
    """A plan with its routes and timed stops."""
    stored = store.get_plan(plan_id)
    if stored is None:
        raise not_found("plan", plan_id)
    return plan_out(stored)


@router.get(
    "/{plan_id}/unassigned",
    response_model=PageOut[UnassignedOut],
    responses=responses(401, 403, 404, 422),
)
def list_unassigned(
    plan_id: PlanIdPath,
    store: StoreDep,
    _: PlansReader,
    reason: Reason | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PageOut[UnassignedOut]:
    """The plan's cases on no route, each with its reason."""
    if store.get_plan_summary(plan_id) is None:
        raise not_found("plan", plan_id)
    page = store.list_unassigned(plan_id, reason=reason, limit=limit, offset=offset)
    items = [UnassignedOut(case_id=u.case_id, reason=u.reason, detail=u.detail) for u in page.items]
    return PageOut[UnassignedOut](items=items, total=page.total, limit=limit, offset=offset)


@router.get("/{plan_id}/audit", response_model=AuditOut, responses=responses(401, 403, 404, 422))
def read_audit(plan_id: PlanIdPath, store: StoreDep, _: PlansReader) -> AuditOut:
    """The compliance audit of a plan made under a policy."""
    stored = store.get_plan(plan_id)
    if stored is None:
        raise not_found("plan", plan_id)
    if stored.audit is None:
        raise ApiError(404, "no_audit", f"plan '{plan_id}' was made without a policy")
    return audit_out(stored.audit)


@router.get(
    "/{plan_id}/map",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "The overview map page"}}
    | responses(401, 403, 404, 422),
)
def read_overview_map(
    plan_id: PlanViewer,
    store: StoreDep,
    refresh_s: Annotated[
        int | None, Query(ge=10, le=3600, description="Reload the page this often (seconds).")
    ] = 60,
) -> HTMLResponse:
    """The dispatcher's map: every route, stop, unassigned and excluded case.

    Each stop shows its status (planned, done with the outcome, or missed)
    and each collector their progress, as of the request. It opens with an
    API key, or in a plain browser with the plan's dispatcher link
    (``POST /v1/plans/{plan_id}/links/overview``).
    """
    stored = store.get_plan(plan_id)
    if stored is None:
        raise not_found("plan", plan_id)
    progress = day_progress(store, plan_id, stored.problem, stored.plan)
    page = overview_html(
        stored, store.list_itineraries(plan_id), progress=progress, refresh_s=refresh_s
    )
    return HTMLResponse(page)


@router.get(
    "/{plan_id}/progress", response_model=ProgressOut, responses=responses(401, 403, 404, 422)
)
def read_progress(plan_id: PlanViewer, store: StoreDep) -> ProgressOut:
    """Each stop's status (planned, done with its outcome, missed) and each route's progress.

    A stop is missed when no outcome is recorded by 30 minutes after its
    planned visit ends.
    """
    stored = store.get_plan(plan_id)
    if stored is None:
        raise not_found("plan", plan_id)
    return progress_out(day_progress(store, plan_id, stored.problem, stored.plan))


def day_progress(store: Store, plan_id: str, problem: Problem, plan: Plan) -> Progress:
    """A stored plan's progress now, from the outcomes recorded for its cases."""
    cases = [stop.case_id for route in plan.routes for stop in route.stops]
    reported = [
        ReportedVisit(
            o.visit, o.plan_id, o.details.checkin is not None and o.details.checkin.far_from_address
        )
        for o in store.outcomes_of_day(plan_id, problem, cases)
    ]
    return track_progress(problem, plan, reported, plan_id=plan_id, now=dt.datetime.now(dt.UTC))
