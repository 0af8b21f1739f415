"""AMI call events, as the AMI source writes them: one JSON object per line, `{"ami": {...fields...}}`.

AMI tells of a call while it happens (a CDR only when it ends), which is what lets the account rules hang
up a fraudulent call within seconds. The table `EVENTS` says what each AMI event means:

* `Newchannel` and `DialBegin` of a caller's channel -> `call_start` (the dialled number is the channel's
  `Exten`; the first arrives with the phone's INVITE, the second when the dialplan dials out: one call);
* `DialEnd` with `DialStatus: ANSWER`, and `Newstate` of a caller's channel to `Up` -> `call_answer`;
* `CEL` (cel_manager) -> as cel_custom's rows: the caller's `CHAN_START`, any leg's `ANSWER`, the caller's
  `HANGUP`, `LINKEDID_END`;
* `Hangup` of a caller's channel (its `Uniqueid` is the call's `Linkedid`) -> `call_end`;
* `Cdr` (cdr_manager) -> `call_end` with durations and disposition, and the source address when the
  dialplan put `src=<ip>:<port>` into the userfield;
* `ContactStatus` (PJSIP) and chan_sip's `PeerStatus` -> `registration` (the contact URI, Via address and
  chan_sip's `Address` are the phone's own text: a hint).

What is trusted is as for the logs (formats/calls.py): the account is the endpoint in the channel name,
never caller ID. These lines are read only from an `ami://` source (the follower writes them itself, JSON
escapes every field), never from a log file, where such a line could only be caller text.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sipwatch.event import Call, Evidence, Kind, Service
from sipwatch.formats.calls import cel_event, source_of
from sipwatch.formats.form import Parsed, PrefixlessReader, channel_account

Fields = dict[str, str]
#: where the AMI source's own lines come from (the follower's name); nothing else is read as AMI
ORIGIN = "ami://"
#: a field the follower adds: the receive time (epoch seconds), unless Asterisk sends `Timestamp`
RECEIVED = "SipwatchReceived"


def _time(f: Fields) -> str | None:
    stamp = f.get("Timestamp") or f.get(RECEIVED)
    return f"@{stamp}" if stamp else None


def _call(f: Fields, peer: str | None = None) -> Call:
    return Call(uniqueid=f.get("Uniqueid") or None, linkedid=f.get("Linkedid") or None,
                channel=f.get("Channel") or None, peer=peer, context=f.get("Context") or None)


def _caller(f: Fields) -> bool:
    """The caller's own channel: the one whose id the call carries (a callee leg has another)."""
    return bool(f.get("Uniqueid")) and f.get("Uniqueid") == (f.get("Linkedid") or f.get("Uniqueid"))


def _new_channel(f: Fields) -> Parsed | None:
    """A phone's INVITE has arrived: the channel's `Exten` is the number it dialled (before any dialplan)."""
    if not _caller(f) or f.get("Exten", "s") in ("s", ""):
        return None
    service, account = channel_account(f.get("Channel"))
    if account is None:
        return None
    return Parsed("ami.new_channel", Kind.CALL_START, service, account=account, target=f["Exten"],
                  reason="Newchannel", time_text=_time(f), call=_call(f))


def _dial_begin(f: Fields) -> Parsed | None:
    if not _caller(f):
        return None
    service, account = channel_account(f.get("Channel"))
    return Parsed("ami.dial_begin", Kind.CALL_START, service, account=account, target=f.get("Exten") or None,
                  reason="DialBegin", time_text=_time(f), call=_call(f, peer=f.get("DestChannel") or None))


def _dial_end(f: Fields) -> Parsed | None:
    if f.get("DialStatus") != "ANSWER" or not _caller(f):
        return None
    service, account = channel_account(f.get("Channel"))
    return Parsed("ami.dial_end", Kind.CALL_ANSWER, service, account=account, reason="ANSWER",
                  time_text=_time(f), call=_call(f, peer=f.get("DestChannel") or None))


def _hangup(f: Fields) -> Parsed | None:
    if not _caller(f):
        return None
    service, account = channel_account(f.get("Channel"))
    return Parsed("ami.hangup", Kind.CALL_END, service, account=account, reason=f.get("Cause-txt", ""),
                  time_text=_time(f), call=_call(f))


