"""Decision MACs: an approval decision edited outside Matcha is detected before anything is published.

Every decision (approve, edit or reject) is stored with an HMAC-SHA256 over everything it says:
run, step, record, the field reviewed, the AI text, the context fields shown to the reviewer, the
status, the final text and its sha256, the reviewer, the time and the reason. Publish recomputes
it and refuses an item whose decision does not verify.

The key is per installation and lives **outside the run database**:

* ``$MATCHA_DECISION_KEY`` (any string of 32+ characters), for several machines or workers that
  must share it (set it from your secret manager); otherwise
* the file ``$MATCHA_KEY_FILE`` (default ``~/.config/matcha/decision.key``), 32 random bytes
  created with mode 0600 on first use.

What it protects against: someone who can write the run database (a copied or restored
``runs.db``, SQL access to a shared database, a bug in another tool) but cannot read the key
flips a rejection into an approval, or changes the text and its sha256 together: publish refuses
it. What it does not protect against: anyone who can read the key (the OS user running Matcha,
root) can forge decisions; deleting a decision row makes its item pending again (it is never
published without a new decision); and it says nothing about who the reviewer really was — that
is the job of authentication in front of ``matcha approve`` or the review page.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from matcha.errors import RunError

KEY_ENV = "MATCHA_DECISION_KEY"
KEY_FILE_ENV = "MATCHA_KEY_FILE"
#: The decision fields the MAC covers, in order.
COVERED = ("run_id", "step_id", "record_id", "field", "ai_text", "context", "status", "final_text", "sha256",
           "reviewer", "decided_at", "reason")

_lock = threading.Lock()
_cache: dict[str, bytes] = {}


def key_path() -> Path:
    env = os.environ.get(KEY_FILE_ENV)
    if env:
        return Path(env).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "matcha" / "decision.key"


def installation_key() -> bytes:
    """The decision key (created on first use; see the module docstring)."""
    value = os.environ.get(KEY_ENV)
    if value is not None:
        if len(value) < 32:
            raise RunError(f"{KEY_ENV} is set but shorter than 32 characters. Set it to a long random string, "
                           "e.g. the output of `python -c 'import secrets; print(secrets.token_hex(32))'`")
        return value.encode("utf-8")
    path = key_path()
    with _lock:
        cached = _cache.get(str(path))
        if cached is not None:
            return cached
        key = _read_or_create(path)
        _cache[str(path)] = key
        return key


def _read_or_create(path: Path) -> bytes:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # Written in full to a private temporary file, then linked into place: the key never
            # appears half-written, and of two processes creating it at once one link wins and
            # both read the winner's key.
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        key = path.read_bytes()
    except OSError as exc:
        raise RunError(f"cannot read or create the decision key {path}: {exc.strerror or exc}. Make its folder "
                       f"writable, point {KEY_FILE_ENV} elsewhere, or set {KEY_ENV}") from exc
    if len(key) < 32:
        raise RunError(f"the decision key {path} is truncated ({len(key)} bytes). Restore it from a backup; "
                       "decisions signed with the old key no longer verify (their items must be reviewed again)")
    return key


def _message(decision: dict[str, Any]) -> bytes:
    values = []
    for name in COVERED:
        value = decision.get(name)
        if name == "context":  # stored as JSON text, read back as a dict: sign one canonical form
            parsed = json.loads(value or "{}") if isinstance(value, str) else value
            value = json.dumps(parsed, ensure_ascii=False, sort_keys=True, default=str)
        values.append(value)
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(decision: dict[str, Any], key: bytes | None = None) -> str:
    """The MAC of a decision row (a mapping holding the :data:`COVERED` fields)."""
    return hmac.new(key or installation_key(), _message(decision), hashlib.sha256).hexdigest()


def verify(decision: dict[str, Any], key: bytes | None = None) -> bool:
    """Does the decision's ``mac`` match its content? Constant-time comparison."""
    mac = decision.get("mac")
    return isinstance(mac, str) and hmac.compare_digest(mac, sign(decision, key))
