"""`sipwatch run`: follow the logs, run the same parsers and detectors as `scan`, ban in the kernel.

One step of the loop: wake up (inotify, or the poll interval), read the new whole lines of every
followed file, parse them with the scan's `RecordScanner`, run the `Pipeline`, apply the bans in one
firewall batch, then save events, bans and read positions in one store transaction. Only the source
(followers instead of whole files) and the clock for ban expiry (wall time) differ from a scan.
"""

from __future__ import annotations

import glob
import ipaddress
import json
import logging
import os
import select
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sipwatch.config import Config, zones
from sipwatch.control import SOCKET_NAME, ControlServer
from sipwatch.detectors import Action, Decision
from sipwatch.detectors.base import manual_ban
from sipwatch.event import Event
from sipwatch.formats import readers
from sipwatch.formats.parser import LineParser
from sipwatch.formats.prefilter import Prefilter
from sipwatch.formats.records import RecordScanner, ScanStats
from sipwatch.hostaddrs import own_addresses
from sipwatch.learn import attach as attach_profiles
from sipwatch.learn import save as save_profiles
from sipwatch.pipeline import Pipeline
from sipwatch.responders.accounts import AccountGuard
from sipwatch.responders.alerts import Alerter
from sipwatch.responders.firewall import Backend, Ban, Target, target_of
from sipwatch.sources import LiveSource, follower, is_special, redact
from sipwatch.sources.files import FileSource
from sipwatch.store import Store
from sipwatch.timeparse import TimeParser, horizon_after

log = logging.getLogger("sipwatch")

try:
    from inotify_simple import INotify, flags
except ImportError:  # pragma: no cover - not Linux: poll
    INotify = None

WATCH_FLAGS = 0
if INotify is not None:
    WATCH_FLAGS = flags.MODIFY | flags.CREATE | flags.MOVED_TO | flags.MOVED_FROM | flags.CLOSE_WRITE | flags.DELETE


@dataclass
class Followed:
    follower: LiveSource
    scanner: RecordScanner
    problem: str | None = None  # the last problem said in the log


BITE = 1 << 20  # bytes read from one file per round: memory stays bounded on a huge backlog
MAX_RESULTS = 1000  # decisions and bans a step reports back (all are applied and stored)


@dataclass
class StepResult:
    lines: int = 0
    events: int = 0
    ban_count: int = 0
    decisions: list[Decision] = field(default_factory=list)
    banned: list[Ban] = field(default_factory=list)


