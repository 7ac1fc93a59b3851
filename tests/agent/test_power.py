"""Power actions: the recording backend, and the commands the OS backend would run
(built, never executed: no test may power the host off)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from wcms.agent.actions import (
    ActionContext,
    ActionRegistry,
    OSPowerBackend,
    PowerAction,
    RecordingPowerBackend,
    power_backend_from_spec,
)
from wcms.agent.errors import ConfigError
from wcms.agent.platform import current_platform
from wcms.agent.platform.darwin import DarwinPlatform
from wcms.agent.platform.linux import LinuxPlatform
from wcms.agent.platform.windows import WindowsPlatform
from wcms.protocol import PowerPayload, RunState

from .harness import make_envelope


@pytest.mark.anyio
async def test_the_recording_backend_writes_one_line_and_nothing_else(tmp_path: Path) -> None:
    log = tmp_path / "power.jsonl"
    action = PowerAction("shutdown", RecordingPowerBackend(log, machine_id="pc-1"))
    envelope = make_envelope(
        type="shutdown", payload={"delay_s": 30, "message": "bye", "force": True}
    )
    outcome = await action.run(envelope, ActionContext(cancelled=asyncio.Event()))
    assert outcome.state is RunState.SUCCEEDED
    assert outcome.result.exit_code == 0
    assert "recorded shutdown" in outcome.result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["power.jsonl"]
    (line,) = log.read_text().splitlines()
    record = json.loads(line)
    assert record.pop("at")
    assert record == {
        "action": "shutdown",
        "delay_s": 30,
        "message": "bye",
        "force": True,
        "machine_id": "pc-1",
    }


@pytest.mark.anyio
async def test_an_invalid_power_payload_fails_naming_the_field(tmp_path: Path) -> None:
    action = PowerAction("reboot", RecordingPowerBackend(tmp_path / "p.jsonl", machine_id="m"))
    registry = ActionRegistry({"reboot": action})
    envelope = make_envelope(type="reboot", payload={"delay_s": -1})
    outcome = await registry.run(envelope, ActionContext(cancelled=asyncio.Event()))
    assert outcome.state is RunState.FAILED
    assert outcome.result.error is not None and "field 'delay_s'" in outcome.result.error
    assert not (tmp_path / "p.jsonl").exists()


def test_backend_from_spec(tmp_path: Path) -> None:
    platform = current_platform()
    assert isinstance(
        power_backend_from_spec("os", platform=platform, machine_id="m"), OSPowerBackend
    )
    recording = power_backend_from_spec(
        f"record:{tmp_path}/p.jsonl", platform=platform, machine_id="m"
    )
    assert isinstance(recording, RecordingPowerBackend)
    assert recording.path == tmp_path / "p.jsonl"
    with pytest.raises(ConfigError):
        power_backend_from_spec("record:", platform=platform, machine_id="m")


@pytest.mark.parametrize(
    ("platform", "action", "payload", "argv"),
    [
        (LinuxPlatform(), "shutdown", PowerPayload(), ["shutdown", "-h", "now"]),
        (
            LinuxPlatform(),
            "reboot",
            PowerPayload(delay_s=90, message="patch night"),
            ["shutdown", "-r", "+2", "patch night"],
        ),
        (DarwinPlatform(), "reboot", PowerPayload(delay_s=60), ["shutdown", "-r", "+1"]),
        (WindowsPlatform(), "shutdown", PowerPayload(), ["shutdown", "/s", "/t", "0"]),
        (
            WindowsPlatform(),
            "reboot",
            PowerPayload(delay_s=30, message="bye", force=True),
            ["shutdown", "/r", "/t", "30", "/c", "bye", "/f"],
        ),
    ],
)
def test_os_power_commands(
    platform: object, action: str, payload: PowerPayload, argv: list[str]
) -> None:
    assert platform.power_command(action, payload) == argv  # type: ignore[attr-defined]
