"""Refuses, inside a Python process, every name lookup and connection that would leave this machine.

scripts/rehearse_deploy.py copies this file as `sitecustomize.py` into a folder it puts first on PYTHONPATH of the
Python programs it starts (SAM CLI, cfn-lint, scripts/doctor): they reach moto on 127.0.0.1 and nothing else, and
they say so. Each refused attempt is one line on stderr, "loopback guard: refused HOST:PORT", which the rehearsal
reads to know which checks needed the outside world. Standard library only: it runs under SAM CLI's Python too.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
from typing import Any

REFUSED = "loopback guard: refused"
# Names the resolver answers from /etc/hosts, never from a DNS server.
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def is_loopback(host: str | bytes | None) -> bool:
    """True for a loopback address or a name that always means one; None (a passive lookup) counts too."""
    if host is None:
        return True
    name = (host.decode() if isinstance(host, bytes) else host).lower().rstrip(".")
    if name in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _refuse(host: Any, port: Any) -> str:
    message = f"{REFUSED} {host}:{port} (only loopback may be reached)"
    print(message, file=sys.stderr, flush=True)
    return message


def install() -> None:
    """Guard this process from now on: a non-loopback lookup fails as an unknown name, a connection as refused."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, _refuse(host, port))
        return real_getaddrinfo(host, port, *args, **kwargs)

    def _allowed(sock: socket.socket, address: Any) -> bool:
        # Unix sockets stay on the machine; an IP socket connects to a literal address (or resolves the name itself,
        # without getaddrinfo above), so the address is what counts.
        return sock.family not in (socket.AF_INET, socket.AF_INET6) or is_loopback(address[0])

    def connect(self: socket.socket, address: Any) -> None:
        if not _allowed(self, address):
            raise ConnectionRefusedError(_refuse(address[0], address[1]))
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not _allowed(self, address):
            _refuse(address[0], address[1])
            return errno.ECONNREFUSED
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]


if __name__ == "sitecustomize":
    install()
