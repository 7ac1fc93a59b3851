"""``install`` and ``download_file``."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path, PurePath
from urllib.parse import urlsplit

from wcms.agent.actions.base import (
    Action,
    ActionContext,
    ActionOutcome,
    ActionSettings,
    payload_of,
)
from wcms.agent.errors import ActionFailed
from wcms.agent.fetch import fetch
from wcms.agent.platform import Platform
from wcms.agent.program import run_program
from wcms.protocol import RunEnvelope, RunResult, RunState
from wcms.protocol.actions import DownloadPayload, InstallPayload

_KINDS = {".deb": "deb", ".rpm": "rpm", ".msi": "msi", ".exe": "exe"}
# Installers are big but not unbounded.
MAX_INSTALLER_BYTES = 4 * 1024**3


class InstallAction(Action):
    """Installs a package by name through the system's package manager, or a package
    file fetched from a URL (checked against ``sha256`` when given)."""

    def __init__(self, platform: Platform, settings: ActionSettings) -> None:
        self._platform = platform
        self._settings = settings

    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, InstallPayload)
        root = self._settings.system_root
        if payload.package is not None:
            argv = self._platform.package_command(payload.package, root=root)
            return await _install(argv, envelope, ctx, what=payload.package)
        assert payload.url is not None
        kind = payload.kind if payload.kind != "auto" else package_kind(payload.url)
        workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="wcms-install-"))
        try:
            name = PurePath(urlsplit(payload.url).path).name or f"package.{kind}"
            ctx.progress.status(note=f"downloading {payload.url}")
            fetched = await fetch(
                payload.url,
                workdir / name,
                max_bytes=min(MAX_INSTALLER_BYTES, self._settings.max_download_bytes),
                sha256=payload.sha256,
                progress=ctx.progress,
            )
            argv = self._platform.package_file_command(
                fetched.path, kind, root=root, args=payload.args
            )
            return await _install(argv, envelope, ctx, what=name)
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)


def package_kind(url: str) -> str:
    """deb, rpm, msi or exe, from the URL's file name."""
    suffix = PurePath(urlsplit(url).path).suffix.lower()
    if suffix not in _KINDS:
        raise ActionFailed(
            f"cannot tell the package kind of {url!r}: name a .deb, .rpm, .msi or .exe "
            "file, or set kind"
        )
    return _KINDS[suffix]


async def _install(
    argv: list[str], envelope: RunEnvelope, ctx: ActionContext, *, what: str
) -> ActionOutcome:
    ctx.progress.status(note=f"installing {what}")
    done = await run_program(
        argv,
        progress=ctx.progress,
        env={"DEBIAN_FRONTEND": "noninteractive"},
        timeout_s=envelope.timeout_s,
    )
    result = RunResult(exit_code=done.returncode, stdout=done.output)
    if done.returncode != 0:
        error = f"{done.command} exited with code {done.returncode}"
        return ActionOutcome(RunState.FAILED, result.model_copy(update={"error": error}))
    summary = f"installed {what} with: {done.command}\n"
    return ActionOutcome(
        RunState.SUCCEEDED,
        result.model_copy(update={"stdout": summary + done.output, "data": {"installed": what}}),
    )


class DownloadAction(Action):
    """Fetches a URL into a file: size limit, sha256 check, atomic replace, and a
    destination policy (absolute path, no system directory, within ``download_dirs``
    when the agent's configuration names some)."""

    def __init__(self, platform: Platform, settings: ActionSettings) -> None:
        self._platform = platform
        self._settings = settings

    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, DownloadPayload)
        dest = check_destination(
            payload.path,
            protected=self._platform.protected_dirs(),
            allowed=self._settings.download_dirs,
        )
        if not await asyncio.to_thread(dest.parent.is_dir):
            raise ActionFailed(f"directory {str(dest.parent)!r} does not exist")
        if not payload.overwrite and await asyncio.to_thread(dest.exists):
            raise ActionFailed(f"{dest} already exists (set overwrite=true to replace it)")
        limit = self._settings.max_download_bytes
        if payload.max_bytes is not None:
            limit = min(limit, payload.max_bytes)
        fetched = await fetch(
            payload.url,
            dest,
            max_bytes=limit,
            sha256=payload.sha256,
            progress=ctx.progress,
            replace=payload.overwrite,
        )
        return ActionOutcome.succeeded(
            f"saved {fetched.size} bytes to {dest} (sha256 {fetched.sha256})",
            data={"path": str(dest), "size": fetched.size, "sha256": fetched.sha256},
        )


def check_destination(path: str, *, protected: tuple[str, ...], allowed: tuple[Path, ...]) -> Path:
    """``path`` as a Path if the destination policy lets a download write it."""
    dest = Path(path)
    if not dest.is_absolute():
        raise ActionFailed(f"path {path!r} must be absolute")
    if ".." in dest.parts or dest.name in ("", ".", ".."):
        raise ActionFailed(f"path {path!r} must name a file, without '..'")
    normal = os.path.normcase(str(dest))
    for directory in protected:
        prefix = os.path.normcase(directory).rstrip("\\/")
        if normal == prefix or normal.startswith(prefix + os.sep):
            raise ActionFailed(f"refused: {path!r} is inside the system directory {directory}")
    if allowed and not any(dest.is_relative_to(directory) for directory in allowed):
        names = ", ".join(str(directory) for directory in allowed)
        raise ActionFailed(f"refused: {path!r} is outside the download directories ({names})")
    return dest
