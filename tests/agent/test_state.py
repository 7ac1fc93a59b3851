"""The state directory: credential file, machine id, single-agent lock."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from wcms.agent.errors import StateError
from wcms.agent.platform import app_specific_id, current_platform
from wcms.agent.platform.linux import LinuxPlatform
from wcms.agent.state import Credential, StateDir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_directory_is_private(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state", platform=current_platform())
    state.prepare()
    assert mode(state.path) == 0o700
    state.release()


def test_the_credential_is_written_owner_only_and_read_back(tmp_path: Path) -> None:
    state = StateDir(tmp_path, platform=current_platform())
    credential = Credential(server="http://s", machine_id="m1", credential="secret")
    state.save_credential(credential)
    assert mode(state.credential_path) == 0o600
    assert state.load_credential() == credential
    assert "secret" not in repr(credential)
    assert not list(tmp_path.glob(".*.tmp"))
    state.delete_credential()
    assert state.load_credential() is None


def test_a_damaged_credential_is_an_error_not_a_silent_re_enrolment(tmp_path: Path) -> None:
    state = StateDir(tmp_path, platform=current_platform())
    state.credential_path.write_text("{not json")
    with pytest.raises(StateError, match="damaged"):
        state.load_credential()


def test_a_second_agent_cannot_share_the_directory(tmp_path: Path) -> None:
    first = StateDir(tmp_path, platform=current_platform())
    first.prepare()
    second = StateDir(tmp_path, platform=current_platform())
    with pytest.raises(StateError, match="already running"):
        second.prepare()
    first.release()
    second.prepare()
    second.release()


def test_machine_id_prefers_the_override(tmp_path: Path) -> None:
    state = StateDir(tmp_path, platform=current_platform())
    assert state.machine_id("lab-pc-07") == "lab-pc-07"


def test_machine_id_is_an_app_specific_hash_of_the_os_id(tmp_path: Path) -> None:
    id_file = tmp_path / "machine-id"
    id_file.write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    platform = LinuxPlatform(machine_id_files=[id_file])
    state = StateDir(tmp_path, platform=platform)
    machine_id = state.machine_id()
    assert machine_id == app_specific_id("3d1219c7c4c5404aaa1f6d2a48adfda4")
    assert len(machine_id) == 32
    assert "3d1219c7" not in machine_id


def test_without_an_os_id_a_generated_one_is_kept(tmp_path: Path) -> None:
    platform = LinuxPlatform(machine_id_files=[tmp_path / "absent"])
    state = StateDir(tmp_path, platform=platform)
    first = state.machine_id()
    assert len(first) == 32
    assert StateDir(tmp_path, platform=platform).machine_id() == first
    assert mode(tmp_path / "machine-id") == 0o600


def test_an_uninitialised_os_id_is_not_used(tmp_path: Path) -> None:
    id_file = tmp_path / "os-machine-id"
    id_file.write_text("uninitialized\n")
    platform = LinuxPlatform(machine_id_files=[id_file])
    assert platform.os_machine_id() is None
