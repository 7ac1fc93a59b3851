"""The OpenAPI document at ``/docs``: who may call each route, and every error it answers.

What follows from a route itself is derived from it:

- a route that needs an admin (``current_admin``) takes an API key or a session cookie,
  answers 401 without one and 503 when the database cannot check it; a change made
  with a cookie also needs the CSRF token, or it is 403;
- a route that needs an agent (``agent_machine``) takes the agent's credential, and
  answers 401 and 503 the same way; one that also attaches the agent's session
  (``agent_link``) answers 409 when another live agent holds the machine id;
- a path that names a thing answers 404 when there is no such thing;
- a POST, PUT or PATCH may be refused for its size (413, the body limit); a JSON body
  may be malformed (400) or invalid (422), and so may a parameter (422).

What only some routes answer is declared in :data:`ROUTE_ERRORS`.

Every error answer is the same envelope, ``{"error": {"code", "message", "field"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from wcms.protocol import ErrorBody
from wcms.server.api.deps import SESSION_COOKIE, current_admin
from wcms.server.channel.auth import agent_link, agent_machine

AGENT_PREFIX = "/api/client/"
# Routes that change something: the body limit and (for a cookie session) CSRF apply.
_WRITES = frozenset({"post", "put", "patch", "delete"})
_BODIES = frozenset({"post", "put", "patch"})

DESCRIPTIONS = {
    400: "The body is not valid JSON (`malformed_json`).",
    401: "No valid credential: an agent credential unknown (`unknown_credential`) or "
    "revoked (`credential_revoked`); an enrolment token refused (`invalid_token`, "
    "`token_expired`, `token_used_up`, `token_revoked`); an API key or session missing "
    "or wrong (`unauthorized`, `invalid_api_key`, `bad_login`).",
    403: "Not allowed: a cookie session's change without its CSRF token (`csrf_failed`), "
    "a credential used for another machine (`machine_mismatch`), a file for a run that "
    "is not this machine's (`not_your_run`).",
    404: "No such thing (`not_found`; `unknown_selector` and `unknown_machine` name the "
    "field at fault).",
    409: "Conflicts with the current state: a name or seat already taken (`conflict`, "
    "`seat_taken`), nothing to retry (`nothing_to_retry`), another live agent holds "
    "this machine id (`duplicate_machine`).",
    413: "The body is larger than the server accepts (`payload_too_large`).",
    422: "A value is invalid (`invalid`, `invalid_payload`, `policy_violation`, "
    "`unknown_command_type`...); `field` names it.",
    429: "Too many attempts (`too_many_requests`): wait `Retry-After` seconds.",
    503: "The database failed or does not answer (`storage_unavailable`); nothing was "
    "changed: try again later, with backoff.",
}
_AGENT_401 = (
    "The agent credential is missing, unknown (`unknown_credential`: enrol again with a "
    "token) or revoked (`credential_revoked`: stop)."
)
_ADMIN_401 = (
    "No API key or session, or a wrong one (`unauthorized`, `invalid_api_key`): send "
    "`Authorization: Bearer KEY`, `X-API-Key: KEY` or log in."
)
_DUPLICATE_409 = (
    "Another live agent process holds this machine id (`duplicate_machine`): a cloned "
    "machine; stop and tell the admin."
)
_CSRF_403 = "A cookie session's change without its `X-CSRF-Token` (`csrf_failed`)."

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "agentCredential": {
        "type": "http",
        "scheme": "bearer",
        "description": "The agent's credential (`wcmsa_...`), issued once by "
        "`POST /api/client/register` with an enrolment token. Each agent process also "
        "sends its own `X-WCMS-Session` header.",
    },
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An admin API key (`wcmsk_...`, from `wcms api-key` or "
        "`POST /api/api-keys`) as `Authorization: Bearer KEY`.",
    },
    "apiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same API key, in its own header.",
    },
    "sessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The dashboard's session, set by `POST /api/auth/login`.",
    },
    "csrfToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRF-Token",
        "description": "The `csrf_token` the login answered: every change made with the "
        "session cookie carries it.",
    },
}
Requirements = list[dict[str, list[str]]]
_ADMIN_READ: Requirements = [{"apiKey": []}, {"apiKeyHeader": []}, {"sessionCookie": []}]
_ADMIN_WRITE: Requirements = [
    {"apiKey": []},
    {"apiKeyHeader": []},
    {"sessionCookie": [], "csrfToken": []},
]
_AGENT: Requirements = [{"agentCredential": []}]
# Register enrols with a token in its body, or refreshes inventory with the credential.
_AGENT_OPTIONAL: Requirements = [{}, {"agentCredential": []}]


class ErrorEnvelope(BaseModel):
    """Every error answer: ``{"error": {"code", "message", "field"}}``."""

    error: ErrorBody


# What single routes answer beyond what their shape and their caller imply. Declared
# here rather than on their router, whose other routes never answer them (no 503 from
# /healthz, no 429 but from the login).
ROUTE_ERRORS: dict[str, tuple[int, ...]] = {
    "GET /readyz": (503,),
    "POST /api/auth/login": (401, 429, 503),
    "POST /api/auth/logout": (503,),
    "POST /api/users": (409,),
    "POST /api/rooms": (409,),
    "PATCH /api/rooms/{name}": (409,),
    "PUT /api/rooms/{name}/layout": (409,),
    "POST /api/commands": (404,),
    "POST /api/commands/bulk": (404,),
    "POST /api/commands/{command_id}/retry": (409,),
    "GET /api/programs": (404,),
    "POST /api/programs": (404, 409),
    "POST /api/alert-channels": (409,),
    "DELETE /api/alert-channels/{name}": (409,),
    "POST /api/alert-rules": (404, 409),
    "PATCH /api/alert-rules/{name}": (404,),
    "POST /api/alert-silences": (404,),
    "POST /api/maintenance-windows": (404, 409),
    "POST /api/deliveries/{delivery_id}/retry": (409,),
    "POST /api/client/register": (401, 403, 409, 503),
    "POST /api/client/files": (403,),
}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` build the document described above (once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    # FastAPI's documented way to customise the document is replacing this method.
    app.openapi = openapi  # type: ignore[method-assign]


def build(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app``, with security and the derived error answers."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    schemas = components.setdefault("schemas", {})
    schemas.update(_envelope_schemas())
    for context in iter_route_contexts(app.routes):
        # Routers are included as a whole: each context is one route as mounted.
        if not isinstance(context.original_route, APIRoute) or not context.include_in_schema:
            continue
        path: str = context.path_format or ""
        calls = set(_calls(context.dependant)) if context.dependant is not None else set()
        for method in sorted(context.methods or ()):
            operation = schema["paths"].get(path, {}).get(method.lower())
            if operation is not None:
                _complete(operation, path, method.lower(), calls)
    _drop_unused(schema, ("HTTPValidationError", "ValidationError"))
    return schema


def _complete(
    operation: dict[str, Any], path: str, method: str, calls: set[Callable[..., Any]]
) -> None:
    """Add to one operation its security and the errors that follow from its shape."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    key = f"{method.upper()} {path}"
    added = {status: DESCRIPTIONS[status] for status in ROUTE_ERRORS.get(key, ())}
    if current_admin in calls:
        operation["security"] = _ADMIN_WRITE if method in _WRITES else _ADMIN_READ
        added |= {401: _ADMIN_401, 503: DESCRIPTIONS[503]}
        if method in _WRITES:
            added[403] = _CSRF_403
    elif agent_machine in calls:
        operation["security"] = _AGENT
        added |= {401: _AGENT_401, 503: DESCRIPTIONS[503]}
        if agent_link in calls:
            added[409] = _DUPLICATE_409
    elif path.startswith(AGENT_PREFIX):
        operation["security"] = _AGENT_OPTIONAL
    else:
        operation["security"] = []
    if "{" in path:
        added[404] = DESCRIPTIONS[404]
    json_body = "application/json" in operation.get("requestBody", {}).get("content", {})
    if json_body:
        added[400] = DESCRIPTIONS[400]
    if method in _BODIES:
        added[413] = DESCRIPTIONS[413]
    if json_body or operation.get("parameters"):
        added[422] = DESCRIPTIONS[422]
    for status in sorted(added):
        # A route's own declaration wins, except a 422: FastAPI's default one describes
        # a body the server never sends.
        if str(status) not in responses or status == 422:
            responses[str(status)] = _answer(status, added[status])


def _answer(status: int, description: str) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ref}},
    }
    if status == 429:
        answer["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        }
    return answer


def _envelope_schemas() -> dict[str, Any]:
    """ErrorEnvelope and ErrorBody as components (routers that declare no error of their
    own would otherwise leave them out)."""
    found = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = found.pop("$defs", {})
    return {**defs, "ErrorEnvelope": found}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every dependency a route runs, however deeply nested."""
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _drop_unused(schema: dict[str, Any], names: tuple[str, ...]) -> None:
    """Remove component schemas nothing refers to any more (FastAPI's default 422 body,
    replaced by the envelope), in order: a later name may be used by an earlier one."""
    schemas = schema.get("components", {}).get("schemas", {})
    for name in names:
        found = schemas.pop(name, None)
        if found is not None and f'"#/components/schemas/{name}"' in json.dumps(schema):
            schemas[name] = found
