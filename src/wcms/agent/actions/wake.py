"""``wake``: send Wake-on-LAN magic packets for another machine on this one's network."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import psutil

from wcms.agent.actions.base import (
    Action,
    ActionContext,
    ActionOutcome,
    ActionSettings,
    payload_of,
)
from wcms.agent.errors import ActionFailed
from wcms.protocol import RunEnvelope
from wcms.protocol.actions import WakePayload

LIMITED_BROADCAST = "255.255.255.255"
# Magic packets are unacknowledged UDP: each is sent a few times.
REPEATS = 3


def magic_packet(mac: str) -> bytes:
    """Six 0xFF bytes, then the MAC address sixteen times."""
    return b"\xff" * 6 + bytes.fromhex(mac.replace(":", "")) * 16


def broadcast_addresses() -> list[str]:
    """The limited broadcast and each IPv4 interface's directed broadcast address."""
    found = [LIMITED_BROADCAST]
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            usable = address.family == socket.AF_INET and address.broadcast
            if usable and not ipaddress.IPv4Address(address.address).is_loopback:
                found.append(address.broadcast)
    return list(dict.fromkeys(found))


class WakeAction(Action):
    """Sends the magic packet for each of ``macs`` to ``broadcast`` (default: every
    broadcast address of this machine) on UDP ``port``. A wake run that reaches the
    machine it was meant to wake has nothing to do: that machine is up."""

    def __init__(self, settings: ActionSettings) -> None:
        self._machine_id = settings.machine_id

    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, WakePayload)
        if payload.target is not None and payload.target == self._machine_id:
            return ActionOutcome.succeeded(f"{self._machine_id} is already awake")
        if not payload.macs:
            raise ActionFailed("no MAC address to wake: the machine never reported one")
        targets = [payload.broadcast] if payload.broadcast else broadcast_addresses()
        await asyncio.to_thread(_send, payload.macs, targets, payload.port)
        who = f"{payload.target} " if payload.target else ""
        relay = f" from {self._machine_id}" if self._machine_id else ""
        return ActionOutcome.succeeded(
            f"sent the magic packet for {who}({', '.join(payload.macs)}) to "
            f"{', '.join(targets)} port {payload.port}{relay}",
            data={"macs": payload.macs, "sent_to": targets, "port": payload.port},
        )


def _send(macs: list[str], addresses: list[str], port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for address in addresses:
            for mac in macs:
                for _ in range(REPEATS):
                    try:
                        sock.sendto(magic_packet(mac), (address, port))
                    except OSError as exc:
                        raise ActionFailed(f"cannot send to {address}:{port}: {exc}") from exc
