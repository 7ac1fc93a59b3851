"""Windows actions at their narrowest boundary: the exact Windows API calls and command
lines, recorded by a stand-in for pywin32 (which only runs on Windows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wcms.agent.errors import ActionFailed
from wcms.agent.platform import windows_admin, windows_service
from wcms.agent.platform.windows import WindowsPlatform
from wcms.agent.platform.windows_admin import Win32Api
from wcms.agent.service import ServiceSpec
from wcms.protocol.actions import CreateUserPayload, PrintPayload

pytestmark = pytest.mark.anyio


class RecordingApi(Win32Api):
    def __init__(self, *, sessions: list[tuple[int, str]] | None = None, fail: str = "") -> None:
        self.calls: list[tuple[str, Any]] = []
        self._sessions = sessions or []
        self._fail = fail
        self.session_id = 1

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name == self._fail:
            raise ActionFailed(f"{name} failed")

    def net_user_add(self, info: dict[str, Any]) -> None:
        self._record("NetUserAdd", info)

    def net_user_del(self, username: str) -> None:
        self._record("NetUserDel", username)

    def net_user_set_password(self, username: str, password: str) -> None:
        self._record("NetUserSetInfo1003", username, password)

    def add_to_group(self, group_sid: str, username: str) -> None:
        self._record("NetLocalGroupAddMembers", group_sid, username)

    def shell_print(self, path: str, printer: str | None) -> None:
        self._record("ShellExecute", path, printer)

    def sessions(self) -> list[tuple[int, str]]:
        return self._sessions

    def send_message(self, session_id: int, title: str, text: str) -> None:
        self._record("WTSSendMessage", session_id, title, text)

    def disconnect_session(self, session_id: int) -> None:
        self._record("WTSDisconnectSession", session_id)

    def logoff_session(self, session_id: int) -> None:
        self._record("WTSLogoffSession", session_id)

    def process_session_id(self) -> int:
        return self.session_id


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_create_user_calls_netuseradd_with_user_info_1_then_adds_admins() -> None:
    api = RecordingApi()
    platform = WindowsPlatform(api=api)
    payload = CreateUserPayload(
        username="student", password="Pa55-word", full_name="Exam", admin=True
    )
    summary = await platform.create_user(payload, root=Path("/"))
    assert summary == "created user student, member of Administrators"
    assert api.calls == [
        (
            "NetUserAdd",
            (
                {
                    "name": "student",
                    "password": "Pa55-word",
                    "priv": 1,
                    "home_dir": None,
                    "comment": "Exam",
                    "flags": 0x0001 | 0x0200,
                    "script_path": None,
                },
            ),
        ),
        ("NetLocalGroupAddMembers", ("S-1-5-32-544", "student")),
    ]


async def test_a_failed_group_membership_removes_the_new_account() -> None:
    api = RecordingApi(fail="NetLocalGroupAddMembers")
    with pytest.raises(ActionFailed):
        await windows_admin.create_user(api, CreateUserPayload(username="x1", admin=True))
    assert [name for name, _ in api.calls] == [
        "NetUserAdd",
        "NetLocalGroupAddMembers",
        "NetUserDel",
    ]


async def test_password_and_delete_calls_and_builtin_accounts_refused() -> None:
    api = RecordingApi()
    assert await windows_admin.set_password(api, "student", "n3w") == (
        "changed the password of student"
    )
    await windows_admin.delete_user(api, "student", remove_home=False)
    with pytest.raises(ActionFailed, match="built-in account"):
        await windows_admin.delete_user(api, "Administrator", remove_home=False)
    assert api.calls == [
        ("NetUserSetInfo1003", ("student", "n3w")),
        ("NetUserDel", ("student",)),
    ]


def test_net_errors_are_told_in_words() -> None:
    assert windows_admin.net_error(2221, "bob") == "no user named 'bob'"
    assert windows_admin.net_error(2224, "bob") == "user 'bob' already exists"
    assert "password policy" in windows_admin.net_error(2245, "bob")
    assert windows_admin.net_error(1, "bob") == "Windows error 1"


async def test_print_uses_the_shell_verb_once_per_copy() -> None:
    api = RecordingApi()
    payload = PrintPayload(url="http://x/a.pdf", printer="Office", copies=2)
    summary, _ = await windows_admin.print_file(api, Path("C:/t/a.pdf"), payload)
    assert api.calls == [("ShellExecute", (str(Path("C:/t/a.pdf")), "Office"))] * 2
    assert "Office" in summary


async def test_sessions_get_messages_are_locked_and_logged_off() -> None:
    api = RecordingApi(sessions=[(1, "alice"), (3, "bob")])
    await windows_admin.notify_users(api, "Class ends", None)
    await windows_admin.lock_sessions(api)
    assert await windows_admin.logoff(api, "BOB") == "logged off bob"
    with pytest.raises(ActionFailed, match="'carol' is not logged in"):
        await windows_admin.logoff(api, "carol")
    assert api.calls == [
        ("WTSSendMessage", (1, "WCMS", "Class ends")),
        ("WTSSendMessage", (3, "WCMS", "Class ends")),
        ("WTSDisconnectSession", (1,)),
        ("WTSDisconnectSession", (3,)),
        ("WTSLogoffSession", (3,)),
    ]


def test_a_service_in_session_0_cannot_take_screenshots() -> None:
    api = RecordingApi()
    assert WindowsPlatform(api=api).screen_unavailable() is None
    api.session_id = 0
    assert "session 0" in (WindowsPlatform(api=api).screen_unavailable() or "")


def test_install_command_lines() -> None:
    platform = WindowsPlatform(api=RecordingApi())
    assert platform.package_command("Mozilla.Firefox", root=Path("/")) == [
        "winget", "install", "--id", "Mozilla.Firefox", "--exact", "--silent",
        "--accept-package-agreements", "--accept-source-agreements", "--disable-interactivity",
    ]  # fmt: skip
    msi = Path("C:/t/tool.msi")
    assert platform.package_file_command(msi, "msi", root=Path("/"), args=None) == [
        "msiexec", "/i", str(msi), "/qn", "/norestart",
    ]  # fmt: skip
    exe = Path("C:/t/setup.exe")
    assert platform.package_file_command(exe, "exe", root=Path("/"), args=None) == [str(exe), "/S"]
    assert platform.package_file_command(exe, "exe", root=Path("/"), args=["/quiet"]) == [
        str(exe),
        "/quiet",
    ]
    with pytest.raises(ActionFailed, match="cannot be installed on Windows"):
        platform.package_file_command(Path("x.deb"), "deb", root=Path("/"), args=None)


def test_the_service_accepts_preshutdown_and_restarts_on_failure() -> None:
    plan = windows_service.plan(ServiceSpec(config_file=Path("C:/ProgramData/WCMS/agent.toml")))
    assert plan.name == "WCMSAgent"
    assert plan.python_class == "wcms.agent.winservice.AgentService"
    # The agent says goodbye within 2 s; Windows never waits more than 3 s for it.
    assert plan.preshutdown_timeout_ms == 3000
    assert plan.restart_delays_ms[0] == 5000
    assert plan.config_file.endswith("agent.toml")
