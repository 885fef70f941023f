"""Stand-in hosts for the tests of several servers: each a Linux network namespace
joined to this machine by a veth pair, or, where namespaces cannot be made, loopback.

A namespace ``art-<hex>`` gets its end of a veth pair at ``10.231.X.(4k+2)/30``
and its loopback up; this machine keeps the other end at ``10.231.X.(4k+1)``, the
namespace's *gateway*. A process started with :meth:`Host.command` runs inside it
(``ip netns exec``): it can listen on :attr:`Host.address` (the test reaches it
there) and reach this machine only at :attr:`Host.gateway`, so a service that listens
on 127.0.0.1 here (the local vLLM servers, the test PostgreSQL) needs a forwarder on
the gateway (:mod:`tests.support.forwarding`).

Making a namespace needs root (``CAP_NET_ADMIN``) and iproute2's ``ip``. Without
them (or when asked not to) :func:`stand_in_host` yields a loopback host instead
and says why in :attr:`Host.isolation`: the processes are then apart but share the
network.
Everything made is removed on exit, also when the block fails or setting up does
halfway (removing the namespace removes the veth pair with it).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

__all__ = ["Host", "NetnsUnavailable", "network_namespace", "stand_in_host"]

SUBNET = ipaddress.IPv4Network("10.231.0.0/16")
"""Where the namespaces' /30 links are drawn from."""
LOOPBACK = "127.0.0.1"
IP_TIMEOUT_S = 10
_SUBNET_ATTEMPTS = 20


class NetnsUnavailable(Exception):
    """No network namespace can be made here; the message says why."""


@dataclass(frozen=True)
class Host:
    """One stand-in host: its servers listen on ``address``; from inside it, this
    machine's services are at ``gateway``; ``netns`` is its namespace (``None`` on
    loopback); ``isolation`` says in words which of the two it is."""

    label: str
    address: str
    gateway: str
    netns: str | None
    isolation: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as run inside this host."""
        if self.netns is None:
            return list(argv)
        return ["ip", "netns", "exec", self.netns, *argv]


def _ip(*args: str) -> None:
    done = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


def _addresses_in_use() -> str:
    done = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"],
        capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False,
    )  # fmt: skip
    return done.stdout


def _free_link() -> ipaddress.IPv4Network:
    """A /30 of :data:`SUBNET` that no address here falls in (drawn at random, so
    that test sessions running side by side do not collide)."""
    used = _addresses_in_use()
    for _attempt in range(_SUBNET_ATTEMPTS):
        block = secrets.randbelow(SUBNET.num_addresses // 4)
        link = ipaddress.IPv4Network((int(SUBNET.network_address) + 4 * block, 30))
        if not any(f" {host}/" in used for host in link):
            return link
    raise NetnsUnavailable(f"no free /30 in {SUBNET} after {_SUBNET_ATTEMPTS} draws")


def _why_not() -> str | None:
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not on PATH"
    if os.geteuid() != 0:
        return "not root (making a network namespace needs CAP_NET_ADMIN)"
    return None


@contextmanager
def network_namespace(label: str) -> Iterator[Host]:
    """A fresh namespace with a veth pair to this machine (see the module); removed
    on exit. Raises :class:`NetnsUnavailable` if it cannot be made."""
    reason = _why_not()
    if reason is not None:
        raise NetnsUnavailable(reason)
    suffix = secrets.token_hex(3)
    netns, outside, inside = f"art-{suffix}", f"arth{suffix}", f"artn{suffix}"
    link = _free_link()
    gateway, address = (str(a) for a in link.hosts())
    try:
        _ip("netns", "add", netns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", netns)
        _ip("addr", "add", f"{gateway}/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", netns, "addr", "add", f"{address}/30", "dev", inside)
        _ip("-n", netns, "link", "set", inside, "up")
        yield Host(label, address, gateway, netns,
                   f"network namespace {netns} at {address} (gateway {gateway})")  # fmt: skip
    finally:
        # Each step may not have happened; removing what is not there is not an error.
        for args in (("netns", "del", netns), ("link", "del", outside)):
            subprocess.run(["ip", *args], capture_output=True, timeout=IP_TIMEOUT_S, check=False)


@contextmanager
def stand_in_host(label: str, *, namespaces: bool = True) -> Iterator[Host]:
    """A network namespace if one can be made here (and ``namespaces``), else
    loopback; ``isolation`` says which, and why."""
    with ExitStack() as stack:
        try:
            if not namespaces:
                raise NetnsUnavailable("turned off")
            host = stack.enter_context(network_namespace(label))
        except NetnsUnavailable as exc:
            host = Host(label, LOOPBACK, LOOPBACK, None, f"loopback (no network namespace: {exc})")
        yield host
