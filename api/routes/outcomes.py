"""Visit outcomes reported by the case system (collectors report theirs by link)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import CasesWriter, DataReader, Limit, Offset, SettingsDep, StoreDep
from api.errors import ApiError, responses
from api.schemas import ID_PATTERN, OutcomeIn, OutcomeOut, PageOut, RowProblemError, outcome_out
from dispatch.followup import check_in
from dispatch.model import Location
from dispatch.store import OutcomeDetails, Store, StoreConflictError

router = APIRouter(prefix="/outcomes", tags=["outcomes"])


def record_outcome(
    store: Store,
    body: OutcomeIn,
    response: Response,
    *,
    checkin_radius_m: float,
    collector_id: str | None = None,
    plan_id: str | None = None,
) -> OutcomeOut:
    """Record an outcome: 201 when new, 200 when the same report came before under its id.

    A check-in is measured against the case's address and flagged when it is
    more than ``checkin_radius_m`` (plus the fix's accuracy) away.
    """
    try:
        body.check_payment()
        visit = body.to_visit(now=dt.datetime.now(dt.UTC), collector_id=collector_id)
    except RowProblemError as exc:
        raise ApiError(422, "invalid_outcome", exc.reason, field=exc.field) from None
    plan_id = plan_id or body.plan_id
    if plan_id is not None and store.get_plan_summary(plan_id) is None:
        raise ApiError(422, "unknown_plan", f"plan '{plan_id}' does not exist", field="plan_id")
    record = store.get_case(body.case_id)
    if record is None:
        raise ApiError(
            422, "unknown_case", f"case '{body.case_id}' does not exist", field="case_id"
        )
    checkin = None
    if body.checkin is not None:
        checkin = check_in(
            record.item.location,
            Location(body.checkin.lat, body.checkin.lon),
            accuracy_m=body.checkin.accuracy_m,
            radius_m=checkin_radius_m,
        )
    details = OutcomeDetails(body.paid_cents, body.note, checkin)
    # A retry is the same report when it sends the same body, whatever defaults fill in.
    sent = body.model_dump(mode="json", exclude={"id"})
    content = sent | {"collector_id": visit.collector_id, "plan_id": plan_id}
    try:
        stored, created = store.add_outcome(
            visit, outcome_id=body.id, plan_id=plan_id, details=details, content=content
        )
    except KeyError:
        raise ApiError(
            422, "unknown_case", f"case '{body.case_id}' does not exist", field="case_id"
        ) from None
    except StoreConflictError as exc:
        raise ApiError(409, "conflict", str(exc), field="id") from None
    response.status_code = 201 if created else 200
    return outcome_out(stored)


@router.post(
    "",
    response_model=OutcomeOut,
    status_code=201,
    responses={200: {"model": OutcomeOut, "description": "Reported before under this id"}}
    | responses(400, 401, 403, 409, 413, 422),
)
def create_outcome(
    body: OutcomeIn, store: StoreDep, settings: SettingsDep, _: CasesWriter, response: Response
) -> OutcomeOut:
    """Record what happened at a visit; it counts in the visit history of later plans."""
    return record_outcome(store, body, response, checkin_radius_m=settings.checkin_radius_m)


@router.get("", response_model=PageOut[OutcomeOut], responses=responses(401, 403, 422))
def list_outcomes(
    store: StoreDep,
    _: DataReader,
    case_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    plan_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PageOut[OutcomeOut]:
    """Recorded outcomes, oldest visit first, of one case or one plan if asked."""
    page = store.list_outcomes(case_id=case_id, plan_id=plan_id, limit=limit, offset=offset)
    items = [outcome_out(o) for o in page.items]
    return PageOut[OutcomeOut](items=items, total=page.total, limit=limit, offset=offset)
