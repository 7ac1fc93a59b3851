"""A stand-in game server for the supervisor tests, run as ``python game.py [options]``.

It prints ``loading`` then ``ready``, and answers its stdin: ``stop`` (the stop
command: ``Server stopped``, exit 0, unless --ignore-stop), ``echo TEXT`` (prints
TEXT), ``quit`` (an in-game stop: ``Server stopped``, exit 0), ``exit N``. It logs
``got: LINE`` for every line, and ``got SIGTERM`` on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready-after", type=float, default=0.0)
    parser.add_argument("--crash", type=int, help="exit with this code at once")
    parser.add_argument("--crash-once", type=Path, help="crash unless this file exists")
    parser.add_argument("--ignore-stop", action="store_true")
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--stop-takes", type=float, default=0.0)
    parser.add_argument("--grandchild", type=Path, help="start a sleeper, its pid here")
    parser.add_argument("--runs", type=Path, help="append 'start PID' / 'end PID' here")
    parser.add_argument("--listen", type=int, help="accept TCP on this port once ready")
    args = parser.parse_args()

    def record(what: str) -> None:
        if args.runs is not None:
            with args.runs.open("a") as file:
                file.write(f"{what} {os.getpid()} {time.monotonic():.3f}\n")

    def end(code: int) -> None:
        print("Server stopped", flush=True)
        record("end")
        os._exit(code)

    def on_term(signum: int, frame: object) -> None:
        print("got SIGTERM", flush=True)
        if not args.ignore_term:
            record("end")
            os._exit(143)

    signal.signal(signal.SIGTERM, on_term)
    record("start")
    if args.crash is not None:
        print("crashing", flush=True)
        record("end")
        sys.exit(args.crash)
    if args.crash_once is not None and not args.crash_once.exists():
        args.crash_once.touch()
        print("crashing once", flush=True)
        record("end")
        sys.exit(3)
    if args.grandchild is not None:
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        args.grandchild.write_text(str(sleeper.pid))
    print("loading", flush=True)
    time.sleep(args.ready_after)
    if args.listen is not None:
        server = socket.create_server(("127.0.0.1", args.listen))
        server.listen()
    print("ready", flush=True)
    for raw in sys.stdin:
        line = raw.strip()
        print(f"got: {line}", flush=True)
        if line == "stop" and not args.ignore_stop:
            time.sleep(args.stop_takes)
            end(0)
        elif line == "quit":
            end(0)
        elif line.startswith("echo "):
            print(line[5:], flush=True)
        elif line.startswith("exit "):
            record("end")
            os._exit(int(line[5:]))
    print("stdin closed", flush=True)
    time.sleep(60)


if __name__ == "__main__":
    main()
