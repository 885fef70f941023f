"""The stand-in hosts of tests/integration/test_serve_hosts.py: the TCP forwarder
relays both ways and counts what it sent; a namespace reaches a loopback service
only through a forwarder on its gateway, and leaves nothing behind; without
namespaces the host is loopback and says why."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.support.forwarding import TcpForwarder
from tests.support.netns import LOOPBACK, NetnsUnavailable, network_namespace, stand_in_host

TIMEOUT_S = 10.0


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback service that answers each connection with what it read, upper-cased."""
    listener = socket.create_server((LOOPBACK, 0))
    listener.settimeout(TIMEOUT_S)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(conn.recv(1024).upper())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone would not)
    listener.close()
    thread.join(TIMEOUT_S)


def test_the_forwarder_relays_both_ways_and_counts(echo_port: int) -> None:
    with TcpForwarder() as forwarder:
        port = forwarder.forward(LOOPBACK, (LOOPBACK, echo_port))
        with socket.create_connection((LOOPBACK, port), TIMEOUT_S) as conn:
            conn.sendall(b"hello")
            assert conn.recv(1024) == b"HELLO"
        assert forwarder.sent_bytes(port) == len(b"hello")


def test_without_namespaces_the_host_is_loopback() -> None:
    with stand_in_host("a", namespaces=False) as host:
        assert (host.address, host.gateway, host.netns) == (LOOPBACK, LOOPBACK, None)
        assert host.isolation.startswith("loopback (no network namespace: turned off")
        assert host.command(["true"]) == ["true"]


def test_a_namespace_reaches_loopback_through_its_gateway_only(echo_port: int) -> None:
    try:
        with network_namespace("a") as host, TcpForwarder() as forwarder:
            port = forwarder.forward(host.gateway, (LOOPBACK, echo_port))
            probe = (
                "import socket,sys; s=socket.create_connection((sys.argv[1],int(sys.argv[2])),3)"
            )
            ask = f"{probe}; s.sendall(b'hi'); print(s.recv(9).decode())"
            run = host.command([sys.executable, "-c", ask, host.gateway, str(port)])
            assert subprocess.run(run, capture_output=True, text=True, timeout=TIMEOUT_S,
                                  check=True).stdout.strip() == "HI"  # fmt: skip
            direct = host.command([sys.executable, "-c", probe, LOOPBACK, str(echo_port)])
            assert subprocess.run(direct, capture_output=True, timeout=TIMEOUT_S).returncode != 0
            netns = host.netns
    except NetnsUnavailable as exc:
        pytest.skip(f"no network namespace here: {exc}")
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert netns is not None and netns not in listed.stdout
