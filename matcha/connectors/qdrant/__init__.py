"""Qdrant vector connection (kind ``qdrant``, role ``vectors``), used by the ``index`` and ``search`` steps.

Two backends behind one :class:`~matcha.connectors.qdrant.store.VectorStore` interface:

* **embedded** (``path``, the default): Qdrant's own engine in-process (``qdrant-edge-py``), files
  under ``.matcha/qdrant/<connection name>`` in the project unless ``path`` says otherwise;
* **server** (``url``): a Qdrant server or cluster through ``qdrant-client``. The API key is read
  from the environment variable named by ``api_key_env`` when the store is opened; it never
  appears in a file, a log or a run record. A server that is not on this machine (loopback) must
  have a key: the connection is refused when it is loaded otherwise.

The backends' libraries are imported when a store is opened, not when the connection is loaded.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from matcha.connectors.base import CONNECTORS, ConnectorConfig
from matcha.connectors.files import resolve_path
from matcha.connectors.qdrant.store import NAMESPACE, VectorConnector, VectorStore, point_id
from matcha.errors import ConnectorError
from matcha.secrets import env_secret, register_secret

__all__ = ["NAMESPACE", "QdrantConnector", "VectorConnector", "VectorStore", "is_loopback", "point_id"]

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_loopback(host: str) -> bool:
    """Is ``host`` this machine (``localhost``, 127.0.0.0/8, ``::1``, IPv4-mapped loopback)?"""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


@CONNECTORS.register("qdrant")
class QdrantConnector(VectorConnector):
    """A Qdrant vector store: embedded in the process (``path``) or a server (``url``)."""

    class Config(ConnectorConfig):
        kind: Literal["qdrant"] = Field(description="Connector kind: a Qdrant vector store (embedded or server).")
        path: str | None = Field(None, description="Embedded: folder holding the collections; default "
                                 ".matcha/qdrant/<connection name>; relative paths start at the project directory.")
        api_key_env: str | None = Field(None, description="Server: name of the env var holding the API key "
                                        "(not the key itself). Required unless the server is on this machine.")
        url: str | None = Field(None, description="Server: http(s) URL of a Qdrant server, e.g. "
                                "https://qdrant.internal:6333. Leave out for the embedded engine.")
        timeout: int = Field(30, gt=0, description="Server: seconds to wait for each request.")
        quantization: Literal["int8", "none"] = Field(
            "int8", description="int8: keep int8 copies of the vectors to build and search the index faster "
            "(results are rescored with the originals); none: float32 only. Applies to new collections.")
        hnsw_ef: int | None = Field(None, ge=1, le=4096, description="Candidates examined per search (higher: "
                                    "better recall, slower); default: Qdrant's.")
        oversampling: float = Field(2.0, ge=1.0, le=16.0, description="With int8: how many times k candidates "
                                    "are rescored with the original vectors (1 loses neighbours to rounding).")

        @field_validator("api_key_env")
        @classmethod
        def _env_name(cls, value: str | None) -> str | None:
            if value is not None and not ENV_NAME.match(value):
                # probably a key pasted where its variable's name belongs: masked wherever it would be shown
                register_secret(value)
                raise ValueError("must be the NAME of an environment variable (letters, digits, '_'), "
                                 "e.g. QDRANT_API_KEY, not the key itself")
            return value

        @field_validator("url")
        @classmethod
        def _server(cls, value: str | None, info: ValidationInfo) -> str | None:
            if value is None:
                return value
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL with a host, e.g. https://qdrant.internal:6333")
            if info.data.get("path") is not None:
                raise ValueError("`path` (embedded) and `url` (server) are both set; keep one")
            # a key name that failed its own check is not in info.data: that error is enough
            if "api_key_env" in info.data and not info.data["api_key_env"] and not is_loopback(parts.hostname):
                raise ValueError(f"a Qdrant server on another machine ({parts.hostname}) needs an API key: add "
                                 "`api_key_env: QDRANT_API_KEY` (the name of the environment variable holding the "
                                 "key) and export it. Only a server on this machine (localhost, 127.0.0.1, ::1) "
                                 "may go without one")
            return value

        @model_validator(mode="after")
        def _key_needs_url(self) -> QdrantConnector.Config:
            if self.api_key_env and self.url is None:
                raise ValueError("`api_key_env` is for a server, but there is no `url`; add the server's `url`, or "
                                 "remove `api_key_env` to use the embedded engine")
            return self

    config: Config

    def root(self) -> Path:
        """The embedded store's folder."""
        return resolve_path(self, self.config.path or f".matcha/qdrant/{self.name}")

    def describe(self) -> str:
        where = self.config.url or str(self.root())
        return f"{self.name} (qdrant at {where})"

    def open(self) -> VectorStore:
        cfg = self.config
        if cfg.url is None:
            from matcha.connectors.qdrant.edge import EdgeStore

            return EdgeStore(self.root(), quantization=cfg.quantization, hnsw_ef=cfg.hnsw_ef,
                             oversampling=cfg.oversampling)
        key = None
        if cfg.api_key_env:
            key = env_secret(cfg.api_key_env)
            if not key:
                raise ConnectorError(
                    f"Qdrant connection '{self.name}': environment variable {cfg.api_key_env} (named by "
                    f"`api_key_env`) is not set or empty. Export it before running (export {cfg.api_key_env}=...), "
                    f"or fix connectors/{self.name}.yaml")
        from qdrant_client import QdrantClient

        from matcha.connectors.qdrant.server import ClientStore

        # no version check: it would contact the server from a background thread as soon as the store
        # opens, and only warn; a real problem fails the first request with a ConnectorError instead
        client = QdrantClient(url=cfg.url, api_key=key, timeout=cfg.timeout, check_compatibility=False)
        return ClientStore(client, where=f"the Qdrant server {cfg.url}", quantization=cfg.quantization,
                           hnsw_ef=cfg.hnsw_ef, oversampling=cfg.oversampling)
