"""Egress guard: refuse outbound requests to private, loopback and other non-public addresses.

A publisher URL comes from a connection file and is sent data from the run, so a typo or a
hostile DNS answer must not turn it into a probe of the local network (SSRF). Two layers:

* :func:`check_egress` refuses a bad scheme or a host that resolves to a non-public address, before
  anything is sent (a clear error up front);
* :class:`EgressTransport`, the httpx transport publishers send with, resolves the host **once**
  when it opens a connection, checks every address with the same rules, and connects to the
  checked address itself. A DNS answer that changes after the check (DNS rebinding) therefore
  cannot redirect the connection; TLS SNI, certificate checks and the ``Host`` header still use
  the host name.

An address is judged by the IPv4 address it carries when it is one of the IPv6 forms that embed
one (IPv4-mapped, IPv4-compatible, IPv4-translated, 6to4, Teredo, NAT64), since the packets end up
at that IPv4 address.

Limit: when an HTTP(S) proxy is configured in the environment for the URL (``HTTPS_PROXY``...,
not bypassed by ``NO_PROXY``), requests go through that proxy as usual (:func:`env_proxy`): the
name is still checked up front, but the proxy makes the connection, so pinning the address is then
the proxy's job.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from matcha.errors import ConnectorError, EgressDenied

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")

_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def _own_class(ip: IPAddress) -> str | None:
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


def embedded_ipv4(ip: IPAddress) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, each with the name of its form; ``[]`` if none."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    value = int(ip)
    low = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        return [("IPv4-mapped", ip.ipv4_mapped)]
    if value >> 32 == 0xFFFF0000:  # ::ffff:0:a.b.c.d (RFC 2765)
        return [("IPv4-translated", low)]
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d, deprecated; "::" and "::1" are judged as IPv6
        return [("IPv4-compatible", low)]
    if ip.sixtofour is not None:  # 2002:aabb:ccdd::/48
        return [("6to4", ip.sixtofour)]
    if ip.teredo is not None:  # 2001::/32 carries the Teredo server and the (obfuscated) client
        server, client = ip.teredo
        return [("Teredo server", server), ("Teredo client", client)]
    if any(ip in net for net in _NAT64):  # the IPv4 address is the last 32 bits
        return [("NAT64", low)]
    return []


def address_class(ip: IPAddress) -> str | None:
    """The name of the non-public class ``ip`` falls in, or ``None`` for a public address.

    An IPv6 address that embeds an IPv4 address (``::ffff:127.0.0.1``, 6to4 ``2002:7f00:1::``...)
    is judged by the IPv4 address(es) it carries, because that is where its packets end up.
    """
    inner = embedded_ipv4(ip)
    if not inner:
        return _own_class(ip)
    return next((kind for _form, v4 in inner if (kind := _own_class(v4)) is not None), None)


def describe_refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is refused, e.g. ``a 6to4 address carrying 127.0.0.1, a loopback address``; ``None`` if public."""
    inner = embedded_ipv4(ip)
    for form, v4 in inner:
        kind = _own_class(v4)
        if kind is not None:
            return f"{_article(form)} {form} address carrying {v4}, {_article(kind)} {kind} address"
    if inner:
        return None
    kind = _own_class(ip)
    return None if kind is None else f"{_article(kind)} {kind} address"


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" or word.startswith("IPv") else "a"


def _normal_host(host: str) -> str:
    """Lower-case, no IPv6 brackets, international names in their ASCII (IDNA) form."""
    host = host.strip().strip("[]").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _allowed(allowed_hosts: Iterable[str]) -> set[str]:
    return {_normal_host(h) for h in allowed_hosts}


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
        address = ipaddress.ip_address(literal)
        if address not in addresses:
            addresses.append(address)
    return addresses


def checked_addresses(host: str, port: int, allowed_hosts: Iterable[str]) -> list[IPAddress]:
    """Resolve ``host`` once and return its addresses, or raise :class:`~matcha.errors.EgressDenied`.

    Every address must be public unless the host name (or that exact IP literal) is in
    ``allowed_hosts``. Connect only to the returned addresses: resolving again could give others.
    """
    host = _normal_host(host)
    allowed = _allowed(allowed_hosts)
    addresses = _resolve(host, port)
    if host in allowed:
        return addresses
    for ip in addresses:
        why = describe_refusal(ip)
        if why is None or str(ip) in allowed:
            continue
        shown = f"{host}, {why}" if host == str(ip) else f"{host}: it resolves to {ip}, {why}"
        raise EgressDenied(
            f"Refusing to send to {shown}; outbound requests to non-public addresses are blocked by "
            "default. If this receiver is meant to be on your own machine or network, add "
            f"'{host}' to `allowed_hosts` in the connection file"
        )
    return addresses


def check_egress(url: str, allowed_hosts: list[str]) -> None:
    """Raise :class:`~matcha.errors.EgressDenied` unless ``url`` may be contacted.

    Refuses schemes other than http(s), and hosts that resolve to any unspecified, loopback,
    link-local, multicast, private, reserved or otherwise non-public address (directly or embedded
    in an IPv6 address), unless the host name (or the exact resolved IP literal) is listed in
    ``allowed_hosts``. An allow-listed host name is not resolved. Only resolves the name; never
    opens a connection.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"'{scheme}://'" if scheme else "no scheme"
        raise EgressDenied(
            f"Refusing url with {shown}: only http:// and https:// are allowed. "
            "Write the url as https://host/path"
        )
    host = _normal_host(parts.hostname or "")
    if not host:
        raise EgressDenied(f"Refusing url without a host: '{url}'. Write the url as https://host/path")
    if host in _allowed(allowed_hosts):
        return
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise EgressDenied(f"Refusing url with an invalid port: {exc}") from exc
    checked_addresses(host, port, allowed_hosts)


class PinnedBackend(httpcore.NetworkBackend):
    """An httpcore network backend that connects only to addresses that passed the egress check.

    httpcore hands it the host name from the URL; it resolves that name once, checks every address
    (:func:`checked_addresses`) and opens the TCP connection to a checked IP. TLS is started by
    httpcore afterwards with the URL's host name, so SNI and certificate checks are unchanged.
    """

    def __init__(self, allowed_hosts: Iterable[str], inner: httpcore.NetworkBackend | None = None):
        self.allowed_hosts = list(allowed_hosts)
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = checked_addresses(host, port, self.allowed_hosts)
        except EgressDenied:
            raise  # not a transport error: never retried
        except ConnectorError as exc:  # DNS failure: a connection error, retried like one
            raise httpcore.ConnectError(str(exc)) from exc
        failure = httpcore.ConnectError(f"no address found for {host}")
        for ip in addresses:  # in resolver order, like socket.create_connection
            try:
                return self._inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise EgressDenied("Refusing to connect to a unix socket: publishers send over TCP to checked addresses")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def env_proxy(url: str) -> str | None:
    """The proxy the environment sets for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``...), or None."""
    import urllib.request

    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme.lower()) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


class EgressTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections go only to checked addresses (:class:`PinnedBackend`).

    Use it as ``httpx.Client(transport=EgressTransport(allowed_hosts))``.
    """

    def __init__(self, allowed_hosts: Iterable[str], *, limits: httpx.Limits | None = None):
        super().__init__()
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's defaults
        # HTTPTransport takes no network backend, so the pool it built is replaced with one that has
        # ours; everything else (request mapping, errors, streaming) stays httpx's own code.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(allowed_hosts),
        )
