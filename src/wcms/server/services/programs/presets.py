"""Presets: what a kind of game server needs that its administrator did not say.

A preset only fills gaps: every value the request gives wins. What each one knows:

- **minecraft** (Java edition): ready when the console says ``Done (12.3s)!``; the
  ``stop`` console command after ``save-all``; an in-game ``stop`` prints "Stopping the
  server"; probed with the Minecraft status protocol on its default port.
- **palworld**: with a ``palworld://`` probe it is stopped through its REST API
  (``save``, then ``shutdown``); the game ends with exit 0 after an in-game shutdown,
  so a clean exit is a stop, never a crash; saving a large world takes a while.
- **ark** (Survival Ascended): through RCON, ``SaveWorld`` then ``DoExit``, announced
  with ``ServerChat``; two minutes to save and exit.
- **generic**: nothing but the polite signal (SIGTERM, Ctrl+Break on Windows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from wcms.protocol.program_admin import ProgramCreate
from wcms.protocol.programs import Backoff, Probe, ProgramSpec, RestartPolicy, StopSequence

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Preset:
    """Defaults of one kind of program; None: no default."""

    stop_command: str | None = None
    save_command: str | None = None
    announce: str | None = None
    stop_timeout_s: float = 60
    ready_line: str | None = None
    stop_line: str | None = None
    probe: str | None = None
    clean_exit_is_stop: bool = False
    # The stop commands go through the probe's API only: without it, a signal.
    needs_probe_scheme: str | None = None


PRESETS: dict[str, Preset] = {
    "generic": Preset(stop_timeout_s=30),
    "minecraft": Preset(
        stop_command="stop",
        save_command="save-all",
        announce="say Server restarting in {minutes} min",
        stop_timeout_s=60,
        ready_line=r"Done \(\d+(\.\d+)?s\)!",
        stop_line=r"Stopping (the )?server",
        probe="minecraft://127.0.0.1:25565",
    ),
    "palworld": Preset(
        stop_command="shutdown",
        save_command="save",
        announce="Server restarting in {minutes} min",
        stop_timeout_s=180,
        clean_exit_is_stop=True,
        needs_probe_scheme="palworld",
    ),
    "ark": Preset(
        stop_command="DoExit",
        save_command="SaveWorld",
        announce="ServerChat Server restarting in {minutes} min",
        stop_timeout_s=120,
    ),
}


def build_spec(request: ProgramCreate, *, probe_url: str | None) -> ProgramSpec:
    """The program as its agent runs it: the request, with its preset's defaults where
    the request says nothing. ``probe_url`` is the probe in clear (secrets included)."""
    preset = PRESETS[request.preset]
    url = probe_url if probe_url is not None else preset.probe
    uses_api = preset.needs_probe_scheme is None or (
        url is not None and url.lower().startswith(f"{preset.needs_probe_scheme}://")
    )
    stop = StopSequence(
        announce=_given(request.announce, preset.announce if uses_api else None),
        save=_given(request.save_command, preset.save_command if uses_api else None),
        command=_given(request.stop_command, preset.stop_command if uses_api else None),
        timeout_s=_given(request.stop_timeout_s, preset.stop_timeout_s),
    )
    return ProgramSpec(
        name=request.name,
        command=request.command,
        cwd=request.cwd,
        env=dict(request.env),
        secret_env={k: v.get_secret_value() for k, v in request.secret_env.items()},
        preset=request.preset,
        restart=request.restart or RestartPolicy.ON_CRASH,
        stop=stop,
        ready_line=_given(request.ready_line, preset.ready_line),
        stop_line=_given(request.stop_line, preset.stop_line),
        clean_exit_is_stop=preset.clean_exit_is_stop,
        probe=_probe(request, url),
        backoff=request.backoff or Backoff(),
        memory_limit_bytes=request.memory_limit_bytes,
        schedule=request.schedule,
        autostart=request.autostart,
        desired="running" if request.autostart else "stopped",
    )


def _probe(request: ProgramCreate, url: str | None) -> Probe | None:
    if url is None:
        return None
    probe = Probe(url=url)
    changes = {
        "interval_s": request.probe_interval_s,
        "start_grace_s": request.probe_grace_s,
        "failures": request.probe_failures,
        "timeout_s": request.probe_timeout_s,
    }
    return probe.model_copy(update={k: v for k, v in changes.items() if v is not None})


def _given(value: T | None, default: T) -> T:
    return default if value is None else value
