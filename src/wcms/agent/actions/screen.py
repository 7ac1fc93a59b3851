"""``screenshot``: the screen as PNG, stored on the server."""

from __future__ import annotations

import asyncio

import mss
import mss.tools
from mss.exception import ScreenShotError

from wcms.agent.actions.base import (
    Action,
    ActionContext,
    ActionOutcome,
    ActionSettings,
    payload_of,
)
from wcms.agent.errors import ActionFailed
from wcms.agent.platform import Platform
from wcms.protocol import RunEnvelope
from wcms.protocol.actions import ScreenshotPayload


class ScreenshotAction(Action):
    """Captures the display (all monitors, or one) and uploads the PNG to the server;
    the result's ``data`` holds the file id."""

    def __init__(self, platform: Platform, settings: ActionSettings) -> None:
        self._platform = platform
        self._settings = settings

    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, ScreenshotPayload)
        reason = self._platform.screen_unavailable()
        if reason is not None:
            raise ActionFailed(reason)
        display = payload.display or self._settings.display or self._platform.default_display()
        png, width, height = await asyncio.to_thread(capture, display, payload.monitor)
        ref = await ctx.files.upload(
            png, name=f"screenshot-{envelope.run_id}.png", content_type="image/png", run=envelope
        )
        where = f" of display {display}" if display else ""
        return ActionOutcome.succeeded(
            f"screenshot{where}: {width}x{height} PNG, {ref.size} bytes, stored as file "
            f"{ref.id} (GET /api/files/{ref.id}/content)",
            data={"file_id": ref.id, "width": width, "height": height, "size": ref.size},
        )


def capture(display: str | None, monitor: int) -> tuple[bytes, int, int]:
    """PNG bytes, width and height of ``monitor`` (0: all) on ``display``."""
    options = {"display": display} if display else {}
    try:
        with mss.MSS(**options) as screen:  # type: ignore[arg-type]
            monitors = screen.monitors
            if monitor >= len(monitors):
                raise ActionFailed(
                    f"no monitor {monitor}: the display has {len(monitors) - 1} monitor(s)"
                )
            image = screen.grab(monitors[monitor])
            png = mss.tools.to_png(image.rgb, image.size)
    except ScreenShotError as exc:
        where = f"display {display}" if display else "the display"
        raise ActionFailed(f"cannot capture {where}: {exc}") from exc
    assert png is not None
    return png, image.width, image.height
