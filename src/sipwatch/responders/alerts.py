"""Alerts: decisions sent to people through apprise (mail, Slack, Telegram, Matrix, webhooks, …).

De-duplicated (the same action, detector and address or account once per `dedupe` period) and
rate-limited (at most `max_per_hour`; what is held back is counted and said in the next alert), and sent
from a background thread: a slow mail server never stalls the pipeline.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import Any

from sipwatch.config import Alerts, ConfigError
from sipwatch.detectors import Decision

log = logging.getLogger("sipwatch")


def describe(decision: Decision) -> tuple[str, str]:
    """Title and body of a decision's alert."""
    who = str(decision.network or decision.ip) if decision.ip is not None else f"account {decision.account or '?'}"
    length = f" for {decision.duration / 60:.0f} min" if decision.duration else ""
    title = f"sipwatch: {decision.action} {who}{length}"
    lines = [f"{decision.detector}: {decision.reason}", f"evidence: {decision.evidence}"]
    lines += [f"{e.file}:{e.line}: {e.raw[:300]}" for e in decision.events[:5]]
    return title, "\n".join(lines)


class Alerter:
    def __init__(self, settings: Alerts) -> None:
        self.settings = settings
        self.apprise: Any = None
        if settings.urls:
            import apprise  # only when alerts are configured: it takes a while to import

            self.apprise = apprise.Apprise()
            for url in settings.urls:
                if not self.apprise.add(url):
                    raise ConfigError(f"alerts.urls: apprise does not understand {url!r}")
        self._seen: dict[tuple[str, str, str], float] = {}
        self._sent: deque[float] = deque()
        self._held = 0
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue(maxsize=1000)
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.settings.urls)

    def decision(self, decision: Decision, now: float | None = None) -> bool:
        """Queue an alert for `decision` unless it is a duplicate or over the rate; True if queued."""
        if not self.enabled or str(decision.action) not in self.settings.on:
            return False
        now = time.time() if now is None else now
        key = (str(decision.action), decision.detector, str(decision.network or decision.ip or decision.account))
        if now - self._seen.get(key, -1e18) < self.settings.dedupe:
            return False
        self._seen[key] = now
        if len(self._seen) > 10_000:
            self._seen = {k: t for k, t in self._seen.items() if now - t < self.settings.dedupe}
        while self._sent and self._sent[0] < now - 3600:
            self._sent.popleft()
        if len(self._sent) >= self.settings.max_per_hour:
            self._held += 1
            return False
        self._sent.append(now)
        title, body = describe(decision)
        if self._held:
            body += f"\n({self._held} more alerts were held back by the rate limit)"
            self._held = 0
        try:
            self._queue.put_nowait((title, body))
        except queue.Full:
            return False
        self._start()
        return True

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="alerts", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            title, body = self._queue.get()
            try:
                if not self.apprise.notify(title=title, body=body):
                    log.warning("an alert could not be delivered: %s", title)
            except Exception:
                log.exception("an alert failed: %s", title)
            finally:
                self._queue.task_done()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until the queued alerts are sent (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    def test(self) -> bool:
        """Send a test notification now, synchronously."""
        return bool(self.apprise.notify(title="sipwatch: test alert",
                                        body="If you read this, sipwatch can reach you."))
