"""The `pages` source: a folder of Markdown, HTML and text pages as passages with stable ids."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import clear_proxies, write

from matcha import Pipeline, PipelineError
from matcha.connectors.pages import PagesSource
from matcha.errors import ConnectorError
from matcha.ml.passages import Block, markdown_blocks, passages

FR = ("Nous avons travaillé avec vous sur la protection des données personnelles, et nous continuerons "
      "à le faire avec toutes les personnes qui nous soutiennent. ")
EN = "We believe that plain language helps people find what they need, and we write every page with that in mind. "

MARKDOWN = f"""# Notre mission

{FR * 3}

```python
print("code is not prose")
```

- un premier point de la liste, court
- un second point avec un [lien](https://example.org) dont le texte reste

![une image](x.png)

{FR * 4}
"""

HTML = f"""<html><head><title>Plain language</title></head><body>
<nav><a href="/">Home</a> <a href="/about">About us</a> <a href="/contact">Contact</a></nav>
<article><h1>Plain language</h1><p>{EN * 3}</p><p>{EN * 3}</p></article>
<footer>Copyright 2026 - All rights reserved - Privacy policy - Terms of use</footer>
</body></html>"""


def source(root: Path, **extra: object) -> PagesSource:
    cfg = PagesSource.Config(kind="pages", path=str(root), **extra)  # type: ignore[arg-type]
    return PagesSource("site", cfg, base_dir=root)


def test_pages_become_passages_with_stable_ids_and_their_language(tmp_path: Path) -> None:
    write(tmp_path / "site" / "fr" / "mission.md", MARKDOWN)
    write(tmp_path / "site" / "plain.html", HTML)
    write(tmp_path / "site" / "notes.txt", f"{EN * 2}\n\n{EN * 2}\n")
    write(tmp_path / "site" / "image.png", "not a page")
    rows = list(source(tmp_path / "site").read())
    assert all(r.error is None for r in rows)
    recs = [r.data for r in rows if r.data]
    assert [r["id"] for r in recs] == [f"{r['page']}#{r['passage']}" for r in recs]
    assert sorted({r["page"] for r in recs}) == ["fr/mission.md", "notes.txt", "plain.html"]
    assert [r["id"] for r in recs] == [r.data["id"] for r in source(tmp_path / "site").read() if r.data]  # stable
    by_page = {p: [r for r in recs if r["page"] == p] for p in {r["page"] for r in recs}}
    mission = " ".join(r["text"] for r in by_page["fr/mission.md"])
    assert "code is not prose" not in mission and "une image" not in mission
    assert "dont le texte reste" in mission and "https://example.org" not in mission
    assert {r["language"] for r in by_page["fr/mission.md"]} == {"fr"}
    plain = " ".join(r["text"] for r in by_page["plain.html"])
    assert "plain language helps people" in plain and "All rights reserved" not in plain  # boilerplate dropped
    assert {r["language"] for r in by_page["plain.html"] + by_page["notes.txt"]} == {"en"}
    assert all(r["words"] == len(r["text"].split()) for r in recs)


def test_an_empty_page_is_reported_not_skipped_and_a_missing_folder_says_how_to_fix_it(tmp_path: Path) -> None:
    write(tmp_path / "site" / "empty.md", "```\nonly code\n```\n")
    write(tmp_path / "site" / "page.txt", EN * 3)
    rows = list(source(tmp_path / "site").read())
    assert [r.error for r in rows if r.error] == ["page empty.md: no text found (empty, or only code and markup)"]
    with pytest.raises(ConnectorError, match=r"no folder or file at .*nowhere.*Fix `path`"):
        list(source(tmp_path / "nowhere").read())
    (tmp_path / "bare").mkdir()
    with pytest.raises(ConnectorError, match="no page"):
        list(source(tmp_path / "bare").read())


@pytest.mark.unit
@pytest.mark.parametrize(("words", "sizes"), [
    ([30, 30, 30, 30], [120]),  # paragraphs packed together up to max_words
    ([250], [125, 125]),  # a long paragraph cut in even pieces (between words when it has no sentence end)
    ([100, 100, 100], [200, 100]),  # never past max_words once min_words is reached
    ([40, 190], [230]),  # ... but a passage under min_words takes the next paragraph whole
    ([100, 10], [110]),  # a short tail joins the passage before it
    ([20], [20]),  # a short page is one short passage
])
def test_passages_are_packed_between_min_and_max_words(words: list[int], sizes: list[int]) -> None:
    blocks = [Block(" ".join(["mot"] * n)) for n in words]
    assert [len(p.split()) for p in passages(blocks, 60, 200)] == sizes


def test_a_heading_opens_the_passage_of_its_paragraphs() -> None:
    text = "# One\n\n" + "alpha " * 70 + "\n\n# Two\n\n" + "beta " * 70 + "\n"
    out = passages(markdown_blocks(text), 60, 200)
    assert len(out) == 2 and out[0].startswith("One\n\nalpha") and out[1].startswith("Two\n\nbeta")


def test_a_long_paragraph_is_cut_between_sentences() -> None:
    sentence = "This sentence has exactly ten words in it, you see. "
    out = passages([Block(sentence * 25)], 60, 200)
    assert [len(p.split()) for p in out] == [120, 130] and all(p.endswith("see.") for p in out)


def test_a_pipeline_reads_pages(project: Path) -> None:
    write(project / "site" / "a.md", f"# Titre\n\n{FR * 5}\n")
    write(project / "connectors" / "site.yaml", "kind: pages\npath: site\n")
    run = Pipeline.from_yaml("name: p\nsource: {connector: site}\nsteps:\n  - {id: f, type: filter, "
                             "with: {condition: \"language == 'fr'\"}}\n", base_dir=project).run()
    assert [r["id"] for r in run.records("f")] == ["a.md#1"]


@pytest.mark.unit
def test_a_bad_pages_connection_is_located(project: Path) -> None:
    write(project / "connectors" / "site.yaml", "kind: pages\npath: site\nmin_words: 300\n")
    with pytest.raises(PipelineError, match=r"site\.yaml.*min_words \(300\) must not exceed max_words \(200\)"):
        Pipeline.from_yaml("name: p\nsource: {connector: site}\nsteps:\n  - {id: f, type: filter, "
                           "with: {condition: 'true'}}\n", base_dir=project)


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[str]]]:
    """A local web site: two pages, one behind robots.txt, a sitemap of the three; yields its base URL
    and the paths requested."""
    clear_proxies(monkeypatch)
    requested: list[str] = []
    pages = {"/robots.txt": ("text/plain", "User-agent: *\nDisallow: /private/\n"),
             "/a.html": ("text/html", HTML), "/b.md": ("text/markdown", f"# B\n\n{EN * 3}\n"),
             "/private/c.html": ("text/html", HTML), "/image.png": ("image/png", "png")}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            if self.path == "/sitemap.xml":
                base = f"http://127.0.0.1:{self.server.server_address[1]}"
                body = ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                        + "".join(f"<url><loc>{base}{p}</loc></url>" for p in ("/a.html", "/b.md", "/private/c.html"))
                        + "</urlset>")
                kind = "application/xml"
            elif self.path in pages:
                kind, body = pages[self.path]
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()


def test_pages_are_fetched_from_declared_hosts_honouring_robots_txt(tmp_path: Path,
                                                                     site: tuple[str, list[str]]) -> None:
    base, requested = site
    cfg = PagesSource.Config(kind="pages", sitemap=f"{base}/sitemap.xml", urls=[f"{base}/image.png"],
                             hosts=["127.0.0.1"], allowed_hosts=["127.0.0.1"], delay=0)
    rows = list(PagesSource("web", cfg, base_dir=tmp_path).read())
    pages = {r.data["page"] for r in rows if r.data}
    assert pages == {"127.0.0.1/a.html", "127.0.0.1/b.md"}
    assert all(r.data["language"] == "en" for r in rows if r.data)
    errors = sorted(r.error for r in rows if r.error)
    assert len(errors) == 2 and "disallowed by the site's robots.txt" in errors[1] and "is not a page" in errors[0]
    assert "/private/c.html" not in requested and requested.count("/robots.txt") == 1


def test_fetching_is_refused_where_the_connection_does_not_allow_it(tmp_path: Path,
                                                                    site: tuple[str, list[str]]) -> None:
    base, requested = site
    with pytest.raises(ValueError, match=r"host 'example\.org' of https://example\.org/a is not declared"):
        PagesSource.Config(kind="pages", urls=[f"{base}/a.html", "https://example.org/a"], hosts=["127.0.0.1"])
    # declared but loopback, and not allow-listed: the egress guard refuses it, nothing is requested
    cfg = PagesSource.Config(kind="pages", urls=[f"{base}/a.html"], hosts=["127.0.0.1"], delay=0)
    rows = list(PagesSource("web", cfg, base_dir=tmp_path).read())
    assert len(rows) == 1 and rows[0].error and "loopback" in rows[0].error
    assert requested == []
