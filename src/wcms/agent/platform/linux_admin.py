"""Linux: user accounts, packages, printing and sessions, through the system's tools.

Every command takes a ``root``: "/" for the running system, or a throwaway directory
holding a copy of /etc (user accounts: ``useradd --prefix``, ``chpasswd --root``;
package files: ``dpkg --root``), so that tests and image preparation never touch the
host. Passwords reach the tools on stdin, never on the command line.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from wcms.agent.errors import ActionFailed
from wcms.agent.program import Finished, run_program
from wcms.protocol.actions import CreateUserPayload, PrintPayload

assert sys.platform != "win32"

TOOL_TIMEOUT_S = 120.0
# Groups that give administrator rights, by distribution family.
ADMIN_GROUPS = ("sudo", "wheel")
# Accounts below this uid belong to the system and are never deleted.
FIRST_USER_UID = 1000
_JOB_ID = re.compile(r"request id is (\S+)")
_DUPLEX = {"long-edge": "two-sided-long-edge", "short-edge": "two-sided-short-edge"}


def useradd_argv(payload: CreateUserPayload, *, root: Path, admin_group: str | None) -> list[str]:
    argv = ["useradd", "--create-home", "--shell", _login_shell(root)]
    if root != Path("/"):
        argv += ["--prefix", str(root)]
    if payload.full_name:
        argv += ["--comment", payload.full_name]
    if admin_group:
        argv += ["--groups", admin_group]
    return [*argv, "--", payload.username]


def userdel_argv(username: str, *, root: Path, remove_home: bool) -> list[str]:
    argv = ["userdel"]
    if root != Path("/"):
        argv += ["--prefix", str(root)]
    if remove_home:
        argv.append("--remove")
    return [*argv, "--", username]


def chpasswd_argv(*, root: Path) -> list[str]:
    # --encrypted: the hash is made by openssl, so chpasswd needs no PAM stack, which
    # a throwaway root does not have.
    argv = ["chpasswd", "--encrypted"]
    return [*argv, "--root", str(root)] if root != Path("/") else argv


def lp_argv(path: Path, payload: PrintPayload) -> list[str]:
    argv = ["lp", "-n", str(payload.copies)]
    if payload.printer:
        argv += ["-d", payload.printer]
    if payload.duplex != "none":
        argv += ["-o", f"sides={_DUPLEX[payload.duplex]}"]
    argv += ["-t", payload.title or path.name]
    return [*argv, "--", str(path)]


def package_argv(package: str, *, root: Path) -> list[str]:
    if root != Path("/"):
        raise ActionFailed(
            f"installing packages by name needs the real system; this agent manages {root}"
        )
    if shutil.which("apt-get"):
        return ["apt-get", "install", "-y", "-q", "--no-install-recommends", "--", package]
    for tool in ("dnf", "yum", "zypper"):
        if shutil.which(tool):
            return [tool, "install", "-y", package]
    raise ActionFailed("no package manager found (apt-get, dnf, yum or zypper)")


def package_file_argv(path: Path, kind: str, *, root: Path) -> list[str]:
    rooted = root != Path("/")
    if kind == "deb":
        return ["dpkg", *([f"--root={root}"] if rooted else []), "--install", str(path)]
    if kind == "rpm":
        return ["rpm", *(["--root", str(root)] if rooted else []), "-U", "--replacepkgs", str(path)]
    raise ActionFailed(f"a .{kind} package cannot be installed on Linux (use .deb or .rpm)")


def passwd_entry(root: Path, username: str) -> list[str] | None:
    """The fields of ``username``'s line in root's /etc/passwd, or None."""
    try:
        text = (root / "etc" / "passwd").read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ActionFailed(f"cannot read {root / 'etc' / 'passwd'}: {exc.strerror}") from exc
    for line in text.splitlines():
        fields = line.split(":")
        if fields[0] == username and len(fields) >= 7:
            return fields
    return None


def admin_group(root: Path) -> str:
    try:
        text = (root / "etc" / "group").read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ActionFailed(f"cannot read {root / 'etc' / 'group'}: {exc.strerror}") from exc
    names = {line.split(":", 1)[0] for line in text.splitlines()}
    for group in ADMIN_GROUPS:
        if group in names:
            return group
    raise ActionFailed("no administrators' group (sudo or wheel) on this system")


async def create_user(payload: CreateUserPayload, *, root: Path) -> str:
    name = payload.username
    if passwd_entry(root, name) is not None:
        raise ActionFailed(f"user {name!r} already exists")
    group = admin_group(root) if payload.admin else None
    done = await run_program(useradd_argv(payload, root=root, admin_group=group), timeout_s=60)
    _check(done, "useradd")
    if payload.password is not None:
        try:
            await set_password(name, payload.password.get_secret_value(), root=root)
        except ActionFailed:
            # All or nothing: an account without the password asked for is removed.
            await run_program(userdel_argv(name, root=root, remove_home=True), timeout_s=60)
            raise
    extra = f", member of {group}" if group else ""
    return f"created user {name}{extra}"


async def delete_user(username: str, *, root: Path, remove_home: bool) -> str:
    entry = passwd_entry(root, username)
    if entry is None:
        raise ActionFailed(f"no user named {username!r}")
    uid = int(entry[2]) if entry[2].isdigit() else 0
    if uid < FIRST_USER_UID:
        raise ActionFailed(f"refused: {username!r} is a system account (uid {uid})")
    done = await run_program(
        userdel_argv(username, root=root, remove_home=remove_home), timeout_s=60
    )
    if done.returncode == 8:
        raise ActionFailed(f"user {username!r} is logged in; log them off first")
    if done.returncode == 12:
        return f"deleted user {username}, but its home directory stays: {done.output.strip()}"
    _check(done, "userdel")
    return f"deleted user {username}" + (" and its home directory" if remove_home else "")


async def set_password(username: str, password: str, *, root: Path) -> str:
    if passwd_entry(root, username) is None:
        raise ActionFailed(f"no user named {username!r}")
    hashed = await run_program(
        ["openssl", "passwd", "-6", "-stdin"], stdin=password.encode() + b"\n", timeout_s=30
    )
    if hashed.returncode != 0 or not hashed.output.startswith("$6$"):
        raise ActionFailed("could not hash the password with openssl")
    line = f"{username}:{hashed.output.strip()}\n".encode()
    done = await run_program(chpasswd_argv(root=root), stdin=line, timeout_s=60)
    _check(done, "chpasswd")
    return f"changed the password of {username}"


async def print_file(path: Path, payload: PrintPayload) -> tuple[str, dict[str, object]]:
    done = await run_program(lp_argv(path, payload), timeout_s=TOOL_TIMEOUT_S)
    _check(done, "lp")
    match = _JOB_ID.search(done.output)
    job = match.group(1) if match else None
    copies = f"{payload.copies} copies" if payload.copies > 1 else "1 copy"
    return f"sent to the printer as job {job or '?'} ({copies})", {"job": job}


async def notify_users(text: str, title: str | None) -> str:
    message = f"{title}\n\n{text}" if title else text
    done = await run_program(["wall"], stdin=message.encode() + b"\n", timeout_s=30)
    _check(done, "wall")
    return "message shown on every terminal (wall)"


async def lock_sessions() -> str:
    _check(await run_program(["loginctl", "lock-sessions"], timeout_s=30), "loginctl")
    return "locked every session"


async def logoff(users: list[str]) -> str:
    if not users:
        return "nobody is logged in"
    for user in users:
        done = await run_program(["loginctl", "terminate-user", user], timeout_s=30)
        _check(done, f"loginctl terminate-user {user}")
    return f"logged off {', '.join(users)}"


def _login_shell(root: Path) -> str:
    return "/bin/bash" if (root / "bin" / "bash").exists() else "/bin/sh"


def _check(done: Finished, what: str) -> None:
    if done.returncode != 0:
        output = done.output.strip() or "no output"
        raise ActionFailed(f"{what} failed (exit {done.returncode}): {output}")
