"""``create_user``, ``delete_user`` and ``change_password``."""

from __future__ import annotations

from wcms.agent.actions.base import (
    Action,
    ActionContext,
    ActionOutcome,
    ActionSettings,
    payload_of,
)
from wcms.agent.platform import Platform
from wcms.protocol import RunEnvelope
from wcms.protocol.actions import ChangePasswordPayload, CreateUserPayload, DeleteUserPayload


class _AccountAction(Action):
    def __init__(self, platform: Platform, settings: ActionSettings) -> None:
        self._platform = platform
        self._root = settings.system_root


class CreateUserAction(_AccountAction):
    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, CreateUserPayload)
        summary = await self._platform.create_user(payload, root=self._root)
        return ActionOutcome.succeeded(summary, data={"username": payload.username})


class DeleteUserAction(_AccountAction):
    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, DeleteUserPayload)
        summary = await self._platform.delete_user(
            payload.username, root=self._root, remove_home=payload.remove_home
        )
        return ActionOutcome.succeeded(summary, data={"username": payload.username})


class ChangePasswordAction(_AccountAction):
    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, ChangePasswordPayload)
        summary = await self._platform.set_password(
            payload.username, payload.password.get_secret_value(), root=self._root
        )
        return ActionOutcome.succeeded(summary, data={"username": payload.username})
