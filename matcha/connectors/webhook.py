"""Webhook publisher (kind ``webhook``): POSTs each approved item as signed JSON.

Each request carries:

* ``Idempotency-Key``: :attr:`PublishItem.key`, identical across retries and resumes, so the
  receiver can drop duplicates;
* ``X-Matcha-Signature: sha256=<hex>``: HMAC-SHA256 of the exact body bytes with the secret
  read from the env var named by ``secret_env`` (check it with :func:`verify_signature`);
* ``X-Matcha-Timestamp``: Unix seconds when the attempt was sent.

Timeouts, connection errors, 429 and 5xx are retried with exponential backoff and jitter,
resending the same bytes with the same key; other 4xx fail at once. Redirects are never followed,
since a redirect could point past the egress check. Connections go through
:class:`~matcha.connectors.netguard.EgressTransport`, so they reach only the address that was
checked, even if the host's DNS answer changes in between.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import Field, field_validator

from matcha.connectors.base import CONNECTORS, ConnectorConfig, Publisher, PublishItem
from matcha.connectors.netguard import EgressTransport, check_egress, env_proxy
from matcha.errors import ConnectorError, EgressDenied
from matcha.secrets import env_secret, mask

SIGNATURE_HEADER = "X-Matcha-Signature"
TIMESTAMP_HEADER = "X-Matcha-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_RESERVED = {h.lower() for h in (SIGNATURE_HEADER, TIMESTAMP_HEADER, IDEMPOTENCY_HEADER, "content-type")}
MAX_DELAY = 30.0  # seconds; caps both our backoff and a server's Retry-After


def sign(body: bytes, secret: str) -> str:
    """The ``X-Matcha-Signature`` value for ``body``: ``sha256=`` + hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str, secret: str) -> bool:
    """For receivers: does ``header`` (the ``X-Matcha-Signature`` value) match ``body``?

    Pass the raw request body bytes, before any JSON parsing. Compares in constant time.
    """
    return hmac.compare_digest(sign(body, secret).encode(), header.strip().encode("utf-8", "replace"))


