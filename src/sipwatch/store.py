"""The store: SQLite in WAL mode. Read positions, bans (with reason and evidence), events, offences.

One transaction per batch of work holds the new read positions together with the events and bans that
came from those lines, so a `kill -9` at any moment leaves a consistent store: after the restart the
daemon resumes at the saved positions and nothing is counted twice or lost.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sipwatch.detectors import Decision
from sipwatch.errors import StoreError as StoreError
from sipwatch.event import Event, IPAddress
from sipwatch.responders.firewall.base import Target, target_of
from sipwatch.sources.tail import Position

SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (
    path TEXT PRIMARY KEY, device INTEGER, inode INTEGER, offset INTEGER, fingerprint TEXT, lines INTEGER
);
CREATE TABLE IF NOT EXISTS bans (
    ip TEXT PRIMARY KEY, since REAL, until REAL, detector TEXT, reason TEXT, evidence TEXT, count INTEGER,
    events TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, time REAL, ip TEXT, kind TEXT, service TEXT, account TEXT, target TEXT,
    file TEXT, line INTEGER, raw TEXT
);
CREATE INDEX IF NOT EXISTS events_ip ON events (ip, time);
CREATE TABLE IF NOT EXISTS offences (ip TEXT PRIMARY KEY, count INTEGER, last REAL);
CREATE TABLE IF NOT EXISTS account_actions (
    id INTEGER PRIMARY KEY, account TEXT, action TEXT, at REAL, rule TEXT, reason TEXT, result TEXT
);
CREATE INDEX IF NOT EXISTS account_actions_account ON account_actions (account, at);
"""
#: learned behaviour per account (JSON, see sipwatch/behaviour.py) and the installation's first observation
PROFILE_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (account TEXT PRIMARY KEY, data TEXT, last_seen REAL);
CREATE TABLE IF NOT EXISTS installation (key TEXT PRIMARY KEY, value REAL);
"""


@dataclass(frozen=True)
class StoredBan:
    ip: Target  # an address, or an IPv6 network (`ipv6_rotation`)
    since: float
    until: float
    detector: str
    reason: str
    evidence: str
    count: int
    events: list[dict[str, object]]

    def to_json(self) -> dict[str, object]:
        return {"ip": str(self.ip), "since": self.since, "until": self.until, "detector": self.detector,
                "reason": self.reason, "evidence": self.evidence, "count": self.count, "events": self.events}


class Store:
    def __init__(self, path: str, max_events: int = 1_000_000) -> None:
        self.path = path
        self.max_events = max_events
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            # one thread at a time uses it (the daemon's); it may not be the one that opened it
            self.db = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self.db.executescript(PROFILE_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- positions -----------------------------------------------------------------------------
    def positions(self) -> dict[str, Position]:
        rows = self.db.execute("SELECT path, device, inode, offset, fingerprint, lines FROM positions")
        return {row[0]: Position(*row) for row in rows}

    def save_positions(self, db: sqlite3.Connection, positions: Iterable[Position]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?, ?)",
            [(p.path, p.device, p.inode, p.offset, p.fingerprint, p.lines) for p in positions],
        )

    # -- events --------------------------------------------------------------------------------
    def save_events(self, db: sqlite3.Connection, events: Iterable[Event]) -> None:
        db.executemany(
            "INSERT INTO events (time, ip, kind, service, account, target, file, line, raw) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(e.time, str(e.ip) if e.ip else None, str(e.kind), str(e.service), e.account, e.target, e.file,
              e.line, e.raw[:2000]) for e in events],
        )

    def prune(self) -> None:
        """Retention: keep the newest `max_events` events."""
        self.db.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (self.max_events,))

    def events_of(self, ip: IPAddress, limit: int = 50) -> list[dict[str, object]]:
        rows = self.db.execute(
            "SELECT time, kind, service, account, target, file, line, raw FROM events WHERE ip = ? "
            "ORDER BY time DESC LIMIT ?", (str(ip), limit))
        keys = ("time", "kind", "service", "account", "target", "file", "line", "raw")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # -- bans ----------------------------------------------------------------------------------
    def save_ban(self, db: sqlite3.Connection, decision: Decision, since: float, until: float) -> int:
        """Record a ban and return how many times this address (or network) has been banned (for
        escalation)."""
        assert decision.ip is not None
        ip = str(decision.network or decision.ip)
        row = db.execute("SELECT count FROM offences WHERE ip = ?", (ip,)).fetchone()
        count = (row[0] if row else 0) + 1
        db.execute("INSERT OR REPLACE INTO offences VALUES (?, ?, ?)", (ip, count, since))
        evidence = json.dumps([{"file": e.file, "line": e.line, "kind": str(e.kind), "raw": e.raw[:500]}
                               for e in decision.events])
        db.execute("INSERT OR REPLACE INTO bans VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (ip, since, until, decision.detector, decision.reason, str(decision.evidence), count, evidence))
        return count

    def offences(self, ip: Target) -> int:
        row = self.db.execute("SELECT count FROM offences WHERE ip = ?", (str(ip),)).fetchone()
        return int(row[0]) if row else 0

    def delete_ban(self, ip: Target) -> bool:
        return self.db.execute("DELETE FROM bans WHERE ip = ?", (str(ip),)).rowcount > 0

    def bans(self, now: float | None = None) -> list[StoredBan]:
        now = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT ip, since, until, detector, reason, evidence, count, events FROM bans WHERE until > ? "
            "ORDER BY until", (now,))
        found = []
        for ip, since, until, detector, reason, evidence, count, events in rows:
            address = target_of(ip)
            if address is not None:
                found.append(StoredBan(address, since, until, detector, reason, evidence, count,
                                       json.loads(events or "[]")))
        return found

    def ban_of(self, target: Target) -> StoredBan | None:
        """The running ban of an address (its own, else that of a banned IPv6 network holding it) or of a
        network."""
        bans = self.bans()
        found = next((b for b in bans if b.ip == target), None)
        if found is None and not isinstance(target, ipaddress.IPv6Network) and target.version == 6:
            found = next((b for b in bans if isinstance(b.ip, ipaddress.IPv6Network) and target in b.ip), None)
        return found

    # -- accounts ------------------------------------------------------------------------------
    def save_account_action(self, account: str, action: str, at: float, rule: str, reason: str,
                            result: str) -> None:
        """One action on an account (hangup, block, unblock, ban), with what came of it."""
        with self.transaction() as db:
            db.execute("INSERT INTO account_actions (account, action, at, rule, reason, result) VALUES (?,?,?,?,?,?)",
                       (account, action, at, rule, reason, result))

    def account_actions(self, account: str | None = None, limit: int = 1000) -> list[dict[str, object]]:
        """The newest actions first, of one account or of all."""
        sql = "SELECT account, action, at, rule, reason, result FROM account_actions"
        args: tuple[object, ...] = ()
        if account is not None:
            sql += " WHERE account = ?"
            args = (account,)
        rows = self.db.execute(sql + " ORDER BY at DESC, id DESC LIMIT ?", (*args, limit))
        return [dict(zip(("account", "action", "at", "rule", "reason", "result"), row, strict=True)) for row in rows]

    # -- learned behaviour -----------------------------------------------------------------------
    def profiles(self) -> list[tuple[str, str]]:
        """(account, profile JSON), least recently seen first."""
        return self.db.execute("SELECT account, data FROM profiles ORDER BY last_seen").fetchall()

    def save_profiles(self, db: sqlite3.Connection, rows: Iterable[tuple[str, str, float]]) -> None:
        db.executemany("INSERT OR REPLACE INTO profiles VALUES (?, ?, ?)", rows)

    def installed(self) -> float | None:
        """The installation's first observation (the learning mode counts its days from it)."""
        row = self.db.execute("SELECT value FROM installation WHERE key = 'first_seen'").fetchone()
        return float(row[0]) if row else None

    def set_installed(self, db: sqlite3.Connection, when: float) -> float:
        """Record `when` as the first observation unless an earlier one is known; the one in force."""
        db.execute("INSERT INTO installation VALUES ('first_seen', ?) ON CONFLICT (key) DO UPDATE SET "
                   "value = MIN(value, excluded.value)", (when,))
        return float(db.execute("SELECT value FROM installation WHERE key = 'first_seen'").fetchone()[0])

    def close(self) -> None:
        self.db.close()
