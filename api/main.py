"""Build the FastAPI application: routers under ``/v1``, errors, limits, store and workers."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.errors import add_error_handlers
from api.middleware import BodySizeLimit
from api.pages import ASSETS_PATH, assets_dir
from api.routes import (
    cases,
    collectors,
    crews,
    health,
    itineraries,
    jobs,
    keys,
    links,
    outcomes,
    plans,
    policies,
)
from api.settings import Settings
from api.supervisor import WorkerPool
from dispatch.store import Store

logger = logging.getLogger("dispatch.api")

ROUTERS = (
    health.router,
    cases.router,
    collectors.router,
    crews.router,
    policies.router,
    outcomes.router,
    plans.router,
    jobs.router,
    itineraries.router,
    links.router,
    keys.router,
)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Migrate the schema and start the plan workers; stop them on the way out."""
    settings: Settings = app.state.settings
    store: Store = app.state.store
    if settings.migrate:
        store.migrate()
    pool = WorkerPool(settings, store)
    pool.start()
    app.state.workers = pool
    try:
        yield
    finally:
        pool.stop()
        store.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Create the service; settings default to the ``DISPATCH_*`` environment."""
    settings = settings or Settings()
    application = FastAPI(
        title="dispatch",
        version="0.1.0",
        summary="Plan door-to-door collection visits on real roads.",
        lifespan=_lifespan,
    )
    application.state.settings = settings
    application.state.store = Store(settings.database_url)
    if settings.link_secret is not None:
        application.state.link_secret = settings.link_secret.get_secret_value().encode("utf-8")
    else:
        logger.warning("DISPATCH_LINK_SECRET is unset: collector links end with this process")
        application.state.link_secret = secrets.token_bytes(32)
    for router in ROUTERS:
        application.include_router(router, prefix="/v1")
    # Leaflet and jQuery for the map pages, public like any other web library.
    application.mount(ASSETS_PATH, StaticFiles(directory=assets_dir()), name="assets")
    add_error_handlers(application)
    application.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return application


app = create_app()
