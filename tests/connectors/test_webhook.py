from __future__ import annotations

import hashlib
import json
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from support import Receiver, clear_proxies

from matcha.connectors.base import CONNECTORS, PublishItem
from matcha.connectors.webhook import WebhookPublisher, encode_body, sign, verify_signature
from matcha.errors import ConnectorError, EgressDenied

SECRET = "s3cret-signing-key"
ITEM = PublishItem(
    run_id="run-7",
    step_id="publish",
    record_id="r1",
    text="Approved text, é",
    sha256=hashlib.sha256("Approved text, é".encode()).hexdigest(),
    record={"id": "r1", "b": 2, "a": [1, 2]},
)


def make(
    url: str, tmp_path: Path, transport: httpx.BaseTransport | None = None, **cfg: Any
) -> WebhookPublisher:
    config = WebhookPublisher.Config(kind="webhook", url=url, **cfg)
    return WebhookPublisher("hooks", config, base_dir=tmp_path, transport=transport)


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxies(monkeypatch)


@pytest.mark.integration
@pytest.mark.usefixtures("no_proxy")
def test_retry_after_503_resends_identical_signed_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATCHA_TEST_HOOK_SECRET", SECRET)
    with Receiver([503]) as server:
        pub = make(
            server.url, tmp_path, secret_env="MATCHA_TEST_HOOK_SECRET", allowed_hosts=["127.0.0.1"], backoff=0
        )
        try:
            pub.publish([ITEM])
        finally:
            pub.close()
    assert len(server.requests) == 2
    (first_headers, first_body), (second_headers, second_body) = server.requests
    assert first_body == second_body
    assert first_headers["Idempotency-Key"] == second_headers["Idempotency-Key"] == ITEM.key
    for headers, body in server.requests:
        assert verify_signature(body, headers["X-Matcha-Signature"], SECRET)
        assert not verify_signature(body, headers["X-Matcha-Signature"], "wrong-secret")
        assert headers["X-Matcha-Timestamp"].isdigit()
        assert headers["Content-Type"] == "application/json"
    assert json.loads(first_body) == {
        "run_id": "run-7",
        "step_id": "publish",
        "record_id": "r1",
        "text": "Approved text, é",
        "sha256": ITEM.sha256,
        "record": {"id": "r1", "b": 2, "a": [1, 2]},
    }


@pytest.mark.integration
@pytest.mark.usefixtures("no_proxy")
def test_not_allow_listed_loopback_is_refused_before_sending(tmp_path: Path) -> None:
    with Receiver([]) as server:
        pub = make(server.url, tmp_path, allowed_hosts=["hooks.example.com"])
        try:
            with pytest.raises(EgressDenied, match=r"Webhook 'hooks': .*127\.0\.0\.1, a loopback address"):
                pub.publish([ITEM])
        finally:
            pub.close()
    assert server.requests == []


# --- the connection goes to the address that was checked (real server, fake DNS) ----------------


def fake_dns(monkeypatch: pytest.MonkeyPatch, name: str, *answers: str) -> list[str]:
    """Answer lookups of ``name`` with the next address (the last one repeats); other hosts resolve
    normally. Returns the list of lookups of ``name``."""
    real = socket.getaddrinfo
    asked: list[str] = []
    queue = list(answers)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        ip = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.integration
@pytest.mark.usefixtures("no_proxy")
def test_dns_rebinding_after_the_check_never_reaches_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Receiver([]) as server:
        port = server.server.server_address[1]
        url = f"http://rebind.test:{port}/hook"
        # The resolver answers a public address first, then 127.0.0.1: what a rebinding attacker does.
        # Control: plain httpx resolves again when it connects, so it reaches the local server.
        fake_dns(monkeypatch, "rebind.test", "127.0.0.1")
        with httpx.Client() as plain:
            plain.post(url, content=b"{}")
        assert len(server.requests) == 1
        asked = fake_dns(monkeypatch, "rebind.test", "93.184.215.14", "127.0.0.1")
        pub = make(url, tmp_path, backoff=0)
        try:
            with pytest.raises(
                EgressDenied, match=r"Webhook 'hooks': .*rebind\.test: it resolves to 127\.0\.0\.1, a loopback address"
            ):
                pub.publish([ITEM])
        finally:
            pub.close()
    assert len(server.requests) == 1  # only the control request
    assert asked == ["rebind.test", "rebind.test"]  # the up-front check, then the one connection


