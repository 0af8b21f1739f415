"""CDR tables in a database as a live source: `mysql://user:secret@host/asteriskcdrdb` (MariaDB/MySQL:
FreePBX's `asteriskcdrdb.cdr`, `cdr_mysql`, `cdr_adaptive_odbc`) and `postgresql://user:secret@host/asterisk`
(`cdr_pgsql`). Options in the query string: `table` (default `cdr`), `every` (seconds between queries,
default 2), `lookback` (the longest call, default 14400 s), `settle` (seconds a row may take to be written
after its call ends, default 2).

Each row is written out as one line of `cdr_csv`'s Master.csv (the 18 default columns, then peeraccount,
linkedid and sequence as with `newcdrcolumns`), so that the very same CDR reader as for the file reads it.

Asterisk inserts a CDR when the call ends, with `calldate` = when it began, so rows do not arrive in
`calldate` order: a long call ending now lands behind short ones that began later. The read position is
therefore the call's end (`calldate + duration`) with the unique id and sequence as tie-breaks; a query
asks only for rows that began within `lookback` of it and end after it (an index on `calldate` serves
it), and rows whose end is less than `settle` seconds ago wait for the next query. The position is saved
with the events, so a restart neither loses nor repeats a row. A database that is down or refuses the
login is a `problem` (said, retried with a back-off), never a crash.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sipwatch.errors import SourceError, redact
from sipwatch.sources.tail import Chunk, Position

#: Master.csv's columns, in the order cdr_csv writes them
CSV_COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
               "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield",
               "peeraccount", "linkedid", "sequence")
#: columns cdr_csv writes as bare numbers (the others are quoted, `"` doubled)
NUMBERS = frozenset({"duration", "billsec", "sequence"})
#: amaflags as numbers (database) and as cdr_csv writes them
AMAFLAGS = {"1": "OMIT", "2": "BILLING", "3": "DOCUMENTATION"}
BATCH = 5000
STAMP = "%Y-%m-%d %H:%M:%S"


class CdrDbError(SourceError):
    """The URL is malformed, or the database driver is not installed."""


@dataclass(frozen=True)
class Dialect:
    """What differs between the servers: the driver, how to connect, and the SQL for a call's end."""

    driver: str  # module name
    extra: str  # the pip extra that installs it
    port: int
    quote: str
    end: str  # SQL for the end of the call, from the quoted calldate and duration columns
    connect: Callable[[Any, Target], Any]


def _mysql(module: Any, t: Target) -> Any:
    return module.connect(host=t.host, port=t.port, user=t.user, password=t.password, database=t.database,
                          connect_timeout=5, autocommit=True, charset="utf8mb4")


def _postgresql(module: Any, t: Target) -> Any:
    return module.connect(host=t.host, port=t.port, user=t.user, password=t.password, dbname=t.database,
                          connect_timeout=5, autocommit=True)


DIALECTS: dict[str, Dialect] = {
    "mysql": Dialect("pymysql", "mysql", 3306, "`", "{calldate} + INTERVAL {duration} SECOND", _mysql),
    "postgresql": Dialect("psycopg", "postgresql", 5432, '"', "{calldate} + {duration} * INTERVAL '1 second'",
                          _postgresql),
}
ALIASES = {"mariadb": "mysql", "postgres": "postgresql"}


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    user: str
    password: str
    database: str
    table: str
    every: float
    lookback: float
    settle: float

    @classmethod
    def parse(cls, spec: str) -> Target:
        parts = urlsplit(spec)
        scheme = ALIASES.get(parts.scheme, parts.scheme)
        dialect = DIALECTS.get(scheme)
        database = parts.path.lstrip("/")
        if dialect is None or not parts.hostname or not database:
            raise CdrDbError(f"{redact(spec)!r}: expected mysql://USER:SECRET@HOST[:PORT]/DATABASE or "
                             "postgresql://USER:SECRET@HOST[:PORT]/DATABASE")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        table = query.get("table", "cdr")
        if not table.replace("_", "").replace(".", "").isalnum():
            raise CdrDbError(f"{redact(spec)!r}: table {table!r} is not a plain table name")
        try:
            numbers = {k: float(query.get(k, d)) for k, d in (("every", 2), ("lookback", 14400), ("settle", 2))}
            port = parts.port or dialect.port
        except ValueError as exc:
            raise CdrDbError(f"{redact(spec)!r}: {exc}") from None
        return cls(scheme, parts.hostname, port, unquote(parts.username or ""), unquote(parts.password or ""),
                   database, table, numbers["every"], numbers["lookback"], numbers["settle"])

    def __str__(self) -> str:
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}/{self.database} (table {self.table})"


@dataclass(frozen=True, order=True)
class Cursor:
    """The end of the last row read, and its unique id and sequence (ties on the end second)."""

    end: datetime
    uniqueid: str
    sequence: int

    def text(self) -> str:
        return f"{self.end.strftime(STAMP)}|{self.uniqueid}|{self.sequence}"

    @classmethod
    def from_text(cls, text: str) -> Cursor | None:
        try:
            end, uniqueid, sequence = text.split("|")
            return cls(datetime.strptime(end, STAMP), uniqueid, int(sequence))
        except ValueError:
            return None


