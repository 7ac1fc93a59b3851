"""A program's definition at rest and in transit: secrets sealed apart from the spec.

At rest, the spec keeps its shape but every secret is out of it: ``secret_env`` holds
``***`` for each value and the probe URL its password as ``***``; the values are in
the program's sealed secrets (``{"env": {...}, "probe_url": "..."}``). Only the set
sent to the agent (:func:`opened`) holds them in clear again.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from wcms.protocol.program_admin import ProgramPatch
from wcms.protocol.programs import (
    Backoff,
    Probe,
    ProgramSpec,
    RestartPolicy,
    parse_probe_url,
    redact_probe_url,
)
from wcms.server.crypto import Sealer
from wcms.server.errors import BadRequest
from wcms.server.store.programs import ProgramRecord

MASK = "***"
# Stored in columns of their own, not in the spec.
_COLUMNS = {"name", "desired", "restart_seq"}


def stored(spec: ProgramSpec, sealer: Sealer) -> tuple[dict[str, Any], str | None]:
    """The spec as stored (free-form JSON, secrets masked) and its sealed secrets."""
    data = spec.model_dump(mode="json", exclude=_COLUMNS)
    secrets: dict[str, Any] = {}
    if spec.secret_env:
        secrets["env"] = dict(spec.secret_env)
        data["secret_env"] = dict.fromkeys(spec.secret_env, MASK)
    if spec.probe is not None and parse_probe_url(spec.probe.url).has_secret:
        secrets["probe_url"] = spec.probe.url
        data["probe"]["url"] = redact_probe_url(spec.probe.url)
    return data, sealer.seal(secrets) if secrets else None


def opened(record: ProgramRecord, sealer: Sealer) -> ProgramSpec:
    """The program as its agent runs it, secrets in clear."""
    secrets = sealer.unseal(record.sealed_secrets) if record.sealed_secrets else {}
    data = dict(record.spec)
    data["secret_env"] = secrets.get("env", {})
    if "probe_url" in secrets and data.get("probe"):
        data["probe"] = {**data["probe"], "url": secrets["probe_url"]}
    return ProgramSpec.model_validate(
        {**data, "name": record.name, "desired": record.desired, "restart_seq": record.restart_seq}
    )


def patched(spec: ProgramSpec, patch: ProgramPatch) -> ProgramSpec:
    """``spec`` with the fields ``patch`` gives; a null clears an optional field."""
    given = patch.model_fields_set
    data = spec.model_dump()
    for name in given & {"command", "cwd", "env", "ready_line", "stop_line", "schedule"}:
        data[name] = getattr(patch, name)
    for name in given & {"memory_limit_bytes"}:
        data[name] = patch.memory_limit_bytes
    if "secret_env" in given:
        data["secret_env"] = {k: v.get_secret_value() for k, v in patch.secret_env.items()}
    if "restart" in given:
        data["restart"] = patch.restart or RestartPolicy.ON_CRASH
    if "autostart" in given and patch.autostart is not None:
        data["autostart"] = patch.autostart
    if "backoff" in given:
        data["backoff"] = (patch.backoff or Backoff()).model_dump()
    stop_fields = {"stop_command": "command", "save_command": "save", "announce": "announce"}
    for name, key in stop_fields.items():
        if name in given:
            data["stop"][key] = getattr(patch, name)
    if "stop_timeout_s" in given and patch.stop_timeout_s is not None:
        data["stop"]["timeout_s"] = patch.stop_timeout_s
    data["probe"] = _patched_probe(spec.probe, patch)
    try:
        return ProgramSpec.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise BadRequest(f"{where}: {error['msg']}", field=where) from None


def _patched_probe(probe: Probe | None, patch: ProgramPatch) -> dict[str, Any] | None:
    given = patch.model_fields_set
    if "probe" in given:
        if patch.probe is None:
            return None
        probe = (probe or Probe(url=patch.probe)).model_copy(update={"url": patch.probe})
    tuning = {
        "probe_interval_s": ("interval_s", patch.probe_interval_s),
        "probe_grace_s": ("start_grace_s", patch.probe_grace_s),
        "probe_failures": ("failures", patch.probe_failures),
        "probe_timeout_s": ("timeout_s", patch.probe_timeout_s),
    }
    given_tuning = [name for name, (_, value) in tuning.items() if value is not None]
    if given_tuning and probe is None:
        raise BadRequest(
            "the program has no probe to tune: give one with probe", field=given_tuning[0]
        )
    if probe is None:
        return None
    changes = {tuning[name][0]: tuning[name][1] for name in given_tuning}
    return probe.model_copy(update=changes).model_dump()