@pytest.mark.integration
@pytest.mark.usefixtures("no_proxy")
def test_allow_listed_name_is_resolved_once_and_keeps_its_host_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Receiver([]) as server:
        port = server.server.server_address[1]
        asked = fake_dns(monkeypatch, "pinned.test", "127.0.0.1", "10.255.255.1")
        pub = make(f"http://pinned.test:{port}/hook", tmp_path, allowed_hosts=["pinned.test"])
        try:
            pub.publish([ITEM])
        finally:
            pub.close()
    assert asked == ["pinned.test"]  # httpx did not look the name up again to connect
    ((headers, body),) = server.requests
    assert headers["Host"] == f"pinned.test:{port}" and json.loads(body)["record_id"] == "r1"


@pytest.mark.integration
@pytest.mark.usefixtures("no_proxy")
def test_tls_is_started_with_the_host_name_on_the_checked_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str | None, tuple[str, int]]] = []

    def spy(self: Any, sock: socket.socket, *args: Any, server_hostname: str | None = None, **kw: Any) -> Any:
        seen.append((server_hostname, sock.getpeername()[:2]))
        sock.close()
        raise ssl.SSLError("handshake stopped by the test")

    monkeypatch.setattr(ssl.SSLContext, "wrap_socket", spy)
    with Receiver([]) as server:
        port = server.server.server_address[1]
        fake_dns(monkeypatch, "pinned.test", "127.0.0.1")
        pub = make(f"https://pinned.test:{port}/hook", tmp_path, allowed_hosts=["pinned.test"], retries=0)
        try:
            with pytest.raises(ConnectorError, match="failed after 1 attempts"):
                pub.publish([ITEM])
        finally:
            pub.close()
    assert seen == [("pinned.test", ("127.0.0.1", port))]  # SNI: the name; TCP: the checked IP


# --- unit tests through httpx.MockTransport (allow-listed host: no DNS, no sockets) -------------

HOST = "hooks.example.test"
URL = f"https://{HOST}/in"


def recorder(responses: list[httpx.Response | Exception]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        answer = responses.pop(0) if responses else httpx.Response(200)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handler), seen


@pytest.fixture
def publisher(tmp_path: Path) -> Iterator[Callable[..., tuple[WebhookPublisher, list[httpx.Request]]]]:
    made: list[WebhookPublisher] = []

    def factory(
        responses: list[httpx.Response | Exception], **cfg: Any
    ) -> tuple[WebhookPublisher, list[httpx.Request]]:
        transport, seen = recorder(responses)
        cfg = {"allowed_hosts": [HOST], "backoff": 0, **cfg}
        pub = make(URL, tmp_path, transport, **cfg)
        made.append(pub)
        return pub, seen

    yield factory
    for pub in made:
        pub.close()


@pytest.mark.unit
def test_kind_is_registered() -> None:
    assert CONNECTORS.get("webhook") is WebhookPublisher


@pytest.mark.unit
@pytest.mark.parametrize(
    "failures",
    [
        [httpx.ReadTimeout("slow")],
        [httpx.ConnectError("refused")],
        [httpx.Response(429, headers={"Retry-After": "0"})],
        [httpx.Response(500), httpx.Response(502)],
    ],
)
def test_retryable_failures_are_retried(publisher: Any, failures: list[Any]) -> None:
    pub, seen = publisher(list(failures))
    pub.publish([ITEM])
    assert len(seen) == len(failures) + 1
    assert len({r.content for r in seen}) == 1
    assert {r.headers["Idempotency-Key"] for r in seen} == {ITEM.key}


@pytest.mark.unit
@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_fail_at_once(publisher: Any, status: int) -> None:
    pub, seen = publisher([httpx.Response(status, text="bad payload")])
    with pytest.raises(ConnectorError, match=f"HTTP {status}: bad payload.*not retried"):
        pub.publish([ITEM])
    assert len(seen) == 1


