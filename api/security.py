"""API keys (scopes, hashing) and signed, expiring collector links (HMAC-SHA256)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from enum import StrEnum

KEY_PREFIX = "dsp"


class Scope(StrEnum):
    """What an API key may do; ``admin`` may do everything."""

    CASES_WRITE = "cases:write"
    PLANS_WRITE = "plans:write"
    PLANS_READ = "plans:read"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: an API key (by id; None for the bootstrap admin key) and its scopes."""

    key_id: str | None
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        """Whether the caller holds the scope (admin holds them all)."""
        return Scope.ADMIN in self.scopes or scope in self.scopes


def hash_secret(secret: str) -> str:
    """SHA-256 (hex) of a key's secret.

    Keys are 256 random bits, so a fast hash is enough: there is nothing to
    guess that a slow password hash would protect.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_api_key() -> tuple[str, str]:
    """A new key as ``dsp_<id>_<secret>`` and its id."""
    key_id = secrets.token_hex(6)
    return f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}", key_id


def split_api_key(key: str) -> tuple[str, str] | None:
    """The id and secret of a key in ``dsp_<id>_<secret>`` form, or None."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


class LinkError(ValueError):
    """A collector link that does not open: ``code`` is ``invalid_link`` or ``link_expired``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class LinkClaims:
    """What a link grants until it expires: one itinerary of one plan, or a plan's overview.

    A collector's link names the collector; a dispatcher's has ``collector_id``
    ``OVERVIEW`` (empty) and opens the plan's map and progress.
    """

    link_id: str
    plan_id: str
    collector_id: str
    expires_at: int

    @property
    def expires(self) -> dt.datetime:
        """Expiry as an aware datetime (UTC)."""
        return dt.datetime.fromtimestamp(self.expires_at, dt.UTC)


# The collector id of a dispatcher's link: no collector id is empty.
OVERVIEW = ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(payload: str, secret: bytes) -> str:
    return _b64(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def sign_link(claims: LinkClaims, secret: bytes) -> str:
    """A token ``<payload>.<signature>``: base64url JSON of the claims and its HMAC-SHA256."""
    body = {
        "l": claims.link_id,
        "p": claims.plan_id,
        "c": claims.collector_id,
        "e": claims.expires_at,
    }
    payload = _b64(json.dumps(body, separators=(",", ":")).encode("utf-8"))
    return f"{payload}.{_mac(payload, secret)}"


def read_link(token: str, secret: bytes, *, now: dt.datetime) -> LinkClaims:
    """The claims of a link token whose signature holds and which has not expired.

    Raises
    ------
    LinkError
        ``invalid_link`` for a malformed or tampered token, ``link_expired``
        once it has expired.
    """
    payload, _, signature = token.partition(".")
    if not payload or not signature or not payload.isascii() or not signature.isascii():
        raise LinkError("invalid_link", "the link is malformed")
    if not hmac.compare_digest(_mac(payload, secret), signature):
        raise LinkError("invalid_link", "the link's signature does not match")
    try:
        body = json.loads(_unb64(payload))
        claims = LinkClaims(str(body["l"]), str(body["p"]), str(body["c"]), int(body["e"]))
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise LinkError("invalid_link", "the link is malformed") from None
    if claims.expires_at <= now.timestamp():
        raise LinkError("link_expired", f"the link expired at {claims.expires.isoformat()}")
    return claims


def new_link(plan_id: str, collector_id: str, *, ttl_s: int, now: dt.datetime) -> LinkClaims:
    """Claims of a new link that lasts ``ttl_s`` seconds from now."""
    expires_at = int(now.timestamp()) + ttl_s
    return LinkClaims(secrets.token_hex(12), plan_id, collector_id, expires_at)
