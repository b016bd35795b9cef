"""``pages``: a client's pages as passages, for the tone-of-voice job.

A folder (read recursively) or one file of ``.md``, ``.html``/``.htm`` or ``.txt`` pages, or pages
on the web: ``urls`` (a list) and/or ``sitemap`` (a ``sitemap.xml``), fetched with httpx through the
egress guard (private and loopback addresses refused unless in ``allowed_hosts``), from the
``hosts`` the connection declares only, honouring each host's ``robots.txt`` (and its
``Crawl-delay``), at most one request per ``delay`` seconds per host, redirects not followed. Each page
is turned into blocks (Markdown parsed by markdown-it, HTML's main text kept by trafilatura) and
packed into passages of roughly ``min_words``..``max_words`` words (:mod:`matcha.ml.passages`).
Each passage is a record::

    {"id": "guides/open-data.md#2", "page": "guides/open-data.md", "passage": 2,
     "text": "...", "words": 143, "language": "fr"}

Ids are stable (the page's path under the folder, then the passage's number), so a rerun on the
same pages gives the same records. The language is detected per passage among ``languages``
(py3langid). A page that cannot be read or holds no text is reported as a bad row (quarantined
with its reason), never skipped silently.
"""

from __future__ import annotations

import functools
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from matcha.connectors.base import CONNECTORS, ConnectorConfig, Source, SourceRow
from matcha.connectors.files import resolve_path
from matcha.errors import ConnectorError

Language = Literal["en", "fr", "de", "es", "it", "nl", "pt"]
SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".txt": "text"}


@CONNECTORS.register("pages")
class PagesSource(Source):
    """Passages of the pages in a folder (or one page)."""

    class Config(ConnectorConfig):
        kind: Literal["pages"] = Field(description="Connector kind: pages (.md, .html, .txt) split into passages.")
        path: str | None = Field(None, description="A folder of pages (read recursively) or one page; relative "
                                 "paths start at the project directory.")
        urls: list[str] = Field(default_factory=list, description="Pages to fetch (http/https).")
        sitemap: str | None = Field(None, description="A sitemap.xml whose pages are fetched.")
        hosts: list[str] = Field(default_factory=list, description="The only hosts pages are fetched from "
                                 "(every host of `urls` and `sitemap` must be here).")
        allowed_hosts: list[str] = Field(default_factory=list, description="Hosts or IPs allowed even though "
                                         "they are private/loopback, e.g. ['127.0.0.1'].")
        delay: float = Field(1.0, ge=0, le=60, description="Seconds between two requests to one host (a "
                             "longer robots.txt Crawl-delay wins).")
        timeout: float = Field(20.0, gt=0, le=300, description="Seconds per request.")
        user_agent: str = Field("MatchaBot/0.1 (+self-hosted; tone of voice)", description="User-Agent sent, "
                                "and matched against robots.txt rules.")
        min_words: int = Field(60, ge=1, le=2000, description="Passages are packed to at least this many words.")
        max_words: int = Field(200, ge=1, le=5000, description="... and at most this many (a paragraph is cut "
                               "between sentences past it).")
        languages: list[Language] = Field(
            default_factory=lambda: ["en", "fr"], min_length=1,  # type: ignore[arg-type]
            description="Languages a passage's `language` is chosen from.")
        encoding: str = Field("utf-8", description="Text encoding of the pages.")

        @model_validator(mode="after")
        def _sizes(self) -> PagesSource.Config:
            if self.min_words > self.max_words:
                raise ValueError(f"min_words ({self.min_words}) must not exceed max_words ({self.max_words})")
            if self.path is None and not self.urls and self.sitemap is None:
                raise ValueError("give `path` (a folder of pages), `urls` or `sitemap`")
            declared = {h.lower() for h in self.hosts}
            for url in [*self.urls, *([self.sitemap] if self.sitemap else [])]:
                parts = urlsplit(url)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise ValueError(f"'{url}' is not an http(s) URL")
                if parts.hostname.lower() not in declared:
                    raise ValueError(f"host '{parts.hostname}' of {url} is not declared: add it to `hosts` "
                                     "(pages are fetched from declared hosts only)")
            return self

    def pages(self) -> list[tuple[str, Path]]:
        """``(page id, file)`` of every page under ``path``, sorted by id."""
        assert self.config.path is not None
        root = resolve_path(self, self.config.path)
        where = f"connectors/{self.name}.yaml"
        if root.is_file():
            return [(root.name, root)]
        if not root.is_dir():
            raise ConnectorError(f"Source '{self.name}': no folder or file at {root}. Fix `path` in {where} "
                                 f"(relative paths are resolved against {self.base_dir})")
        found = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*")
                       if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith("."))
        if not found:
            raise ConnectorError(f"Source '{self.name}': no page (.md, .html, .htm, .txt) under {root}. "
                                 f"Fix `path` in {where}")
        return found

    def read(self) -> Iterator[SourceRow]:
        line = 0
        if self.config.path is not None:
            for page, path in self.pages():
                try:
                    blocks = _blocks(path, self.config.encoding)
                except (OSError, UnicodeDecodeError) as exc:
                    line += 1
                    yield SourceRow(line, error=f"page {page}: cannot read it ({exc}); fix the file or its `encoding`")
                    continue
                line = yield from self._passages(page, blocks, line)
        if self.config.urls or self.config.sitemap:
            from matcha.connectors.web import Fetcher

            with Fetcher(self.name, self.config) as fetcher:
                for page, got in fetcher.pages():
                    if isinstance(got, str):
                        line += 1
                        yield SourceRow(line, error=f"page {page}: {got}")
                        continue
                    line = yield from self._passages(page, got, line)

    def _passages(self, page: str, blocks: list[Any], line: int) -> Generator[SourceRow, None, int]:
        """The passages of one page as rows numbered from ``line + 1``; returns the last number."""
        from matcha.ml.passages import passages

        detect = language_detector(tuple(self.config.languages))
        texts = passages(blocks, self.config.min_words, self.config.max_words)
        if not texts:
            yield SourceRow(line + 1, error=f"page {page}: no text found (empty, or only code and markup)")
            return line + 1
        for n, text in enumerate(texts, start=1):
            line += 1
            yield SourceRow(line, data={"id": f"{page}#{n}", "page": page, "passage": n, "text": text,
                                        "words": len(text.split()), "language": detect(text)})
        return line


def _blocks(path: Path, encoding: str) -> list[Any]:
    return blocks_of(path.read_text(encoding=encoding).removeprefix("\ufeff"), SUFFIXES[path.suffix.lower()])


def blocks_of(text: str, kind: str) -> list[Any]:
    """The blocks of a page's text (``kind``: markdown, html or text)."""
    from matcha.ml.passages import html_blocks, markdown_blocks, text_blocks

    if kind == "markdown":
        return markdown_blocks(text)
    if kind == "html":
        return html_blocks(text)
    return text_blocks(text)


@functools.cache
def language_detector(languages: tuple[str, ...]) -> Any:
    """``text -> language`` among ``languages`` (py3langid, loaded once per set of languages)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    if len(languages) == 1:
        return lambda text: languages[0]
    identifier.set_languages(list(languages))
    return lambda text: str(identifier.classify(text)[0])
