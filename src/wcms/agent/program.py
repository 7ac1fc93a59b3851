"""Running an installer or a system tool, its output streamed live."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wcms.agent.errors import ActionFailed
from wcms.agent.progress import Progress

# Kept of a program's (merged) output for the result.
OUTPUT_LIMIT = 64 * 1024
READ_BYTES = 4096


@dataclass(frozen=True)
class Finished:
    argv: tuple[str, ...]
    returncode: int
    output: str

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


async def run_program(
    argv: Sequence[str],
    *,
    progress: Progress | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout_s: float,
) -> Finished:
    """Run ``argv`` (stderr merged into stdout; ``stdin`` fed to it, else closed),
    streaming its output to ``progress``; kill it on timeout or when the caller is
    cancelled. Secrets go through ``stdin``, never ``argv``."""
    progress = progress or Progress()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    except OSError as exc:
        raise ActionFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    assert process.stdout is not None
    output = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            if stdin is not None and process.stdin is not None:
                with contextlib.suppress(ConnectionError):
                    process.stdin.write(stdin)
                    await process.stdin.drain()
                process.stdin.close()
            while chunk := await process.stdout.read(READ_BYTES):
                if len(output) < OUTPUT_LIMIT:
                    output += chunk[: OUTPUT_LIMIT - len(output)]
                progress.output(chunk.decode("utf-8", errors="replace"))
            await process.wait()
    except TimeoutError as exc:
        raise ActionFailed(f"{shlex.join(argv)} did not finish in {timeout_s:g} s") from exc
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    text = output.decode("utf-8", errors="replace")
    return Finished(tuple(argv), process.returncode or 0, text)