@pytest.mark.unit
def test_redirect_is_not_followed(publisher: Any) -> None:
    pub, seen = publisher([httpx.Response(302, headers={"Location": "http://127.0.0.1/admin"})])
    with pytest.raises(ConnectorError, match="redirects are not followed"):
        pub.publish([ITEM])
    assert len(seen) == 1


@pytest.mark.unit
def test_retries_exhausted_masks_the_secret(publisher: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATCHA_TEST_HOOK_SECRET", SECRET)
    pub, seen = publisher([httpx.Response(503)] * 3, retries=2, secret_env="MATCHA_TEST_HOOK_SECRET")
    pub.config.url = f"{URL}?token={SECRET}"
    delays: list[float] = []
    pub._sleep = delays.append
    with pytest.raises(ConnectorError) as info:
        pub.publish([ITEM])
    message = str(info.value)
    assert "failed after 3 attempts; last error: HTTP 503" in message
    assert SECRET not in message and "token=***" in message
    assert len(seen) == 3 and len(delays) == 2
    assert seen[0].headers["X-Matcha-Signature"] == sign(seen[0].content, SECRET)


@pytest.mark.unit
def test_missing_secret_env_names_the_variable(publisher: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MATCHA_TEST_UNSET_SECRET", raising=False)
    pub, seen = publisher([], secret_env="MATCHA_TEST_UNSET_SECRET")
    with pytest.raises(ConnectorError, match="environment variable MATCHA_TEST_UNSET_SECRET"):
        pub.publish([ITEM])
    assert seen == []


@pytest.mark.unit
def test_no_secret_means_no_signature_and_custom_headers_are_sent(publisher: Any) -> None:
    pub, seen = publisher([], headers={"X-Team": "docs"})
    pub.publish([ITEM])
    assert "X-Matcha-Signature" not in seen[0].headers
    assert seen[0].headers["X-Team"] == "docs"


@pytest.mark.unit
def test_backoff_grows_with_jitter_and_honours_retry_after(tmp_path: Path) -> None:
    pub = make(URL, tmp_path, backoff=1.0)
    assert 1.0 <= pub._delay(0, None) <= 1.5
    assert 4.0 <= pub._delay(2, None) <= 6.0
    assert pub._delay(10, None) == 30.0
    assert pub._delay(0, 7.0) == 7.0


@pytest.mark.unit
def test_body_is_deterministic_and_signature_checks_bytes() -> None:
    body = encode_body(ITEM)
    assert body == encode_body(ITEM)
    assert body.startswith(b'{"record":{"a":[1,2],"b":2,"id":"r1"},"record_id":"r1"')
    header = sign(body, SECRET)
    assert verify_signature(body, header, SECRET)
    assert not verify_signature(body + b" ", header, SECRET)
    assert not verify_signature(body, header.removeprefix("sha256="), SECRET)
    assert not verify_signature(body, "sha256=é", SECRET)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"url": "ftp://x/"}, "must start with http:// or https://"),
        ({"url": URL, "headers": {"idempotency-key": "x"}}, "set by Matcha"),
        ({"url": URL, "retries": -1}, "greater than or equal to 0"),
        ({"url": URL, "timeout": 0}, "greater than 0"),
        ({"url": URL, "secret": "inline"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_config(cfg: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        WebhookPublisher.Config(kind="webhook", **cfg)


@pytest.mark.unit
def test_config_schema_has_descriptions() -> None:
    props = WebhookPublisher.Config.model_json_schema()["properties"]
    assert all(p.get("description") for p in props.values()), props


def test_an_environment_proxy_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY set for the URL, requests go through the proxy (which resolves the name),
    instead of silently bypassing it with a direct, pinned connection."""
    clear_proxies(monkeypatch)
    with Receiver([]) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.rsplit("/", 1)[0])
        cfg = WebhookPublisher.Config(kind="webhook", url="http://hooks.matcha-test.invalid/in")
        pub = WebhookPublisher("hook", cfg, base_dir=tmp_path)
        try:
            pub.publish([PublishItem("run", "publish", "r1", "hello", "sha")])
        finally:
            pub.close()
    assert len(proxy.requests) == 1
    assert json.loads(proxy.requests[0][1])["record_id"] == "r1"
