"""Turning every error into ``{"error": {"code", "message"}}`` with the right status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from wcms.server.errors import TooManyRequests, WcmsError

log = logging.getLogger("wcms.api")


def error_response(
    status: int, code: str, message: str, *, field: str | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status)


def install(app: FastAPI) -> None:
    app.add_exception_handler(WcmsError, _wcms_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(DBAPIError, _database_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _wcms_error(_: Request, exc: WcmsError) -> JSONResponse:
    response = error_response(exc.status_code, exc.code, exc.message, field=exc.field)
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        return error_response(400, "malformed_json", "request body is not valid JSON")
    location = [str(part) for part in first.get("loc", ())]
    where = ".".join(
        location[1:] if location and location[0] in ("body", "query", "path") else location
    )
    message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    if first.get("type") == "missing" and location == ["body"]:
        message, where = "request body is required", "body"
    if first.get("type") == "value_error" and location == ["body"]:
        message, where = _model_error(request, str(first.get("msg")), message, where)
    return error_response(422, "invalid", message, field=where or None)


def _model_error(request: Request, raw: str, message: str, where: str) -> tuple[str, str]:
    """A body's model validator says "NAME: text" of the field NAME it found at fault
    (its messages are written so); that field is named, and the message keeps only
    that. Any other message is left as it is."""
    said = raw.removeprefix("Value error, ")
    name, sep, _ = said.partition(": ")
    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    model = getattr(getattr(body_field, "field_info", None), "annotation", None)
    fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
    if sep and name in fields:
        return said, name
    return message, where


async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 400:
        # JSON the parser gives up on (nested too deep, a number too long to convert).
        return error_response(400, "malformed_json", "request body is not valid JSON")
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    return error_response(
        exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
    )


def _where(request: Request) -> str:
    # A WebSocket reaches these handlers too, and has no method.
    return f"{request.scope.get('method', 'WEBSOCKET')} {request.url.path}"


async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
    log.error("database error on %s: %s", _where(request), exc.orig)
    return error_response(503, "storage_unavailable", "the database failed; nothing was changed")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", _where(request), exc_info=exc)
    return error_response(500, "internal", "internal server error; see the server log")
