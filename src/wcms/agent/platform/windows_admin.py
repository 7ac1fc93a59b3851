"""Windows: software, user accounts, printing and sessions.

The Windows API calls go through :class:`Win32Api`, one method per call, so that tests
on any machine can check the exact calls (a recording subclass) while
:class:`PyWin32Api` makes them through pywin32 on Windows. Passwords go to the API,
never onto a command line.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from wcms.agent.errors import ActionFailed
from wcms.protocol.actions import CreateUserPayload, PrintPayload

# USER_INFO_1 flags and privilege (lmaccess.h).
UF_SCRIPT = 0x0001
UF_NORMAL_ACCOUNT = 0x0200
USER_PRIV_USER = 1
# BUILTIN\Administrators, whatever its name in the system's language.
ADMINISTRATORS_SID = "S-1-5-32-544"
BUILTIN_ACCOUNTS = frozenset({"administrator", "guest", "defaultaccount", "wdagutilityaccount"})
# NetUser* error codes (lmerr.h) in words.
NET_ERRORS = {
    2221: "no user named {user!r}",
    2224: "user {user!r} already exists",
    2245: "the password does not meet the password policy (length, complexity, history)",
    5: "access denied: the agent must run as an administrator (LocalSystem)",
}
MB_ICONINFORMATION = 0x40
EXE_SILENT_ARGS = ("/S",)


class Win32Api:
    """The Windows API calls the agent makes. This base refuses them all."""

    def net_user_add(self, info: dict[str, Any]) -> None:
        """NetUserAdd(None, 1, info)."""
        raise NotImplementedError

    def net_user_del(self, username: str) -> None:
        """NetUserDel(None, username)."""
        raise NotImplementedError

    def net_user_set_password(self, username: str, password: str) -> None:
        """NetUserSetInfo(None, username, 1003, {"password": password})."""
        raise NotImplementedError

    def add_to_group(self, group_sid: str, username: str) -> None:
        """NetLocalGroupAddMembers into the group with ``group_sid``."""
        raise NotImplementedError

    def shell_print(self, path: str, printer: str | None) -> None:
        """ShellExecute with the "print" verb, or "printto" for a named printer."""
        raise NotImplementedError

    def sessions(self) -> list[tuple[int, str]]:
        """(session id, user name) of every active user session."""
        raise NotImplementedError

    def send_message(self, session_id: int, title: str, text: str) -> None:
        """WTSSendMessage, not waiting for an answer."""
        raise NotImplementedError

    def disconnect_session(self, session_id: int) -> None:
        """WTSDisconnectSession: the session stays, its desktop is locked."""
        raise NotImplementedError

    def logoff_session(self, session_id: int) -> None:
        """WTSLogoffSession."""
        raise NotImplementedError

    def process_session_id(self) -> int:
        """ProcessIdToSessionId of the agent itself."""
        raise NotImplementedError


def winget_argv(package: str) -> list[str]:
    return [
        "winget", "install", "--id", package, "--exact", "--silent",
        "--accept-package-agreements", "--accept-source-agreements", "--disable-interactivity",
    ]  # fmt: skip


def installer_argv(path: Path, kind: str, args: list[str] | None) -> list[str]:
    if kind == "msi":
        return ["msiexec", "/i", str(path), "/qn", "/norestart", *(args or [])]
    if kind == "exe":
        return [str(path), *(args if args is not None else EXE_SILENT_ARGS)]
    raise ActionFailed(f"a .{kind} package cannot be installed on Windows (use .msi or .exe)")


def user_info(payload: CreateUserPayload) -> dict[str, Any]:
    """The USER_INFO_1 of a new account."""
    return {
        "name": payload.username,
        "password": payload.password.get_secret_value() if payload.password else "",
        "priv": USER_PRIV_USER,
        "home_dir": None,
        "comment": payload.full_name or "",
        "flags": UF_SCRIPT | UF_NORMAL_ACCOUNT,
        "script_path": None,
    }


def net_error(code: int, username: str) -> str:
    template = NET_ERRORS.get(code)
    return template.format(user=username) if template else f"Windows error {code}"


async def create_user(api: Win32Api, payload: CreateUserPayload) -> str:
    name = payload.username
    await asyncio.to_thread(api.net_user_add, user_info(payload))
    if payload.admin:
        try:
            await asyncio.to_thread(api.add_to_group, ADMINISTRATORS_SID, name)
        except ActionFailed:
            await asyncio.to_thread(api.net_user_del, name)
            raise
    return f"created user {name}" + (", member of Administrators" if payload.admin else "")


async def delete_user(api: Win32Api, username: str, *, remove_home: bool) -> str:
    if username.lower() in BUILTIN_ACCOUNTS:
        raise ActionFailed(f"refused: {username!r} is a built-in account")
    await asyncio.to_thread(api.net_user_del, username)
    # The profile folder belongs to Windows' profile service, which removes it when
    # the account's profile is deleted in Settings; the agent leaves it.
    note = " (its profile folder stays until removed in Settings)" if remove_home else ""
    return f"deleted user {username}{note}"


async def set_password(api: Win32Api, username: str, password: str) -> str:
    await asyncio.to_thread(api.net_user_set_password, username, password)
    return f"changed the password of {username}"


async def print_file(
    api: Win32Api, path: Path, payload: PrintPayload
) -> tuple[str, dict[str, Any]]:
    for _ in range(payload.copies):
        await asyncio.to_thread(api.shell_print, str(path), payload.printer)
    printer = payload.printer or "the default printer"
    note = "; duplex follows the printer's settings" if payload.duplex != "none" else ""
    return f"sent {payload.copies} time(s) to {printer} through the shell{note}", {"job": None}


def screen_unavailable(api: Win32Api) -> str | None:
    if api.process_session_id() == 0:
        return (
            "the agent runs as a service in session 0, which has no desktop to capture; "
            "screenshots need the agent running in the user's session"
        )
    return None


async def notify_users(api: Win32Api, text: str, title: str | None) -> str:
    sessions = await asyncio.to_thread(api.sessions)
    for session_id, _user in sessions:
        await asyncio.to_thread(api.send_message, session_id, title or "WCMS", text)
    return f"message shown in {len(sessions)} session(s)"


async def lock_sessions(api: Win32Api) -> str:
    sessions = await asyncio.to_thread(api.sessions)
    for session_id, _user in sessions:
        await asyncio.to_thread(api.disconnect_session, session_id)
    return f"locked {len(sessions)} session(s)"


async def logoff(api: Win32Api, user: str | None) -> str:
    sessions = await asyncio.to_thread(api.sessions)
    chosen = [(sid, name) for sid, name in sessions if user is None or name.lower() == user.lower()]
    if user is not None and not chosen:
        raise ActionFailed(f"{user!r} is not logged in")
    for session_id, _name in chosen:
        await asyncio.to_thread(api.logoff_session, session_id)
    return f"logged off {', '.join(name for _, name in chosen) or 'nobody'}"


if sys.platform == "win32":
    import pywintypes
    import win32api
    import win32net
    import win32security
    import win32ts

    # pywin32 takes None for "the local computer" and for absent ShellExecute
    # parameters, and a list of member dicts, where its stubs say str and tuple.
    LOCAL = None

    class PyWin32Api(Win32Api):
        """The calls, through pywin32."""

        def net_user_add(self, info: dict[str, Any]) -> None:
            with _net_errors(info["name"]):
                win32net.NetUserAdd(LOCAL, 1, info)  # type: ignore[arg-type]

        def net_user_del(self, username: str) -> None:
            with _net_errors(username):
                win32net.NetUserDel(LOCAL, username)  # type: ignore[arg-type]

        def net_user_set_password(self, username: str, password: str) -> None:
            with _net_errors(username):
                info = {"password": password}
                win32net.NetUserSetInfo(LOCAL, username, 1003, info)  # type: ignore[arg-type]

        def add_to_group(self, group_sid: str, username: str) -> None:
            sid = win32security.ConvertStringSidToSid(group_sid)
            group, _domain, _kind = win32security.LookupAccountSid(None, sid)
            with _net_errors(username):
                members = [{"domainandname": username}]
                win32net.NetLocalGroupAddMembers(LOCAL, group, 3, members)  # type: ignore[arg-type]

        def shell_print(self, path: str, printer: str | None) -> None:
            verb, params = ("printto", f'"{printer}"') if printer else ("print", None)
            try:
                folder = str(Path(path).parent)
                win32api.ShellExecute(0, verb, path, params, folder, 0)  # type: ignore[arg-type]
            except pywintypes.error as exc:
                raise ActionFailed(f"Windows could not print {path}: {exc.strerror}") from exc

        def sessions(self) -> list[tuple[int, str]]:
            server = win32ts.WTS_CURRENT_SERVER_HANDLE
            found = []
            for session in win32ts.WTSEnumerateSessions(server):
                if session["State"] != win32ts.WTSActive:
                    continue
                sid = int(session["SessionId"])
                user = win32ts.WTSQuerySessionInformation(server, sid, win32ts.WTSUserName)
                if user:
                    found.append((sid, str(user)))
            return found

        def send_message(self, session_id: int, title: str, text: str) -> None:
            server = win32ts.WTS_CURRENT_SERVER_HANDLE
            win32ts.WTSSendMessage(server, session_id, title, text, MB_ICONINFORMATION, 0, False)

        def disconnect_session(self, session_id: int) -> None:
            win32ts.WTSDisconnectSession(win32ts.WTS_CURRENT_SERVER_HANDLE, session_id, False)

        def logoff_session(self, session_id: int) -> None:
            win32ts.WTSLogoffSession(win32ts.WTS_CURRENT_SERVER_HANDLE, session_id, False)

        def process_session_id(self) -> int:
            pid = win32api.GetCurrentProcessId()
            return int(win32ts.ProcessIdToSessionId(pid))  # type: ignore[no-untyped-call]

    class _net_errors:  # a context manager, named like contextlib's
        """Turn a NetUser* failure into ActionFailed with the reason in words."""

        def __init__(self, username: str) -> None:
            self._username = username

        def __enter__(self) -> None:
            return None

        def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
            if isinstance(exc, pywintypes.error):
                raise ActionFailed(net_error(exc.winerror, self._username)) from exc
