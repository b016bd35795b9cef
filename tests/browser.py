"""A real headless Chromium for tests of the pages Matcha writes or serves (imported by the conftest
modules that need it). ``chromium`` is Debian's browser (apt ``chromium``) driven by Playwright;
``playwright install`` cannot download browsers on our machines. ``recorded_page`` is a fresh page that
records every request it makes, so a test can assert that nothing leaves the page.

The browser is module-scoped: Playwright's sync API keeps its own event loop alive, which must not
outlive the module into tests that run asyncio themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path(os.environ.get("MATCHA_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@dataclass
class RecordedPage:
    """A Playwright page and the URL of every request it made, in order."""

    page: Page
    requests: list[str] = field(default_factory=list)

    def open(self, path: Path) -> None:
        self.page.goto(path.resolve().as_uri())

    def requests_other_than(self, *allowed: str) -> list[str]:
        return [url for url in self.requests if url not in allowed]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's browser with "
                    "`apt-get install -y chromium chromium-driver`, or point MATCHA_CHROMIUM at a Chromium binary")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def recorded_page(chromium: Browser) -> Iterator[RecordedPage]:
    context = chromium.new_context(viewport={"width": 1200, "height": 820})
    page = context.new_page()
    recorded = RecordedPage(page)
    page.on("request", lambda request: recorded.requests.append(request.url))
    yield recorded
    context.close()
