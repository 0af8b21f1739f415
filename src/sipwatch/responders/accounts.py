"""What a critical account decision sets off (toll fraud in progress), as `[pbx] actions` says:

* `hangup`: the account's live outside calls are hung up through AMI (its internal calls are left alone);
* `block`: the account is blocked through AMI (an AstDB key the dialplan checks before outside calls);
* `ban`: the address the fraudulent calls came from is banned (by the pipeline itself, so that a scan
  decides it too: `Pipeline._fraud_ban`), unless it is one of the account's own networks or protected.

AMI actions run on a thread of their own: a slow or absent PBX never stalls the pipeline. Every action
is recorded with its outcome in the store (`sipwatch accounts show`), and a block is undone with
`sipwatch accounts unblock`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass

from sipwatch.ami import AmiError
from sipwatch.config import Pbx
from sipwatch.detectors import Decision
from sipwatch.numbers import NumberClassifier
from sipwatch.responders.pbx import Channel, PbxActions

log = logging.getLogger("sipwatch")


@dataclass(frozen=True)
class Outcome:
    """One action taken on an account, for the store and the log."""

    account: str
    action: str
    at: float
    rule: str
    reason: str
    result: str


class AccountGuard:
    def __init__(self, settings: Pbx, classifier: NumberClassifier, pbx: PbxActions | None = None) -> None:
        self.settings = settings
        self.classifier = classifier
        self.pbx = pbx if pbx is not None else (PbxActions(settings.ami) if settings.ami else None)
        self.outcomes: deque[Outcome] = deque(maxlen=10_000)  # for the daemon's thread to store
        self._queue: queue.Queue[Decision | None] = queue.Queue()
        self._busy = False
        self._thread = threading.Thread(target=self._work, name="account-actions", daemon=True)
        self._thread.start()

    # -- the pipeline's side (its hook, on the daemon's thread) -----------------------------------
    def critical(self, decision: Decision) -> None:
        """`Pipeline.on_critical`: queue the AMI actions for the account."""
        if decision.account and self.pbx is not None and {"hangup", "block"} & set(self.settings.actions):
            self._queue.put(decision)

    def is_outside(self, channel: Channel) -> bool:
        """A channel's call leaves the PBX when its dialled number is not one of the PBX's extensions."""
        return bool(channel.dialled) and self.classifier.outside(self.classifier.classify(channel.dialled))

    # -- the AMI thread ---------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            decision = self._queue.get()
            if decision is None:
                return
            self._busy = True
            for action in ("hangup", "block"):
                if action in self.settings.actions:
                    self._act(action, decision)
            self._busy = False

    def _act(self, action: str, decision: Decision) -> None:
        assert self.pbx is not None and decision.account
        account, rule = decision.account, decision.rule or decision.detector
        try:
            if action == "hangup":
                hung = self.pbx.hang_up(account, self.is_outside)
                result = f"ok: {len(hung)} call(s) hung up" + (f" ({', '.join(c.dialled for c in hung)})"
                                                                 if hung else "")
            else:
                self.pbx.block(account, f"{rule}: {decision.reason}")
                result = "ok: blocked"
        except AmiError as exc:
            result = f"failed: {exc}"
        log.warning("%s account %s (%s): %s", action, account, rule, result)
        self.outcomes.append(Outcome(account, action, time.time(), rule, decision.reason, result))

    def unblock(self, account: str) -> str:
        """Lift a block; the outcome in words (also recorded)."""
        if self.pbx is None:
            return "failed: no AMI for actions (pbx.ami)"
        try:
            result = "ok: unblocked" if self.pbx.unblock(account) else "ok: was not blocked"
        except AmiError as exc:
            result = f"failed: {exc}"
        self.outcomes.append(Outcome(account, "unblock", time.time(), "admin", "sipwatch accounts unblock", result))
        return result

    def blocked(self) -> dict[str, str]:
        if self.pbx is None:
            return {}
        try:
            return self.pbx.blocked()
        except AmiError:
            return {}

    def drain(self) -> list[Outcome]:
        """The outcomes since the last call (the daemon stores them)."""
        found = []
        while self.outcomes:
            found.append(self.outcomes.popleft())
        return found

    def wait_idle(self, seconds: float = 10.0) -> None:
        """Until every queued action is done (tests, shutdown)."""
        deadline = time.monotonic() + seconds
        while (self._busy or not self._queue.empty()) and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
        if self.pbx is not None:
            self.pbx.close()
