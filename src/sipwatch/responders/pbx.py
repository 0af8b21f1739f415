"""Actions on the PBX itself, through AMI: hang up an account's outside calls, block and unblock it.

A firewall ban stops an address; toll fraud comes from a stolen account, which the fraudster can use
from anywhere. Asterisk has no "disable this endpoint" action, so blocking is a key in its own database
(AstDB family `sipwatch-blocked`, key = the account, value = when and why) that one dialplan subroutine
checks before every outside call (README, "Blocking accounts"). The key survives restarts of Asterisk
and of sipwatch, an admin can see and clear it with `database show sipwatch-blocked` as well as with
`sipwatch accounts unblock`, and nothing else in the PBX's configuration is touched.

The AMI user needs `write = system,call` (DBPut, DBDel, Hangup) and `read = reporting` or `system`
for CoreShowChannels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sipwatch.ami import AmiAddress, AmiError, AmiSession
from sipwatch.formats.form import channel_account

FAMILY = "sipwatch-blocked"
#: Hangup cause sent with our hang-ups: 21, "call rejected" (Q.850)
CAUSE_REJECTED = "21"


@dataclass(frozen=True)
class Channel:
    """A live channel as CoreShowChannels lists it."""

    name: str
    account: str | None  # from the channel name, e.g. `PJSIP/6001-0000002a` -> 6001
    dialled: str  # the extension the channel is at in the dialplan (its dialled number)
    connected: str  # the other party's number, when bridged
    uniqueid: str
    linkedid: str
    seconds: int

    @classmethod
    def from_ami(cls, fields: dict[str, str]) -> Channel:
        return cls(fields.get("Channel", ""), account_of(fields.get("Channel", "")), fields.get("Exten", ""),
                   fields.get("ConnectedLineNum", ""), fields.get("Uniqueid", ""), fields.get("Linkedid", ""),
                   _seconds(fields.get("Duration", "")))


def account_of(channel: str) -> str | None:
    """The endpoint of a channel name: `PJSIP/6001-0000002a` -> `6001` (the rules of `channel_account`)."""
    return channel_account(channel)[1]


def _seconds(text: str) -> int:
    """CoreShowChannel's Duration: `HH:MM:SS`."""
    try:
        h, m, s = (int(p) for p in text.split(":"))
    except ValueError:
        return 0
    return h * 3600 + m * 60 + s


class PbxActions:
    """Blocks accounts and hangs up their calls through one AMI connection of its own."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.session = AmiSession(AmiAddress.parse(url), "off", name="ami-actions")
        self.timeout = timeout

    def wait_ready(self, seconds: float = 10.0) -> bool:
        return self.session.wait_ready(seconds)

    @property
    def problem(self) -> str | None:
        return self.session.problem

    def block(self, account: str, reason: str, now: float | None = None) -> None:
        """Put the account's AstDB key; the dialplan refuses its outside calls from the next one on."""
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now if now is not None else time.time()))
        value = f"{when} {reason}".replace("\r", " ").replace("\n", " ")[:200]
        self._act({"Action": "DBPut", "Family": FAMILY, "Key": _key(account), "Val": value})

    def unblock(self, account: str) -> bool:
        """Delete the account's key; False when it was not blocked."""
        try:
            self._act({"Action": "DBDel", "Family": FAMILY, "Key": _key(account)})
        except AmiError as exc:
            if "could not be deleted" in str(exc):  # Asterisk's answer for a key that is not there
                return False
            raise
        return True

    def blocked(self) -> dict[str, str]:
        """Every blocked account and the text stored with it."""
        try:
            answer = self._act({"Action": "DBGetTree", "Family": FAMILY})
        except AmiError as exc:
            if "not found" in str(exc).lower() or "no entries" in str(exc).lower():
                return {}
            raise
        return {m["Key"].rsplit("/", 1)[-1]: m.get("Val", "") for m in answer[1:] if "Key" in m}

    def channels(self) -> list[Channel]:
        return [Channel.from_ami(m) for m in self._act({"Action": "CoreShowChannels"})[1:]
                if m.get("Event") == "CoreShowChannel"]

    def hang_up(self, account: str, is_outside: Callable[[Channel], bool]) -> list[Channel]:
        """Hang up the account's channels that `is_outside` says are outside calls; the ones hung up."""
        done: list[Channel] = []
        for channel in self.channels():
            if channel.account != account or not is_outside(channel):
                continue
            try:
                self._act({"Action": "Hangup", "Channel": channel.name, "Cause": CAUSE_REJECTED})
            except AmiError as exc:
                if "no such channel" not in str(exc).lower():  # it ended by itself meanwhile
                    raise
                continue
            done.append(channel)
        return done

    def _act(self, fields: dict[str, str]) -> list[dict[str, str]]:
        return self.session.action(fields, self.timeout)

    def close(self) -> None:
        self.session.close()


def _key(account: str) -> str:
    """An AstDB key from an account name: no `/` (the family separator), no line breaks."""
    key = "".join(c for c in account if c.isprintable() and c not in "/ ")
    if not key:
        raise AmiError(f"{account!r} is not an account name that can be blocked")
    return key
