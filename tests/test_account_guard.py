"""What a critical account decision sets off, and where a live call came from."""

from __future__ import annotations

import pytest

from conftest import parse_line
from sipwatch.config import ConfigError, Pbx, from_dict
from sipwatch.detectors import Action, Decision
from sipwatch.event import Call, Event, Kind, Service
from sipwatch.numbers import NumberClassifier
from sipwatch.pipeline import Pipeline
from sipwatch.responders.accounts import AccountGuard
from sipwatch.responders.pbx import Channel

AUTH = ('[2026-12-02 14:37:57.100] SECURITY[1] res_security_log.c: SecurityEvent="SuccessfulAuth",'
        'EventTV="2026-12-02T14:37:57.100+0000",Severity="Informational",Service="PJSIP",EventVersion="1",'
        'AccountID="6001",SessionID="c1@x",LocalAddress="IPV4/UDP/192.0.2.1/5060",'
        'RemoteAddress="IPV4/UDP/203.0.113.66/40000",UsingPassword="1"')


def _call_start(at: float, account: str = "6001") -> Event:
    return Event(at, Kind.CALL_START, Service.PJSIP, account=account, target="00882123456789", form="ami.new_channel",
                 call=Call(uniqueid="1.1", linkedid="1.1", channel=f"PJSIP/{account}-00000001"))


def test_a_live_call_comes_from_where_its_account_just_authenticated() -> None:
    pipeline = Pipeline(from_dict({}))
    (auth,) = parse_line(AUTH)
    pipeline.process(auth)
    call = _call_start(auth.time + 0.02)
    pipeline.process(call)
    assert (str(call.ip), call.port) == ("203.0.113.66", 40000)


@pytest.mark.parametrize(("account", "delay"), [("6001", 30.0), ("6002", 0.02), ("6001", -1.0)])
def test_an_authentication_of_another_account_or_another_moment_says_nothing(account: str, delay: float) -> None:
    pipeline = Pipeline(from_dict({}))
    (auth,) = parse_line(AUTH)
    pipeline.process(auth)
    call = _call_start(auth.time + delay, account)
    pipeline.process(call)
    assert call.ip is None


DENY = {"numbers": {"country": "DE"}, "accounts": {"account": {"6001": {"deny": ["+882"]}}}}


def _fraud(config: dict[str, object], at: float = 0.02) -> list[Decision]:
    """6001 authenticates from 203.0.113.66 and calls +882 (denied: a critical decision) a moment later."""
    pipeline = Pipeline(from_dict(config))
    (auth,) = parse_line(AUTH)
    pipeline.process(auth)
    return pipeline.process(_call_start(auth.time + at))


def test_a_critical_decision_bans_the_address_the_calls_came_from() -> None:
    alert, ban = _fraud(DENY)
    assert (alert.action, alert.level, alert.rule) == (Action.ALERT, "critical", "destination_denied")
    assert (ban.action, str(ban.ip), ban.account, ban.duration) == (Action.BAN, "203.0.113.66", "6001", 3600.0)


def _late_login(config: dict[str, object], login_at: float, account: str = "6001",
                pipeline: Pipeline | None = None) -> tuple[list[Decision], list[Decision]]:
    """The call's first AMI event arrives before the SuccessfulAuth that let it in (Asterisk raises them on
    separate queues; each keeps its own time, the login's `login_at` seconds from the call's): what the
    call decided, then what the late login did."""
    pipeline = pipeline or Pipeline(from_dict(config))
    (auth,) = parse_line(AUTH.replace('"6001"', f'"{account}"'))
    call = pipeline.process(_call_start(auth.time - login_at))
    return call, pipeline.process(auth)


def test_a_login_that_arrives_after_its_call_still_gets_the_caller_banned() -> None:
    (alert,), (ban,) = _late_login(DENY, -0.02)
    assert (alert.action, alert.level, alert.ip) == (Action.ALERT, "critical", None)  # blocked, nobody to ban yet
    assert (ban.action, str(ban.ip), ban.account, ban.time) == (Action.BAN, "203.0.113.66", "6001", alert.time)


@pytest.mark.parametrize(("account", "login_at"), [
    ("6002", -0.02),  # another account's login
    ("6001", 0.02),  # a login after the call (by the records' times): not its caller
    ("6001", -30.0),  # a login long before the call
])
def test_a_late_login_of_another_account_or_moment_bans_nobody(account: str, login_at: float) -> None:
    _, late = _late_login(DENY, login_at, account)
    assert Action.BAN not in [d.action for d in late]


def test_a_late_login_places_a_decision_once() -> None:
    pipeline = Pipeline(from_dict(DENY))
    _late_login(DENY, -0.02, pipeline=pipeline)
    (again,) = parse_line(AUTH)
    assert pipeline.process(again) == [] and pipeline.knowledge.unplaced == {}


def test_without_the_ban_action_no_decision_waits_for_its_caller() -> None:
    pipeline = Pipeline(from_dict({**DENY, "pbx": {"actions": ["hangup", "block"]}}))
    _, late = _late_login({}, -0.02, pipeline=pipeline)
    assert late == [] and pipeline.knowledge.unplaced == {}


def test_an_address_of_the_account_s_own_networks_is_never_banned_for_it() -> None:
    pipeline = Pipeline(from_dict(DENY))
    pipeline.known_network = lambda account, ip: account == "6001" and str(ip).startswith("203.0.113.")
    (auth,) = parse_line(AUTH)
    pipeline.process(auth)
    assert [d.action for d in pipeline.process(_call_start(auth.time + 0.02))] == [Action.ALERT]


@pytest.mark.parametrize(("config", "at"), [
    ({**DENY, "pbx": {"actions": ["hangup", "block"]}}, 0.02),  # banning not configured
    (DENY, 30.0),  # no address behind the call (no authentication just before it)
    ({**DENY, "policy": {"allowlist": ["203.0.113.0/24"]}}, 0.02),  # the allowlist holds
])
def test_no_ban_without_the_ban_action_an_address_or_outside_the_allowlist(config: dict[str, object],
                                                                           at: float) -> None:
    assert Action.BAN not in [d.action for d in _fraud(config, at)]


def _guard(actions: list[str]) -> AccountGuard:
    return AccountGuard(Pbx(actions=actions), NumberClassifier("DE"))


@pytest.mark.parametrize(("dialled", "outside"), [("0049301234567", True), ("00882123456789", True),
                                                  ("6002", False), ("s", False), ("", False)])
def test_only_outside_calls_are_hung_up(dialled: str, outside: bool) -> None:
    guard = _guard(["hangup"])
    channel = Channel("PJSIP/6001-00000001", "6001", dialled, "", "1.1", "1.1", 3)
    assert guard.is_outside(channel) is outside
    guard.close()


def test_without_an_ami_for_actions_nothing_is_queued_and_unblock_says_why() -> None:
    guard = _guard(["hangup", "block"])
    guard.critical(_fraud(DENY)[0])
    guard.wait_idle(1)
    assert guard.drain() == []
    assert guard.unblock("6001").startswith("failed: no AMI")
    guard.close()


@pytest.mark.parametrize(("pbx", "problem"), [({"actions": ["hangup", "nuke"]}, "pbx.actions: 'nuke'"),
                                              ({"ami": "http://x"}, "pbx.ami: expected ami://")])
def test_a_malformed_pbx_section_names_the_key(pbx: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        from_dict({"pbx": pbx})
