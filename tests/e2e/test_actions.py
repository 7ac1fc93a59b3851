"""Every agent action end to end through `wcms send` and the admin API, against real
agents whose host-changing actions point at harmless targets: user accounts and packages
in a throwaway root, power and session actions recorded, downloads into a temp dir."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.procs import AgentProc, ServerProc, wait_for
from tests.system import build_deb, file_server, need, throwaway_root

pytestmark = pytest.mark.e2e


@dataclass
class Lab:
    server: ServerProc
    agents: dict[str, AgentProc]
    root: Path
    base: Path
    files: Path
    url: str

    def send(self, selector: str, *args: str) -> tuple[int, list[dict[str, Any]], str]:
        result = self.server.remote("send", selector, *args, "--json", "--timeout", "60")
        assert result.stdout.strip(), f"no runs (exit {result.returncode}): {result.stderr}"
        return result.returncode, json.loads(result.stdout), result.stderr


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    need("useradd", "userdel", "chpasswd", "openssl", "dpkg", "dpkg-deb")
    base = tmp_path_factory.mktemp("actions")
    root = throwaway_root(base / "root")
    files = base / "www"
    files.mkdir()
    config = base / "act-02.toml"
    config.write_text('allowed_actions = ["processes", "execute"]\n')
    server = ServerProc(base / "server", None).start()
    token = server.token(uses=10)
    agents = {
        "act-01": AgentProc(
            server, base / "agent-1", "act-01", token=token, extra=["--system-root", str(root)]
        ),
        "act-02": AgentProc(
            server, base / "agent-2", "act-02", token=token, transport="http",
            extra=["--config", str(config)],
        ),
    }  # fmt: skip
    try:
        for agent in agents.values():
            agent.start()
        api = server.api()
        for name in agents:
            wait_for(lambda n=name: api.status_of(n) == "online", what=f"{name} online")
        with file_server(files) as url:
            yield Lab(server, agents, root, base, files, url)
    finally:
        for agent in agents.values():
            agent.stop(kill=True)
        server.stop()


def test_processes_lists_the_agent_itself(lab: Lab) -> None:
    code, [run], _ = lab.send("act-01", "processes", "name=python", "sort=pid")
    assert code == 0, run
    assert "PID" in run["stdout"] and "CPU%" in run["stdout"]
    agent_pid = lab.agents["act-01"].proc.pid  # type: ignore[union-attr]
    rows = {row["pid"]: row for row in run["data"]["processes"]}
    assert rows[agent_pid]["user"] == "root"
    assert rows[agent_pid]["rss"] > 0


def test_kill_ends_a_process_by_name_and_by_pid(lab: Lab) -> None:
    name = f"wcmsz{os.getpid() % 100000}"
    link = lab.base / name
    link.symlink_to("/bin/sleep")
    first = subprocess.Popen([str(link), "300"])
    second = subprocess.Popen(["sleep", "300"])
    try:
        code, [run], _ = lab.send("act-01", "kill", f"name={name}")
        assert code == 0, run["error"]
        assert run["data"]["pids"] == [first.pid]
        assert first.wait(timeout=5) == -15
        code, [run], _ = lab.send("act-01", "kill", f"pid={second.pid}", "force=true")
        assert code == 0, run["error"]
        assert second.wait(timeout=5) == -9
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()
    code, [run], _ = lab.send("act-01", "kill", "pid=999999")
    assert code == 1 and run["error"] == "no process with pid 999999"
    code, [run], _ = lab.send("act-01", "kill", "pid=1")
    assert run["status"] == "failed" and "refused" in run["error"]


def test_download_file_checks_size_and_checksum_and_writes_atomically(lab: Lab) -> None:
    data = os.urandom(300_000)
    (lab.files / "blob.bin").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    url = f"{lab.url}/blob.bin"
    dest = lab.base / "downloads" / "blob.bin"
    dest.parent.mkdir()

    code, [run], _ = lab.send(
        "act-01", "download_file", f"url={url}", f"path={dest}", f"sha256={digest}"
    )
    assert code == 0, run
    assert dest.read_bytes() == data
    assert run["data"] == {"path": str(dest), "size": len(data), "sha256": digest}

    other = lab.base / "downloads" / "other.bin"
    cases = [
        ([f"path={other}", "sha256=" + "0" * 64], "checksum mismatch"),
        ([f"path={other}", "max_bytes=1000"], "over the limit of 1000 bytes"),
        ([f"path={dest}"], "already exists (set overwrite=true"),
        (["path=relative/file"], "must be absolute"),
        (["path=/etc/wcms-test-file"], "inside the system directory /etc"),
        ([f"path={lab.base}/missing-dir/f"], "does not exist"),
    ]
    for extra, error in cases:
        code, [run], _ = lab.send("act-01", "download_file", f"url={url}", *extra)
        assert code == 1 and error in run["error"], (extra, run)
    code, [run], _ = lab.send("act-01", "download_file", f"url={lab.url}/nothing", f"path={other}")
    assert "HTTP 404" in run["error"]
    assert not other.exists()
    assert dest.read_bytes() == data
    assert not list(dest.parent.glob(".wcms-*")), "a partial download was left behind"


def test_user_accounts_change_only_the_throwaway_root(lab: Lab) -> None:
    etc = lab.root / "etc"
    host_passwd = Path("/etc/passwd").read_text()
    code, [run], _ = lab.send(
        "act-01", "create_user", "username=wcmsstudent", "password=Secret-Pass-1",
        "full_name=Exam account",
    )  # fmt: skip
    assert code == 0, run
    line = next(
        x for x in (etc / "passwd").read_text().splitlines() if x.startswith("wcmsstudent:")
    )
    assert ":Exam account:" in line and (lab.root / "home" / "wcmsstudent").is_dir()
    first_hash = _shadow_hash(etc, "wcmsstudent")
    assert first_hash.startswith("$6$")
    assert _crypt_matches(first_hash, "Secret-Pass-1")

    code, [run], _ = lab.send("act-01", "create_user", "username=wcmsstudent")
    assert code == 1 and run["error"] == "user 'wcmsstudent' already exists"

    code, [run], _ = lab.send(
        "act-01", "change_password", "username=wcmsstudent", "password=Other-Pass-2"
    )
    assert code == 0, run
    assert _crypt_matches(_shadow_hash(etc, "wcmsstudent"), "Other-Pass-2")

    code, [run], _ = lab.send("act-01", "change_password", "username=nosuchuser", "password=x")
    assert code == 1 and run["error"] == "no user named 'nosuchuser'"
    code, [run], _ = lab.send("act-01", "delete_user", "username=root")
    assert code == 1 and "system account" in run["error"]

    code, [run], _ = lab.send("act-01", "delete_user", "username=wcmsstudent", "remove_home=true")
    assert code == 0, run
    assert "wcmsstudent" not in (etc / "passwd").read_text()
    assert not (lab.root / "home" / "wcmsstudent").exists()
    assert Path("/etc/passwd").read_text() == host_passwd

    # The passwords were never stored or shown in clear.
    api = lab.server.api()
    listing = json.dumps(api.get("/api/commands", params={"limit": 20}))
    audit = json.dumps(api.get("/api/audit"))
    for secret in ("Secret-Pass-1", "Other-Pass-2"):
        assert secret not in listing and secret not in audit
    assert '"password": "***"' in listing


def test_install_a_package_file_into_the_throwaway_root(lab: Lab) -> None:
    deb = build_deb(lab.files, "wcms-test-hello", {"/opt/wcms-test-hello/hello.txt": "hello\n"})
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    url = f"{lab.url}/{deb.name}"
    code, [run], _ = lab.send("act-01", "install", f"url={url}", "sha256=" + "1" * 64)
    assert code == 1 and "checksum mismatch" in run["error"]
    code, [run], _ = lab.send("act-01", "install", f"url={url}", f"sha256={digest}")
    assert code == 0, run
    assert "dpkg --root=" in run["stdout"]
    assert (lab.root / "opt" / "wcms-test-hello" / "hello.txt").read_text() == "hello\n"
    status = (lab.root / "var" / "lib" / "dpkg" / "status").read_text()
    assert "Package: wcms-test-hello" in status and "Status: install ok installed" in status
    assert not Path("/opt/wcms-test-hello").exists()
    code, [run], _ = lab.send("act-01", "install", "package=cowsay")
    assert code == 1 and "needs the real system" in run["error"]


def test_session_actions_go_through_the_recording_backend(lab: Lab) -> None:
    agent = lab.agents["act-01"]
    for args in (["message", "text=Class ends in 5 minutes", "title=Teacher"], ["lock"],
                 ["logoff", "user=student"]):  # fmt: skip
        code, [run], _ = lab.send("act-01", *args)
        assert code == 0, run["error"]
        assert "nothing was done" in run["stdout"]
    recorded = [(r["action"], r.get("text"), r.get("user")) for r in agent.power_actions()]
    assert recorded[-3:] == [
        ("message", "Class ends in 5 minutes", None),
        ("lock", None, None),
        ("logoff", None, "student"),
    ]


def test_actions_switched_off_by_agent_config_or_server_policy_fail_clearly(lab: Lab) -> None:
    code, [run], _ = lab.send("act-02", "kill", "pid=12345")
    assert code == 1
    assert run["error"] == (
        "refused: 'kill' is switched off on this machine (allowed_actions in the agent "
        "configuration)"
    )
    api = lab.server.api()
    response = api.client.put("/api/action-policies/machine:act-01", json={"disabled": ["lock"]})
    assert response.status_code == 200, response.text
    try:
        code, [run], _ = lab.send("act-01", "lock")
        assert code == 1 and run["error"] == "refused: 'lock' is switched off for act-01"
        assert run["status"] == "failed"
    finally:
        api.client.delete("/api/action-policies/machine:act-01").raise_for_status()
    bad = api.client.put("/api/action-policies/machine:act-01", json={"disabled": ["fly"]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_command_type"


def test_a_long_execute_streams_its_output_while_it_runs(lab: Lab) -> None:
    api = lab.server.api()
    for name in ("act-01", "act-02"):  # WebSocket and HTTP long-poll
        command = api.exec(name, "for i in 1 2 3 4; do echo step$i; sleep 0.7; done")
        live = wait_for(
            lambda c=command: (
                (api.get(f"/api/commands/{c['id']}")["runs"][0].get("live") or {})
                .get("stdout", "")
                .startswith("step1\n")
            ),
            timeout=10,
            interval=0.1,
            what=f"live output from {name}",
        )
        assert live
        run = api.get(f"/api/commands/{command['id']}")["runs"][0]
        assert run["state"] == "running" and run["result"] is None
        done = api.wait(command["id"])["runs"][0]
        assert done["result"]["stdout"] == "step1\nstep2\nstep3\nstep4\n"
        assert done["live"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create_user"], "payload.username: Field required"),
        (["create_user", "username=bad name"], "payload.username: String should match"),
        (["download_file", "url=ftp://x/y", "path=/tmp/x"], "must be an http:// or https://"),
        (["kill", "pid=notanumber"], "payload.pid: Input should be a valid integer"),
        (["kill"], "give exactly one of pid, name"),
        (["print", "copies=0", "url=http://x/y.pdf"], "payload.copies"),
        (["wake", 'macs=["zz"]'], "not a MAC address"),
        (["frobnicate"], "unknown command type 'frobnicate'"),
    ],
)
def test_bad_payloads_are_refused_before_anything_runs(
    lab: Lab, args: list[str], message: str
) -> None:
    result = lab.server.remote("send", "act-01", *args)
    assert result.returncode == 2
    assert message in result.stderr


def _shadow_hash(etc: Path, user: str) -> str:
    line = next(x for x in (etc / "shadow").read_text().splitlines() if x.startswith(user + ":"))
    return line.split(":")[1]


def _crypt_matches(hashed: str, password: str) -> bool:
    salt = hashed.split("$")[2]
    done = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
        input=password, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip() == hashed
