"""What this machine is: hardware, OS and network identity, sent at every connect."""

from __future__ import annotations

import ipaddress
import logging
import platform as pyplatform
import socket
from datetime import UTC, datetime

import psutil

import wcms
from wcms.agent.platform import Platform, current_platform
from wcms.protocol import DiskInfo, Inventory

log = logging.getLogger(__name__)

# Limits of the Inventory model's lists.
MAX_DISKS = 256
MAX_MACS = 64
MAX_IPS = 256
_ZERO_MAC = "00:00:00:00:00:00"


def collect_inventory(platform: Platform | None = None) -> Inventory:
    """This machine's inventory. Blocking (reads files, may run a system query):
    call it in a thread from async code."""
    platform = platform or current_platform()
    os_info = platform.os_info()
    memory = psutil.virtual_memory()
    macs, ips = network_identity()
    return Inventory(
        hostname=socket.gethostname() or "unknown",
        os_name=os_info.name[:64],
        os_version=os_info.version[:255],
        os_pretty=os_info.pretty[:255],
        arch=pyplatform.machine()[:32],
        cpu_model=platform.cpu_model()[:255],
        cpu_cores=psutil.cpu_count(logical=False),
        cpu_threads=psutil.cpu_count(logical=True),
        ram_total=memory.total,
        disks=physical_disks(),
        macs=macs,
        ips=ips,
        agent_version=wcms.__version__,
        boot_time=datetime.fromtimestamp(psutil.boot_time(), tz=UTC),
    )


def physical_partitions() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of each physical partition, each mount once."""
    seen: set[str] = set()
    found = []
    for partition in psutil.disk_partitions(all=False):
        if partition.mountpoint in seen:
            continue
        seen.add(partition.mountpoint)
        found.append((partition.mountpoint, partition.fstype))
    return found


def physical_disks() -> list[DiskInfo]:
    disks = []
    for mount, fstype in physical_partitions()[:MAX_DISKS]:
        try:
            total = psutil.disk_usage(mount).total
        except OSError as exc:
            log.debug("skipping disk %s: %s", mount, exc)
            continue
        disks.append(DiskInfo(mount=mount[:1024], fstype=fstype[:64], total=total))
    return disks


def network_identity() -> tuple[list[str], list[str]]:
    """MAC addresses and IP addresses of the non-loopback interfaces."""
    macs: list[str] = []
    ips: list[str] = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == psutil.AF_LINK:
                mac = address.address.replace("-", ":").lower()
                if mac and mac != _ZERO_MAC and mac not in macs:
                    macs.append(mac)
            elif address.family in (socket.AF_INET, socket.AF_INET6):
                ip = _routable(address.address)
                if ip and ip not in ips:
                    ips.append(ip)
    return macs[:MAX_MACS], ips[:MAX_IPS]


def _routable(text: str) -> str | None:
    """The address without a ``%zone`` suffix, or None for loopback and junk."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    return None if ip.is_loopback or ip.is_unspecified else str(ip)
