"""Every error as `{"error": {"code", "message", "details"}}` with its 4xx; a 500 never shows a stack trace.

Request validation (wrong types, missing or unknown fields, too many tickets) is 422 `validation_error`
everywhere; a training file that fails the dataset checks is 400 `invalid_dataset` with its line and column.
A ticketd error gets the status and code `daemon.errors.ANSWERS` gives its class (`api_error`).
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors._json import TOO_DEEP
from daemon.errors import answer
from daemon.logging import get_logger
from daemon.web.headers import API_HEADERS
from daemon.web.schemas import ErrorResponse

log = get_logger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """Raised by routes and dependencies; becomes the error envelope with `status`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = headers


def api_error(exc: BaseException, message: str | None = None, details: Sequence[dict[str, Any]] = ()) -> ApiError:
    """The API's answer to a ticketd error: status and code from the one table (daemon.errors.ANSWERS).

    `message` replaces str(exc) where the route words it for an API client (no server paths).
    """
    found = answer(exc)
    return ApiError(found.status, found.code, str(exc) if message is None else message, details)


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The envelope as a response (also used by the body-size middleware, outside FastAPI's handlers)."""
    body = {"error": {"code": code, "message": message, "details": list(details)}}
    return JSONResponse(body, status_code=status, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring the envelope for each status a route can answer.

    Every route may answer 400 (a Host not in api.allowed_hosts; a JSON body nested too deeply), and one
    that checks credentials (401) may answer 429 (too many failed credentials from the client).
    """
    declared = {400, *statuses, *((429,) if 401 in statuses else ())}
    return {status: {"model": ErrorResponse, "description": HTTPStatus(status).phrase} for status in sorted(declared)}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Where and what, without echoing the input (it may be ticket text)."""
    return [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
        for err in exc.errors()
    ]


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the envelope."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        where = ", ".join(".".join(d["loc"]) + ": " + d["msg"] for d in details[:3])
        return error_response(
            422, "validation_error", f"invalid request: {where}" if where else "invalid request", details
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            # FastAPI's own 400 for a JSON body json.loads cannot read without exhausting the stack.
            details = [{"loc": ["body"], "msg": TOO_DEEP, "type": "json_too_deep"}]
            return error_response(400, "invalid_json", f"the JSON body is {TOO_DEEP}", details)
        if exc.status_code == 400:
            # FastAPI's own 400 is a body it cannot decode (not UTF-8); like malformed JSON, a 422.
            details = [{"loc": ["body"], "msg": "the body cannot be decoded as UTF-8 JSON", "type": "json_invalid"}]
            return error_response(422, "validation_error", "invalid request: the body is not UTF-8 JSON", details)
        code = _CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and message == "Not Found":
            message = "no such endpoint; see /docs"
        return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The message and traceback stay in the log; the client learns only that it failed.
        log.error("api_unhandled_error", path=request.url.path, error_type=type(exc).__name__, exc_info=exc)
        # Answered outside every middleware (Starlette's outermost layer), so the protective headers go here.
        return error_response(
            500, "internal_error", "internal error; the daemon's log has the details", headers=API_HEADERS
        )
