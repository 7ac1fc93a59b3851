"""Printing through a real CUPS with a PDF printer, screenshots of a real X server, and
Wake-on-LAN relayed by an online agent, caught on a loopback UDP socket."""

from __future__ import annotations

import json
import socket
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import AgentProc, ServerProc, wait_for
from tests.system import PrivateCups, file_server, xvfb

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cups(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCups]:
    printer = PrivateCups(tmp_path_factory.mktemp("cups")).start()
    try:
        yield printer
    finally:
        printer.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    proc = ServerProc(tmp_path_factory.mktemp("desk") / "server", None).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def agent(
    server: ServerProc, cups: PrivateCups, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentProc]:
    base = tmp_path_factory.mktemp("desk-agent")
    proc = AgentProc(server, base / "state", "desk-01", token=server.token(), env=cups.env)
    proc.start()
    try:
        wait_for(lambda: server.api().status_of("desk-01") == "online", what="desk-01 online")
        yield proc
    finally:
        proc.stop(kill=True)


def send(server: ServerProc, *args: str) -> tuple[int, dict]:
    result = server.remote("send", *args, "--json", "--timeout", "60")
    assert result.stdout.strip(), result.stderr
    [run] = json.loads(result.stdout)
    return result.returncode, run


def test_print_an_uploaded_document_and_a_url_to_a_pdf_printer(
    server: ServerProc, agent: AgentProc, cups: PrivateCups, tmp_path: Path
) -> None:
    before = cups.pdfs()
    document = tmp_path / "handout.txt"
    document.write_text("WCMS print test\n" * 20)
    code, run = send(
        server, "desk-01", "print", f"file=@{document}", f"printer={cups.printer}",
        "copies=2", "duplex=long-edge", "title=handout",
    )  # fmt: skip
    assert code == 0, run["error"]
    assert run["data"]["job"].startswith(f"{cups.printer}-")
    assert run["data"]["document"] == "handout.txt"
    pdfs = wait_for(lambda: cups.new_pdfs(before), what="the printed PDF")
    assert all(pdf.read_bytes().startswith(b"%PDF-") for pdf in pdfs)
    before = cups.pdfs()

    with file_server(tmp_path) as url:
        code, run = send(
            server, "desk-01", "print", f"url={url}/handout.txt", f"printer={cups.printer}",
            "title=fromurl",
        )  # fmt: skip
    assert code == 0, run["error"]
    wait_for(lambda: cups.new_pdfs(before), what="the PDF printed from a URL")

    code, run = send(server, "desk-01", "print", f"url={url}/x.pdf", "printer=NoSuchPrinter")
    assert code == 1 and "cannot download" in run["error"]
    code, run = send(server, "desk-01", "print", "file=f0000000000000000", "printer=X")
    assert code == 1 and "HTTP 404" in run["error"]


def test_a_screenshot_is_a_png_stored_on_the_server(
    server: ServerProc, agent: AgentProc, tmp_path: Path
) -> None:
    with xvfb(width=320, height=200, colour="#ff0000") as display:
        code, run = send(server, "desk-01", "screenshot", f"display={display}")
    assert code == 0, run["error"]
    data = run["data"]
    assert (data["width"], data["height"]) == (320, 200)
    api = server.api()
    meta = api.get(f"/api/files/{data['file_id']}")
    assert meta["kind"] == "screenshot" and meta["machine_id"] == "desk-01"
    png = api.client.get(f"/api/files/{data['file_id']}/content")
    assert png.headers["content-type"] == "image/png"
    width, height, first_pixel = _png_size_and_first_pixel(png.content)
    assert (width, height) == (320, 200)
    assert first_pixel == (255, 0, 0)
    listed = api.get("/api/files", params={"kind": "screenshot", "machine_id": "desk-01"})
    assert data["file_id"] in [f["id"] for f in listed]

    saved = server.remote("file", "get", data["file_id"], "-o", str(tmp_path / "s.png"))
    assert saved.returncode == 0, saved.stderr
    assert (tmp_path / "s.png").read_bytes() == png.content

    code, run = send(server, "desk-01", "screenshot", "display=:4999")
    assert code == 1 and run["error"].startswith("cannot capture display :4999")


def test_wake_is_sent_by_an_online_machine_in_the_same_room(
    server: ServerProc, agent: AgentProc, tmp_path: Path
) -> None:
    api = server.api()
    sleeper = AgentProc(server, tmp_path / "sleeper", "desk-02", token=server.token()).start()
    wait_for(lambda: api.status_of("desk-02") == "online", what="desk-02 online")
    sleeper.stop()
    wait_for(lambda: api.status_of("desk-02") == "offline", what="desk-02 offline")
    for machine in ("desk-01", "desk-02"):
        api.client.patch(f"/api/machines/{machine}", json={"room": "A101"}).raise_for_status()
    macs = api.machine("desk-02")["inventory"]["macs"]
    macs = [m for m in macs if m.replace(":", "").strip("0")]
    extra = [] if macs else ['macs=["02:00:5e:10:20:30"]']
    macs = macs or ["02:00:5e:10:20:30"]

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as catcher:
        catcher.bind(("127.0.0.1", 0))
        catcher.settimeout(10)
        port = catcher.getsockname()[1]
        code, run = send(server, "desk-02", "wake", "broadcast=127.0.0.1", f"port={port}", *extra)
        assert code == 0, run["error"]
        packets = {catcher.recv(1024) for _ in range(len(macs) * 3)}  # each sent 3 times
    assert run["id"] == "desk-02"
    for mac in macs:
        expected = b"\xff" * 6 + bytes.fromhex(mac.replace(":", "")) * 16
        assert expected in packets
        assert len(expected) == 102
    command = api.get("/api/commands", params={"limit": 1})[0]
    detail = api.get(f"/api/commands/{command['id']}")
    assert detail["runs"][0]["relay"] == "desk-01"
    assert "from desk-01" in detail["runs"][0]["result"]["stdout"]

    api.client.patch("/api/machines/desk-01", json={"room": "B202"}).raise_for_status()
    code, run = send(server, "desk-02", "wake", "broadcast=127.0.0.1", "port=9")
    # Same /24 (all on 127.0.0.1) still finds a relay; a named relay that is offline
    # does not.
    assert code == 0
    code, run = send(server, "desk-02", "wake", "via=desk-02")
    assert code == 1 and run["error"] == "relay machine 'desk-02' is not online"


def _png_size_and_first_pixel(data: bytes) -> tuple[int, int, tuple[int, int, int]]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (depth, colour) == (8, 2)  # 8-bit RGB
    idat, pos = b"", 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    assert raw[0] == 0  # filter "none" on the first row
    return width, height, (raw[1], raw[2], raw[3])
