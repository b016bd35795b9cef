"""The egress guard only resolves names; these tests use IP literals, ``localhost`` and fake resolvers.

``socket.socket`` is replaced by a tripwire so any attempt to connect fails the test; the pinned
connection is tested here with a fake network backend, and against a real server in test_webhook.py.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

import httpcore
import pytest

from matcha.connectors.netguard import PinnedBackend, address_class, check_egress
from matcha.errors import ConnectorError, EgressDenied

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    def tripwire(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("check_egress must never open a socket")

    monkeypatch.setattr(socket, "socket", tripwire)
    monkeypatch.setattr(socket, "create_connection", tripwire)


REFUSED = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://127.8.9.10:8080/hook", "loopback"),
    ("http://localhost:9000/", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("https://172.16.0.1/", "private"),
    ("https://172.31.255.254/", "private"),
    ("http://192.168.1.10/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]:8080/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "private"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://100.64.0.1/", "non-public"),
    ("http://2130706433/", "loopback"),  # 127.0.0.1 written as an integer
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 wrapping 127.0.0.1
]


@pytest.mark.parametrize(("url", "kind"), REFUSED)
def test_non_public_addresses_are_refused(url: str, kind: str) -> None:
    with pytest.raises(EgressDenied, match=f", an? {kind} address") as info:
        check_egress(url, allowed_hosts=[])
    assert "add '" in str(info.value) and "`allowed_hosts` in the connection file" in str(info.value)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/file", "file:///etc/passwd", "gopher://127.0.0.1/", "example.com/hook", "HTTP//x"],
)
def test_non_http_schemes_are_refused(url: str) -> None:
    with pytest.raises(EgressDenied, match=r"only http:// and https:// are allowed"):
        check_egress(url, allowed_hosts=["127.0.0.1", "example.com"])


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8080/hook", ["127.0.0.1"]),
        ("http://localhost:8080/hook", ["localhost"]),
        ("http://LOCALHOST/hook", ["localhost"]),
        ("http://[::1]/", ["::1"]),
        ("http://[::1]/", ["[::1]"]),
        ("http://192.168.1.10/", ["192.168.1.10"]),
    ],
)
def test_allow_listed_hosts_pass(url: str, allowed: list[str]) -> None:
    check_egress(url, allowed_hosts=allowed)


def test_allow_listing_one_host_does_not_allow_another() -> None:
    with pytest.raises(EgressDenied, match=r"10\.0\.0\.2, a private address"):
        check_egress("http://10.0.0.2/", allowed_hosts=["10.0.0.1"])


def test_public_address_passes() -> None:
    check_egress("https://93.184.215.14/hook", allowed_hosts=[])
    check_egress("https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/hook", allowed_hosts=[])


def test_any_private_answer_refuses_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fe80::1%eth0", 443, 0, 2)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    with pytest.raises(
        EgressDenied, match=r"hooks\.example\.com: it resolves to fe80::1, a link-local address"
    ):
        check_egress("https://hooks.example.com/x", allowed_hosts=[])


def test_unresolvable_host_is_a_connector_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(ConnectorError, match=r"Cannot resolve host 'nowhere\.invalid'"):
        check_egress("https://nowhere.invalid/", allowed_hosts=[])


def test_bad_port_and_missing_host() -> None:
    with pytest.raises(EgressDenied, match="invalid port"):
        check_egress("http://8.8.8.8:99999/", allowed_hosts=[])
    with pytest.raises(EgressDenied, match="without a host"):
        check_egress("http:///path", allowed_hosts=[])


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("8.8.8.8", None),
        ("::ffff:8.8.8.8", None),
        ("::ffff:192.168.0.1", "private"),
        ("fec0::1", "site-local"),
        ("::1", "loopback"),  # not read as IPv4-compatible 0.0.0.1
        ("2001:db8::1", "private"),  # documentation range, not Teredo
    ],
)
def test_address_class(address: str, expected: str | None) -> None:
    assert address_class(ipaddress.ip_address(address)) == expected


# IPv6 forms that carry an IPv4 address: (form, address carrying a non-public IPv4, that IPv4, its
# class, the same form carrying a public IPv4). Each is judged by the IPv4 address inside.
EMBEDDED = [
    ("IPv4-mapped", "::ffff:127.0.0.1", "127.0.0.1", "loopback", "::ffff:8.8.8.8"),
    ("IPv4-compatible", "::127.0.0.1", "127.0.0.1", "loopback", "::8.8.8.8"),
    ("IPv4-compatible", "::10.1.2.3", "10.1.2.3", "private", "::93.184.215.14"),
    ("IPv4-translated", "::ffff:0:10.0.0.1", "10.0.0.1", "private", "::ffff:0:8.8.8.8"),
    ("IPv4-translated", "::ffff:0:127.0.0.1", "127.0.0.1", "loopback", "::ffff:0:1.1.1.1"),
    ("6to4", "2002:7f00:1::", "127.0.0.1", "loopback", "2002:808:808::"),
    ("6to4", "2002:c0a8:101::1", "192.168.1.1", "private", "2002:5db8:d70e::1"),
    ("6to4", "2002:a9fe:a9fe::", "169.254.169.254", "link-local", "2002:101:101::"),
    ("Teredo server", "2001:0:7f00:1::f7f7:f7f7", "127.0.0.1", "loopback", "2001:0:808:808::f7f7:f7f7"),
    ("Teredo client", "2001:0:808:808::80ff:fffe", "127.0.0.1", "loopback", "2001:0:4136:e378:8000:63bf:f7f7:f7f7"),
    ("Teredo client", "2001:0:808:808::f5ff:fffe", "10.0.0.1", "private", "2001:0:808:808::a247:2af1"),
    ("NAT64", "64:ff9b::7f00:1", "127.0.0.1", "loopback", "64:ff9b::808:808"),
    ("NAT64", "64:ff9b::c0a8:1", "192.168.0.1", "private", "64:ff9b::5db8:d70e"),
    ("NAT64", "64:ff9b:1::a00:1", "10.0.0.1", "private", "64:ff9b:1::808:808"),
    ("NAT64", "64:ff9b:1:abcd::7f00:1", "127.0.0.1", "loopback", "64:ff9b:1:abcd::101:101"),
]


@pytest.mark.parametrize(("form", "address", "inner", "kind", "_public"), EMBEDDED)
def test_embedded_non_public_ipv4_is_refused(form: str, address: str, inner: str, kind: str, _public: str) -> None:
    expected = rf"an? {form} address carrying {re.escape(inner)}, an? {kind} address"
    with pytest.raises(EgressDenied, match=expected):
        check_egress(f"http://[{address}]/hook", allowed_hosts=[])
    assert address_class(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(("form", "_address", "_inner", "_kind", "public"), EMBEDDED)
def test_embedded_public_ipv4_is_allowed(form: str, _address: str, _inner: str, _kind: str, public: str) -> None:
    check_egress(f"https://[{public}]/hook", allowed_hosts=[])
    assert address_class(ipaddress.ip_address(public)) is None


def test_embedded_address_behind_a_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2002:7f00:1::", 443, 0, 0))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    with pytest.raises(
        EgressDenied, match=r"hooks\.example\.com: it resolves to 2002:7f00:1::, a 6to4 address carrying 127\.0\.0\.1"
    ):
        check_egress("https://hooks.example.com/x", allowed_hosts=[])


# --- PinnedBackend: resolve once, check, connect to the checked address --------------------------

PUBLIC = "93.184.215.14"


class RecordingBackend(httpcore.NetworkBackend):
    """Stands in for the socket layer: records where it is asked to connect."""

    def __init__(self, refuse: frozenset[str] = frozenset()):
        self.connects: list[tuple[str, int]] = []
        self.refuse = refuse

    def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        self.connects.append((host, port))
        if host in self.refuse:
            raise httpcore.ConnectError(f"connection refused by {host}")
        return httpcore.NetworkStream()


def fake_dns(monkeypatch: pytest.MonkeyPatch, *answers: list[str]) -> list[str]:
    """Answer each lookup with the next list of addresses (the last one repeats); returns the names asked."""
    asked: list[str] = []
    queue = list(answers)

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        ips = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ips]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_backend_connects_to_the_address_it_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    # A rebinding resolver: public for the first lookup, loopback for any later one.
    asked = fake_dns(monkeypatch, [PUBLIC], ["127.0.0.1"])
    inner = RecordingBackend()
    PinnedBackend([], inner=inner).connect_tcp("rebind.example", 443)
    assert inner.connects == [(PUBLIC, 443)]
    assert asked == ["rebind.example"]  # resolved once; the socket layer gets the IP, not the name


def test_backend_refuses_when_the_answer_turns_private(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, ["127.0.0.1"])
    inner = RecordingBackend()
    with pytest.raises(EgressDenied, match=r"rebind\.example: it resolves to 127\.0\.0\.1, a loopback address"):
        PinnedBackend([], inner=inner).connect_tcp("rebind.example", 443)
    assert inner.connects == []


def test_backend_refuses_if_any_answer_is_non_public(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, [PUBLIC, "64:ff9b::a00:1"])
    inner = RecordingBackend()
    with pytest.raises(EgressDenied, match=r"a NAT64 address carrying 10\.0\.0\.1, a private address"):
        PinnedBackend([], inner=inner).connect_tcp("mixed.example", 80)
    assert inner.connects == []


def test_backend_tries_each_checked_address_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, ["2606:4700::1111", PUBLIC])
    inner = RecordingBackend(refuse=frozenset({"2606:4700::1111"}))
    PinnedBackend([], inner=inner).connect_tcp("dual.example", 80)
    assert inner.connects == [("2606:4700::1111", 80), (PUBLIC, 80)]


def test_backend_allow_listed_name_connects_to_its_private_address(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, ["10.0.0.5"], ["10.9.9.9"])
    inner = RecordingBackend()
    PinnedBackend(["Intranet.Example"], inner=inner).connect_tcp("intranet.example", 8080)
    assert inner.connects == [("10.0.0.5", 8080)] and asked == ["intranet.example"]


def test_backend_dns_failure_is_a_retryable_connect_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(httpcore.ConnectError, match=r"Cannot resolve host 'flaky\.example'"):
        PinnedBackend([], inner=RecordingBackend()).connect_tcp("flaky.example", 443)