def _seconds(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if value >= 0 else None


def _cdr(f: Fields) -> Parsed | None:
    channel = f.get("Channel")
    service, account = channel_account(channel)
    parsed = Parsed("ami.cdr", Kind.CALL_END, service, account=account, target=f.get("Destination") or None,
                    reason=f.get("Disposition", ""), time_text=_time(f))
    source = source_of(f.get("UserField", ""))
    if source:
        parsed.ip, parsed.port = source[0], source[1]
        parsed.evidence = Evidence.STRONG if f.get("Disposition") == "ANSWERED" else Evidence.WEAK
    parsed.call = Call(uniqueid=f.get("UniqueID") or None, linkedid=f.get("LinkedID") or None,
                       channel=channel or None, peer=f.get("DestinationChannel") or None,
                       context=f.get("DestinationContext") or None, duration=_seconds(f.get("Duration")),
                       billsec=_seconds(f.get("BillableSeconds")), disposition=f.get("Disposition") or None)
    return parsed


def _new_state(f: Fields) -> Parsed | None:
    """The caller's own channel is up: answered (by the callee through Dial, or by the dialplan)."""
    if f.get("ChannelStateDesc") != "Up" or not _caller(f):
        return None
    service, account = channel_account(f.get("Channel"))
    return Parsed("ami.newstate", Kind.CALL_ANSWER, service, account=account, reason="Up", time_text=_time(f),
                  call=_call(f))


def _cel(f: Fields) -> Parsed | None:
    """A CEL event (cel_manager): read as cel_custom's rows are, by `formats.calls.cel_event`."""
    uniqueid = f.get("UniqueID", "")
    return cel_event("ami.cel", f.get("EventName", ""), uniqueid, f.get("LinkedID") or uniqueid,
                     f.get("Channel", ""), f.get("Exten", ""), f.get("Peer", ""), f.get("Context", ""),
                     f.get("Extra", ""), _time(f))


#: ContactStatus values that tell of a registration (Asterisk 22 sends `NonQualified` for a new contact
#: of an AOR without qualify, `Created` with it); Reachable/Unreachable are qualify results
CONTACT_STATES = frozenset({"Created", "Updated", "Removed", "NonQualified"})


def _contact(f: Fields) -> Parsed | None:
    status = f.get("ContactStatus", "")
    if status not in CONTACT_STATES or not f.get("AOR"):
        return None
    parsed = Parsed("ami.contact_status", Kind.REGISTRATION, Service.PJSIP, account=f["AOR"],
                    user_agent=f.get("UserAgent") or None, reason=status, time_text=_time(f))
    if f.get("URI"):
        parsed.extra["contact"] = f["URI"]  # the phone's own Contact text: a hint, never a source address
    return parsed


#: chan_sip's PeerStatus values that tell of a registration (Reachable, Lagged, Unreachable: qualify results)
PEER_STATES = frozenset({"Registered", "Unregistered"})


def _peer_status(f: Fields) -> Parsed | None:
    """chan_sip (Asterisk up to 20): `Peer: SIP/6001`, `PeerStatus: Registered`, `Address: ip:port`. The
    address is where chan_sip will send to, which with `nat=no` is the phone's own Contact text: a hint only,
    like a contact URI (the REGISTER's SuccessfulAuth names the source)."""
    if f.get("ChannelType") != "SIP" or f.get("PeerStatus") not in PEER_STATES:
        return None
    tech, _, account = f.get("Peer", "").partition("/")
    if tech != "SIP" or not account:
        return None
    parsed = Parsed("ami.peer_status", Kind.REGISTRATION, Service.SIP, account=account, reason=f["PeerStatus"],
                    user_agent=f.get("UserAgent") or None, time_text=_time(f))  # UserAgent: the source asks
    if f.get("Address"):
        parsed.extra["contact"] = f["Address"]
    return parsed


EVENTS: dict[str, Callable[[Fields], Parsed | None]] = {
    "Newchannel": _new_channel,
    "DialBegin": _dial_begin,
    "DialEnd": _dial_end,
    "Newstate": _new_state,
    "Hangup": _hangup,
    "Cdr": _cdr,
    "CEL": _cel,
    "ContactStatus": _contact,
    "PeerStatus": _peer_status,
}


def render(fields: Fields, received: float) -> bytes:
    """One AMI call event as the line the AMI source writes."""
    return json.dumps({"ami": {**fields, RECEIVED: f"{received:.6f}"}}, ensure_ascii=False).encode() + b"\n"


class AmiCallReader(PrefixlessReader):
    """The reader of the AMI source's call-event lines (see formats/README.md for the reader protocol)."""

    id = "ami.call"
    origin = ORIGIN  # only lines of sources named so
    markers = tuple(f'{{"ami": {{"Event": "{name}"' for name in EVENTS)

    def read(self, message: str) -> Parsed | None:
        try:
            fields = json.loads(message)["ami"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(fields, dict):
            return None
        read = EVENTS.get(str(fields.get("Event")))
        return read({str(k): str(v) for k, v in fields.items()}) if read is not None else None


READERS = (AmiCallReader(),)
