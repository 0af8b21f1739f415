"""`sipwatch learn FILE...`: the accounts' learned behaviour built from history, into the store.

The files (CDR and CEL files, logs: whatever `scan` reads) go through the scan's pipeline, holding the
profiles already in the store of `run.state_dir`, so every account learns from them exactly as the daemon
would have learned by watching (time comes from the records). The profiles go back into the store with
the installation's first observation (the earliest record, unless the store knows an earlier one), from
which the learning mode counts its days; the daemon loads both at start (`attach`) and saves the
profiles that changed with each bite's transaction (`save`).

Each account's last day of the history stays "today" in its profile: it is learned when the account's next
record falls on a later day, as it would have been in the daemon. Learn each file once: counts add up.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sipwatch.config import Config, ConfigError
from sipwatch.pipeline import Pipeline
from sipwatch.scan import Progress, ScanResult, scan
from sipwatch.store import Store


def attach(pipeline: Pipeline, store: Store, now: float) -> None:
    """The daemon's start: the stored profiles, and the learning mode from the installation's first
    observation (a new installation's is now)."""
    attach_read_only(pipeline, store)
    if pipeline.learning.since is None:
        with store.transaction() as db:
            pipeline.learning.start(store.set_installed(db, now))


def attach_read_only(pipeline: Pipeline, store: Store) -> None:
    """`attach` for a scan (and `learn`): the stored profiles and learning mode, and nothing written back."""
    if pipeline.profiles is not None:
        pipeline.profiles.load(store.profiles())
    since = store.installed()
    if since is not None:
        pipeline.learning.start(since)


def save(pipeline: Pipeline, store: Store, db: sqlite3.Connection) -> None:
    """Inside a store transaction: the profiles that changed since the last save."""
    if pipeline.profiles is not None:
        store.save_profiles(db, pipeline.profiles.take_dirty())


@dataclass
class Learned:
    scan: ScanResult
    accounts: int  # profiles in the store now
    judged: int  # of them, accounts with enough history to be judged (`behaviour.min_days`)
    decisions: int  # behaviour decisions the history itself raised (its days are not learned)
    first_seen: float | None  # the installation's first observation
    learning_until: float | None


def learn(paths: list[str], config: Config, store: Store, progress: Progress | None = None) -> Learned:
    pipeline = Pipeline(config)
    book = pipeline.profiles
    if book is None:
        raise ConfigError("behaviour.enabled: the behaviour detector is off, so there is nothing to learn")
    attach_read_only(pipeline, store)
    result = scan(paths, config, progress, pipeline=pipeline)
    first = min((p.first_seen for _, p in book), default=None)
    with store.transaction() as db:
        save(pipeline, store, db)
        if first is not None:
            pipeline.learning.start(store.set_installed(db, first))
    judged = sum(p.days >= config.behaviour.min_days for _, p in book)
    decisions = sum(1 for kept in result.account_decisions.values() for d in kept if d.detector == "behaviour")
    return Learned(result, len(book), judged, decisions, pipeline.learning.since, pipeline.learning.until)
