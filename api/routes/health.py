"""Liveness: is the service up, and which version answers."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter(prefix="/health", tags=["health"])


class HealthOut(BaseModel):
    """Service status."""

    status: str
    version: str


@router.get("", response_model=HealthOut)
def read_health() -> HealthOut:
    """Answer when the service can take requests."""
    return HealthOut(status="ok", version=version("dispatch"))
