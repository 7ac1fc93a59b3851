"""What the agent can do: one :class:`Action` per command type."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping

from wcms.agent.actions.accounts import (
    ChangePasswordAction,
    CreateUserAction,
    DeleteUserAction,
)
from wcms.agent.actions.base import (
    Action,
    ActionContext,
    ActionOutcome,
    ActionSettings,
    payload_of,
)
from wcms.agent.actions.execute import ExecuteAction
from wcms.agent.actions.power import (
    POWER_ACTIONS,
    SESSION_ACTIONS,
    OSPowerBackend,
    PowerAction,
    PowerBackend,
    RecordingPowerBackend,
    power_backend_from_spec,
)
from wcms.agent.actions.printing import PrintAction
from wcms.agent.actions.processes import KillAction, ProcessesAction
from wcms.agent.actions.programs import Consoles, ProgramLogsAction, ProgramSendAction
from wcms.agent.actions.screen import ScreenshotAction
from wcms.agent.actions.software import DownloadAction, InstallAction
from wcms.agent.actions.wake import WakeAction
from wcms.agent.errors import ActionFailed, PayloadInvalid
from wcms.agent.platform import Platform
from wcms.protocol import RunEnvelope

__all__ = [
    "Action",
    "ActionContext",
    "ActionOutcome",
    "ActionRegistry",
    "ActionSettings",
    "ExecuteAction",
    "OSPowerBackend",
    "PowerAction",
    "PowerBackend",
    "RecordingPowerBackend",
    "default_actions",
    "payload_of",
    "power_backend_from_spec",
]


class ActionRegistry:
    """Maps command types to actions and turns what cannot run into a ``failed``
    outcome with the reason."""

    def __init__(
        self, actions: Mapping[str, Action], *, allowed: Collection[str] | None = None
    ) -> None:
        self._actions = dict(actions)
        # None: every action; otherwise the agent configuration's allowed_actions.
        self._allowed = None if allowed is None else frozenset(allowed)

    @property
    def supported(self) -> list[str]:
        return sorted(self._actions)

    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        action = self._actions.get(envelope.type)
        if action is None:
            return ActionOutcome.failed(
                f"unknown command type {envelope.type!r} "
                f"(this agent supports: {', '.join(self.supported)})"
            )
        if self._allowed is not None and envelope.type not in self._allowed:
            return ActionOutcome.failed(
                f"refused: {envelope.type!r} is switched off on this machine "
                "(allowed_actions in the agent configuration)"
            )
        started = time.monotonic()
        try:
            return await action.run(envelope, ctx)
        except (PayloadInvalid, ActionFailed) as exc:
            error = str(exc)
        except NotImplementedError:
            error = f"{envelope.type!r} is not available on this operating system"
        return ActionOutcome.failed(error, duration_ms=int((time.monotonic() - started) * 1000))


def default_actions(
    platform: Platform,
    *,
    max_output_bytes: int,
    power: PowerBackend,
    settings: ActionSettings | None = None,
    allowed: Collection[str] | None = None,
    programs: Consoles | None = None,
) -> ActionRegistry:
    """Every command type this agent carries out (those in ``allowed``, when given);
    the console of supervised programs only with a supervisor (``programs``)."""
    settings = settings or ActionSettings()
    execute = ExecuteAction(
        platform, max_output_bytes=max_output_bytes, blocked=settings.blocked_commands
    )
    actions: dict[str, Action] = {
        "execute": execute,
        **{name: PowerAction(name, power) for name in POWER_ACTIONS + SESSION_ACTIONS},
        "install": InstallAction(platform, settings),
        "download_file": DownloadAction(platform, settings),
        "create_user": CreateUserAction(platform, settings),
        "delete_user": DeleteUserAction(platform, settings),
        "change_password": ChangePasswordAction(platform, settings),
        "print": PrintAction(platform, settings),
        "screenshot": ScreenshotAction(platform, settings),
        "wake": WakeAction(settings),
        "processes": ProcessesAction(),
        "kill": KillAction(),
    }
    if programs is not None:
        actions["program_logs"] = ProgramLogsAction(programs)
        actions["program_send"] = ProgramSendAction(programs)
    return ActionRegistry(actions, allowed=allowed)
