"""Pages into passages: the text of a Markdown, HTML or plain-text page as blocks (paragraphs,
headings, list items), then packed into passages of roughly ``min_words``..``max_words`` words.

Markdown is parsed with markdown-it (CommonMark): code blocks, raw HTML and images are left out,
links keep their text. HTML goes through trafilatura, which keeps the main text of a page and drops
menus, footers and boilerplate. Packing never cuts inside a paragraph that fits: paragraphs are
added to the passage until the next one would pass ``max_words`` (a passage still under
``min_words`` takes the next paragraph whole); a heading opens the passage of the paragraphs under
it; a paragraph longer than ``max_words`` is cut into pieces of about equal size between sentences
(between words only for a sentence longer than that); a short last passage joins the one before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["paragraph", "heading", "item"]
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'»”)\]]*\s+(?=[\"'«“(\[]?[A-ZÀ-ÖØ-Þ0-9])")


@dataclass(frozen=True)
class Block:
    """One paragraph, heading or list item of a page, as plain text."""

    text: str
    kind: Kind = "paragraph"

    @property
    def words(self) -> int:
        return len(self.text.split())


def markdown_blocks(text: str) -> list[Block]:
    """The paragraphs, headings and list items of a Markdown page (code, raw HTML and images left out)."""
    from markdown_it import MarkdownIt

    blocks: list[Block] = []
    depth = 0  # inside a list item
    heading = False
    for tok in MarkdownIt("commonmark").parse(text):
        if tok.type == "list_item_open":
            depth += 1
        elif tok.type == "list_item_close":
            depth -= 1
        elif tok.type == "heading_open":
            heading = True
        elif tok.type == "heading_close":
            heading = False
        elif tok.type == "inline":
            words = _inline_text(tok.children or [])
            if words:
                kind: Kind = "heading" if heading else "item" if depth else "paragraph"
                blocks.append(Block(words, kind))
    return blocks


def _inline_text(children: list) -> str:  # type: ignore[type-arg]
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return " ".join("".join(parts).split())


def html_blocks(html: str) -> list[Block]:
    """The main text of an HTML page (trafilatura: boilerplate, menus and footers dropped) as blocks."""
    import trafilatura

    text = trafilatura.extract(html, output_format="txt", include_comments=False, include_tables=False,
                               favor_recall=True) or ""
    blocks = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if not line:
            continue
        if line.startswith(("- ", "* ")):
            blocks.append(Block(line[2:], "item"))
        else:
            blocks.append(Block(line))
    return blocks


def text_blocks(text: str) -> list[Block]:
    """Paragraphs of a plain-text page (separated by blank lines)."""
    return [Block(" ".join(p.split())) for p in re.split(r"\n\s*\n", text) if p.strip()]


def passages(blocks: list[Block], min_words: int = 60, max_words: int = 200) -> list[str]:
    """Blocks packed into passages of about ``min_words``..``max_words`` words (see the module doc).
    Paragraphs inside a passage are separated by a blank line, list items by a line break."""
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words; got {min_words}, {max_words}")
    pieces: list[Block] = []
    for block in blocks:
        pieces += [Block(t, block.kind) for t in _cut(block.text, max_words)] if block.words > max_words else [block]
    out: list[list[Block]] = []
    current: list[Block] = []
    size = 0
    for block in pieces:
        # a full passage ends before a heading, or before a block that would take it past max_words
        # (a passage under min_words takes the next block whole: at most max + min words)
        if size >= min_words and (block.kind == "heading" or size + block.words > max_words):
            out.append(current)
            current, size = [], 0
        current.append(block)
        size += block.words
    if current:
        if out and size < min_words and sum(b.words for b in out[-1]) + size <= max_words + min_words:
            out[-1] += current  # a short tail joins the passage before it
        else:
            out.append(current)
    return [_join(p) for p in out]


def _cut(text: str, max_words: int) -> list[str]:
    """A paragraph longer than ``max_words`` cut into pieces of about equal size between sentences
    (between words when a sentence alone is longer than that)."""
    total = len(text.split())
    target = -(-total // -(-total // max_words))  # ceil(total / number of pieces)
    chunks: list[str] = []
    current: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        while len(current) + len(words) > max_words:  # a sentence too long for any piece: cut it
            room = max(target - len(current), 1)
            current += words[:room]
            words = words[room:]
            chunks.append(" ".join(current))
            current = []
        if current and len(current) + len(words) > target:
            chunks.append(" ".join(current))
            current = []
        current += words
    if current:
        chunks.append(" ".join(current))
    return chunks


def _join(blocks: list[Block]) -> str:
    text = ""
    for i, block in enumerate(blocks):
        if i:
            text += "\n" if block.kind == "item" and blocks[i - 1].kind == "item" else "\n\n"
        text += f"- {block.text}" if block.kind == "item" else block.text
    return text
