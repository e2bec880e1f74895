"""Dependencies of the routes: settings, the store, and who is calling with what rights."""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from api.schemas import ID_PATTERN
from api.security import (
    OVERVIEW,
    LinkClaims,
    LinkError,
    Principal,
    Scope,
    hash_secret,
    read_link,
    split_api_key,
)
from api.settings import Settings
from dispatch.store import Store


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


def get_store(request: Request) -> Store:
    """The app's store."""
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]

bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `Authorization: Bearer dsp_<id>_<secret>`.",
)
link_query = APIKeyQuery(
    name="link",
    auto_error=False,
    description="A collector link's token (from POST /v1/plans/{plan_id}/links).",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
LinkDep = Annotated[str | None, Security(link_query)]

PlanIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Plan id.")]
CollectorIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="Collector id.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=10**9, description="Items to skip.")]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _unauthenticated(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers=_CHALLENGE)


def authenticate(credentials: BearerDep, store: StoreDep, settings: SettingsDep) -> Principal:
    """The caller of an API key; 401 for a missing, unknown or revoked key."""
    if credentials is None:
        raise _unauthenticated(
            "unauthenticated", "an API key is required: Authorization: Bearer <key>"
        )
    key = credentials.credentials
    admin = settings.admin_key.get_secret_value() if settings.admin_key else ""
    if admin and hmac.compare_digest(key.encode("utf-8"), admin.encode("utf-8")):
        return Principal(None, frozenset({Scope.ADMIN}))
    parts = split_api_key(key)
    record = store.get_api_key(parts[0]) if parts else None
    if parts is None or record is None:
        raise _unauthenticated("invalid_key", "the API key is not known")
    if not hmac.compare_digest(record.key_hash, hash_secret(parts[1])):
        raise _unauthenticated("invalid_key", "the API key is not known")
    if record.revoked_at is not None:
        raise _unauthenticated("key_revoked", f"the API key {record.id} was revoked")
    return Principal(record.id, frozenset(Scope(s) for s in record.scopes))


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def _forbidden(principal: Principal, scopes: tuple[Scope, ...]) -> ApiError:
    wanted = " or ".join(s.value for s in scopes)
    held = ", ".join(sorted(s.value for s in principal.scopes)) or "none"
    return ApiError(403, "forbidden", f"this needs the scope {wanted}; the key holds {held}")


def require(*scopes: Scope) -> Callable[[Principal], Principal]:
    """A dependency: the caller's key must hold one of the scopes (403 otherwise)."""

    def check(principal: PrincipalDep) -> Principal:
        if not any(principal.allows(scope) for scope in scopes):
            raise _forbidden(principal, scopes)
        return principal

    return check


CasesWriter = Annotated[Principal, Depends(require(Scope.CASES_WRITE))]
DataReader = Annotated[Principal, Depends(require(Scope.PLANS_READ, Scope.CASES_WRITE))]
PlansReader = Annotated[Principal, Depends(require(Scope.PLANS_READ))]
PlansWriter = Annotated[Principal, Depends(require(Scope.PLANS_WRITE))]
JobsReader = Annotated[Principal, Depends(require(Scope.PLANS_READ, Scope.PLANS_WRITE))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]


@dataclass(frozen=True, slots=True)
class ItineraryAccess:
    """Who opens an itinerary: a collector by link (``link`` set) or an API key."""

    plan_id: str
    collector_id: str
    link: LinkClaims | None = None
    principal: Principal | None = None


def itinerary_access(scope: Scope) -> Callable[..., ItineraryAccess]:
    """A dependency for one collector's itinerary of one plan.

    A collector link opens exactly the plan and collector it was signed for;
    an API key needs ``scope``. A link for another plan or collector is
    refused with 403, an expired, tampered or revoked one with 401.
    """

    def check(
        request: Request,
        plan_id: PlanIdPath,
        collector_id: CollectorIdPath,
        link: LinkDep,
        credentials: BearerDep,
        store: StoreDep,
        settings: SettingsDep,
    ) -> ItineraryAccess:
        if link is None:
            principal = authenticate(credentials, store, settings)
            if not principal.allows(scope):
                raise _forbidden(principal, (scope,))
            return ItineraryAccess(plan_id, collector_id, principal=principal)
        claims = _link_claims(request, link, store)
        if (claims.plan_id, claims.collector_id) != (plan_id, collector_id):
            raise ApiError(
                403, "forbidden", "this link opens only its own collector's itinerary in its plan"
            )
        return ItineraryAccess(plan_id, collector_id, link=claims)

    return check


def plan_view_access(
    request: Request,
    plan_id: PlanIdPath,
    link: LinkDep,
    credentials: BearerDep,
    store: StoreDep,
    settings: SettingsDep,
) -> str:
    """A plan's map and progress: a dispatcher's link for that plan, or a key with plans:read.

    Returns the plan id. A collector's link is refused with 403 (it opens one
    itinerary only); an expired, tampered or revoked link with 401.
    """
    if link is None:
        principal = authenticate(credentials, store, settings)
        if not principal.allows(Scope.PLANS_READ):
            raise _forbidden(principal, (Scope.PLANS_READ,))
        return plan_id
    claims = _link_claims(request, link, store)
    if (claims.plan_id, claims.collector_id) != (plan_id, OVERVIEW):
        raise ApiError(403, "forbidden", "this link does not open this plan's overview")
    return plan_id


def _link_claims(request: Request, link: str, store: Store) -> LinkClaims:
    try:
        claims = read_link(link, request.app.state.link_secret, now=dt.datetime.now(dt.UTC))
    except LinkError as exc:
        raise _unauthenticated(exc.code, str(exc)) from None
    if store.is_link_revoked(claims.link_id):
        raise _unauthenticated("link_revoked", f"the link {claims.link_id} was revoked")
    return claims


PlanViewer = Annotated[str, Depends(plan_view_access)]
ItineraryReader = Annotated[ItineraryAccess, Depends(itinerary_access(Scope.PLANS_READ))]
OutcomeReporter = Annotated[ItineraryAccess, Depends(itinerary_access(Scope.CASES_WRITE))]
