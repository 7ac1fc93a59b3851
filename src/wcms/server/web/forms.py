"""Command forms built from the payload models, so every command type the protocol
defines gets a form, and posted forms turned back into payloads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from wcms.protocol import COMMAND_TYPES
from wcms.server.errors import BadRequest

# Types that change nothing a user would miss; every other type asks for confirmation.
HARMLESS_TYPES = frozenset({"message", "screenshot", "processes", "lock", "wake"})
PREFIX = "p."


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    kind: str  # text, textarea, password, number, checkbox, select, lines, pairs
    required: bool
    default: Any = None
    description: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: str = "1"


@dataclass(frozen=True, slots=True)
class CommandForm:
    type: str
    title: str
    destructive: bool
    fields: list[FormField] = field(default_factory=list)


def command_forms() -> list[CommandForm]:
    """One form per command type, in the protocol's order."""
    return [_form(name, model) for name, model in COMMAND_TYPES.items()]


def _form(name: str, model: type[Any]) -> CommandForm:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    fields = []
    for prop, spec in schema.get("properties", {}).items():
        if "by the server" in spec.get("description", ""):
            continue
        fields.append(_field(prop, spec, prop in required))
    doc = (model.__doc__ or name).strip().splitlines()[0]
    return CommandForm(name, doc, name not in HARMLESS_TYPES, fields)


def _field(name: str, spec: dict[str, Any], required: bool) -> FormField:
    branch = spec
    for option in spec.get("anyOf", ()):
        if option.get("type") != "null":
            branch = option
    kind = _kind(name, branch)
    return FormField(
        name=name,
        kind=kind,
        required=required,
        default=spec.get("default"),
        description=spec.get("description", ""),
        choices=tuple(str(c) for c in branch.get("enum", ())),
        minimum=branch.get("minimum"),
        maximum=branch.get("maximum"),
        step="any" if branch.get("type") == "number" else "1",
    )


def _kind(name: str, spec: dict[str, Any]) -> str:
    kind = spec.get("type")
    if "enum" in spec:
        return "select"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "checkbox"
    if kind == "array":
        return "lines"
    if kind == "object":
        return "pairs"
    if spec.get("format") == "password" or spec.get("writeOnly"):
        return "password"
    if name in ("command", "text") or spec.get("maxLength", 0) > 5000:
        return "textarea"
    return "text"


def payload_from(command_type: str, form: FormData) -> dict[str, Any]:
    """The payload a posted command form describes; empty fields take their defaults."""
    match = [f for f in command_forms() if f.type == command_type]
    if not match:
        known = ", ".join(COMMAND_TYPES)
        raise BadRequest(f"unknown command type {command_type!r} (known: {known})", field="type")
    payload: dict[str, Any] = {}
    for spec in match[0].fields:
        raw = form.get(PREFIX + spec.name)
        text = raw.strip() if isinstance(raw, str) else ""
        if spec.kind == "checkbox":
            payload[spec.name] = text in ("on", "true", "1")
        elif text:
            payload[spec.name] = _value(spec, text)
    return payload


def _value(spec: FormField, text: str) -> Any:
    if spec.kind == "number":
        try:
            return int(text) if spec.step == "1" else float(text)
        except ValueError:
            raise BadRequest(f"{spec.name}: {text!r} is not a number", field=spec.name) from None
    if spec.kind == "lines":
        return [line.strip() for line in text.splitlines() if line.strip()]
    if spec.kind == "pairs":
        pairs = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise BadRequest(f"{spec.name}: write one KEY=VALUE per line", field=spec.name)
            pairs[key.strip()] = value
        return pairs
    return text
