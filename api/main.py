"""Build the FastAPI application and mount the versioned routers."""

from __future__ import annotations

from fastapi import FastAPI

from api.routes import health


def create_app() -> FastAPI:
    """Create the application with every router under ``/v1``."""
    application = FastAPI(title="dispatch", version="0.1.0")
    application.include_router(health.router, prefix="/v1")
    return application


app = create_app()
