"""Signed, expiring links: collectors' to their itineraries, the dispatcher's to a plan's map."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Body, Path, Request, Response

from api.deps import PlanIdPath, PlansWriter, SettingsDep, StoreDep
from api.errors import ApiError, not_found, responses
from api.schemas import LinkOut, LinksIn, LinksOut, OverviewLinkIn, OverviewLinkOut
from api.security import OVERVIEW, LinkClaims, new_link, sign_link
from api.settings import Settings

router = APIRouter(tags=["links"])


@router.post(
    "/plans/{plan_id}/links",
    status_code=201,
    response_model=LinksOut,
    responses=responses(400, 401, 403, 404, 413, 422),
)
def create_links(
    plan_id: PlanIdPath,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    _: PlansWriter,
    body: Annotated[LinksIn | None, Body()] = None,
) -> LinksOut:
    """One link per collector of the plan: it opens their itinerary, page and outcome form."""
    body = body or LinksIn()
    stored = store.get_plan(plan_id)
    if stored is None:
        raise not_found("plan", plan_id)
    # Every collector on a route with stops, each member of a crew included.
    with_stops = [m for r in stored.plan.routes if r.stops for m in r.members]
    wanted = with_stops if body.collector_ids is None else list(dict.fromkeys(body.collector_ids))
    missing = [c for c in wanted if c not in with_stops]
    if missing:
        raise ApiError(
            422,
            "no_itinerary",
            f"the plan gives no stops to collector(s) {', '.join(missing)}",
            field="collector_ids",
        )
    links = []
    for collector_id in wanted:
        claims, token, plan_url = _issue(request, settings, plan_id, collector_id, body.ttl_s)
        path = f"{plan_url}/itineraries/{quote(collector_id)}"
        links.append(
            LinkOut(
                link_id=claims.link_id,
                plan_id=plan_id,
                collector_id=collector_id,
                expires_at=claims.expires,
                token=token,
                itinerary_url=f"{path}?link={token}",
                page_url=f"{path}/page?link={token}",
            )
        )
    return LinksOut(links=links)


@router.post(
    "/plans/{plan_id}/links/overview",
    status_code=201,
    response_model=OverviewLinkOut,
    responses=responses(400, 401, 403, 404, 413, 422),
)
def create_overview_link(
    plan_id: PlanIdPath,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    _: PlansWriter,
    body: Annotated[OverviewLinkIn | None, Body()] = None,
) -> OverviewLinkOut:
    """A link for the dispatcher: the plan's live map and progress, in a plain browser.

    It opens nothing else (no itinerary, no outcome form); it expires and can
    be revoked like a collector's link.
    """
    if store.get_plan_summary(plan_id) is None:
        raise not_found("plan", plan_id)
    ttl_s = body.ttl_s if body is not None else None
    claims, token, path = _issue(request, settings, plan_id, OVERVIEW, ttl_s)
    return OverviewLinkOut(
        link_id=claims.link_id,
        plan_id=plan_id,
        expires_at=claims.expires,
        token=token,
        map_url=f"{path}/map?link={token}",
        progress_url=f"{path}/progress?link={token}",
    )


def _issue(
    request: Request, settings: Settings, plan_id: str, collector_id: str, ttl_s: int | None
) -> tuple[LinkClaims, str, str]:
    """A new link's claims, its signed token, and the plan's URL the link's paths start from."""
    claims = new_link(
        plan_id, collector_id, ttl_s=ttl_s or settings.link_ttl_s, now=dt.datetime.now(dt.UTC)
    )
    token = sign_link(claims, request.app.state.link_secret)
    base = (settings.public_url or str(request.base_url)).rstrip("/")
    return claims, token, f"{base}/v1/plans/{plan_id}"


@router.delete("/links/{link_id}", status_code=204, responses=responses(401, 403, 422))
def revoke_link(
    link_id: Annotated[str, Path(pattern=r"^[0-9a-f]{24}$", description="Link id.")],
    store: StoreDep,
    _: PlansWriter,
) -> Response:
    """Revoke a collector link: it opens nothing from now on, though not yet expired."""
    store.revoke_link(link_id)
    return Response(status_code=204)
