"""Collectors: bulk upsert by the caller's id, read one, list with filters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.batches import apply_batch
from api.deps import CasesWriter, DataReader, Limit, Offset, StoreDep
from api.errors import not_found, responses
from api.routes.cases import Partial
from api.schemas import (
    ID_PATTERN,
    NAME_PATTERN,
    CollectorBatchIn,
    CollectorIn,
    CollectorOut,
    PageOut,
    UpsertOut,
    collector_out,
    read_rows,
)
from dispatch.model import TravelMode

router = APIRouter(prefix="/collectors", tags=["collectors"])


@router.post("", response_model=UpsertOut, responses=responses(400, 401, 403, 413, 422))
def upsert_collectors(
    batch: CollectorBatchIn, store: StoreDep, _: CasesWriter, partial: Partial = False
) -> UpsertOut:
    """Insert or update collectors by id; sending the same batch again changes nothing."""
    items, problems = read_rows(batch.collectors, CollectorIn, CollectorIn.to_collector)
    return apply_batch(
        store.upsert_collectors, items, problems, partial=partial, field="collectors"
    )


@router.get("", response_model=PageOut[CollectorOut], responses=responses(401, 403, 422))
def list_collectors(
    store: StoreDep,
    _: DataReader,
    skill: Annotated[str | None, Query(pattern=NAME_PATTERN, description="Holds it.")] = None,
    mode: TravelMode | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PageOut[CollectorOut]:
    """Collectors by id, filtered by a held skill and a travel mode."""
    page = store.list_collectors(skill=skill, mode=mode, limit=limit, offset=offset)
    items = [collector_out(r.item, r.created_at, r.updated_at) for r in page.items]
    return PageOut[CollectorOut](items=items, total=page.total, limit=limit, offset=offset)


@router.get("/{collector_id}", response_model=CollectorOut, responses=responses(401, 403, 404, 422))
def read_collector(
    collector_id: Annotated[str, Path(pattern=ID_PATTERN)], store: StoreDep, _: DataReader
) -> CollectorOut:
    """One collector by id."""
    record = store.get_collector(collector_id)
    if record is None:
        raise not_found("collector", collector_id)
    return collector_out(record.item, record.created_at, record.updated_at)
