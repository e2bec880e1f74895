"""Every error as JSON ``{"error": {"code", "message", "field"}}``, with a stable code."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import ErrorOut

logger = logging.getLogger("dispatch.api")

# Codes of the errors Starlette raises itself (unknown path, wrong method, ...).
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}


class ApiError(Exception):
    """An error the client can act on: HTTP status, stable code, message and field.

    ``extra`` adds members to the error object (for example ``rows`` of a
    rejected batch).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra or {}
        self.headers = headers


def not_found(what: str, some_id: str) -> ApiError:
    """The 404 of a resource that does not exist."""
    return ApiError(404, "not_found", f"{what} '{some_id}' does not exist")


def error_body(
    code: str, message: str, field: str | None = None, **extra: Any
) -> dict[str, dict[str, Any]]:
    """The JSON body of an error."""
    return {"error": {"code": code, "message": message, "field": field, **extra}}


def _field_of(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in location]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        return ".".join(parts[1:]) or parts[0]
    return ".".join(parts) or "body"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    body = error_body(exc.code, exc.message, exc.field, **exc.extra)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": _field_of(e.get("loc", ())), "reason": str(e.get("msg", "is not valid"))}
        for e in exc.errors()
    ]
    first = problems[0] if problems else {"field": None, "reason": "the request is not valid"}
    message = f"{first['field']}: {first['reason']}" if first["field"] else first["reason"]
    body = error_body("invalid_request", message, first["field"], problems=problems)
    return JSONResponse(body, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "the request failed"
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # The trace goes to the log, never to the client.
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        error_body("internal_error", "the service failed to answer; the error was logged"),
        status_code=500,
    )


def add_error_handlers(app: FastAPI) -> None:
    """Make every error the app answers a JSON error object."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries of the error answers a route may give."""
    descriptions = {
        400: "Bad request",
        401: "Missing, unknown or revoked key or link",
        403: "The key or link does not allow this",
        404: "No such resource",
        409: "Conflicts with the resource's state",
        413: "Request body too large",
        422: "Invalid request",
    }
    return {s: {"model": ErrorOut, "description": descriptions[s]} for s in statuses}
