"""Dashboard pages for what alerting is told to do: rules, channels (with a test
message), silences and maintenance windows.

Each form posts as a plain form: a good one is answered with a redirect to its list (so a
reload sends nothing twice), a bad one with the same page, its values and each error next
to its field, and a 4xx. The forms are read into the API's own bodies, so a form refuses
exactly what the API refuses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from wcms.protocol.alerts import (
    DAYS,
    METRICS,
    ChannelCreate,
    ChannelKind,
    RuleCreate,
    RuleKind,
    Severity,
    SilenceCreate,
    WindowCreate,
)
from wcms.protocol.bounds import INT64_MAX
from wcms.server.api.deps import AlertConfigDep
from wcms.server.errors import Conflict, WcmsError
from wcms.server.services.accounts import Principal
from wcms.server.services.alerts import AlertConfig
from wcms.server.services.alerts.config import server_timezone
from wcms.server.web.deps import CheckedForm, WebActor, WebUser
from wcms.server.web.render import render

router = APIRouter(include_in_schema=False)

M = TypeVar("M", bound=BaseModel)
SilenceId = Annotated[int, Path(ge=1, le=INT64_MAX)]
ConfigName = Annotated[str, Path(min_length=1, max_length=64)]
SILENCES_LISTED = 200

# The model's refusals as the forms word them (translated in i18n.py); others are shown
# as the model words them.
_MESSAGES = {
    "missing": "Required.",
    "string_too_short": "Required.",
    "too_short": "Required.",
    "string_pattern_mismatch": "Use letters, digits, '.', '_' or '-' (at most 64).",
    "string_too_long": "Too long.",
    "too_long": "Too many.",
    "float_parsing": "Not a number.",
    "int_parsing": "Not a number.",
    "finite_number": "Not a number.",
    "greater_than": "Out of range.",
    "greater_than_equal": "Out of range.",
    "less_than_equal": "Out of range.",
    "enum": "Choose one of the list.",
    "literal_error": "Choose one of the list.",
    "datetime_parsing": "Not a date and time.",
    "datetime_from_date_parsing": "Not a date and time.",
}


# --- rules -------------------------------------------------------------------------

RULE_FIELDS = ("name", "kind", "selector", "severity", "for_s", "metric", "above")
RULE_TIMINGS = ("group_wait_s", "group_interval_s", "repeat_s")


@router.get("/alerts/rules")
async def rules_page(request: Request, config: AlertConfigDep, user: WebUser) -> Response:
    return await _config_page(request, user, "rules", await _rules(config))


@router.post("/alerts/rules")
async def create_rule(
    request: Request, config: AlertConfigDep, user: WebUser, actor: WebActor, form: CheckedForm
) -> Response:
    given = _given(form, RULE_FIELDS + RULE_TIMINGS, checks=("include_shutdown", "enabled"))
    channels = [str(c) for c in form.getlist("channels")]

    async def create() -> None:
        data = {**_filled(given), "channels": channels}
        body = _validated(RuleCreate, data, checks=("include_shutdown", "enabled"))
        await config.create_rule(body, actor=actor)

    values = {**given, "channels": channels}
    return await _submitted(request, user, "rules", values, create, lambda: _rules(config))


async def _rules(config: AlertConfig) -> dict[str, Any]:
    return {
        "rules": await config.list_rules(),
        "channels": await config.list_channels(),
        "kinds": [k.value for k in RuleKind],
        "severities": [s.value for s in Severity],
        "metrics": METRICS,
    }


# --- channels ----------------------------------------------------------------------


@router.get("/alerts/channels")
async def channels_page(
    request: Request, config: AlertConfigDep, user: WebUser, tested: str | None = None
) -> Response:
    context = await _channels(config)
    return await _config_page(request, user, "channels", context, tested=(tested or "")[:36])


@router.post("/alerts/channels")
async def create_channel(
    request: Request, config: AlertConfigDep, user: WebUser, actor: WebActor, form: CheckedForm
) -> Response:
    given = _given(form, ("name", "kind", "url", "secret"), checks=("enabled",))

    async def create() -> None:
        body = _validated(ChannelCreate, _filled(given), checks=("enabled",))
        await config.create_channel(body, actor=actor)

    # The secret is never sent back, not even to the one who typed it.
    values = {**given, "secret": ""}
    return await _submitted(request, user, "channels", values, create, lambda: _channels(config))


@router.post("/alerts/channels/{name}/test")
async def test_channel(
    name: ConfigName, config: AlertConfigDep, actor: WebActor, _: CheckedForm
) -> Response:
    """Queue a test message; the page then says so, with a link to the delivery log."""
    queued = await config.test_channel(name, actor=actor)
    return RedirectResponse(f"/alerts/channels?tested={queued.delivery}", status_code=303)


async def _channels(config: AlertConfig) -> dict[str, Any]:
    return {"channels": await config.list_channels(), "kinds": [k.value for k in ChannelKind]}


# --- silences ----------------------------------------------------------------------


@router.get("/alerts/silences")
async def silences_page(request: Request, config: AlertConfigDep, user: WebUser) -> Response:
    return await _config_page(request, user, "silences", await _silences(config))


@router.post("/alerts/silences")
async def create_silence(
    request: Request, config: AlertConfigDep, user: WebUser, actor: WebActor, form: CheckedForm
) -> Response:
    given = _given(form, ("selector", "rule", "hours", "comment"))

    async def create() -> None:
        data = _filled(given)
        if "hours" in data:
            data["duration_s"] = _number(data.pop("hours"), "hours") * 3600
        body = _validated(SilenceCreate, data, renamed={"duration_s": "hours"})
        await config.create_silence(body, actor=actor)

    return await _submitted(request, user, "silences", given, create, lambda: _silences(config))


@router.post("/alerts/silences/{silence_id}/end")
async def end_silence(
    silence_id: SilenceId, config: AlertConfigDep, actor: WebActor, _: CheckedForm
) -> Response:
    await config.end_silence(silence_id, actor=actor)
    return RedirectResponse("/alerts/silences", status_code=303)


async def _silences(config: AlertConfig) -> dict[str, Any]:
    return {
        "silences": await config.list_silences(active=False, limit=SILENCES_LISTED),
        "rules": await config.list_rules(),
    }


# --- maintenance windows -----------------------------------------------------------

WINDOW_FIELDS = ("name", "selector", "start", "end", "timezone", "starts_at", "ends_at")


@router.get("/alerts/windows")
async def windows_page(request: Request, config: AlertConfigDep, user: WebUser) -> Response:
    return await _config_page(request, user, "windows", await _windows(config))


@router.post("/alerts/windows")
async def create_window(
    request: Request, config: AlertConfigDep, user: WebUser, actor: WebActor, form: CheckedForm
) -> Response:
    given = _given(form, WINDOW_FIELDS, checks=("report_left_on",))
    days = [str(d) for d in form.getlist("days")]
    channels = [str(c) for c in form.getlist("channels")]

    async def create() -> None:
        data: dict[str, Any] = {**_filled(given), "channels": channels}
        if days:
            data["days"] = days
        _local_times(data)
        body = _validated(WindowCreate, data, checks=("report_left_on",))
        await config.create_window(body, actor=actor)

    values = {**given, "days": days, "channels": channels}
    return await _submitted(request, user, "windows", values, create, lambda: _windows(config))


async def _windows(config: AlertConfig) -> dict[str, Any]:
    return {
        "windows": await config.list_windows(),
        "channels": await config.list_channels(),
        "days": DAYS,
        "server_timezone": server_timezone(),
    }


def _local_times(data: dict[str, Any]) -> None:
    """A browser's datetime-local has no offset: it is the window's time zone's."""
    try:
        zone = ZoneInfo(str(data.get("timezone") or server_timezone()))
    except (ZoneInfoNotFoundError, ValueError):
        return  # the model names the time zone as the field in error
    errors: dict[str, str] = {}
    for key in ("starts_at", "ends_at"):
        if key not in data:
            continue
        try:
            when = datetime.fromisoformat(str(data[key]))
        except ValueError:
            errors[key] = "Not a date and time."
            continue
        data[key] = when if when.tzinfo else when.replace(tzinfo=zone)
    if errors:
        raise _FormError(errors)


