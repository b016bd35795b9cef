"""Shared fixtures: a throw-away project (connectors, data, scripts) and a CLI runner in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import postgres
import pytest
from support import Cli, write

REPO = Path(__file__).resolve().parents[1]

SCRIPTS = '''
import json, os, time
from pathlib import Path

def _count(name, batch):
    with open(os.environ["COUNTER_DIR"] + "/" + name, "a") as fh:
        for rec in batch:
            fh.write(rec["id"] + "\\n")

def upper(batch):
    _count("upper", batch)
    for r in batch:
        r["shout"] = r["text"].upper()
    return batch

def draft(batch):
    _count("draft", batch)
    for r in batch:
        r["draft"] = "Reply to " + r["id"] + ": thanks for writing."
    return batch

def slow(batch):
    _count("slow", batch)
    marker = Path(os.environ["COUNTER_DIR"]) / "slow_started"
    if not (Path(os.environ["COUNTER_DIR"]) / "no_sleep").exists() and marker.exists():
        time.sleep(60)  # the test SIGKILLs the process here, in the middle of the step
    marker.touch()
    return batch

def picky(batch):
    for r in batch:
        if "bad" in r["text"]:
            raise ValueError("cannot handle " + r["id"])
    return batch
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with a CSV source `messages`, a JSONL file publisher `outbox` and scripts."""
    rows = "\n".join(f"m{i},message number {i}" for i in range(1, 7))
    write(tmp_path / "data" / "messages.csv", "id,text\n" + rows + "\n")
    write(tmp_path / "connectors" / "messages.yaml", "kind: csv\npath: data/messages.csv\n")
    write(tmp_path / "connectors" / "outbox.yaml", "kind: file\npath: out/published.jsonl\nformat: jsonl\n")
    write(tmp_path / "scripts" / "steps.py", SCRIPTS)
    counters = tmp_path / "counters"
    counters.mkdir()
    monkeypatch.setenv("COUNTER_DIR", str(counters))
    monkeypatch.setenv("MATCHA_HOME", str(tmp_path / ".matcha"))
    monkeypatch.setenv("MATCHA_KEY_FILE", str(tmp_path / "decision.key"))  # the decision MAC key, per test
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli(project: Path) -> Cli:
    """Run `matcha ...` in a fresh Python process, in the project folder."""

    def run(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "matcha", *args], cwd=project, capture_output=True, text=True,
                              env={**os.environ, **(env or {})}, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"matcha {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server for the session (Debian's packages; CI installs them and must run these tests)."""
    if not postgres.available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; .ci/run installs Debian's postgresql")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with postgres.server() as url:
        yield url


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh database on the session's PostgreSQL server."""
    return postgres.new_database(pg_server)



@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Ray cluster on loopback for the session (`ray start --head`, 2 CPUs, no dashboard, no usage
    statistics); its address is what RAY_ADDRESS would hold."""
    import secrets
    import socket
    import tempfile

    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        pytest.fail("Ray is not installed: pip install -e '.[dev]' brings it") if os.environ.get("CI") else \
            pytest.skip("Ray is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    # token authentication, the token handed to the drivers the tests start (as an administrator
    # would set RAY_AUTH_TOKEN on the machines that join the cluster)
    auth = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)
    env = dict(os.environ)
    subprocess.run([str(ray), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                    "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                   check=True, capture_output=True, env=env, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, env=env, timeout=120)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
