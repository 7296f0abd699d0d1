"""A test host of the suite's own: a network namespace joined to this one by a veth pair, with
addresses only inside the pair (a /24 of 10.213.0.0/16), made and removed by the suite.

The servers stay on 127.0.0.1; inside the pair each has an address of its own on this side
(PostgreSQL .1, Redis .2, the fake Claude .3), forwarded to its loopback port by a small TCP
relay, so one of them can be cut off from the host alone: a blackhole route inside the
namespace drops every packet to that address, as a partition does, until it is healed.

A server run on the test host (web: gunicorn) listens on the namespace's own address (.10);
``expose`` relays a loopback port of this side to it, from an address of its own (.4), so the
load client and the suite reach it as before while a cut of PostgreSQL (.1) leaves its
answers' way back alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import uuid
from typing import Any

# A /24 of 10.213.0.0/16 per test process, so two suites on one machine (a developer's run
# beside CI's) never give the same address to two veth pairs.
PREFIX = f"10.213.{os.getpid() % 250 + 1}"
HOST_SIDE = f"{PREFIX}.10"
TARGETS = {"postgres": f"{PREFIX}.1", "redis": f"{PREFIX}.2", "claude": f"{PREFIX}.3"}
CLIENT_SIDE = f"{PREFIX}.4"  # where this side's connections to a server on the test host come from


def available() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if shutil.which("ip") is None:
        return "iproute2 missing: apt-get install iproute2 (.ci/run installs it)"
    probe = f"nxprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def firewall_available() -> str | None:
    """Why packets cannot be dropped inside a namespace here, or None when they can."""
    if shutil.which("iptables") is None:
        return "iptables missing: apt-get install iptables (.ci/run installs it)"
    return None


class _Relay:
    """Accept on ``address``:``port`` and pipe each connection to ``upstream``:``port``
    (connecting from ``source`` when given)."""

    def __init__(
        self, address: str, port: int, upstream: str = "127.0.0.1", source: str | None = None
    ) -> None:
        self.server = socket.create_server((address, port), backlog=1024)
        self.port = port
        self.upstream = upstream
        self.source = (source, 0) if source else None
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"relay-{address}").start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(
                    (self.upstream, self.port), timeout=5, source_address=self.source
                )
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.closed = True
        # shutdown() first: close() alone does not wake the thread blocked in accept(), whose
        # call keeps the socket listening, so the next test host could not bind the address.
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()


class WorkerHost:
    """One namespace (a worker's or the web's host) with relays to the servers' loopback ports."""

    def __init__(self, ports: dict[str, int]) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns, self.veth, self.peer = f"nexus-{tag}", f"nx{tag}a", f"nx{tag}b"
        self.ports = ports
        self.relays: list[_Relay] = []
        self.cut: set[str] = set()

    def __enter__(self) -> WorkerHost:
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", self.peer)
        _ip("link", "set", self.peer, "netns", self.ns)
        for address in (*TARGETS.values(), CLIENT_SIDE):
            _ip("addr", "add", f"{address}/24", "dev", self.veth)
        _ip("link", "set", self.veth, "up")
        _ip("netns", "exec", self.ns, "ip", "link", "set", "lo", "up")
        _ip("netns", "exec", self.ns, "ip", "addr", "add", f"{HOST_SIDE}/24", "dev", self.peer)
        _ip("netns", "exec", self.ns, "ip", "link", "set", self.peer, "up")
        for name, port in self.ports.items():
            self.relays.append(_Relay(TARGETS[name], port))
        return self

    def __exit__(self, *exc: Any) -> None:
        for relay in self.relays:
            relay.close()
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns]

    def expose(self, port: int) -> None:
        """Relay 127.0.0.1:``port`` on this side to a server listening on the test host's
        HOST_SIDE:``port`` (bound there by the process itself)."""
        self.relays.append(_Relay("127.0.0.1", port, upstream=HOST_SIDE, source=CLIENT_SIDE))

    def url(self, name: str) -> str:
        return f"{TARGETS[name]}:{self.ports[name]}"

    def partition(self, name: str) -> None:
        _ip("netns", "exec", self.ns, "ip", "route", "add", "blackhole", f"{TARGETS[name]}/32")
        self.cut.add(name)

    def silence(self, name: str) -> None:
        """Drop every packet from ``name`` as it reaches this host (iptables in the namespace):
        the host's own packets go out and are never answered, as across a partition in the
        network. Unlike the blackhole route, whose sends fail inside this host's kernel, this
        lets TCP time out (connect_timeout, TCP_USER_TIMEOUT) as it would in production: under
        the route, the web's pooled connections hung until the heal and then went on (measured)."""
        _ip("netns", "exec", self.ns, "iptables", "-I", "INPUT", "-s", TARGETS[name], "-j", "DROP")
        self.cut.add(name)

    def unsilence(self, name: str) -> None:
        _ip("netns", "exec", self.ns, "iptables", "-D", "INPUT", "-s", TARGETS[name], "-j", "DROP")
        self.cut.discard(name)

    def heal(self, name: str) -> None:
        _ip("netns", "exec", self.ns, "ip", "route", "del", "blackhole", f"{TARGETS[name]}/32")
        self.cut.discard(name)
