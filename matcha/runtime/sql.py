"""The two databases the run store speaks: SQLite (the default, a file) and PostgreSQL (a URL).

The store writes its SQL once, in SQLite's words, with ``?`` placeholders. For PostgreSQL a
:class:`PgConnection` offers the few methods of :class:`sqlite3.Connection` the store uses and
rewrites each statement once (cached): placeholders, ``INSERT OR REPLACE``/``OR IGNORE`` as
``ON CONFLICT`` upserts (the conflict target read from the schema), column types in DDL, and
``BEGIN IMMEDIATE`` as a transaction holding an advisory lock, so writers are serialised as SQLite
serialises them. The few statements that have no common form (JSON tables, partial blob reads)
branch on :attr:`dialect` in the store itself. Errors are raised as :mod:`sqlite3`'s classes, so
the store catches one kind whatever the database.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: the advisory lock every write transaction holds (one writer at a time, as with SQLite)
WRITE_LOCK = 0x6D61_7463_6861  # "matcha"
#: every connection: a bounded connect, and TCP keepalives so that a connection lost on the way (a
#: NAT, a dead machine) is noticed, which also frees the run lock it held
CONNECT_OPTIONS: dict[str, Any] = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30,
                                   "keepalives_interval": 10, "keepalives_count": 3}
#: PostgreSQL tables written with ``INSERT OR REPLACE`` whose conflict is not on the primary key
CONFLICT_TARGETS = {"parts": ("run", "step", "lo")}


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """A database URL fit for a message or a log: the password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for a name (stable across processes and machines)."""
    return int.from_bytes(hashlib.sha256(f"matcha:{name}".encode()).digest()[:8], "big", signed=True)


def connect_sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    # 16 KiB pages for a new store (an existing one keeps its own): the store is mostly large
    # values (parts, blocks of vectors), read at twice the speed of 4 KiB pages (measured
    # 3.4 against 1.7 GB/s for the blocks a dataset pass reads)
    conn.execute("PRAGMA page_size=16384")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache: reads of a batch stay in memory
    conn.row_factory = sqlite3.Row
    return conn


class Row(tuple):  # type: ignore[type-arg]
    """A result row read by position or by column name (like :class:`sqlite3.Row`)."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


#: table -> (columns in order, conflict target), filled from the schema the store creates
_TABLES: dict[str, tuple[list[str], tuple[str, ...]]] = {}


def _split_top(body: str) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in body:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [x for x in out if x]


def _learn_table(statement: str) -> None:
    m = re.match(r"CREATE\s+(?:TEMP\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s*\((.*)\)", statement, re.S | re.I)
    if not m:
        return
    name, columns = m.group(1), []
    pk: tuple[str, ...] = ()
    for item in _split_top(m.group(2)):
        head = item.split()[0].upper()
        if head == "PRIMARY":
            pk = tuple(c.strip() for c in item[item.index("(") + 1:item.rindex(")")].split(","))
        else:
            columns.append(item.split()[0])
            if "PRIMARY KEY" in item.upper():
                pk = (item.split()[0],)
    _TABLES[name] = (columns, CONFLICT_TARGETS.get(name, pk))


def _ddl(statement: str) -> str:
    s = re.sub(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
               statement, flags=re.I)
    s = re.sub(r"\bINTEGER\b", "BIGINT", s)
    s = re.sub(r"\bREAL\b", "DOUBLE PRECISION", s)
    s = re.sub(r"\bBLOB\b", "BYTEA", s)
    return re.sub(r"\)\s*WITHOUT\s+ROWID", ")", s, flags=re.I)


_INSERT = re.compile(r"^\s*INSERT\s+OR\s+(REPLACE|IGNORE)\s+INTO\s+(\w+)\s*(\(([^)]*)\))?", re.I | re.S)