class Daemon:
    def __init__(self, config: Config, backend: Backend, store: Store, alerter: Alerter | None = None) -> None:
        self.config = config
        self.alerter = alerter or Alerter(config.alerts)
        self.json_log = open(config.run.json_log, "a", buffering=1) if config.run.json_log else None  # noqa: SIM115
        self.backend = backend
        self.store = store
        self.pipeline = Pipeline(config, own_addresses())
        self.guard = AccountGuard(config.pbx, self.pipeline.classifier)
        self.pipeline.on_critical.append(self.guard.critical)
        attach_profiles(self.pipeline, store, time.time())  # learned behaviour and the learning mode
        self.zones = zones(config)
        self.readers = readers(config.calls)
        probe = LineParser(TimeParser(2000), self.readers)
        self.prefilter = Prefilter(probe.markers)
        self.stats = ScanStats()
        self.followed: dict[str, Followed] = {}
        self.saved = store.positions()
        self.inotify = INotify() if INotify is not None else None
        self._watched_dirs: set[str] = set()
        self.lock = threading.Lock()  # the loop and the control socket take turns
        self.started = time.time()
        self.totals = StepResult()

    # -- sources -------------------------------------------------------------------------------
    def paths(self) -> list[str]:
        found: list[str] = []
        for pattern in self.config.run.watch:
            if is_special(pattern):
                found.append(pattern)
                continue
            matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            found.extend(m for m in matches if not m.endswith((".gz", ".bz2", ".xz")))
        return found

    def refresh(self) -> None:
        """Pick up files that appeared since the last look (globs), watch their folders, and re-resolve
        the allowlisted host names."""
        self.pipeline.policy.resolve()
        for path in self.paths():
            if path not in self.followed:
                saved = self.saved.get(path)
                fresh = saved is None and not self.config.run.read_existing
                live = follower(path, saved, fresh)
                parser = LineParser(TimeParser(time.localtime().tm_year, *self.zones), self.readers)
                parser.rows_only = not is_special(path) and FileSource(path).rows_only
                self.followed[path] = Followed(live, RecordScanner(parser, self.prefilter, path, self.stats))
            if is_special(path):
                continue
            folder = os.path.dirname(os.path.abspath(path))
            if self.inotify is not None and folder not in self._watched_dirs and os.path.isdir(folder):
                self.inotify.add_watch(folder, WATCH_FLAGS)
                self._watched_dirs.add(folder)

    # -- one step ------------------------------------------------------------------------------
    def step(self) -> StepResult:
        """Everything that is new in the followed files, in bites of at most `BITE` bytes, each one
        parsed, decided, applied and saved (with its read positions) before the next is read."""
        self._record_outcomes()
        result = StepResult()
        while True:
            bite = self._bite(result)
            if not bite:
                return result

    def _bite(self, result: StepResult) -> bool:
        events: list[Event] = []
        lines = 0
        now = time.time()
        for followed in self.followed.values():
            clock = followed.scanner.parser.time_parser  # year-less stamps: this year, none in the future
            clock.default_year, clock.horizon = time.localtime(now).tm_year, horizon_after(now)
            for chunk in followed.follower.read(BITE):
                followed.scanner.line_base = chunk.first_line
                events.extend(followed.scanner.events(chunk.data))
                lines += chunk.data.count(b"\n")
            self._note_problem(followed)
        if not lines:
            return False
        result.lines += lines
        result.events += len(events)
        events.sort(key=lambda e: e.time)
        now = time.time()
        decisions: list[Decision] = []
        for event in events:
            decisions.extend(self.pipeline.process(event))
        bans = self._bans(decisions, now)
        if bans:
            self.backend.ban([ban for ban, _ in bans])
        with self.store.transaction() as db:
            self.store.save_events(db, [e for e in events if e.hostile or e.kind == "injection"])
            for ban, decision in bans:
                self.store.save_ban(db, decision, now, now + ban.seconds)
            positions = [f.follower.position for f in self.followed.values()]
            self.store.save_positions(db, [p for p in positions if p is not None])
            save_profiles(self.pipeline, self.store, db)
        for decision in decisions:
            who = decision.network or decision.ip or decision.account or "-"
            log.info("%s %s %s: %s", decision.action, who, decision.detector, decision.reason)
            self.alerter.decision(decision)
            if self.json_log is not None:
                self.json_log.write(json.dumps({"at": now, **decision.to_json()}) + "\n")
        room = MAX_RESULTS - len(result.decisions)
        result.decisions.extend(decisions[:room])
        result.banned.extend(ban for ban, _ in bans[: MAX_RESULTS - len(result.banned)])
        result.ban_count += len(bans)
        return True

    def _record_outcomes(self) -> None:
        """Store what the account actions (on their own thread) have done since the last step."""
        for o in self.guard.drain():
            self.store.save_account_action(o.account, o.action, o.at, o.rule, o.reason, o.result)

    def _note_problem(self, followed: Followed) -> None:
        """Say once when a source stops working (AMI login refused, database down) and when it is back."""
        problem = followed.follower.problem
        if problem != followed.problem:
            if problem is not None:
                log.warning("%s", problem)
            else:
                log.info("%s: reading again", redact(followed.follower.path))
            followed.problem = problem

    def _bans(self, decisions: list[Decision], now: float) -> list[tuple[Ban, Decision]]:
        """Ban length: the policy's, times `escalation` for each earlier ban of the address, capped."""
        run = self.config.run
        bans = []
        for decision in decisions:
            if decision.action is not Action.BAN or decision.ip is None or not decision.duration:
                continue
            target: Target = decision.network or decision.ip
            repeat = self.store.offences(target)
            seconds = min(run.max_ban, decision.duration * run.escalation ** repeat)
            decision.duration = seconds
            self.pipeline.banned_until[decision.ip] = decision.time + seconds
            if isinstance(target, ipaddress.IPv6Network):
                self.pipeline.policy.banned_nets.pop(target, None)
                self.pipeline.policy.banned_nets[target] = decision.time + seconds
            bans.append((Ban(target, seconds), decision))
        return bans

    # -- the loop ------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """On start: make the kernel hold every ban the store says is still running."""
        self.backend.setup()
        now = time.time()
        held = self.backend.banned()
        missing = [Ban(b.ip, b.until - now) for b in self.store.bans(now) if b.ip not in held]
        if missing:
            self.backend.ban(missing)

    # -- control ------------------------------------------------------------------------------
    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer a control-socket request (status, bans-list/add/del, why, accounts-list/unblock)."""
        command = request.get("command")
        with self.lock:
            if command == "status":
                problems = {redact(p): f.problem for p, f in self.followed.items() if f.problem}
                return {"ok": True, "started": self.started, "files": sorted(redact(p) for p in self.followed),
                        "problems": problems,
                        "lines": self.totals.lines, "events": self.totals.events,
                        "bans_made": self.totals.ban_count, "bans_active": len(self.store.bans()),
                        "backend": self.config.run.backend, "learning_until": self.pipeline.learning.until}
            if command == "accounts-list":
                self._record_outcomes()
                return {"ok": True, "blocked": self.guard.blocked(), "actions": self.store.account_actions()}
            if command == "accounts-unblock":
                account = str(request.get("account", ""))
                result = self.guard.unblock(account)
                self._record_outcomes()
                return {"ok": result.startswith("ok"), "account": account, "result": result}
            if command == "bans-list":
                return {"ok": True, "bans": [b.to_json() for b in self.store.bans()]}
            ip = target_of(str(request.get("ip", "")))
            if ip is None:
                return {"ok": False, "error": f"{request.get('ip')!r} is not an IP address (nor an IPv6 network)"}
            if command == "bans-add":
                seconds = float(request.get("seconds", 3600))
                now = time.time()
                decision = manual_ban(ip, seconds, now, str(request.get("reason") or "banned by hand"))
                self.backend.ban([Ban(ip, seconds)])
                with self.store.transaction() as db:
                    self.store.save_ban(db, decision, now, now + seconds)
                return {"ok": True, "ip": str(ip), "seconds": seconds}
            if command == "bans-del":
                self.backend.unban([ip])
                self.store.delete_ban(ip)
                if isinstance(ip, ipaddress.IPv6Network):
                    self.pipeline.policy.banned_nets.pop(ip, None)
                else:
                    self.pipeline.banned_until.pop(ip, None)
                return {"ok": True, "ip": str(ip)}
            if command == "why":
                stored = self.store.ban_of(ip)
                ban = stored.to_json() if stored is not None else None
                events = [] if isinstance(ip, ipaddress.IPv6Network) else self.store.events_of(ip, 20)
                return {"ok": True, "ban": ban, "events": events}
        return {"ok": False, "error": f"unknown command {command!r}"}

    def run(self, stop: threading.Event) -> None:
        self.reconcile()
        self.refresh()
        os.makedirs(self.config.run.state_dir, mode=0o700, exist_ok=True)
        server = ControlServer(os.path.join(self.config.run.state_dir, SOCKET_NAME), self.handle)
        server.start()
        try:
            self._loop(stop)
        finally:
            server.stop()
            for followed in self.followed.values():
                followed.follower.close()
            self.guard.close()
            self._record_outcomes()

    def _loop(self, stop: threading.Event) -> None:
        last_refresh = time.monotonic()
        while not stop.is_set():
            with self.lock:
                self._count(self.step())
            self._wait()
            if time.monotonic() - last_refresh > 5:
                with self.lock:
                    self.refresh()
                    self.store.prune()  # retention: the newest events only
                last_refresh = time.monotonic()
        with self.lock:
            self._count(self.step())

    def _wait(self) -> None:
        """Until a followed file changes (inotify), a journal entry arrives, or the poll interval ends."""
        fds = [f.follower.wait_fd for f in self.followed.values() if f.follower.wait_fd is not None]
        if self.inotify is not None:
            fds.append(self.inotify.fileno())
        if not fds:
            time.sleep(self.config.run.poll)
            return
        ready = select.select(fds, [], [], self.config.run.poll)[0]
        if self.inotify is not None and self.inotify.fileno() in ready:
            self.inotify.read(timeout=0)

    def _count(self, result: StepResult) -> None:
        self.totals.lines += result.lines
        self.totals.events += result.events
        self.totals.ban_count += result.ban_count
