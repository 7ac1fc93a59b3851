"""A real server process shared by the API tests of one module."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.procs import ServerProc


@pytest.fixture(scope="module")
def server(
    module_database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProc]:
    proc = ServerProc(tmp_path_factory.mktemp("server"), module_database_url).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def admin(server: ServerProc) -> httpx.Client:
    return server.api().client
