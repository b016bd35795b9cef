"""`matcha users add/list/remove` and `matcha serve` from the command line."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import Cli

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_users_commands(project: Path, cli: Cli) -> None:
    proc = subprocess.run([sys.executable, "-m", "matcha", "users", "add", "claire", "--password-stdin"], cwd=project,
                          input="correct horse battery\n", capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "matcha", "users", "add", "victor", "--role", "viewer"], cwd=project,
                          input="viewer password 1\n", capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr  # stdin is not a terminal: the password is read from it
    stored = (project / ".matcha" / "users.json").read_text()
    assert "correct horse battery" not in stored and "scrypt$" in stored
    assert oct((project / ".matcha" / "users.json").stat().st_mode & 0o777) == "0o600"
    assert json.loads(cli("users", "list", "--json").stdout) == [{"name": "claire", "role": "reviewer"},
                                                                 {"name": "victor", "role": "viewer"}]
    for args, message in ((["users", "add", "claire"], "user 'claire' exists"),
                          (["users", "add", "bad name!"], "is not a valid user name"),
                          (["users", "add", "zoe", "--role", "admin"], "role 'admin' is not one of"),
                          (["users", "remove", "nobody"], "no user 'nobody'")):
        p = subprocess.run([sys.executable, "-m", "matcha", *args], cwd=project, input="long enough password\n",
                           capture_output=True, text=True, env=os.environ.copy())
        assert p.returncode == 1 and message in p.stderr, (args, p.stderr)
    short = subprocess.run([sys.executable, "-m", "matcha", "users", "add", "zoe"], cwd=project, input="short\n",
                           capture_output=True, text=True, env=os.environ.copy())
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    cli("users", "remove", "victor")
    assert [u["name"] for u in json.loads(cli("users", "list", "--json").stdout)] == ["claire"]


def test_serve_binds_loopback_by_default_and_needs_a_login(project: Path, cli: Cli) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "matcha", "serve", "--port", str(port)], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        deadline = time.time() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=False)
                break
            except httpx.ConnectError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.2)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
        assert "server" not in r.headers
        login = httpx.get(f"http://127.0.0.1:{port}/login")
        assert re.search(r'<label for="username">Username</label>', login.text)
        listening = [line for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                     if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"]
        assert listening and all(line.split()[1].startswith("0100007F:") for line in listening)  # 127.0.0.1 only
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_trusted_proxy_header_names_the_user_only_when_enabled(project: Path, waiting: str,
                                                                   accounts: dict[str, str]) -> None:
    from fastapi.testclient import TestClient

    from matcha.runtime.store import sha256_text
    from matcha.serve import create_app

    plain = TestClient(create_app(project / ".matcha"), base_url="http://127.0.0.1")
    r = plain.get(f"/runs/{waiting}", headers={"X-Remote-User": "claire"}, follow_redirects=False)
    assert r.status_code == 303  # off by default: the header means nothing
    spoofed = TestClient(create_app(project / ".matcha", trust_header="X-Remote-User", resume=False),
                         base_url="http://127.0.0.1")  # the client is not the proxy's address (loopback)
    assert spoofed.get("/", headers={"X-Remote-User": "claire"}, follow_redirects=False).status_code == 303
    proxied = TestClient(create_app(project / ".matcha", trust_header="X-Remote-User", trusted_proxies=["testclient"],
                                    resume=False), base_url="http://127.0.0.1")
    page = proxied.get(f"/runs/{waiting}", headers={"X-Remote-User": "claire"})
    assert page.status_code == 200 and "claire (reviewer)" in page.text
    assert proxied.get("/", headers={"X-Remote-User": "mallory"}, follow_redirects=False).status_code == 303
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    shown = {"item": "m1", "shown": sha256_text("Reply to m1: thanks for writing.")}
    bad = proxied.post(f"/runs/{waiting}/approve", data={**shown, "step": "review"},
                       headers={"X-Remote-User": "claire"})
    assert bad.status_code == 403
    ok = proxied.post(f"/runs/{waiting}/approve", data={**shown, "step": "review", "csrf": token.group(1)},
                      headers={"X-Remote-User": "claire"}, follow_redirects=False)
    assert ok.status_code == 303
    from matcha.runtime.run import Run

    assert {i.id: i.reviewer for i in Run.open(waiting, home=project / ".matcha").items()}["m1"] == "claire"
