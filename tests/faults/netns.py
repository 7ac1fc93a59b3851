"""A network namespace joined to the host by a veth pair: a machine whose network (or
power) the tests can take away without touching the host's own network.

The pair sits on a private /30 of 10.231.0.0/16: the host end is ``.1`` of the /30 (the
server listens there), the namespace end ``.2`` (the agent runs inside). Names carry
the test run's pid, so parallel runs never share one. Needs root and iproute2.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count

import pytest

from tests.conftest import IN_CI
from tests.procs import wait_for

PRIVATE = ipaddress.ip_network("10.231.0.0/16")
_serial = count()


def require_netns() -> None:
    """Skip (fail under CI) unless network namespaces can be made here."""
    problem = _netns_problem()
    if problem is not None:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)


@functools.cache
def _netns_problem() -> str | None:
    if os.geteuid() != 0:
        return "network fault tests need root (ip netns, veth pairs)"
    if shutil.which("ip") is None:
        return "network fault tests need iproute2's `ip`"
    probe = f"wcms-probe-{os.getpid()}"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"network namespaces cannot be made here: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _used_addresses() -> set[ipaddress.IPv4Address]:
    out = ip("-o", "-4", "addr", "show").stdout
    found = set()
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            found.add(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).ip)
    return found


def free_subnet() -> ipaddress.IPv4Network:
    """A /30 of PRIVATE that no interface of the host uses."""
    used = _used_addresses()
    subnets = list(PRIVATE.subnets(new_prefix=30))
    start = (os.getpid() * 7919 + next(_serial) * 104729) % len(subnets)
    for step in range(len(subnets)):
        subnet = subnets[(start + step) % len(subnets)]
        if not any(address in subnet for address in used):
            return subnet
    raise AssertionError(f"no free /30 left in {PRIVATE}")


class Namespace:
    """One namespace and its veth pair on ``subnet``; :meth:`create` it, :meth:`cut` and
    :meth:`restore` its link, :meth:`destroy` it (safe to call twice)."""

    def __init__(self, subnet: ipaddress.IPv4Network) -> None:
        serial = next(_serial)
        tag = f"{os.getpid()}x{serial}"
        self.name = f"wcms-fault-{tag}"
        # Interface names are at most 15 characters.
        self.host_if = f"wf{tag}h"[:15]
        self.ns_if = f"wf{tag}n"[:15]
        hosts = list(subnet.hosts())
        self.subnet = subnet
        self.host_addr = str(hosts[0])
        self.ns_addr = str(hosts[1])
        self.created = False

    @property
    def exec_prefix(self) -> list[str]:
        """Run a command inside the namespace: ``[*exec_prefix, "cmd", ...]``."""
        return ["ip", "netns", "exec", self.name]

    def create(self) -> Namespace:
        prefix = f"/{self.subnet.prefixlen}"
        ip("netns", "add", self.name)
        self.created = True
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        ip("link", "set", self.ns_if, "netns", self.name)
        ip("addr", "add", self.host_addr + prefix, "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        inside = ["netns", "exec", self.name, "ip"]
        ip(*inside, "addr", "add", self.ns_addr + prefix, "dev", self.ns_if)
        ip(*inside, "link", "set", self.ns_if, "up")
        ip(*inside, "link", "set", "lo", "up")
        return self

    def cut(self) -> None:
        """Take the link down at both ends: nothing crosses, not even a FIN or RST.
        The host end's address stays local to the host, so the server still answers
        the tests on it."""
        ip("link", "set", self.host_if, "down")
        ip("netns", "exec", self.name, "ip", "link", "set", self.ns_if, "down")

    def restore(self) -> None:
        ip("link", "set", self.host_if, "up")
        ip("netns", "exec", self.name, "ip", "link", "set", self.ns_if, "up")

    def destroy(self) -> None:
        """Delete the namespace (its end of the pair, and so the pair, goes with it);
        returns once the host end is gone, so the subnet can be used again."""
        if not self.created:
            return
        ip("netns", "del", self.name, check=False)
        ip("link", "del", self.host_if, check=False)
        wait_for(
            lambda: ip("link", "show", self.host_if, check=False).returncode != 0,
            timeout=10,
            what=f"{self.host_if} deleted",
        )
        self.created = False


@contextmanager
def namespaces() -> Iterator[list[Namespace]]:
    """A list to put the test's namespaces in; every one is destroyed on the way out,
    whatever happened."""
    made: list[Namespace] = []
    try:
        yield made
    finally:
        for namespace in made:
            namespace.destroy()
