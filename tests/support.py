"""Helpers shared by tests (imported as `support`; conftest modules are not imported by tests)."""

from __future__ import annotations

import os
import subprocess
import textwrap
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Cli = Callable[..., subprocess.CompletedProcess[str]]

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
              "no_proxy")


def clear_proxies(monkeypatch: Any) -> None:
    """Requests to the local test servers must not go through a proxy set in the environment."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def counter(project: Path, name: str) -> list[str]:
    path = project / "counters" / name
    return path.read_text().split() if path.exists() else []


class Receiver:
    """A tiny HTTP server on 127.0.0.1 that answers with the next status in ``statuses``."""

    def __init__(self, statuses: list[int]):
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class OpenAIStub(ThreadingHTTPServer):
    """A model server speaking the OpenAI API on 127.0.0.1 (completions and chat), counting the prompts
    where they arrive. ``answer(prompt)`` gives the text; with ``hold_after`` set, requests past that
    many wait for ``release`` and get no answer (a model still working when the run is killed)."""

    daemon_threads = True

    def __init__(self, answer: Callable[[str], str]):
        super().__init__(("127.0.0.1", 0), _OpenAIHandler)
        self.answer = answer
        self.prompts: list[str] = []
        self.hold_after: int | None = None
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> OpenAIStub:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _OpenAIHandler(BaseHTTPRequestHandler):
    server: OpenAIStub

    def log_message(self, *args: object) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    def do_POST(self) -> None:
        import json

        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body.get("prompt") or body["messages"][-1]["content"]
        self.server.prompts.append(prompt)
        hold = self.server.hold_after
        if hold is not None and len(self.server.prompts) > hold:
            self.server.release.wait(30)
            return
        text = self.server.answer(prompt)
        if self.path.endswith("/chat/completions"):
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                      "finish_reason": "stop"}
        else:
            choice = {"index": 0, "text": text, "finish_reason": "stop"}
        self._send({"id": "x", "object": "chat.completion", "model": "fake", "choices": [choice],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    def _send(self, obj: object) -> None:
        import json

        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


#: drafts for the tone-of-voice tests: one in the example brand's voice, one far from it
IN_VOICE = ("Meet our new oolong. We roast it slowly, in small batches, right here on our workbench. "
            "The leaf opens like a slow sip of autumn. Too strong? Add a splash of milk and no rush. "
            "Steep it for four minutes, then breathe in. Honey, toasted nuts, a little smoke. "
            "Brew it your way. It is your little ritual, after all.")
CORPORATE = ("Our organisation hereby announces the commercial availability of a premium beverage product, which, "
             "in accordance with applicable regulatory frameworks, shall be distributed exclusively through "
             "authorised retail channels; consumers are advised to consult the packaging documentation.")


def store_location(path: Path) -> Path | str:
    """Where a test's run store is: ``path`` (SQLite), or the PostgreSQL database the contract suite
    chose for this test (``MATCHA_DATABASE_URL``)."""
    return os.environ.get("MATCHA_DATABASE_URL") or path
