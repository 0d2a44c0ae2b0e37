"""Hosts as Linux network namespaces, for multi-host tests (needs root and iproute2).

``Lan(hosts)`` makes, with names unique to this run: a hub namespace holding a bridge,
one namespace per host with a veth to that bridge and an address on a private /24 of
10.251.0.0/16 that nothing on this machine uses, and a veth from the test's own
namespace to the hub (address ``.254``) so the test reaches every host. The namespaces
split only the network: every host sees the same files. ``destroy()`` kills what runs
in them and removes everything it made; it is safe to call after a partial ``create()``.

``inside(ns)`` runs the calling thread in a namespace for a moment (what ``ip netns
exec`` does for a command), for helpers that start their server themselves.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import random
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

CLONE_NEWNET = 0x40000000
TIMEOUT = 30  # seconds for any one `ip` command


class NetnsUnavailable(Exception):
    """Network namespaces cannot be made here (the reason is the message)."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=TIMEOUT)
    if check and res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {res.stderr.strip()}")
    return res


def free_subnet() -> ipaddress.IPv4Network:
    """A 10.251.x.0/24 that overlaps no address or route of this namespace."""
    used = []
    for line in ip("-4", "-o", "addr").stdout.splitlines() + \
            ip("-4", "route", "show", "table", "all").stdout.splitlines():
        for word in line.split():
            with contextlib.suppress(ValueError):
                if "/" in word or word.count(".") == 3:
                    used.append(ipaddress.ip_network(word, strict=False))
    candidates = list(range(1, 254))
    random.shuffle(candidates)  # two runs at once rarely pick the same one
    for x in candidates:
        net = ipaddress.ip_network(f"10.251.{x}.0/24")
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise NetnsUnavailable("no free /24 in 10.251.0.0/16 for the test's hosts")


class Lan:
    """Hosts ``{role: last octet}`` on a bridge in a hub namespace (see module doc)."""

    def __init__(self, hosts: dict[str, int]) -> None:
        self.token = secrets.token_hex(3)
        self.hosts = hosts
        self.hub = f"snapkeep-{self.token}-hub"
        self.root_link = f"sk{self.token}"  # in the test's namespace: <= 15 characters
        self.net: ipaddress.IPv4Network | None = None
        self.made: list[str] = []

    def ns(self, role: str) -> str:
        return f"snapkeep-{self.token}-{role}"

    def addr(self, role: str) -> str:
        assert self.net is not None
        return str(self.net.network_address + self.hosts[role])

    @property
    def test_addr(self) -> str:
        assert self.net is not None
        return str(self.net.network_address + 254)

    def create(self) -> Lan:
        try:
            self._add_ns(self.hub)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            raise NetnsUnavailable(f"cannot make a network namespace here: {e}") from e
        try:
            self.net = free_subnet()
            ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
            ip("-n", self.hub, "link", "set", "br0", "up")
            ip("link", "add", self.root_link, "type", "veth", "peer", "name", "h-test",
               "netns", self.hub)
            self._port("h-test")
            ip("addr", "add", f"{self.test_addr}/24", "dev", self.root_link)
            ip("link", "set", self.root_link, "up")
            for role in self.hosts:
                ns = self.ns(role)
                self._add_ns(ns)
                ip("-n", self.hub, "link", "add", f"h-{role}", "type", "veth", "peer",
                   "name", "eth0", "netns", ns)
                self._port(f"h-{role}")
                ip("-n", ns, "addr", "add", f"{self.addr(role)}/24", "dev", "eth0")
                ip("-n", ns, "link", "set", "eth0", "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def _add_ns(self, name: str) -> None:
        ip("netns", "add", name)
        self.made.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def _port(self, link: str) -> None:
        ip("-n", self.hub, "link", "set", link, "master", "br0")
        ip("-n", self.hub, "link", "set", link, "up")

    def exec(self, role: str, *cmd: str) -> list[str]:
        """``cmd`` run in ``role``'s namespace."""
        return ["ip", "netns", "exec", self.ns(role), *cmd]

    def link(self, role: str, up: bool) -> None:
        """Plug ``role``'s cable into the hub, or pull it (its port goes down)."""
        ip("-n", self.hub, "link", "set", f"h-{role}", "up" if up else "down")

    def pids(self, role: str) -> list[int]:
        return [int(p) for p in ip("netns", "pids", self.ns(role), check=False).stdout.split()]

    def signal_all(self, role: str, sig: int) -> list[int]:
        """Send ``sig`` to every process in ``role``'s namespace; their pids."""
        hit = []
        for pid in self.pids(role):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                hit.append(pid)
        return hit

    def kill_all(self, role: str, timeout: float = 30) -> None:
        """SIGKILL every process of the namespace until none is left (bounded)."""
        deadline = time.monotonic() + timeout
        while self.signal_all(role, signal.SIGKILL):
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes of {self.ns(role)} survive SIGKILL: "
                                   f"{self.pids(role)}")
            time.sleep(0.05)

    def destroy(self) -> None:
        for name in reversed(self.made):
            role = name.removeprefix(f"snapkeep-{self.token}-")
            with contextlib.suppress(Exception):
                self.kill_all(role)
            ip("netns", "del", name, check=False)
        self.made.clear()
        ip("link", "del", self.root_link, check=False)  # gone with its peer, normally


@contextlib.contextmanager
def inside(ns: str) -> Iterator[None]:
    """The calling thread in network namespace ``ns`` (the processes it starts too)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(str(Path("/run/netns") / ns), os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns}")
        try:
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the test's namespace")
    finally:
        os.close(there)
        os.close(home)
