"""Fetching a connection's pages from the web, politely and only where it says.

:class:`Fetcher` serves the ``pages`` source: the URLs of ``urls`` and of the ``sitemap`` (only on
the declared ``hosts``), each fetched with httpx through :class:`~matcha.connectors.netguard.EgressTransport`
(private and loopback addresses refused unless allow-listed), redirects not followed, each host's
``robots.txt`` read once and obeyed (a page it disallows is reported, not fetched; its
``Crawl-delay`` is honoured when longer than ``delay``), one request per host at a time at most
every ``delay`` seconds. A page that fails is reported with its reason; the others go on.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib import robotparser
from urllib.parse import urlsplit

import httpx

from matcha.connectors.netguard import EgressTransport, check_egress, env_proxy
from matcha.errors import ConnectorError, EgressDenied

_KINDS = {"text/html": "html", "application/xhtml+xml": "html", "text/markdown": "markdown",
          "text/x-markdown": "markdown", "text/plain": "text"}
MAX_BYTES = 10_000_000  # a page or sitemap larger than this is refused


class Fetcher:
    def __init__(self, name: str, config: Any, *, transport: httpx.BaseTransport | None = None):
        self.name, self.config = name, config
        self._hosts = {h.lower() for h in config.hosts}
        self._robots: dict[str, robotparser.RobotFileParser | None] = {}
        self._last: dict[str, float] = {}
        self._transport = transport
        self._client: httpx.Client | None = None

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            transport = self._transport
            if transport is None and not any(env_proxy(u) for u in self.config.urls):
                transport = EgressTransport(self.config.allowed_hosts)
            self._client = httpx.Client(timeout=self.config.timeout, follow_redirects=False, transport=transport,
                                        headers={"User-Agent": self.config.user_agent})
        return self._client

    def pages(self) -> Iterator[tuple[str, list[Any] | str]]:
        """``(page id, blocks or the reason it could not be read)`` for every page, in order."""
        from matcha.connectors.pages import blocks_of

        for url in self._urls():
            page = _page_id(url)
            got = self._get(url)
            if isinstance(got, str):
                yield page, got
                continue
            kind = _KINDS.get(got.headers.get("content-type", "").split(";")[0].strip().lower())
            if kind is None:
                yield page, f"{url}: content type '{got.headers.get('content-type', '')}' is not a page"
                continue
            yield page, blocks_of(got.text, kind)

    def _urls(self) -> Iterator[str]:
        seen: set[str] = set()
        listed = list(self.config.urls)
        if self.config.sitemap:
            got = self._get(self.config.sitemap)
            if isinstance(got, str):
                raise ConnectorError(f"Source '{self.name}': sitemap {got}. Fix `sitemap` in "
                                     f"connectors/{self.name}.yaml")
            listed += _sitemap_urls(got.content)
        for url in listed:
            if url not in seen:
                seen.add(url)
                yield url

    def _get(self, url: str) -> httpx.Response | str:
        """The response to GET ``url`` (status 200), or why there is none."""
        host = (urlsplit(url).hostname or "").lower()
        if host not in self._hosts:
            return f"{url}: host '{host}' is not declared in `hosts`"
        robots = self._robots_for(url)
        if robots is not None and not robots.can_fetch(self.config.user_agent, url):
            return f"{url}: disallowed by the site's robots.txt"
        try:
            check_egress(url, self.config.allowed_hosts)
            self._wait(host, robots)
            response = self.client.get(url)
        except (EgressDenied, ConnectorError) as exc:
            return f"{url}: {exc}"
        except httpx.HTTPError as exc:
            return f"{url}: {type(exc).__name__}: {exc}"
        if response.status_code != 200:
            return f"{url}: HTTP {response.status_code}" + (" (redirects are not followed: list the target "
                                                            "URL)" if response.is_redirect else "")
        if len(response.content) > MAX_BYTES:
            return f"{url}: larger than {MAX_BYTES:,} bytes"
        return response

    def _wait(self, host: str, robots: robotparser.RobotFileParser | None) -> None:
        delay = self.config.delay
        crawl = robots.crawl_delay(self.config.user_agent) if robots is not None else None
        if crawl is not None:
            delay = max(delay, float(crawl))
        last = self._last.get(host)
        if last is not None:
            time.sleep(max(0.0, last + delay - time.monotonic()))
        self._last[host] = time.monotonic()

    def _robots_for(self, url: str) -> robotparser.RobotFileParser | None:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        if key not in self._robots:
            parser: robotparser.RobotFileParser | None = robotparser.RobotFileParser(f"{key}/robots.txt")
            try:
                check_egress(f"{key}/robots.txt", self.config.allowed_hosts)
                response = self.client.get(f"{key}/robots.txt")
            except (EgressDenied, ConnectorError, httpx.HTTPError):
                response = None
            assert parser is not None
            if response is not None and response.status_code == 200:
                parser.parse(response.text.splitlines())
            elif response is not None and response.status_code in (401, 403):
                parser.parse(["User-agent: *", "Disallow: /"])  # as robotparser reads it: robots refused
            else:
                parser = None  # no robots.txt: everything allowed
            self._robots[key] = parser
            self._last[(parts.hostname or "").lower()] = time.monotonic()
        return self._robots[key]


def _sitemap_urls(content: bytes) -> list[str]:
    try:
        root = ET.fromstring(content)  # expat >= 2.4 refuses entity-expansion bombs
    except ET.ParseError as exc:
        raise ConnectorError(f"sitemap is not valid XML: {exc}") from exc
    return [el.text.strip() for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "loc" and el.text]


def _page_id(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path or "/"
    return f"{parts.hostname}{path}" + (f"?{parts.query}" if parts.query else "")
