"""Crews: collectors who work a day together; bulk upsert by id and list."""

from __future__ import annotations

from fastapi import APIRouter

from api.batches import apply_batch
from api.deps import CasesWriter, DataReader, Limit, Offset, StoreDep
from api.errors import responses
from api.routes.cases import Partial
from api.schemas import CrewBatchIn, CrewIn, CrewOut, PageOut, UpsertOut, read_rows

router = APIRouter(prefix="/crews", tags=["crews"])


@router.post("", response_model=UpsertOut, responses=responses(400, 401, 403, 413, 422))
def upsert_crews(
    batch: CrewBatchIn, store: StoreDep, _: CasesWriter, partial: Partial = False
) -> UpsertOut:
    """Insert or update crews by id (members must be stored collectors when a day is planned)."""
    items, problems = read_rows(batch.crews, CrewIn, CrewIn.to_crew)
    return apply_batch(store.upsert_crews, items, problems, partial=partial, field="crews")


@router.get("", response_model=PageOut[CrewOut], responses=responses(401, 403, 422))
def list_crews(
    store: StoreDep, _: DataReader, limit: Limit = 100, offset: Offset = 0
) -> PageOut[CrewOut]:
    """Crews by id."""
    page = store.list_crews(limit=limit, offset=offset)
    items = [
        CrewOut(
            id=r.item.id,
            member_ids=list(r.item.member_ids),
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in page.items
    ]
    return PageOut[CrewOut](items=items, total=page.total, limit=limit, offset=offset)
