"""The egress guard only resolves names; these tests use IP literals and ``localhost``.

``socket.socket`` is replaced by a tripwire so any attempt to connect fails the test.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from matcha.connectors.netguard import address_class, check_egress
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
]


@pytest.mark.parametrize(("url", "kind"), REFUSED)
def test_non_public_addresses_are_refused(url: str, kind: str) -> None:
    with pytest.raises(EgressDenied, match=f", a {kind} address") as info:
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
    ],
)
def test_address_class(address: str, expected: str | None) -> None:
    assert address_class(ipaddress.ip_address(address)) == expected