# --- deleting ------------------------------------------------------------------------

_DELETE = {
    "rules": AlertConfig.delete_rule,
    "channels": AlertConfig.delete_channel,
    "windows": AlertConfig.delete_window,
}


@router.post("/alerts/{page}/{name}/delete")
async def delete(
    page: Literal["rules", "channels", "windows"],
    name: ConfigName,
    config: AlertConfigDep,
    actor: WebActor,
    _: CheckedForm,
) -> Response:
    """Delete a rule, channel or window by name (audited by the service)."""
    await _DELETE[page](config, name, actor=actor)
    return RedirectResponse(f"/alerts/{page}", status_code=303)


# --- the config forms --------------------------------------------------------------

_TITLES = {
    "rules": "Rules",
    "channels": "Channels",
    "silences": "Silences",
    "windows": "Maintenance windows",
}


class _FormError(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


async def _config_page(
    request: Request,
    user: Principal,
    page: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    extra.setdefault("values", {})
    extra.setdefault("errors", {})
    return render(
        request,
        f"alerts_{page}.html",
        status=status,
        title=_TITLES[page],
        user=user,
        **context,
        **extra,
    )


async def _submitted(  # six parameters: one page's form, as its handler has it
    request: Request,
    user: Principal,
    page: str,
    values: dict[str, Any],
    create: Callable[[], Awaitable[None]],
    context: Callable[[], Awaitable[dict[str, Any]]],
) -> Response:
    """Run ``create``: a redirect to the list when it worked, else the page again with
    the values sent and the errors by field ("form" for one that names none)."""
    try:
        await create()
    except _FormError as exc:
        # An error of a field the form does not show is shown above the form.
        errors: dict[str, str] = {}
        status = 422
        for field, message in exc.errors.items():
            shown = field if field in values or field == "form" else "form"
            errors.setdefault(shown, message if shown == field else f"{field}: {message}")
    except WcmsError as exc:
        errors, status = {_field_of(exc, values): _said(exc)}, exc.status_code
    else:
        return RedirectResponse(f"/alerts/{page}", status_code=303)
    return await _config_page(
        request, user, page, await context(), status=status, values=values, errors=errors
    )


def _given(
    form: FormData, names: tuple[str, ...], *, checks: tuple[str, ...] = ()
) -> dict[str, Any]:
    given: dict[str, Any] = {name: str(form.get(name) or "").strip() for name in names}
    given.update({name: "on" if form.get(name) else "" for name in checks})
    return given


def _filled(given: dict[str, Any]) -> dict[str, Any]:
    """The fields given a value; the others take the model's defaults."""
    return {k: v for k, v in given.items() if v not in ("", [])}


def _validated(
    model: type[M],
    data: dict[str, Any],
    *,
    checks: tuple[str, ...] = (),
    renamed: dict[str, str] | None = None,
) -> M:
    """``model`` from a form's ``data`` (a checkbox absent is false); every field in
    error named at once, by the form's name for it."""
    renamed = renamed or {}
    try:
        return model.model_validate({**data, **{name: bool(data.get(name)) for name in checks}})
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            where, message = _where(error)
            errors.setdefault(renamed.get(where, where), message)
        raise _FormError(errors) from None


def _where(error: Any) -> tuple[str, str]:
    """The field an error is of and what to say; a check of the whole model starts its
    message with the field ("url: ...")."""
    loc = error.get("loc") or ()
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if loc:
        return str(loc[0]), _MESSAGES.get(str(error.get("type")), message)
    field, sep, rest = message.partition(": ")
    if sep and field.isidentifier():
        return field, rest
    return "form", message


def _number(text: str, field: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _FormError({field: "Not a number."}) from None


def _field_of(exc: WcmsError, values: dict[str, Any]) -> str:
    return exc.field if exc.field in values else "form"


def _said(exc: WcmsError) -> str:
    """The service's message without the field it starts with (shown by its field)."""
    if isinstance(exc, Conflict) and exc.field == "name":
        return "That name is already in use."
    if exc.field and exc.message.startswith(f"{exc.field}: "):
        return exc.message.removeprefix(f"{exc.field}: ")
    return exc.message
