"""The dangerous-command policy, shared by the server (refuse at submission) and the
agent (refuse again before running, in case an older server let one through).

Each :class:`PolicyRule` is a set of case-insensitive regular expressions matched
against a normalised copy of the command line. The rules look for a dangerous program
*in command position* (start of the line, after ``;``, ``&&``, ``|``, ``$(``, or after a
wrapper such as ``sudo`` or ``sh -c``), so ``echo format`` or ``grep shutdown log.txt``
pass while ``sudo rm -rf /`` does not. This is a guard against slips, not a sandbox: a
determined administrator can always write a script that does the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Wrappers that run the next word as a command. ``(?:-\S+\s+)*`` skips their options.
_WRAPPER = (
    r"(?:sudo|doas|exec|nohup|time|nice|ionice|env|command|builtin|busybox|xargs|call"
    r"|su\s+-c|(?:ba|da|z|k|c|tc)?sh\s+-c|cmd(?:\.exe)?\s+/[ck]"
    r"|(?:powershell|pwsh)(?:\.exe)?(?:\s+-\w+)*)"
)
# Command position: start, a separator, a subshell or substitution, then wrappers.
CMD = rf"(?:^|[;&|(`{{\n]|\$\()\s*(?:{_WRAPPER}\s+(?:-\S+\s+)*)*"
# The rest of one simple command (up to the next separator).
_REST = r"[^;&|\n]*"
_END = r"(?=\s|$|[;&|)])"

_SYSTEM_DIRS = (
    r"(?:bin|boot|dev|etc|home|lib|lib32|lib64|libx32|proc|root|run|sbin|srv|sys|usr|var)"
)
# ``/``, ``/*``, ``/.`` or a top-level system directory, as a whole argument.
_POSIX_ROOT_ARG = rf"\s/(?:\.|\*|{_SYSTEM_DIRS}/?\*?)?{_END}"
_RECURSIVE_FLAG = r"\s(?:-[a-z]*r[a-z]*|--recursive)(?=\s|$)"

_DRIVE_ROOT = r"[a-z]:\\?(?:\*(?:\.\*)?)?"
_WINDOWS_SYSTEM = r"[a-z]:\\(?:windows|program\s+files(?:\s+\(x86\))?|users|programdata)\\?"
_WINDOWS_ROOT_ARG = rf"\s(?:{_DRIVE_ROOT}|{_WINDOWS_SYSTEM}){_END}"

_RAW_DISK = r"/dev/(?:sd[a-z]|hd[a-z]|vd[a-z]|xvd[a-z]|nvme\d|mmcblk\d|disk\d|md\d|dm-\d|mapper/)"


@dataclass(frozen=True)
class PolicyRule:
    """One kind of command the policy refuses, with the words to explain why."""

    name: str
    title: str
    consequence: str
    patterns: tuple[re.Pattern[str], ...]
    advice: str | None = None

    def matches(self, normalised: str) -> bool:
        """Whether ``normalised`` (see :func:`normalise`) breaks this rule."""
        return any(pattern.search(normalised) for pattern in self.patterns)

    def explain(self, command: str) -> str:
        """A refusal message for ``command`` naming this rule."""
        message = f"refused: '{_shorten(command)}' {self.consequence} (rule: {self.title})"
        if self.advice:
            message += f"; {self.advice}"
        return message


def _rx(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


RULES: tuple[PolicyRule, ...] = (
    PolicyRule(
        name="recursive-delete-root",
        title="recursive delete of / or a system directory",
        consequence="would delete the whole filesystem or a system directory",
        patterns=_rx(
            rf"{CMD}rm\b(?={_REST}{_RECURSIVE_FLAG})(?={_REST}{_POSIX_ROOT_ARG})",
            rf"{CMD}rm\b(?={_REST}\s--no-preserve-root\b)",
        ),
    ),
    PolicyRule(
        name="recursive-delete-drive",
        title="recursive delete of a drive root or a Windows system directory",
        consequence="would delete a whole drive or a system directory",
        patterns=_rx(
            rf"{CMD}(?:del|erase)\b(?={_REST}\s/s\b)(?={_REST}{_WINDOWS_ROOT_ARG})",
            rf"{CMD}(?:rd|rmdir)\b(?={_REST}\s/s\b)(?={_REST}{_WINDOWS_ROOT_ARG})",
            rf"{CMD}(?:remove-item|ri|rm|del)\b(?={_REST}\s-r(?:ecurse)?\b)"
            rf"(?={_REST}{_WINDOWS_ROOT_ARG})",
        ),
    ),
    PolicyRule(
        name="format-disk",
        title="formatting a drive",
        consequence="would erase a filesystem",
        patterns=_rx(
            rf"{CMD}(?:mkfs(?:\.\w+)?|mke2fs|mkswap|wipefs|mkntfs)\b",
            rf"{CMD}format(?:\.com)?\s+(?:/\S+\s+)*[a-z]:",
            rf"{CMD}(?:format-volume|clear-disk|initialize-disk)\b",
        ),
    ),
    PolicyRule(
        name="raw-disk-write",
        title="writing onto a raw disk",
        consequence="would overwrite a disk device",
        patterns=_rx(
            rf"{CMD}dd\b{_REST}\bof=\s*{_RAW_DISK}",
            rf">\s*{_RAW_DISK}",
            rf"{CMD}(?:tee|shred|blkdiscard)\b{_REST}\s{_RAW_DISK}",
        ),
    ),
    PolicyRule(
        name="fork-bomb",
        title="fork bomb",
        consequence="would start processes until the machine stops responding",
        patterns=_rx(
            r"([^\s(){}|&;]+)\s*\(\)\s*\{\s*\1\s*\|\s*\1\s*&\s*;?\s*\}\s*;?\s*\1",
            r"%0\s*\|\s*%0",
        ),
    ),
    PolicyRule(
        name="recursive-permissions-root",
        title="recursive chmod/chown of / or a system directory",
        consequence="would change the permissions of the whole system and break it",
        patterns=_rx(
            rf"{CMD}(?:chmod|chown|chgrp|setfacl)\b(?={_REST}{_RECURSIVE_FLAG})"
            rf"(?={_REST}{_POSIX_ROOT_ARG})",
        ),
    ),
    PolicyRule(
        name="diskpart-clean",
        title="diskpart clean",
        consequence="would wipe a disk's partition table",
        patterns=_rx(rf"^(?=.*\bclean\b)(?=.*{CMD}diskpart\b)"),
    ),
    PolicyRule(
        name="power",
        title="power commands through execute",
        consequence="would power the machine off or restart it without the agent "
        "reporting the result",
        advice="use the 'shutdown' or 'reboot' command type instead",
        patterns=_rx(
            # shutdown -c / shutdown /a cancel a pending shutdown: harmless, allowed.
            rf"{CMD}shutdown(?:\.exe)?\b(?!\s+(?:[-/]a|-c|--cancel)\b)",
            rf"{CMD}(?:reboot|poweroff|halt)\b",
            rf"{CMD}systemctl\s+(?:-\S+\s+)*(?:poweroff|reboot|halt|kexec)\b",
            rf"{CMD}(?:tel)?init\s+[06]{_END}",
            rf"{CMD}(?:stop-computer|restart-computer)\b",
        ),
    ),
)


def normalise(command: str) -> str:
    """``command`` with quotes and cmd.exe carets removed and whitespace collapsed, so
    that ``rm  -rf "/"`` reads like ``rm -rf /``."""
    text = command.replace('"', "").replace("'", "").replace("^", "")
    return re.sub(r"[ \t\r\f\v]+", " ", text).strip()


def matching_rule(command: str) -> PolicyRule | None:
    """The first rule ``command`` breaks, or None."""
    normalised = normalise(command)
    for rule in RULES:
        if rule.matches(normalised):
            return rule
    return None


def check_command(command: str) -> str | None:
    """None when ``command`` may run; otherwise why it is refused, in words."""
    rule = matching_rule(command)
    return None if rule is None else rule.explain(command)


def _shorten(command: str, limit: int = 80) -> str:
    flat = " ".join(command.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