def encode_body(item: PublishItem) -> bytes:
    """The request body for ``item``: compact JSON with sorted keys, so it is the same every time."""
    body = {
        "run_id": item.run_id,
        "step_id": item.step_id,
        "record_id": item.record_id,
        "text": item.text,
        "sha256": item.sha256,
        "record": item.record,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


class _Retryable(Exception):
    """An attempt failed in a way worth retrying; ``delay`` is a server-requested wait, if any."""

    def __init__(self, reason: str, delay: float | None = None):
        super().__init__(reason)
        self.delay = delay


@CONNECTORS.register("webhook")
class WebhookPublisher(Publisher):
    """POSTs one signed JSON body per approved item to ``url``."""

    class Config(ConnectorConfig):
        kind: Literal["webhook"] = Field(description="Connector kind: POST each approved item as JSON.")
        url: str = Field(description="http(s) URL that receives one POST per approved item.")
        secret_env: str | None = Field(
            None, description="Name of the env var holding the HMAC signing secret (not the secret itself)."
        )
        allowed_hosts: list[str] = Field(
            default_factory=list,
            description="Hosts or IPs allowed even though they are private/loopback, e.g. ['127.0.0.1'].",
        )
        timeout: float = Field(10.0, gt=0, description="Seconds to wait for each attempt.")
        retries: int = Field(
            3, ge=0, description="Extra attempts after a timeout, connection error, 429 or 5xx."
        )
        backoff: float = Field(0.5, ge=0, description="First retry delay in seconds; doubles on each retry.")
        headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")

        @field_validator("url")
        @classmethod
        def _http_url(cls, value: str) -> str:
            if not value.lower().startswith(("http://", "https://")):
                raise ValueError("must start with http:// or https://")
            return value

        @field_validator("headers")
        @classmethod
        def _not_reserved(cls, value: dict[str, str]) -> dict[str, str]:
            clash = sorted(h for h in value if h.lower() in _RESERVED)
            if clash:
                raise ValueError(f"{clash} are set by Matcha; remove them from `headers`")
            return value

    config: Config

    def __init__(
        self, name: str, config: Any, *, base_dir: Path, transport: httpx.BaseTransport | None = None
    ):
        super().__init__(name, config, base_dir=base_dir)
        self._transport = transport  # test seam: an httpx.MockTransport; default: EgressTransport
        self._client: httpx.Client | None = None
        self._sleep = time.sleep

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            transport = self._transport
            if transport is None and env_proxy(self.config.url) is None:
                transport = EgressTransport(self.config.allowed_hosts)
            # With a proxy for this URL, httpx's own transport sends through it (a custom transport
            # would silently bypass the proxy settings); the proxy then makes the connection.
            self._client = httpx.Client(
                timeout=self.config.timeout,
                follow_redirects=False,
                headers=self.config.headers,
                transport=transport,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def publish(self, items: list[PublishItem]) -> None:
        if not items:
            return
        secret = self._secret()
        try:
            check_egress(self.config.url, self.config.allowed_hosts)
        except EgressDenied as exc:
            raise EgressDenied(f"Webhook '{self.name}': {mask(str(exc))}") from exc
        except ConnectorError as exc:
            if env_proxy(self.config.url) is None:  # behind a proxy, the proxy resolves names this host cannot
                raise ConnectorError(f"Webhook '{self.name}': {mask(str(exc))}") from exc
        for item in items:
            self._deliver(item, secret)

    def _secret(self) -> str | None:
        name = self.config.secret_env
        if name is None:
            return None
        value = env_secret(name)
        if not value:
            raise ConnectorError(
                f"Webhook '{self.name}': environment variable {name} (named by `secret_env`) is not set "
                "or empty; nothing was sent. Export it before running, e.g. `export "
                f"{name}=...`, or remove `secret_env` from connectors/{self.name}.yaml"
            )
        return value

    def _deliver(self, item: PublishItem, secret: str | None) -> None:
        body = encode_body(item)
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: item.key}
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, secret)
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            try:
                self._attempt(body, headers)
                return
            except _Retryable as exc:
                if attempt + 1 == attempts:
                    raise ConnectorError(
                        mask(
                            f"Webhook '{self.name}': POST {self.config.url} for record {item.record_id} "
                            f"failed after {attempts} attempts; last error: {exc}. Check that the receiver "
                            f"is up, or raise `retries`/`timeout` in connectors/{self.name}.yaml"
                        )
                    ) from exc
                self._sleep(self._delay(attempt, exc.delay))

    def _attempt(self, body: bytes, headers: dict[str, str]) -> None:
        headers = {**headers, TIMESTAMP_HEADER: str(int(time.time()))}
        try:
            response = self.client.post(self.config.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out after {self.config.timeout}s ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"connection failed: {str(exc) or type(exc).__name__}") from exc
        except EgressDenied as exc:  # the address the host resolves to now is refused: not retried
            raise EgressDenied(f"Webhook '{self.name}': {mask(str(exc))}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}", _retry_after(response))
        raise ConnectorError(mask(self._rejected(response)))

    def _rejected(self, response: httpx.Response) -> str:
        status = response.status_code
        where = f"Webhook '{self.name}': POST {self.config.url} answered HTTP {status}"
        if 300 <= status < 400:
            target = response.headers.get("location", "?")
            return (
                f"{where} redirecting to {target}; redirects are not followed (they could bypass "
                f"the egress check). Set `url` in connectors/{self.name}.yaml to the final address"
            )
        snippet = " ".join(response.text[:200].split())
        return f"{where}: {snippet or response.reason_phrase}. The receiver rejected the request; not retried"

    def _delay(self, attempt: int, requested: float | None) -> float:
        base = self.config.backoff * (2**attempt)
        # Jitter spreads retries from many runs so they do not hit a recovering server together.
        delay = base + random.uniform(0, base / 2)
        if requested is not None:
            delay = max(delay, requested)
        return min(delay, MAX_DELAY)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # absent, or an HTTP date: fall back to our own backoff
