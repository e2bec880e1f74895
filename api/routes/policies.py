"""Compliance policies: store a YAML document under its name, read and list them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.deps import Admin, DataReader, Limit, Offset, StoreDep
from api.errors import ApiError, not_found, responses
from api.schemas import POLICY_NAME_PATTERN, PageOut, PolicyIn, PolicyOut
from dispatch.compliance import PolicyError, parse_policy
from dispatch.store import StoredPolicy

router = APIRouter(prefix="/policies", tags=["policies"])

PolicyName = Annotated[str, Path(pattern=POLICY_NAME_PATTERN, description="The policy's name.")]


def _policy_out(stored: StoredPolicy) -> PolicyOut:
    policy = parse_policy(stored.document, source=stored.name)
    return PolicyOut(
        name=stored.name,
        version=policy.version,
        title=policy.title,
        content_hash=stored.content_hash,
        document=stored.document,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


@router.put(
    "/{name}",
    response_model=PolicyOut,
    status_code=200,
    responses={201: {"model": PolicyOut, "description": "Created"}}
    | responses(400, 401, 403, 413, 422),
)
def put_policy(
    name: PolicyName, body: PolicyIn, store: StoreDep, _: Admin, response: Response
) -> PolicyOut:
    """Store a policy under its name (201 when new); every schema problem is listed."""
    try:
        policy = parse_policy(body.document, source=name)
    except PolicyError as exc:
        raise ApiError(
            422,
            "invalid_policy",
            f"the policy has {len(exc.problems)} problem(s): {exc.problems[0]}",
            field="document",
            extra={"problems": exc.problems},
        ) from None
    if policy.name != name:
        raise ApiError(
            422,
            "name_mismatch",
            f"the document names policy '{policy.name}', not '{name}'",
            field="document",
        )
    stored, created = store.put_policy(name, body.document, policy.content_hash)
    if created:
        response.status_code = 201
    return _policy_out(stored)


@router.get("", response_model=PageOut[PolicyOut], responses=responses(401, 403, 422))
def list_policies(
    store: StoreDep, _: DataReader, limit: Limit = 100, offset: Offset = 0
) -> PageOut[PolicyOut]:
    """Stored policies by name (presets such as 'uk' need no storing)."""
    page = store.list_policies(limit=limit, offset=offset)
    items = [_policy_out(p) for p in page.items]
    return PageOut[PolicyOut](items=items, total=page.total, limit=limit, offset=offset)


@router.get("/{name}", response_model=PolicyOut, responses=responses(401, 403, 404, 422))
def read_policy(name: PolicyName, store: StoreDep, _: DataReader) -> PolicyOut:
    """One stored policy."""
    stored = store.get_policy(name)
    if stored is None:
        raise not_found("policy", name)
    return _policy_out(stored)
