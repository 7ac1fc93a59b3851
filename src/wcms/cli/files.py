"""`wcms file`: files on the server (documents to print, screenshots)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from wcms.cli.client import ApiClient, CliError

file_app = typer.Typer(
    help="Files on the server: upload a document to print, fetch a screenshot.",
    no_args_is_help=True,
)


@file_app.command("upload")
def upload(path: Annotated[Path, typer.Argument(help="Local file")]) -> None:
    """Store a file on the server; prints its id, alone on the last line."""
    stored = ApiClient.from_env().upload(path)
    typer.echo(f"{stored.name}: {stored.size} bytes, sha256 {stored.sha256}")
    typer.echo(stored.id)


@file_app.command("get")
def get(
    file_id: Annotated[str, typer.Argument(help="File id, e.g. from a screenshot's result")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here ('-': stdout)")
    ] = None,
) -> None:
    """Download a file (by default into the current directory, under its own name)."""
    client = ApiClient.from_env()
    if not file_id.replace("-", "").replace("_", "").isalnum():
        raise CliError(f"not a file id: {file_id!r}")
    data = client.send_bytes("GET", f"/api/files/{file_id}/content")
    if output is not None and str(output) == "-":
        sys.stdout.buffer.write(data)
        return
    if output is None:
        name = client.request("GET", f"/api/files/{file_id}")["name"]
        output = Path(Path(name).name or file_id)
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror}") from None
    typer.echo(f"saved {len(data)} bytes to {output}")
