"""Cases: bulk upsert by the caller's id, read one, list with filters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.batches import apply_batch
from api.deps import CasesWriter, DataReader, Limit, Offset, StoreDep
from api.errors import not_found, responses
from api.schemas import (
    ID_PATTERN,
    NAME_PATTERN,
    CaseBatchIn,
    CaseIn,
    CaseOut,
    PageOut,
    UpsertOut,
    case_out,
    read_rows,
)

router = APIRouter(prefix="/cases", tags=["cases"])

Partial = Annotated[
    bool,
    Query(description="Store the valid rows and list the invalid ones (default: all or none)."),
]


@router.post("", response_model=UpsertOut, responses=responses(400, 401, 403, 413, 422))
def upsert_cases(
    batch: CaseBatchIn, store: StoreDep, _: CasesWriter, partial: Partial = False
) -> UpsertOut:
    """Insert or update cases by id; sending the same batch again changes nothing."""
    items, problems = read_rows(batch.cases, CaseIn, CaseIn.to_case)
    return apply_batch(store.upsert_cases, items, problems, partial=partial, field="cases")


@router.get("", response_model=PageOut[CaseOut], responses=responses(401, 403, 422))
def list_cases(
    store: StoreDep,
    _: DataReader,
    skill: Annotated[str | None, Query(pattern=NAME_PATTERN, description="Requires it.")] = None,
    min_days_past_due: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    max_days_past_due: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PageOut[CaseOut]:
    """Cases by id, filtered by a required skill and a days-past-due range (inclusive)."""
    page = store.list_cases(
        skill=skill,
        min_days_past_due=min_days_past_due,
        max_days_past_due=max_days_past_due,
        limit=limit,
        offset=offset,
    )
    items = [case_out(r.item, r.created_at, r.updated_at) for r in page.items]
    return PageOut[CaseOut](items=items, total=page.total, limit=limit, offset=offset)


@router.get("/{case_id}", response_model=CaseOut, responses=responses(401, 403, 404, 422))
def read_case(
    case_id: Annotated[str, Path(pattern=ID_PATTERN)], store: StoreDep, _: DataReader
) -> CaseOut:
    """One case by id."""
    record = store.get_case(case_id)
    if record is None:
        raise not_found("case", case_id)
    return case_out(record.item, record.created_at, record.updated_at)