def _upsert(sql: str) -> str:
    m = _INSERT.match(sql)
    if not m:
        return sql
    table = m.group(2)
    rest = " " + sql[m.end():].lstrip()
    head = f"INSERT INTO {table}" + (f" ({m.group(4)})" if m.group(3) else "")
    if m.group(1).upper() == "IGNORE":
        return f"{head}{rest} ON CONFLICT DO NOTHING"
    if table not in _TABLES:
        raise sqlite3.ProgrammingError(f"INSERT OR REPLACE into {table}: its schema is not known")
    all_columns, target = _TABLES[table]
    columns = [c.strip() for c in m.group(4).split(",")] if m.group(3) else all_columns
    sets = [f"{c}=EXCLUDED.{c}" for c in columns if c not in target]
    if "id" in all_columns and "id" not in columns and "id" not in target:
        sets.append("id=DEFAULT")  # SQLite's REPLACE deletes and inserts: the row gets a new id
    action = f"DO UPDATE SET {', '.join(sets)}" if sets else "DO NOTHING"
    return f"{head}{rest} ON CONFLICT ({', '.join(target)}) {action}"


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """One statement of the store, in PostgreSQL's words (placeholders ``%s``)."""
    s = sql.strip()
    if s[:6].upper() == "CREATE":
        _learn_table(s)
        s = _ddl(s)
    s = _upsert(s)
    s = re.sub(r"CAST\((\w+(?:\.\w+)?) AS BLOB\)", r"convert_to(\1, 'UTF8')", s)
    s = re.sub(r"CAST\(([^()]+) AS INTEGER\)", r"CAST(\1 AS BIGINT)", s)
    return s.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A PostgreSQL connection (autocommit; transactions are explicit) with the part of the
    :class:`sqlite3.Connection` interface the run store uses."""

    def __init__(self, url: str):
        import psycopg
        from psycopg.adapt import Loader

        class _Numbers(Loader):  # SUM() of integers is NUMERIC: read it back as int (or float)
            def load(self, data: Any) -> int | float:
                text = bytes(data).decode()
                return float(text) if "." in text or "e" in text.lower() else int(text)

        try:
            self._conn = psycopg.connect(url, autocommit=True, **CONNECT_OPTIONS)
        except psycopg.Error as exc:
            raise sqlite3.OperationalError(f"cannot connect to {redact(url)}: {first_line(exc)}") from None
        self._conn.adapters.register_loader("numeric", _Numbers)
        self._psycopg = psycopg

    @contextlib.contextmanager
    def _errors(self, statement: str = "") -> Iterator[None]:
        psycopg = self._psycopg
        try:
            yield
        except psycopg.IntegrityError as exc:
            raise sqlite3.IntegrityError(first_line(exc)) from None
        except psycopg.OperationalError as exc:
            raise sqlite3.OperationalError(first_line(exc)) from None
        except psycopg.Error as exc:  # a statement of ours PostgreSQL refused: name it (placeholders, no data)
            raise sqlite3.DatabaseError(f"{first_line(exc)} in: {statement[:200]}") from exc

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        if sql == "BEGIN IMMEDIATE":
            self.begin(WRITE_LOCK)
            return None
        cur = self._conn.cursor(row_factory=_rows)
        with self._errors(sql):
            cur.execute(translate(sql), tuple(params or ()))  # type: ignore[arg-type]
        return cur

    def begin(self, lock: int) -> None:
        """Start a transaction holding the advisory lock ``lock`` until it ends (see ``RunStore.tx``)."""
        with self._errors():
            self._conn.execute("BEGIN")
            try:
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            except BaseException:  # a timeout, a cancel: leave no transaction open behind
                with contextlib.suppress(Exception):
                    self._conn.execute("ROLLBACK")
                raise

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Any:
        cur = self._conn.cursor()
        with self._errors(sql):
            cur.executemany(translate(sql), [tuple(p) for p in seq])  # type: ignore[arg-type]
        return cur

    def executescript(self, script: str) -> None:
        """Create the schema (DDL translated), once at a time across processes."""
        script = re.sub(r"--[^\n]*", "", script)  # comments first: they may hold a ';'
        statements = [s.strip() for s in script.split(";") if s.strip()]
        with self._errors(), self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            for s in statements:
                _learn_table(s)
                self._conn.execute(_ddl(s))  # type: ignore[arg-type]

    def close(self) -> None:
        self._conn.close()

    @property
    def usable(self) -> bool:
        """Open and outside any transaction (checked without a round trip)."""
        from psycopg.pq import TransactionStatus

        return not self._conn.closed and self._conn.info.transaction_status == TransactionStatus.IDLE


def _rows(cursor: Any) -> Any:
    index = {c.name: i for i, c in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> Row:
        return Row(values, index)

    return make


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (a driver's messages run on with detail and hints)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class RunLock:
    """Held while a process drives a run: a file lock for a SQLite store (one machine), an advisory
    lock on its own connection for PostgreSQL (any machine; released by the server when the
    process dies, even by SIGKILL)."""

    def __init__(self, location: Path | str, run_id: str):
        self._location, self._run_id = location, run_id
        self._held: Any = None

    def acquire(self) -> bool:
        if isinstance(self._location, str):
            conn = PgConnection(self._location)
            try:
                got = conn.execute("SELECT pg_try_advisory_lock(?)", (lock_key(f"run:{self._run_id}"),)).fetchone()[0]
            except BaseException:
                conn.close()
                raise
            if not got:
                conn.close()
                return False
            self._held = conn
            return True
        import fcntl

        self._location.mkdir(parents=True, exist_ok=True)
        fh = open(self._location / "lock", "w")  # noqa: SIM115 - held until release
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._held = fh
        return True

    def release(self) -> None:
        if self._held is not None:
            self._held.close()  # closing the connection (or the file) releases the lock
            self._held = None

    def held_elsewhere(self) -> bool:
        """True while another process holds the lock (tried without taking it for long)."""
        if self._held is not None:
            return False
        if isinstance(self._location, Path) and not (self._location / "lock").exists():
            return False
        if self.acquire():
            self.release()
            return False
        return True

