"""Host names: which ones are this machine's own loopback. Standard library only, so that
`desktopmate serve` refuses a non-loopback bind before it imports the web stack."""

from __future__ import annotations

import ipaddress

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def host_name(host: str) -> str:
    """The name part of a Host header: ``[::1]:8000`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") > 1:  # a bare IPv6 address (not valid in Host, but be exact)
        return host
    return host.rsplit(":", 1)[0] if ":" in host else host


def is_loopback(name: str) -> bool:
    if name in LOOPBACK_HOSTS or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
