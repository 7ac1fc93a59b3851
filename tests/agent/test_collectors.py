"""Inventory and status on this (Linux) machine."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

import wcms
from wcms.agent.collectors import StatusCollector, collect_inventory
from wcms.protocol import Inventory, StatusReport


def test_inventory_describes_this_machine() -> None:
    inventory = collect_inventory()
    assert Inventory.model_validate(inventory.model_dump()) == inventory
    assert inventory.hostname == socket.gethostname()
    assert inventory.os_name == "Linux"
    assert inventory.os_pretty
    assert inventory.cpu_model
    assert inventory.cpu_threads is not None and inventory.cpu_threads >= 1
    assert inventory.ram_total > 0
    assert any(disk.mount == "/" for disk in inventory.disks)
    assert inventory.agent_version == wcms.__version__
    assert inventory.boot_time is not None and inventory.boot_time < datetime.now(UTC)
    assert "127.0.0.1" not in inventory.ips and "::1" not in inventory.ips
    assert "00:00:00:00:00:00" not in inventory.macs


def test_status_is_a_valid_report() -> None:
    collector = StatusCollector()
    time.sleep(0.05)
    status = collector.collect()
    assert StatusReport.model_validate(status.model_dump()) == status
    assert 0 <= status.cpu_percent <= 100
    assert 0 < status.ram_used <= status.ram_total
    assert status.uptime_s > 0
    assert status.process_count > 1
    assert any(disk.mount == "/" for disk in status.disks)
    assert status.users == sorted(set(status.users))
