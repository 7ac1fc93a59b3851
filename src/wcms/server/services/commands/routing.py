"""Where each new run goes: most runs to their own machine; a run an action policy
refuses nowhere (it fails at once); a wake run to an online machine near the one it
wakes, which sends the magic packet."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.actions import WakePayload, normalise_mac
from wcms.protocol.payload import Payload
from wcms.server.services.action_policies import refusals
from wcms.server.store import machines as machine_store
from wcms.server.store.machines import MachineRecord, NetworkPlace

# Machines in one /24 are taken to share a broadcast domain.
SUBNET_PREFIX = 24


@dataclass(frozen=True)
class Route:
    machine_id: str
    # Whose agent carries the run out.
    deliver_to: str
    # Payload fields the server adds for this run.
    extra: dict[str, Any] = field(default_factory=dict)  # free-form: payload fields
    # Why the run fails without being delivered.
    refusal: str | None = None

    @property
    def relayed(self) -> bool:
        """Whether another machine's agent carries the run out."""
        return self.deliver_to != self.machine_id


async def plan(
    conn: AsyncConnection, command_type: str, payload: Payload, machine_ids: Sequence[str]
) -> list[Route]:
    """A route for the run each of ``machine_ids`` is about to get."""
    refused = await refusals(conn, command_type, machine_ids)
    routes = [Route(m, m, refusal=refused.get(m)) for m in machine_ids]
    if isinstance(payload, WakePayload):
        routes = await _wake_routes(conn, payload, routes)
    return routes


async def _wake_routes(
    conn: AsyncConnection, payload: WakePayload, routes: list[Route]
) -> list[Route]:
    """1. Find each target's MACs (the payload's, else its inventory's).
    2. A target that is online wakes itself: its agent answers it is awake.
    3. Otherwise pick a relay: ``via``, else an online machine in the target's room
       and subnet, else in its room, else in its subnet.
    The relay is recorded on the run, so its reports are accepted."""
    targets = await machine_store.many(conn, [r.machine_id for r in routes if r.refusal is None])
    online = await machine_store.online_places(conn)
    planned: list[Route] = []
    for route in routes:
        target = targets.get(route.machine_id)
        if route.refusal is not None or target is None:
            planned.append(route)
            continue
        macs = payload.macs or _macs(target)
        relay, refusal = _relay(target, online, via=payload.via)
        if not macs:
            refusal = f"no MAC address known for {target.id}: its agent never reported one"
        extra = {"macs": macs, "target": target.id}
        planned.append(Route(route.machine_id, relay or target.id, extra, refusal))
    return planned


def _relay(
    target: MachineRecord, online: list[NetworkPlace], *, via: str | None
) -> tuple[str | None, str | None]:
    """(relay machine id, None) or (None, why there is none)."""
    if target.status == "online":
        return target.id, None
    if via is not None:
        if any(row.id == via for row in online):
            return via, None
        return None, f"relay machine {via!r} is not online"
    others = [row for row in online if row.id != target.id]
    subnet = _subnet(target.ip)
    same_room = [row for row in others if target.room and row.room == target.room]
    same_net = [row for row in others if subnet is not None and _subnet(row.ip) == subnet]
    for candidates in ([r for r in same_room if r in same_net], same_room, same_net):
        if candidates:
            return candidates[0].id, None
    where = " or ".join(
        part
        for part in (f"room {target.room}" if target.room else "", str(subnet) if subnet else "")
        if part
    )
    return None, (
        f"no online machine {'in ' + where if where else 'known to share its network'} "
        f"to send the wake-up packet for {target.id}"
    )


def _subnet(ip: str | None) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.ip_network(f"{ip}/{SUBNET_PREFIX}", strict=False)  # type: ignore[return-value]
    except ValueError:
        return None


def _macs(machine: MachineRecord) -> list[str]:
    found: list[str] = []
    for mac in (machine.inventory or {}).get("macs", []):
        try:
            normal = normalise_mac(str(mac))
        except ValueError:
            continue
        if normal != "00:00:00:00:00:00" and normal not in found:
            found.append(normal)
    return found