def render(row: dict[str, Any]) -> tuple[bytes, Cursor]:
    """One database row as a Master.csv line, and its position."""
    start = _datetime(row.get("calldate"))
    duration = _int(row.get("duration"))
    billsec = _int(row.get("billsec"))
    end = start + timedelta(seconds=duration)
    answer = end - timedelta(seconds=billsec) if billsec else None
    values = {
        **{k: _text(row.get(k)) for k in CSV_COLUMNS},
        "start": start.strftime(STAMP), "answer": answer.strftime(STAMP) if answer else "", "end": end.strftime(STAMP),
        "duration": str(duration), "billsec": str(billsec),
        "amaflags": AMAFLAGS.get(_text(row.get("amaflags")), _text(row.get("amaflags"))),
    }
    values["sequence"] = str(_int(row.get("sequence")))
    fields = (values[k] if k in NUMBERS else '"' + values[k].replace('"', '""') + '"' for k in CSV_COLUMNS)
    return (",".join(fields) + "\n").encode(), Cursor(end, values["uniqueid"], _int(row.get("sequence")))


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime.strptime(str(value)[:19], STAMP)


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str:
    return "" if value is None else str(value).replace("\r", " ").replace("\n", " ")


class CdrDbFollower:
    """Reads new CDR rows on each `read()`, at most once every `every` seconds."""

    def __init__(self, spec: str, position: Position | None = None, from_end: bool = False,
                 clock: Callable[[], datetime] = datetime.now) -> None:
        self.path = spec
        self.target = Target.parse(spec)
        self.dialect = DIALECTS[self.target.scheme]
        try:
            self.driver = importlib.import_module(self.dialect.driver)
        except ImportError:
            raise CdrDbError(f"{self.target}: the {self.dialect.driver} driver is missing "
                             f"(pip install 'sipwatch[{self.dialect.extra}]')") from None
        self.clock = clock
        self.problem: str | None = None
        self.wait_fd: int | None = None
        self.lines = position.lines if position is not None else 0
        self.cursor = Cursor.from_text(position.fingerprint) if position is not None else None
        self.from_end = from_end and self.cursor is None
        self._connection: Any = None
        self._columns: Sequence[str] = ()
        self._next_query = 0.0
        self._backoff = self.target.every

    @property
    def position(self) -> Position | None:
        return Position(self.path, 0, 0, 0, self.cursor.text(), self.lines) if self.cursor else None

    def read(self, max_bytes: int = -1) -> list[Chunk]:
        now = time.monotonic()
        if now < self._next_query:
            return []
        try:
            rows = self._query()
        except Exception as exc:  # the driver's own errors: down, refused, dropped, table missing
            self._fail(exc)
            self._next_query = now + self._backoff
            self._backoff = min(self._backoff * 2, 60.0)
            return []
        self.problem = None
        self._backoff = self.target.every
        self._next_query = now + (0 if len(rows) >= BATCH else self.target.every)
        return self._chunk(rows)

    def _chunk(self, rows: list[dict[str, Any]]) -> list[Chunk]:
        settled = self.clock() - timedelta(seconds=self.target.settle)
        lines: list[bytes] = []
        for row in rows:
            try:
                line, cursor = render(row)
            except ValueError:  # a broken date: skipped (the file reader counts such rows as junk)
                continue
            if cursor.end > settled:
                self._next_query = 0  # come back for it once it has settled
                break
            if self.cursor is not None and cursor <= self.cursor:
                continue
            self.cursor = cursor
            if not self.from_end:
                lines.append(line)
        self.from_end = self.from_end and bool(rows) and len(rows) >= BATCH
        if not lines:
            return []
        chunk = Chunk(self.path, b"".join(lines), self.lines)
        self.lines += len(lines)
        return [chunk]

    def _query(self) -> list[dict[str, Any]]:
        if self._connection is None:
            self._connection = self.dialect.connect(self.driver, self.target)
            self._columns = self._describe()
        q = self.dialect.quote
        end = self.dialect.end.format(calldate=f"{q}calldate{q}", duration=f"{q}duration{q}")
        order = [end, f"{q}uniqueid{q}"] + ([f"{q}sequence{q}"] if "sequence" in self._columns else [])
        sql = f"SELECT * FROM {self._table()} "
        params: list[Any] = []
        if self.cursor is not None:
            sql += f"WHERE {q}calldate{q} >= %s AND {end} >= %s "
            params = [self.cursor.end - timedelta(seconds=self.target.lookback), self.cursor.end]
        sql += f"ORDER BY {', '.join(order)} LIMIT {BATCH}"
        with self._connection.cursor() as cur:
            cur.execute(sql, params)
            names = [d[0].lower() for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def _describe(self) -> Sequence[str]:
        with self._connection.cursor() as cur:
            cur.execute(f"SELECT * FROM {self._table()} WHERE 1 = 0")
            names = [d[0].lower() for d in cur.description]
        missing = {"calldate", "duration", "uniqueid"} - set(names)
        if missing:
            raise CdrDbError(f"table {self.target.table} has no column {', '.join(sorted(missing))}: "
                             "is it a CDR table?")
        return names

    def _table(self) -> str:
        q = self.dialect.quote
        return ".".join(f"{q}{part}{q}" for part in self.target.table.split("."))

    def _fail(self, exc: Exception) -> None:
        self.problem = f"{self.target}: {str(exc).strip() or type(exc).__name__}"
        self.close()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                connection.close()
