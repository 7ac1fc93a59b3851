"""The dangerous-command policy: what it refuses, what it lets through, and how it
explains a refusal."""

from __future__ import annotations

import pytest

from wcms.policy import RULES, check_command, matching_rule

REFUSED = [
    # (command, rule name)
    ("rm -rf /", "recursive-delete-root"),
    ("rm -rf /*", "recursive-delete-root"),
    ("sudo rm -rf --no-preserve-root /", "recursive-delete-root"),
    ("rm --no-preserve-root -r /", "recursive-delete-root"),
    ("rm  -r  -f   '/'", "recursive-delete-root"),
    ('rm -Rf "/"', "recursive-delete-root"),
    ("rm -fr /etc", "recursive-delete-root"),
    ("rm --recursive --force /usr/", "recursive-delete-root"),
    ("rm / -rf", "recursive-delete-root"),
    ("cd /tmp && rm -rf /", "recursive-delete-root"),
    ("bash -c 'rm -rf /'", "recursive-delete-root"),
    ("del /f /s /q C:\\", "recursive-delete-drive"),
    ("DEL /S /Q c:\\*", "recursive-delete-drive"),
    ("rd /s /q C:\\", "recursive-delete-drive"),
    ("rmdir /S /Q D:\\", "recursive-delete-drive"),
    ("rd /s /q C:\\Windows", "recursive-delete-drive"),
    ("Remove-Item -Recurse -Force C:\\", "recursive-delete-drive"),
    ("mkfs.ext4 /dev/sdb1", "format-disk"),
    ("sudo mkfs -t xfs /dev/sdb", "format-disk"),
    ("format C:", "format-disk"),
    ("format d: /q /y", "format-disk"),
    ("Format-Volume -DriveLetter D", "format-disk"),
    ("dd if=/dev/zero of=/dev/sda bs=1M", "raw-disk-write"),
    ("dd if=image.iso of=/dev/nvme0n1", "raw-disk-write"),
    ("cat image > /dev/sda", "raw-disk-write"),
    ("echo x >/dev/vdb", "raw-disk-write"),
    (":(){ :|:& };:", "fork-bomb"),
    (":() { : | : & } ; :", "fork-bomb"),
    ("bomb(){ bomb|bomb& };bomb", "fork-bomb"),
    ("%0|%0", "fork-bomb"),
    ("chmod -R 777 /", "recursive-permissions-root"),
    ("chown -R nobody:nogroup /", "recursive-permissions-root"),
    ("sudo chmod --recursive 000 /etc", "recursive-permissions-root"),
    ("echo clean | diskpart", "diskpart-clean"),
    ("(echo select disk 1 & echo clean) | diskpart", "diskpart-clean"),
    ("shutdown -h now", "power"),
    ("shutdown /s /t 0", "power"),
    ("SHUTDOWN /R /F", "power"),
    ("shutdown.exe /s", "power"),
    ("reboot", "power"),
    ("sudo poweroff", "power"),
    ("halt", "power"),
    ("systemctl reboot", "power"),
    ("systemctl --force poweroff", "power"),
    ("init 0", "power"),
    ("cmd /c shutdown /s", "power"),
    ("Stop-Computer -Force", "power"),
    ("Restart-Computer", "power"),
    ("echo bye; reboot", "power"),
    ("ls && sudo shutdown now", "power"),
]

ALLOWED = [
    "rm -rf /tmp/build",
    "rm -rf ./build",
    "rm -rf /var/tmp/cache",
    "rm -r /home/bob/old",
    "rm -f /etc/nginx/sites-enabled/default",
    "echo format",
    "echo 'rm -rf / is a bad idea'",
    "ls /",
    "ls -la / | grep boot",
    "du -sh /",
    "df -h /",
    "find / -name '*.log'",
    "grep shutdown log.txt",
    "cat reboot.log",
    "journalctl --list-boots",
    "systemctl status nginx",
    "systemctl restart nginx",
    "shutdown -c",
    "shutdown /a",
    "del /s /q C:\\temp\\build",
    "rd /s /q C:\\Users\\bob\\tmp",
    "dd if=/dev/sda of=/tmp/disk.img",
    "echo hi > /dev/null",
    "cat /etc/passwd",
    "chmod -R 755 /srv/www",
    "chown -R www-data /var/www",
    "make clean",
    "python -c 'print(1)'",
    "format-check --all",
    "mkdir -p /opt/x",
    "echo done: init 0 ok",
]


@pytest.mark.parametrize(("command", "rule"), REFUSED)
def test_it_refuses_dangerous_commands(command: str, rule: str) -> None:
    found = matching_rule(command)
    assert found is not None, command
    assert found.name == rule
    explanation = check_command(command)
    assert explanation is not None
    assert explanation.startswith("refused: ")
    assert f"(rule: {found.title})" in explanation


@pytest.mark.parametrize("command", ALLOWED)
def test_it_allows_benign_commands(command: str) -> None:
    assert check_command(command) is None


def test_refusal_quotes_the_command_and_says_what_it_would_do() -> None:
    explanation = check_command("rm -rf /")
    assert explanation == (
        "refused: 'rm -rf /' would delete the whole filesystem or a system directory "
        "(rule: recursive delete of / or a system directory)"
    )


def test_power_refusals_point_to_the_power_command_types() -> None:
    explanation = check_command("shutdown /s /t 0")
    assert explanation is not None
    assert "use the 'shutdown' or 'reboot' command type instead" in explanation


def test_long_commands_are_shortened_in_the_explanation() -> None:
    command = "echo " + "x" * 200 + "; reboot"
    explanation = check_command(command)
    assert explanation is not None
    assert "..." in explanation
    assert len(explanation) < 300


def test_rules_are_listed_with_unique_names() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    assert {name for _, name in REFUSED} == set(names)
    assert all(rule.title and rule.consequence for rule in RULES)
