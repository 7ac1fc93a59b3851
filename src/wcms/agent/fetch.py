"""Downloading a URL into a file: size limit, sha256 check, atomic replace."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from wcms.agent.errors import FetchError
from wcms.agent.progress import Progress

CHUNK_BYTES = 256 * 1024
CONNECT_TIMEOUT_S = 30.0
# No byte for this long means the server is gone.
READ_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Fetched:
    path: Path
    size: int
    sha256: str
    # The file name the server suggested (Content-Disposition), if any.
    filename: str | None = None


async def fetch(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    sha256: str | None = None,
    headers: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    replace: bool = True,
) -> Fetched:
    """Download ``url`` into ``dest``.

    1. Stream into a temporary file beside ``dest``, stopping past ``max_bytes``.
    2. Check the sha256 when one is given.
    3. Move it over ``dest`` in one rename (or, with ``replace=False``, only if ``dest``
       does not exist), so ``dest`` is never seen half-written.

    Raises FetchError, saying why, with ``dest`` untouched.
    """
    progress = progress or Progress()
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)
    fd, temp_name = await asyncio.to_thread(
        tempfile.mkstemp, prefix=".wcms-", suffix=".part", dir=dest.parent
    )
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as file:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                size, digest, filename = await _stream(
                    session, url, file, headers=headers, max_bytes=max_bytes, progress=progress
                )
            await asyncio.to_thread(_sync, file)
        if sha256 is not None and digest != sha256.lower():
            raise FetchError(
                f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {digest}"
            )
        await asyncio.to_thread(_install, temp, dest, replace=replace)
    finally:
        # Quick and must also run while the task is being cancelled: not in a thread.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
    return Fetched(dest, size, digest, filename)


async def _stream(
    session: aiohttp.ClientSession,
    url: str,
    file: object,
    *,
    headers: Mapping[str, str] | None,
    max_bytes: int,
    progress: Progress,
) -> tuple[int, str, str | None]:
    digest = hashlib.sha256()
    size = 0
    write = file.write  # type: ignore[attr-defined]
    try:
        async with session.get(url, headers=headers) as response:
            if response.status != 200:
                raise FetchError(f"{url} answered HTTP {response.status} {response.reason or ''}")
            total = response.content_length
            filename = (
                response.content_disposition.filename if response.content_disposition else None
            )
            if total is not None and total > max_bytes:
                raise FetchError(f"{url} is {total} bytes, over the limit of {max_bytes} bytes")
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"{url} is larger than the limit of {max_bytes} bytes")
                digest.update(chunk)
                await asyncio.to_thread(write, chunk)
                if total:
                    progress.status(percent=100.0 * size / total, note=f"{size} of {total} bytes")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise FetchError(f"cannot download {url}: {exc or type(exc).__name__}") from exc
    return size, digest.hexdigest(), filename


def _sync(file: object) -> None:
    file.flush()  # type: ignore[attr-defined]
    os.fsync(file.fileno())  # type: ignore[attr-defined]


def _install(temp: Path, dest: Path, *, replace: bool) -> None:
    if replace:
        os.replace(temp, dest)
        return
    try:
        # A hard link fails if dest exists: no window in which another file is replaced.
        os.link(temp, dest)
    except FileExistsError as exc:
        raise FetchError(f"{dest} already exists (set overwrite=true to replace it)") from exc
    except OSError:
        if dest.exists():
            raise FetchError(f"{dest} already exists (set overwrite=true to replace it)") from None
        os.replace(temp, dest)
