"""Pure parts of the actions: command lines, magic packets, progress merging, the
destination policy, the agent's configuration file and service unit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from wcms.agent.actions.software import check_destination, package_kind
from wcms.agent.actions.wake import magic_packet
from wcms.agent.config import AgentConfig
from wcms.agent.errors import ActionFailed, ConfigError
from wcms.agent.platform import linux_admin, systemd
from wcms.agent.progress import ProgressQueue, RunProgressReporter
from wcms.agent.service import ServiceSpec, write_config
from wcms.protocol.actions import CreateUserPayload, PrintPayload

ROOT = Path("/")


def test_linux_command_lines() -> None:
    payload = CreateUserPayload(username="student", full_name="Exam")
    argv = linux_admin.useradd_argv(payload, root=Path("/srv/img"), admin_group="sudo")
    assert argv == [
        "useradd", "--create-home", "--shell", "/bin/sh", "--prefix", "/srv/img",
        "--comment", "Exam", "--groups", "sudo", "--", "student",
    ]  # fmt: skip
    assert linux_admin.userdel_argv("s", root=ROOT, remove_home=True) == [
        "userdel", "--remove", "--", "s",
    ]  # fmt: skip
    assert linux_admin.chpasswd_argv(root=Path("/r")) == ["chpasswd", "--encrypted", "--root", "/r"]
    doc = Path("/tmp/d.pdf")
    lp = linux_admin.lp_argv(doc, PrintPayload(url="http://x/d.pdf", copies=3, duplex="short-edge"))
    assert lp == [
        "lp",
        "-n",
        "3",
        "-o",
        "sides=two-sided-short-edge",
        "-t",
        "d.pdf",
        "--",
        str(doc),
    ]
    assert linux_admin.package_file_argv(Path("/t/p.rpm"), "rpm", root=ROOT)[:2] == ["rpm", "-U"]
    with pytest.raises(ActionFailed, match="needs the real system"):
        linux_admin.package_argv("vlc", root=Path("/srv/img"))


def test_package_kind_comes_from_the_url() -> None:
    assert package_kind("https://x/a/tool.MSI?x=1") == "msi"
    with pytest.raises(ActionFailed, match="cannot tell the package kind"):
        package_kind("https://x/download")


def test_magic_packet_is_six_ff_then_the_mac_sixteen_times() -> None:
    packet = magic_packet("00:11:22:aa:bb:cc")
    assert len(packet) == 102
    assert packet[:6] == b"\xff" * 6
    assert packet[6:] == bytes([0x00, 0x11, 0x22, 0xAA, 0xBB, 0xCC]) * 16


def test_destination_policy() -> None:
    protected = ("/etc", "/usr")
    assert check_destination("/srv/a.bin", protected=protected, allowed=()) == Path("/srv/a.bin")
    for path, error in [
        ("a.bin", "must be absolute"),
        ("/srv/../etc/x", "without '..'"),
        ("/etc/cron.d/x", "system directory /etc"),
        ("/usr", "system directory /usr"),
    ]:
        with pytest.raises(ActionFailed, match=error):
            check_destination(path, protected=protected, allowed=())
    with pytest.raises(ActionFailed, match="outside the download directories"):
        check_destination("/tmp/x", protected=(), allowed=(Path("/srv"),))


def test_progress_reports_merge_until_sent() -> None:
    async def go() -> None:
        queue = ProgressQueue()
        reporter = RunProgressReporter(queue, 7, 1, limit=8)
        reporter.output("abc")
        reporter.output("def")
        reporter.status(percent=40, note="half")
        reporter.output("ghijk")  # past the limit of 8 characters: cut
        reporter.output("more", stream="stderr")
        [report] = queue.take()
        assert (report.stdout, report.stdout_offset) == ("abcdefgh", 0)
        assert (report.stderr, report.percent, report.note) == ("more", 40, "half")
        reporter.output("zzz")
        assert queue.take() == []
        reporter.output("x", stream="stderr")
        [report] = queue.take()
        assert (report.stderr, report.stderr_offset) == ("x", 4)

    asyncio.run(go())


def test_the_config_file_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        'server_url = "http://s:8000"\nallowed_actions = ["execute", "lock"]\n'
        'download_dirs = ["/srv"]\nmax_download_bytes = 1000\n'
    )
    config = AgentConfig.from_env({}, config_file=path, log_level="debug")
    assert config.allowed_actions == ("execute", "lock")
    assert config.download_dirs == (Path("/srv"),)
    assert config.max_download_bytes == 1000
    env = {"WCMS_AGENT_CONFIG": str(path), "WCMS_AGENT_ALLOWED_ACTIONS": "kill"}
    assert AgentConfig.from_env(env).allowed_actions == ("kill",)
    for text, error in [
        ('server_url = "http://s"\ncolour = "red"\n', "unknown settings colour"),
        ('server_url = "http://s"\nallowed_actions = ["fly"]\n', "unknown command types: fly"),
        ('server_url = "http://s"\nblocked_commands = ["("]\n', "bad pattern"),
        ("server_url = \n", "not valid TOML"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=error):
            AgentConfig.from_env({}, config_file=path)


def test_the_systemd_unit_restarts_on_failure_and_stops_gracefully(tmp_path: Path) -> None:
    spec = ServiceSpec(
        config_file=Path("/etc/wcms/agent.toml"), python=Path("/usr/bin/python3"), unit_dir=tmp_path
    )
    text = systemd.unit_text(spec)
    assert "ExecStart=/usr/bin/python3 -m wcms agent --config /etc/wcms/agent.toml" in text
    assert "Restart=on-failure" in text and "RestartPreventExitStatus=2 3" in text
    assert "KillSignal=SIGTERM" in text
    write_config(tmp_path / "agent.toml", {"server_url": 'http://s"x'})
    assert (tmp_path / "agent.toml").stat().st_mode & 0o777 == 0o600
    assert AgentConfig.from_env({}, config_file=tmp_path / "agent.toml").server_url == 'http://s"x'
