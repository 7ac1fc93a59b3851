"""Real system parts for the action tests, each pointed at a harmless target: a
throwaway root for accounts and packages, a private CUPS with a PDF printer, a private
X server, a local HTTP server. Nothing here changes the host for good."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.procs import free_port, wait_for

ROOT_FILES = ("passwd", "group", "shadow", "gshadow", "login.defs")


def need(*tools: str) -> None:
    """Skip (fail under CI) unless every tool is installed (scripts/system-deps.sh)."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        message = f"needs {', '.join(missing)} (scripts/test.sh installs them with apt-get)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def throwaway_root(path: Path) -> Path:
    """A directory holding a copy of the host's account files and an empty dpkg
    database: user and package actions act on it instead of the host."""
    (path / "etc").mkdir(parents=True)
    for name in ROOT_FILES:
        shutil.copy2(Path("/etc") / name, path / "etc" / name)
    (path / "home").mkdir()
    dpkg = path / "var" / "lib" / "dpkg"
    for sub in ("updates", "info", "triggers"):
        (dpkg / sub).mkdir(parents=True)
    (dpkg / "status").touch()
    (dpkg / "available").touch()
    return path


def build_deb(workdir: Path, package: str, files: dict[str, str]) -> Path:
    """A minimal .deb (no maintainer scripts) installing ``files``."""
    tree = workdir / f"{package}-tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: WCMS tests <tests@wcms.invalid>\nDescription: test package\n"
    )
    for name, text in files.items():
        target = tree / name.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    deb = workdir / f"{package}_1.0_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def file_server(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def xvfb(*, width: int = 320, height: int = 200, colour: str = "#ff0000") -> Iterator[str]:
    """A private X server painted ``colour``; yields its display name."""
    need("Xvfb", "xsetroot")
    display = f":{free_port() % 5000 + 100}"
    proc = subprocess.Popen(
        [
            "Xvfb",
            display,
            "-screen",
            "0",
            f"{width}x{height}x24",
            "-ac",
            "-noreset",
            "-nolisten",
            "tcp",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: (
                subprocess.run(
                    ["xsetroot", "-display", display, "-solid", colour], capture_output=True
                ).returncode
                == 0
            ),
            timeout=15,
            what=f"Xvfb on {display}",
        )
        yield display
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


class PrivateCups:
    """A cupsd of our own on a socket in a temporary directory, with a cups-pdf queue
    writing into ``out``. Its only file outside that directory is the queue's cups-pdf
    configuration (/etc/cups/cups-pdf-QUEUE.conf), removed on stop."""

    def __init__(self, base: Path) -> None:
        need("cupsd", "lpadmin", "lp")
        self.base = base
        self.queue = f"wcmstest{os.getpid()}"
        self.printer = "WCMS-PDF"
        self.out = base / "out"
        self.socket = base / "cups.sock"
        self.queue_conf = Path("/etc/cups") / f"cups-pdf-{self.queue}.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"CUPS_SERVER": str(self.socket)}

    def start(self) -> PrivateCups:
        for sub in ("etc/ppd", "spool/tmp", "cache", "state", "log", "out"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        self.out.chmod(0o777)
        (self.base / "cupsd.conf").write_text(
            f"Listen {self.socket}\nLogLevel warn\nWebInterface No\n"
            "<Location />\n  Order allow,deny\n  Allow all\n</Location>\n"
        )
        (self.base / "cups-files.conf").write_text(
            f"ServerRoot {self.base}/etc\nRequestRoot {self.base}/spool\n"
            f"TempDir {self.base}/spool/tmp\nCacheDir {self.base}/cache\n"
            f"StateDir {self.base}/state\nErrorLog {self.base}/log/error_log\n"
            f"AccessLog {self.base}/log/access_log\nPageLog {self.base}/log/page_log\n"
            "ServerBin /usr/lib/cups\nDataDir /usr/share/cups\n"
        )
        self.queue_conf.write_text(f"Out {self.out}\nAnonDirName {self.out}\nLabel 0\n")
        conf = ["-c", str(self.base / "cupsd.conf"), "-s", str(self.base / "cups-files.conf")]
        self.proc = subprocess.Popen(["cupsd", "-f", *conf])
        wait_for(self.socket.exists, timeout=15, what="cupsd socket")
        ppd = "/usr/share/ppd/cups-pdf/CUPS-PDF_noopt.ppd"
        subprocess.run(
            ["lpadmin", "-p", self.printer, "-v", f"cups-pdf:/{self.queue}", "-P", ppd, "-E"],
            env={**os.environ, **self.env},
            check=True,
            capture_output=True,
        )
        return self

    def pdfs(self) -> dict[Path, int]:
        """The PDFs written so far, with their modification times (cups-pdf may reuse
        a name)."""
        return {path: path.stat().st_mtime_ns for path in self.out.glob("*.pdf")}

    def new_pdfs(self, before: dict[Path, int]) -> list[Path]:
        """The PDFs written or rewritten since ``before`` that cups-pdf has finished: it
        writes the file in place, so one still being written has no trailer yet."""
        return [
            path
            for path, mtime in self.pdfs().items()
            if before.get(path) != mtime and _complete_pdf(path)
        ]

    def stop(self) -> None:
        self.queue_conf.unlink(missing_ok=True)
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _complete_pdf(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    return data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
