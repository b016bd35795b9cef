"""Egress guard: refuse outbound requests to private, loopback and other non-public addresses.

A publisher URL comes from a connection file and is sent data from the run, so a typo or a
hostile DNS answer must not turn it into a probe of the local network (SSRF). Publishers call
:func:`check_egress` before they open any connection.

Known limit: the HTTP client resolves the host again when it connects, so a DNS answer that
changes between the check and the connection (DNS rebinding) is not caught here. Pinning the
resolved address would need per-request SNI handling; the check still stops every static
misconfiguration, which is the common case.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from matcha.errors import ConnectorError, EgressDenied

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")


def address_class(ip: IPAddress) -> str | None:
    """The name of the non-public class ``ip`` falls in, or ``None`` for a public address.

    IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) are judged by the IPv4 address they carry,
    because the socket layer connects to that IPv4 address.
    """
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # Order matters: the most specific (and most helpful) name first.
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),  # before "private": is_private also covers 240.0.0.0/4
        ("private", ip.is_private),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
        # Catches the rest, e.g. carrier-grade NAT 100.64.0.0/10 and benchmarking ranges.
        ("non-public", not ip.is_global),
    )
    for name, hit in checks:
        if hit:
            return name
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]  # a literal needs no resolver
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConnectorError(
            f"Cannot resolve host '{host}' ({exc}); nothing was sent. Check the host name in the url"
        ) from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        # IPv6 link-local results may carry a zone ("fe80::1%eth0"); the zone is not part of the address.
        literal = str(sockaddr[0]).split("%", 1)[0]
        addresses.append(ipaddress.ip_address(literal))
    return addresses


def check_egress(url: str, allowed_hosts: list[str]) -> None:
    """Raise :class:`~matcha.errors.EgressDenied` unless ``url`` may be contacted.

    Refuses schemes other than http(s), and hosts that resolve to any unspecified, loopback,
    link-local, multicast, private, reserved or otherwise non-public address, unless the host
    name (or the exact resolved IP literal) is listed in ``allowed_hosts``. Only resolves the
    name; never opens a connection.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"'{scheme}://'" if scheme else "no scheme"
        raise EgressDenied(
            f"Refusing url with {shown}: only http:// and https:// are allowed. "
            "Write the url as https://host/path"
        )
    host = (parts.hostname or "").lower()
    if not host:
        raise EgressDenied(f"Refusing url without a host: '{url}'. Write the url as https://host/path")
    allowed = {h.strip().strip("[]").lower() for h in allowed_hosts}
    if host in allowed:
        return
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise EgressDenied(f"Refusing url with an invalid port: {exc}") from exc
    for ip in _resolve(host, port):
        kind = address_class(ip)
        if kind is None or str(ip) in allowed:
            continue
        shown = f"{host}, a" if host == str(ip) else f"{host}: it resolves to {ip}, a"
        raise EgressDenied(
            f"Refusing to send to {shown} {kind} address; outbound requests to "
            "non-public addresses are blocked by default. If this receiver is meant to be on your "
            f"own machine or network, add '{host}' to `allowed_hosts` in the connection file"
        )
