"""Small helpers shared by tests across packages."""

from __future__ import annotations

import functools
import socket


@functools.cache
def ipv6_loopback_available() -> bool:
    """True when this machine can bind a socket to ``::1``."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True
