"""Game plugins: probes and consoles over RCON, A2S, Server List Ping, Palworld REST,
and plain TCP / HTTP."""

from __future__ import annotations

from wcms.agent.plugins.base import GamePlugin, PluginError, ProbeResult, Unsupported
from wcms.protocol.programs import ProbeUrl

__all__ = ["GamePlugin", "PluginError", "ProbeResult", "Unsupported", "plugin_for"]


def plugin_for(url: ProbeUrl, *, timeout_s: float, preset: str | None = None) -> GamePlugin:
    """The plugin for ``url``'s scheme. ``preset`` (a program's preset: ``minecraft``,
    ``ark``…) picks the console commands of an RCON game; Source's by default.

    Each module is imported on first use, not here: the agent stays small on machines
    whose games need neither mcstatus nor python-a2s.
    """
    match url.scheme:
        case "rcon":
            from wcms.agent.plugins.rcon import RCON_GAMES, RconPlugin

            game = RCON_GAMES.get((preset or "").lower(), RCON_GAMES["source"])
            return RconPlugin(url, timeout_s=timeout_s, game=game)
        case "a2s":
            from wcms.agent.plugins.a2s import A2sPlugin

            return A2sPlugin(url, timeout_s=timeout_s)
        case "minecraft":
            from wcms.agent.plugins.minecraft import MinecraftPlugin

            return MinecraftPlugin(url, timeout_s=timeout_s)
        case "palworld":
            from wcms.agent.plugins.palworld import PalworldPlugin

            return PalworldPlugin(url, timeout_s=timeout_s)
        case "http" | "https":
            from wcms.agent.plugins.http import HttpPlugin

            return HttpPlugin(url, timeout_s=timeout_s)
        case "tcp":
            from wcms.agent.plugins.tcp import TcpPlugin

            return TcpPlugin(url, timeout_s=timeout_s)
    raise ValueError(f"no plugin for {url.scheme}://")
