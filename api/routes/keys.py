"""API keys: create one (its secret is shown once), list them, revoke one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import Admin, Limit, Offset, StoreDep
from api.errors import ApiError, not_found, responses
from api.schemas import KeyCreatedOut, KeyIn, KeyOut, PageOut, key_out
from api.security import Scope, hash_secret, new_api_key, split_api_key

router = APIRouter(prefix="/keys", tags=["keys"])

KeyIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="Key id.")]


@router.post(
    "", status_code=201, response_model=KeyCreatedOut, responses=responses(400, 401, 403, 413, 422)
)
def create_key(body: KeyIn, store: StoreDep, _: Admin) -> KeyCreatedOut:
    """Create an API key with scopes; the key itself is in this answer only."""
    known = {s.value for s in Scope}
    unknown = [s for s in body.scopes if s not in known]
    if unknown:
        raise ApiError(
            422,
            "invalid_request",
            f"unknown scope(s) {', '.join(unknown)}; scopes are {', '.join(sorted(known))}",
            field="scopes",
        )
    key, key_id = new_api_key()
    parts = split_api_key(key)
    assert parts is not None
    record = store.add_api_key(
        key_id, name=body.name, key_hash=hash_secret(parts[1]), scopes=set(body.scopes)
    )
    return KeyCreatedOut(**key_out(record).model_dump(), key=key)


@router.get("", response_model=PageOut[KeyOut], responses=responses(401, 403, 422))
def list_keys(store: StoreDep, _: Admin, limit: Limit = 100, offset: Offset = 0) -> PageOut[KeyOut]:
    """API keys, oldest first (never their secrets)."""
    page = store.list_api_keys(limit=limit, offset=offset)
    items = [key_out(k) for k in page.items]
    return PageOut[KeyOut](items=items, total=page.total, limit=limit, offset=offset)


@router.delete("/{key_id}", response_model=KeyOut, responses=responses(401, 403, 404, 422))
def revoke_key(key_id: KeyIdPath, store: StoreDep, _: Admin) -> KeyOut:
    """Revoke an API key: it is refused with 401 from now on."""
    record = store.revoke_api_key(key_id)
    if record is None:
        raise not_found("API key", key_id)
    return key_out(record)
