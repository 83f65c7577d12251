"""Where `serve` listens, and whether it may.

127.0.0.1 by default. Another address exposes the index to the network, so it needs
`allow_remote` and a token (which app.py then asks of every request). A host name counts as
remote: where it resolves may change.
"""

from __future__ import annotations

import ipaddress
import socket

from ..errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def check_bind(host: str, allow_remote: bool, token: str | None) -> None:
    """Refuse (UsageError) an address beyond this machine unless the user allowed it and
    set a token."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise UsageError(f"--host {host} would serve the index beyond this machine: add "
                         "--allow-remote and --token-env VAR (a token every request must send)")
    if not token:
        raise UsageError(f"--host {host} with --allow-remote needs a token: --token-env VAR, "
                         "VAR holding it")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: where it resolves may change; treat it as remote
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: one the system picks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets whose protocol says
    # TCP, and without it a kept-alive connection waits out delayed ACKs (52 ms a search
    # against 10 ms on a new connection, 2026-12-08).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
