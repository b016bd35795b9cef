"""Reviewer accounts for ``matcha serve``: ``<home>/users.json`` (mode 0600), passwords hashed with
scrypt (the standard library's; n=2**15, r=8, p=1, a 16-byte salt each), never stored or logged in
clear. Roles: ``reviewer`` (reads and decides) and ``viewer`` (reads only)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from matcha.errors import MatchaError

ROLES = ("reviewer", "viewer")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
_N, _R, _P = 2**15, 8, 1


class UserError(MatchaError):
    """An account cannot be added, found or removed."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def can_decide(self) -> bool:
        return self.role == "reviewer"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, maxmem=64 * 1024 * 1024)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


_HASHING = threading.BoundedSemaphore(2)
# a hash to check against when the name is unknown: a login takes as long whether or not the account exists
_DUMMY = hash_password(secrets.token_urlsafe(16))


class Users:
    """The accounts of one Matcha home."""

    def __init__(self, home: Path):
        self.path = Path(home) / "users.json"

    def _read(self) -> dict[str, dict[str, object]]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {self.path}: {exc}") from None
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, dict[str, object]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def add(self, name: str, password: str, role: str = "reviewer", *, replace: bool = False) -> User:
        if not NAME.match(name):
            raise UserError(f"'{name}' is not a valid user name: 1-64 letters, digits, '.', '_', '@' or '-', "
                            "starting with a letter or digit")
        if role not in ROLES:
            raise UserError(f"role '{role}' is not one of: {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"the password is too short: at least {MIN_PASSWORD} characters")
        data = self._read()
        if name in data and not replace:
            raise UserError(f"user '{name}' exists; remove it first, or use --replace to set a new password")
        # a new password ends the sessions opened with the old one
        epoch = int(data.get(name, {}).get("epoch", 0)) + 1 if name in data else 0  # type: ignore[call-overload]
        data[name] = {"role": role, "hash": hash_password(password), "created": time.time(), "epoch": epoch}
        self._write(data)
        return User(name, role)

    def epoch(self, name: str) -> int:
        """The user's session generation: sessions made under an older one are void."""
        return int(self._read().get(name, {}).get("epoch", 0))  # type: ignore[call-overload]

    def end_sessions(self, name: str) -> None:
        """Void every session of ``name`` (logging out, on every browser)."""
        data = self._read()
        if name in data:
            data[name]["epoch"] = int(data[name].get("epoch", 0)) + 1  # type: ignore[call-overload]
            self._write(data)

    def remove(self, name: str) -> None:
        data = self._read()
        if name not in data:
            raise UserError(f"no user '{name}' (see `matcha users list`)")
        del data[name]
        self._write(data)

    def list(self) -> list[User]:
        return [User(n, str(d.get("role", "viewer"))) for n, d in sorted(self._read().items())]

    def get(self, name: str) -> User | None:
        d = self._read().get(name)
        return User(name, str(d.get("role", "viewer"))) if d else None

    def authenticate(self, name: str, password: str) -> User | None:
        d = self._read().get(name)
        with _HASHING:  # scrypt takes ~0.1 s and 32 MiB: a burst of logins cannot exhaust the server
            ok = check_password(password, str(d["hash"]) if d else _DUMMY)
        return User(name, str(d.get("role", "viewer"))) if d and ok else None
