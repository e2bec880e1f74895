"""Bulk upserts: a batch with bad rows is refused whole, unless the caller takes the good rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from api.errors import ApiError
from api.schemas import RowErrorOut, UpsertOut
from dispatch.store import UpsertResult

T = TypeVar("T")


def apply_batch(
    write: Callable[[Sequence[T]], UpsertResult],
    items: Sequence[T],
    problems: Sequence[RowErrorOut],
    *,
    partial: bool,
    field: str,
) -> UpsertOut:
    """Store the good rows of a batch in one transaction, or refuse the batch with 422.

    Without ``partial`` one bad row refuses the whole batch and every row's
    problems are listed under ``rows``; with it, the good rows are stored and
    the bad ones listed as ``rejected``.
    """
    if problems and not partial:
        bad_rows = len({p.index for p in problems})
        rows: list[dict[str, Any]] = [p.model_dump() for p in problems]
        raise ApiError(
            422,
            "invalid_rows",
            f"{bad_rows} row(s) of the batch are invalid; nothing was stored "
            "(send ?partial=true to store the valid rows)",
            field=field,
            extra={"rows": rows},
        )
    result = write(items) if items else UpsertResult()
    return UpsertOut(
        created=len(result.created),
        updated=len(result.updated),
        unchanged=len(result.unchanged),
        rejected=list(problems),
    )
