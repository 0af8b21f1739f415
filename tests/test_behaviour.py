"""Learned behaviour per account (issue 7, item 4) and the learning mode (item 5), as specifications.

Phone 6001 of a PBX in Germany first lives an ordinary history: every day it registers from the office
network (192.0.2.0/24) with its Yealink, and between 09:00 and 16:00 UTC calls Berlin three times, London
once and an extension once (CDR rows with the source address in the userfield, as the README's dialplan
line writes it). Then comes the day in question, through the pipeline in time order as `scan` and the
daemon do, and the test says which behaviour rules fire at which level, or that nothing does.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import one
from sipwatch import core
from sipwatch.behaviour import Profile, ProfileBook
from sipwatch.config import ConfigError, from_dict
from sipwatch.detectors import Decision
from sipwatch.detectors.behaviour import DESTINATION, SOURCE, BehaviourDetector
from sipwatch.event import Event, Kind, Service
from sipwatch.learn import attach, learn, save
from sipwatch.pipeline import Pipeline
from sipwatch.store import Store
from test_account_rules import UK, cdr

DAY = 86400.0
DAY0 = datetime(2024, 5, 1, tzinfo=UTC).timestamp()  # the history's first day, 00:00 UTC
TODAY = DAY0 + 10 * DAY  # the day in question (ten days of history before it)
H = 3600.0
OFFICE = "192.0.2.10"
PHONE = "Yealink SIP-T46S 66.86.0.15"
BERLIN = "03012345678"
PARIS, ROME, MADRID, AMSTERDAM, ZURICH = "0033142685300", "00390612345678", "0034912345678", "0031201234567", \
    "0041446681800"
CUBA, SATELLITE, PREMIUM = "005372345678", "00881612345678", "09001234567"


def login(when: float, ip: str = OFFICE, agent: str | None = PHONE, account: str = "6001") -> Event:
    """A SuccessfulAuth: the account and the server-written source address (and a user agent, when the
    source names one: AMI contact events do)."""
    return Event(when, Kind.AUTH_SUCCESS, Service.PJSIP, ip=ipaddress.ip_address(ip), account=account,
                 user_agent=agent)


def call(when: float, number: str, src: str = OFFICE, minutes: float = 1.0, account: str = "6001") -> Event:
    return one(cdr(when, number, duration=int(minutes * 60) + 3, account=account, src=f"{src}:5060"))


def history(days: int = 10, account: str = "6001", start: float = DAY0) -> list[Event]:
    events: list[Event] = []
    for d in range(days):
        day = start + d * DAY
        events.append(login(day + 8.5 * H, account=account))
        for hour, number in ((9, BERLIN), (10, "6002"), (11, BERLIN), (14, UK), (16, BERLIN)):
            events.append(call(day + hour * H, number, account=account))
    return events


@pytest.fixture(autouse=True, params=["python", "c"])
def observe_in(request: pytest.FixtureRequest) -> str:
    """Each specification twice: with the detector's Python observe, and with `_learned.c`'s, which a scan
    uses (it learns a call record in C when the record finds nothing, and leaves the rest to Python)."""
    if request.param == "c" and core._learned is None:
        pytest.skip("the C learned behaviour is not built (needs gcc and python3-dev)")
    _OBSERVE_IN[0] = request.param
    return str(request.param)


_OBSERVE_IN = ["python"]


def pipeline(behaviour: dict[str, Any] | None = None, **more: Any) -> Pipeline:
    """(Without the ban that follows a critical decision: these specs follow one account's every call.)"""
    p = Pipeline(from_dict({"timezone": "UTC", "numbers": {"country": "DE", "international_prefixes": ["00"],
                                                            "access_codes": []},
                            "behaviour": behaviour or {}, "pbx": {"actions": ["hangup", "block"]}, **more}))
    if _OBSERVE_IN[0] == "c":
        for detector in p.detectors:
            if isinstance(detector, BehaviourDetector):
                observe = core.learned_observe(detector)
                assert observe is not None
                detector.observe = observe  # type: ignore[method-assign]
    return p


def feed(p: Pipeline, events: list[Event], detector: str = "behaviour") -> list[Decision]:
    ordered = sorted(events, key=lambda e: e.time)
    return [d for e in ordered for d in p.process(e) if d.detector == detector]


def decide(day: list[Event], behaviour: dict[str, Any] | None = None, days: int = 10) -> list[Decision]:
    """The behaviour decisions of `day`, after `days` of ordinary history (which must raise none)."""
    p = pipeline(behaviour)
    assert feed(p, history(days)) == []
    return feed(p, day)


def rules(decisions: list[Decision]) -> list[tuple[str | None, str | None]]:
    return [(d.rule, d.level) for d in decisions]


# --- what is learned --------------------------------------------------------------------------------

def test_the_history_is_learned_into_a_small_profile() -> None:
    p = pipeline()
    feed(p, history())
    assert p.profiles is not None
    profile = p.profiles.get("6001")
    assert profile is not None
    assert (profile.days, profile.calls) == (9, 36)  # the tenth day is still "today"
    assert profile.countries == {"DE": 27, "GB": 9} and profile.types == {"fixed_line": 36}
    assert profile.networks == {"192.0.2.0/24": 54} and profile.agents == {PHONE: 9}
    assert profile.calls_per_day == pytest.approx(4.0)
    weekdays, weekends = profile.hours[:24], profile.hours[24:]  # May 4 and 5 were a weekend
    assert [h for h, n in enumerate(weekdays) if n] == [h for h, n in enumerate(weekends) if n] == [9, 10, 11, 14, 16]
    assert (sum(weekdays), sum(weekends)) == (35, 10)


@pytest.mark.parametrize("record", [
    pytest.param(Event(TODAY + 9 * H, Kind.REGISTRATION, Service.PJSIP, account="6001"), id="a-registration"),
    pytest.param(Event(TODAY + 9 * H, Kind.AUTH_SUCCESS, Service.PJSIP, account=""), id="no-account"),
    pytest.param(login(TODAY + 9 * H, ip="203.0.113.9", agent="sipcli/v1.8", account="6099"), id="an-excluded-account"),
])
def test_a_record_of_no_call_that_names_no_source_teaches_nothing(record: Event) -> None:
    """A registration names no source (its Contact is the phone's word) and often no user agent; a record with
    no account, or an excluded account's, teaches nothing either, in C as in Python."""
    p = pipeline(accounts={"exclude": ["6099"]})
    feed(p, history())
    assert p.profiles is not None
    before = {a: repr(p.profiles.get(a)) for a in ("6001", "6099", "")}
    assert feed(p, [record]) == []
    assert {a: repr(p.profiles.get(a)) for a in ("6001", "6099", "")} == before


# --- what must raise nothing -----------------------------------------------------------------------

@pytest.mark.parametrize("day", [
    pytest.param(history(1, start=TODAY), id="an-ordinary-day"),
    pytest.param([call(TODAY + 10 * H + i * 60, "6002") for i in range(60)], id="sixty-internal-calls-in-an-hour"),
    pytest.param([call(TODAY + 9 * H + i * 600, UK, minutes=9) for i in range(40)],
                 id="forty-calls-to-its-usual-foreign-country"),
    pytest.param([login(TODAY + 9 * H, "192.0.2.77"), call(TODAY + 10 * H, UK, src="192.0.2.77")],
                 id="a-new-address-inside-the-office-network"),
    pytest.param([login(TODAY + 9 * H, "192.0.2.200", agent="Zoiper rv2.10")],
                 id="a-new-address-and-phone-inside-the-office-network"),
    pytest.param([call(TODAY + 8 * H, PARIS), call(TODAY + 17 * H + 59 * 60, "015112345678")],
                 id="an-hour-before-and-after-its-usual-hours"),
    pytest.param([call(TODAY + 3 * H, UK), call(TODAY + 3 * H + 60, BERLIN)],
                 id="its-usual-destinations-at-three-in-the-morning"),
    pytest.param([call(TODAY + 10 * H, PARIS)], id="one-new-ordinary-country"),
    pytest.param([call(TODAY + 10 * H, PARIS), call(TODAY + 11 * H + 1, ROME)],
                 id="two-new-countries-more-than-an-hour-apart"),
    pytest.param([call(TODAY + 9 * H + i * 600, ZURICH) for i in range(11)],
                 id="eleven-calls-to-a-new-country-under-3x-its-baseline"),
    pytest.param([call(TODAY + 4 * H, "6002")], id="an-internal-call-at-night"),
])
def test_ordinary_behaviour_raises_nothing(day: list[Event]) -> None:
    assert rules(decide(day)) == []


# --- what must be flagged --------------------------------------------------------------------------

@pytest.mark.parametrize(("day", "expected"), [
    pytest.param([login(TODAY + 9 * H, "198.51.100.23", agent="friendly-scanner")], [("new_source", "critical")],
                 id="a-new-public-address-with-another-user-agent"),
    pytest.param([login(TODAY + 9 * H, "198.51.100.23")], [("new_network", "warning")],
                 id="a-new-network-with-its-own-phone"),
    pytest.param([call(TODAY + 10 * H, BERLIN, src="198.51.100.23")], [("new_network", "warning")],
                 id="a-call-from-a-new-network-no-user-agent-known"),
    pytest.param([call(TODAY + 10 * H, CUBA)], [("new_high_risk_destination", "critical")],
                 id="first-call-to-a-high-risk-country"),
    pytest.param([call(TODAY + 10 * H, SATELLITE)], [("new_high_risk_destination", "critical")],
                 id="first-call-to-a-satellite-network"),
    pytest.param([call(TODAY + 10 * H, PREMIUM)], [("new_high_risk_destination", "warning")],
                 id="first-call-to-premium-rate-in-its-own-country-a-warning"),
    pytest.param([call(TODAY + 10 * H, PARIS), call(TODAY + 10 * H + 59 * 60, ROME)], [("new_countries", "warning")],
                 id="two-new-countries-within-an-hour"),
    pytest.param([call(TODAY + 10 * H + i * 300, n) for i, n in enumerate((PARIS, ROME, MADRID, AMSTERDAM))],
                 [("new_countries", "warning"), ("new_countries", "critical")], id="four-new-countries-in-15-min"),
    pytest.param([call(TODAY + 23.5 * H, PARIS), call(TODAY + 24.2 * H, ROME)],
                 [("unusual_hour", "warning"), ("new_countries", "warning")], id="two-new-countries-across-midnight"),
    pytest.param([call(TODAY + 7 * H, PARIS)], [("unusual_hour", "warning")], id="two-hours-before-its-first-call"),
    pytest.param([call(TODAY + 3 * H, "015112345678")], [("unusual_hour", "warning")],
                 id="a-mobile-at-three-in-the-morning"),
    pytest.param([call(TODAY + 9 * H + i * 600, ZURICH) for i in range(12)], [("volume_calls", "warning")],
                 id="twelve-calls-to-a-new-country-3x-its-baseline"),
    pytest.param([call(TODAY + 9 * H + i * 60, "015112345678") for i in range(40)],
                 [("volume_calls", "warning"), ("volume_calls", "critical")],
                 id="forty-calls-to-mobiles-it-never-calls"),
    pytest.param([call(TODAY + 9 * H, ZURICH, minutes=65)], [("volume_minutes", "warning")],
                 id="one-long-call-to-a-new-country-is-a-warning-only"),
])
def test_unusual_behaviour_is_flagged(day: list[Event], expected: list[tuple[str, str]]) -> None:
    assert rules(decide(day)) == expected


@pytest.mark.parametrize(("home", "today", "behaviour", "expected"), [
    pytest.param("2001:db8:1:10::5", "2001:db8:1:ffff::9", {}, [], id="ipv6-inside-its-48"),
    pytest.param("2001:db8:1:10::5", "2001:db8:2::9", {}, [("new_network", "warning")], id="ipv6-another-48"),
    pytest.param("2001:db8:1:10::5", "2001:db8:1:ffff::9", {"ipv6_prefix": 64}, [("new_network", "warning")],
                 id="ipv6-another-64-when-sites-are-64s"),
    pytest.param(OFFICE, "192.0.3.40", {}, [("new_network", "warning")], id="ipv4-the-next-24"),
    pytest.param(OFFICE, "192.0.3.40", {"ipv4_prefix": 16}, [], id="ipv4-inside-a-configured-16"),
])
def test_networks_are_learned_as_configured_prefixes(home: str, today: str, behaviour: dict[str, Any],
                                                    expected: list[tuple[str, str]]) -> None:
    p = pipeline(behaviour)
    feed(p, [login(DAY0 + d * DAY + 9 * H, home) for d in range(10)] + history())
    assert rules(feed(p, [login(TODAY + 9 * H, today)])) == expected


def test_one_call_read_through_two_records_is_learned_once() -> None:
    p = pipeline()
    row = cdr(TODAY + 10 * H, PARIS, src=f"{OFFICE}:5060")
    first, again = one(row), one(row)
    again.file = "cdr-custom/Master.csv"
    feed(p, [first, again])
    assert p.profiles is not None
    today = p.profiles.profiles["6001"].today
    assert today is not None and (today.calls, today.countries) == (1, {"FR": 1})


def registration(when: float, agent: str, account: str = "6001") -> Event:
    """A contact event that names the phone's user agent (AMI ContactStatus) but no trusted address."""
    return Event(when, Kind.REGISTRATION, Service.PJSIP, account=account, user_agent=agent)


@pytest.mark.parametrize(("day", "expected"), [
    pytest.param([login(TODAY + 9 * H, "198.51.100.23", agent=None), registration(TODAY + 9 * H + 0.05, "Zoiper")],
                 [("new_network", "warning"), ("new_source", "critical")], id="another-phone-registers-from-afar"),
    pytest.param([login(TODAY + 9 * H, "198.51.100.23", agent=None), registration(TODAY + 9 * H + 0.05, PHONE)],
                 [("new_network", "warning")], id="its-own-phone-registers-from-home"),
    pytest.param([login(TODAY + 9 * H, "198.51.100.23", agent=None), registration(TODAY + 9 * H + 6, "Zoiper")],
                 [("new_network", "warning")], id="a-user-agent-6s-later-is-not-the-same-request"),
    pytest.param([login(TODAY + 9 * H, "192.0.2.99", agent=None), registration(TODAY + 9 * H + 0.05, "Zoiper")],
                 [], id="another-phone-in-the-office"),
    pytest.param([registration(TODAY + 9 * H, "Zoiper"), login(TODAY + 9 * H + 0.05, "198.51.100.23", agent=None)],
                 [("new_source", "critical")], id="the-user-agent-first"),
])
def test_an_address_and_a_user_agent_of_one_register_are_judged_together(
        day: list[Event], expected: list[tuple[str, str]]) -> None:
    assert rules(decide(day)) == expected


@pytest.mark.parametrize(("office_today", "expected"), [
    pytest.param(True, [("new_network", "warning"), ("new_source", "critical")], id="its-phone-registered-today"),
    pytest.param(False, [("new_network", "warning")], id="no-user-agent-known-at-all"),
])
def test_with_a_history_of_cdrs_alone_today_s_office_user_agents_are_the_known_ones(
        office_today: bool, expected: list[tuple[str, str]]) -> None:
    """CDRs name no user agent, so a profile learned from them knows none; the user agents its own networks
    registered with today stand in for them (the intruder's, from a new network, never do)."""
    p = pipeline()
    assert feed(p, [e for e in history() if e.kind is not Kind.AUTH_SUCCESS]) == []
    office = [login(TODAY + 8 * H, agent=None), registration(TODAY + 8 * H + 0.05, PHONE)] if office_today else []
    thief = [login(TODAY + 9 * H, "198.51.100.23", agent=None), registration(TODAY + 9 * H + 0.05, "Zoiper")]
    assert rules(feed(p, office + thief)) == expected


def test_stolen_credentials_from_a_new_address_calling_high_cost_destinations() -> None:
    """The acceptance scenario: another phone, from a public address, calls several dear places at once."""
    thief = "198.51.100.23"
    day = [login(TODAY + 2 * H, thief, agent="Zoiper rv2.10"),
           *(call(TODAY + 2 * H + 60 + i, n, src=thief, minutes=20) for i, n in enumerate((CUBA, SATELLITE, PREMIUM)))]
    decisions = decide(day)
    assert rules(decisions) == [("new_source", "critical"), ("new_high_risk_destination", "critical"),
                                ("unusual_hour", "warning"), ("new_high_risk_destination", "critical"),
                                ("new_high_risk_destination", "warning"), ("volume_minutes", "warning")]
    assert {str(d.ip) for d in decisions if d.level == "critical"} == {thief}  # named: it is no office address
    assert all(d.account == "6001" and d.events for d in decisions)


def test_a_phone_at_its_usual_address_calling_many_countries_is_flagged_without_naming_the_office() -> None:
    decisions = decide([call(TODAY + 10 * H + i * 120, n) for i, n in enumerate((PARIS, ROME, MADRID, AMSTERDAM))])
    assert rules(decisions)[-1] == ("new_countries", "critical")
    assert all(d.ip is None for d in decisions)  # the office is never blamed
    assert "FR, IT, ES, NL" in decisions[-1].reason


# --- when an account is judged ---------------------------------------------------------------------

@pytest.mark.parametrize(("when", "expected"), [
    pytest.param(TODAY + 10 * H, [("unusual_hour", "warning")], id="saturday-10h-for-an-office-phone"),
    pytest.param(TODAY + 2 * DAY + 10 * H, [], id="monday-10h"),
])
def test_weekends_have_their_own_usual_hours(when: float, expected: list[tuple[str, str]]) -> None:
    """A phone that never calls on weekends: an unusual destination on a Saturday morning is unusual."""
    p = pipeline()
    workdays = [e for e in history(10) if datetime.fromtimestamp(e.time, UTC).weekday() < 5]
    assert feed(p, workdays) == []
    decisions = feed(p, [call(when, PARIS)])
    assert rules(decisions) == expected
    assert all("on a weekend day" in d.reason for d in decisions)


def test_a_call_4096_quarters_of_an_hour_after_another_is_read_at_its_own_hour() -> None:
    """`_learned.c` remembers the local day and hour of each quarter of an hour in a slot of 4096, by quarter:
    a call 4096 quarters after a 10h call on a weekday (42 days and 16 hours on: 02h on a Sunday) shares its
    slot, and is read at its own hour and day."""
    first = DAY0 + 10 * DAY + 10 * H  # one of the history's ordinary calls
    later = first + 4096 * 900
    p = pipeline()
    assert feed(p, [e for e in history(60) if e.time < later]) == []
    decisions = feed(p, [call(later, PARIS)])
    assert rules(decisions) == [("unusual_hour", "warning")]
    assert "at 02h on a weekend day" in decisions[0].reason


@pytest.mark.parametrize(("days", "min_days", "expected"), [
    pytest.param(6, 7, [], id="6-days-learned-of-7-needed"),
    pytest.param(7, 7, [("new_high_risk_destination", "critical")], id="7-days-learned"),
    pytest.param(6, 6, [("new_high_risk_destination", "critical")], id="6-days-learned-of-6-needed"),
])
def test_an_account_is_judged_only_with_enough_history(days: int, min_days: int,
                                                       expected: list[tuple[str, str]]) -> None:
    start = DAY0 + days * DAY
    assert rules(decide([call(start + 10 * H, CUBA)], {"min_days": min_days}, days)) == expected


@pytest.mark.parametrize(("min_calls", "expected"), [
    pytest.param(40, [("new_high_risk_destination", "critical")], id="40-calls-learned-40-needed"),
    pytest.param(41, [], id="40-calls-learned-41-needed"),
])
def test_destinations_need_enough_learned_calls(min_calls: int, expected: list[tuple[str, str]]) -> None:
    assert rules(decide([call(TODAY + 10 * H, CUBA)], {"min_calls": min_calls})) == expected


def test_a_new_account_is_learned_not_judged() -> None:
    p = pipeline()
    assert feed(p, [login(DAY0, "198.51.100.23", agent="x"), call(DAY0 + 3 * H, CUBA, src="198.51.100.23")]) == []


def test_a_day_with_a_critical_decision_is_not_learned() -> None:
    """Otherwise the fraud of one day would be the usual behaviour of the next."""
    p = pipeline()
    feed(p, history())
    assert rules(feed(p, [call(TODAY + 10 * H, CUBA)])) == [("new_high_risk_destination", "critical")]
    assert rules(feed(p, [call(TODAY + DAY + 10 * H, CUBA)])) == [("new_high_risk_destination", "critical")]
    assert p.profiles is not None and "CU" not in p.profiles.profiles["6001"].countries


def test_a_usual_new_country_becomes_usual_the_next_day() -> None:
    p = pipeline()
    feed(p, history())
    feed(p, [call(TODAY + 10 * H, PARIS)])
    assert feed(p, [call(TODAY + DAY + 10 * H, PARIS), call(TODAY + DAY + 10.5 * H, ROME)]) == []


def test_trunks_and_gateways_in_accounts_exclude_are_not_judged() -> None:
    p = pipeline(accounts={"exclude": ["6001"]})
    assert feed(p, [*history(), call(TODAY + 3 * H, CUBA, src="198.51.100.23")]) == []


# --- persistence -----------------------------------------------------------------------------------

def test_a_profile_survives_the_store_unchanged(tmp_path: Path) -> None:
    p = pipeline()
    feed(p, history())
    assert p.profiles is not None
    store = Store(str(tmp_path / "sipwatch.db"))
    with store.transaction() as db:
        save(p, store, db)
    store.close()
    again = ProfileBook()
    again.load(Store(str(tmp_path / "sipwatch.db")).profiles())
    assert {a: q.to_json() for a, q in again} == {a: q.to_json() for a, q in p.profiles}


@pytest.mark.parametrize("cut", [5, 9, 10])  # days of history before the restart
def test_a_restart_with_the_store_decides_as_one_run(tmp_path: Path, cut: int) -> None:
    day = [call(TODAY + 10 * H + i * 120, n) for i, n in enumerate((PARIS, ROME, CUBA))]
    events = sorted(history() + day, key=lambda e: e.time)
    whole = rules(feed(pipeline(), events))
    store = Store(str(tmp_path / "sipwatch.db"))
    first, second = pipeline({"learning_days": 0}), pipeline({"learning_days": 0})
    split = next(i for i, e in enumerate(events) if e.time >= DAY0 + cut * DAY)
    attach(first, store, DAY0)
    feed(first, events[:split])
    with store.transaction() as db:
        save(first, store, db)
    attach(second, store, DAY0 + 20 * DAY)
    assert rules(feed(second, events[split:])) == whole == [("new_countries", "warning"),
                                                             ("new_high_risk_destination", "critical")]


def test_a_broken_stored_profile_is_relearned_not_a_crash(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "sipwatch.db"))
    good = Profile(DAY0, DAY0)
    with store.transaction() as db:
        store.save_profiles(db, [("6001", "{not json", 0.0), ("6002", '{"first": 1}', 0.0),
                                 ("6003", '{"h": [1, 2]}', 0.0), ("6004", json.dumps(good.to_json()), 1.0)])
    book = ProfileBook()
    book.load(store.profiles())
    assert sorted(book.bad) == ["6001", "6002", "6003"] and [a for a, _ in book] == ["6004"]


def test_the_book_is_bounded_least_recently_seen_first() -> None:
    book = ProfileBook(max_accounts=3)
    for n, account in enumerate(["a", "b", "c", "a", "d"]):
        book.touch(account, DAY0 + n)
    assert {a for a, _ in book} == {"c", "a", "d"}


# --- the learning mode ------------------------------------------------------------------------------

def _burst(start: float) -> list[Event]:
    """Ten outside calls in 45 s: the account rules' calls_per_minute critical."""
    return [call(start + i * 5, UK, minutes=0.05) for i in range(10)]


@pytest.mark.parametrize(("installed", "days", "held"), [
    pytest.param(TODAY - 6 * DAY, 7, True, id="day-7-of-7"),
    pytest.param(TODAY + 11 * H + 64 - 7 * DAY, 7, True, id="ending-a-second-after-the-last-deciding-call"),
    pytest.param(TODAY + 10 * H + 51 - 7 * DAY, 7, False, id="ending-at-the-first-deciding-call"),
    pytest.param(TODAY, 0, False, id="learning_days-0-turns-it-off"),
])
def test_the_learning_mode_holds_critical_decisions_as_alerts(tmp_path: Path, installed: float, days: int,
                                                              held: bool) -> None:
    p = pipeline({"learning_days": days})
    store = Store(str(tmp_path / "sipwatch.db"))
    attach(p, store, installed)
    acted: list[Decision] = []
    p.on_critical.append(acted.append)
    feed(p, history())
    decisions = [d for e in sorted([*_burst(TODAY + 10 * H), call(TODAY + 11 * H, CUBA)], key=lambda e: e.time)
                 for d in p.process(e) if d.rule in ("calls_per_minute", "new_high_risk_destination")]
    levels = [d.level for d in decisions]
    if held:
        assert "critical" not in levels and acted == []
        assert all("learning mode until" in d.reason for d in decisions if d.rule == "new_high_risk_destination")
    else:
        assert levels.count("critical") == 2 and {d.rule for d in acted} == {"calls_per_minute",
                                                                              "new_high_risk_destination"}


def test_a_new_installation_starts_its_learning_mode_at_its_first_start(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "sipwatch.db"))
    p = pipeline()
    attach(p, store, TODAY)
    assert (p.learning.since, p.learning.until) == (TODAY, TODAY + 7 * DAY)
    attach(pipeline(), store, TODAY + 3 * DAY)  # a restart keeps the first start
    assert store.installed() == TODAY


def test_a_plain_scan_has_no_learning_mode() -> None:
    p = pipeline()
    feed(p, history())
    assert rules(feed(p, [call(TODAY + 10 * H, CUBA)])) == [("new_high_risk_destination", "critical")]


# --- sipwatch learn ---------------------------------------------------------------------------------

def _master_csv(path: Path, start: float, days: int) -> None:
    rows = [cdr(start + d * DAY + hour * H, n, src=f"{OFFICE}:5060")
            for d in range(days) for hour, n in ((9, BERLIN), (11, BERLIN), (14, UK), (16, BERLIN))]
    path.write_text("".join(row + "\n" for row in rows))


def test_learn_builds_profiles_from_past_cdrs_that_the_daemon_then_judges_by(tmp_path: Path) -> None:
    master = tmp_path / "Master.csv"
    _master_csv(master, DAY0, 10)
    config = from_dict({"timezone": "UTC", "numbers": {"country": "DE", "international_prefixes": ["00"],
                                                        "access_codes": []}})
    store = Store(str(tmp_path / "state" / "sipwatch.db"))
    learned = learn([str(master)], config, store)
    assert (learned.accounts, learned.judged, learned.decisions) == (1, 1, 0)
    assert learned.first_seen == DAY0 + 9 * H + 60 == store.installed()  # the first record: a CDR row's end
    daemon_side = Pipeline(config)
    attach(daemon_side, store, TODAY)
    assert rules(feed(daemon_side, [call(TODAY + 10 * H, CUBA)])) == [("new_high_risk_destination", "critical")]


def test_sipwatch_learn_on_the_command_line(
        tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    master = tmp_path / "Master.csv"
    _master_csv(master, DAY0, 8)
    cfg = tmp_path / "sipwatch.toml"
    cfg.write_text('timezone = "UTC"\n[numbers]\ncountry = "DE"\n')
    done = run_cli("learn", str(master), "--config", str(cfg), "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 0, done.stderr
    assert "1 account profile(s)" in done.stdout and "1 with enough history to be judged" in done.stdout
    assert "learning mode over since 2024-05-08" in done.stdout  # a week after the history's first record
    assert len(Store(str(tmp_path / "state" / "sipwatch.db")).profiles()) == 1


def test_scan_with_a_state_dir_judges_by_the_learned_profiles_and_writes_nothing(
        tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    history_csv, today_csv = tmp_path / "history.csv", tmp_path / "today.csv"
    _master_csv(history_csv, DAY0, 8)
    today_csv.write_text(cdr(TODAY + 10 * H, CUBA, src=f"{OFFICE}:5060") + "\n")
    cfg = tmp_path / "sipwatch.toml"
    cfg.write_text('timezone = "UTC"\n[numbers]\ncountry = "DE"\n')
    state = tmp_path / "state"
    assert run_cli("learn", str(history_csv), "--config", str(cfg), "--state-dir", str(state)).returncode == 0
    stored = (state / "sipwatch.db").read_bytes()

    def judged(*more: str) -> dict[str, Any]:
        done = run_cli("scan", "--json", str(today_csv), "--config", str(cfg), *more)
        assert done.returncode == 0, done.stderr
        return {a["account"]: (a["decision"], a["rule"]) for a in json.loads(done.stdout)["accounts"]}

    assert judged("--state-dir", str(state))["6001"] == ("block", "new_high_risk_destination")
    assert judged()["6001"][0] != "block"  # without the profiles, a first call to Cuba is no news
    assert (state / "sipwatch.db").read_bytes() == stored


def test_scan_with_a_state_dir_whose_store_is_garbage_says_so(
        tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    master = tmp_path / "Master.csv"
    _master_csv(master, DAY0, 1)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "sipwatch.db").write_bytes(b"\x00garbage, not SQLite" * 100)
    done = run_cli("scan", str(master), "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 2 and "sipwatch.db" in done.stderr and "Traceback" not in done.stderr


def test_scan_with_a_state_dir_that_holds_no_store_says_so(
        tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    master = tmp_path / "Master.csv"
    _master_csv(master, DAY0, 1)
    done = run_cli("scan", str(master), "--state-dir", str(tmp_path / "nowhere"))
    assert done.returncode != 0 and "no store there" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "nowhere").exists()


# --- configuration ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("section", "key"), [
    ({"learning_days": -1}, "behaviour.learning_days"),
    ({"learning_days": "7d"}, "behaviour.learning_days"),
    ({"ipv4_prefix": 33}, "behaviour.ipv4_prefix"),
    ({"ipv6_prefix": 0}, "behaviour.ipv6_prefix"),
    ({"new_countries": [5, 2]}, "behaviour.new_countries"),
    ({"unusual_hour_percent": 101}, "behaviour.unusual_hour_percent"),
    ({"new_countries_window": "soon"}, "behaviour.new_countries_window"),
    ({"learn_days": 3}, "behaviour.learn_days"),
])
def test_a_bad_behaviour_setting_is_refused_with_its_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict({"behaviour": section})


def test_the_example_configuration_holds_the_defaults() -> None:
    import tomllib

    example = (Path(__file__).resolve().parent.parent / "examples" / "sipwatch.toml").read_text()
    assert from_dict({"behaviour": tomllib.loads(example)["behaviour"]}).behaviour == from_dict({}).behaviour


# --- the daemon ------------------------------------------------------------------------------------

def test_the_daemon_saves_profiles_with_each_bite_and_loads_them_at_start(tmp_path: Path) -> None:
    from sipwatch.daemon import Daemon
    from sipwatch.responders.firewall.dryrun import DryRunBackend

    master = tmp_path / "Master.csv"
    _master_csv(master, DAY0, 8)
    config = from_dict({"timezone": "UTC", "numbers": {"country": "DE", "international_prefixes": ["00"],
                                                        "access_codes": []},
                        "run": {"watch": [str(master)], "backend": "dry-run", "read_existing": True}})
    db = str(tmp_path / "state" / "sipwatch.db")
    daemon = Daemon(config, DryRunBackend(), Store(db))
    daemon.refresh()
    assert daemon.step().events == 32
    saved = dict(Store(db).profiles())
    assert list(saved) == ["6001"] and json.loads(saved["6001"])["days"] == 7
    again = Daemon(config, DryRunBackend(), Store(db))
    assert again.pipeline.profiles is not None and again.pipeline.profiles.get("6001") is not None
    assert again.pipeline.learning.since == Store(db).installed() is not None


def test_the_scan_does_not_list_an_office_address_among_the_offenders(tmp_path: Path) -> None:
    """A critical account rule on calls from the account's own learned network (a phone at its desk
    calling one premium number again and again) names the account, not its office as a hostile address."""
    from sipwatch.report import to_json
    from sipwatch.scan import scan

    master = tmp_path / "Master.csv"
    _master_csv(master, DAY0, 10)
    with master.open("a") as fh:
        for i in range(6):
            fh.write(cdr(TODAY + 10 * H + i * 30, PREMIUM, duration=20, src=f"{OFFICE}:5060") + "\n")
    config = from_dict({"timezone": "UTC", "numbers": {"country": "DE", "international_prefixes": ["00"],
                                                        "access_codes": []},
                        "accounts": {"limits": {"sequential": [3, 5]}}})
    report = to_json(scan([str(master)], config, processes=False))
    account = next(a for a in report["accounts"] if a["account"] == "6001")  # type: ignore[union-attr]
    assert ("sequential", "critical") in {(d["rule"], d["level"]) for d in account["decisions"]}
    assert report["offenders"] == []


def test_the_scan_reports_the_stolen_credentials_address_among_the_offenders(tmp_path: Path) -> None:
    """A plain scan of a month's Master.csv learns the first days and judges the later ones."""
    from sipwatch.report import to_json
    from sipwatch.scan import scan

    master = tmp_path / "Master.csv"
    _master_csv(master, DAY0, 10)
    thief = "198.51.100.23"
    with master.open("a") as fh:
        for i, number in enumerate((CUBA, SATELLITE)):
            fh.write(cdr(TODAY + 2 * H + i * 30, number, duration=1200, src=f"{thief}:41000") + "\n")
    config = from_dict({"timezone": "UTC", "numbers": {"country": "DE", "international_prefixes": ["00"],
                                                        "access_codes": []}})
    report = to_json(scan([str(master)], config, processes=False))
    assert [o["ip"] for o in report["offenders"]] == [thief]  # type: ignore[index]
    account = next(a for a in report["accounts"] if a["account"] == "6001")  # type: ignore[union-attr]
    assert {(d["rule"], d["level"]) for d in account["decisions"]} >= {("new_high_risk_destination", "critical")}


def _odd_logins(seed: int, n: int) -> list[Event]:
    """Logins and registrations of a few accounts, from a few networks, with and without user agents, over
    days (profiles roll, get judged, meet new networks), among the accounts' calls."""
    import random

    rng = random.Random(seed)
    events: list[Event] = []
    now = DAY0
    for _ in range(n):
        now += rng.choice([0.01, 0.5, 3.0, 6.0, 600.0, 5 * H, DAY])
        account = rng.choice(["6001", "6002", "6003", "6004", ""])
        ip = rng.choice([OFFICE, "192.0.2.77", "198.51.100.23", "2001:db8::5", None])
        agent = rng.choice([None, None, "", PHONE, "Zoiper rv2.10"])
        pick = rng.random()
        if pick < 0.45:
            events.append(Event(now, Kind.AUTH_SUCCESS, Service.PJSIP, account=account, user_agent=agent,
                                ip=ipaddress.ip_address(ip) if ip else None))
        elif pick < 0.6:
            events.append(Event(now, Kind.REGISTRATION, Service.PJSIP, account=account, user_agent=agent))
        elif account:
            events.append(call(now, rng.choice([BERLIN, UK, "6002", CUBA]), src=ip or OFFICE, account=account))
    return events


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_accounts", [2, 1000])
def test_odd_logins_leave_the_same_profiles_and_decisions_in_python_and_c(seed: int, max_accounts: int) -> None:
    """`_learned.c` learns a login that finds nothing (a known network, no user agent) itself: the profiles,
    the paired logins, the dirty accounts and every decision are those of the Python observe."""
    if core._learned is None:
        pytest.skip("the C learned behaviour is not built (needs gcc and python3-dev)")
    settings = {"min_days": 2, "min_calls": 2, "max_accounts": max_accounts}
    events = _odd_logins(seed, 1500)
    both = []
    for way in ("python", "c"):
        _OBSERVE_IN[0] = way
        p = pipeline(settings)
        decided = feed(p, [copy.copy(e) for e in events])
        detector = next(d for d in p.detectors if isinstance(d, BehaviourDetector))
        both.append(([d.to_json() for d in decided], repr(detector.book.profiles), repr(detector._recent),
                     sorted(detector.book.dirty), repr(detector._office_agents)))
    assert both[0] == both[1]
    assert both[0][0]  # (the stream does find things)


def test_what_a_call_taught_is_kept_on_the_call_and_not_learned_twice() -> None:
    """A call's records come one by one: what the first taught (its source, its destination, its talk minutes)
    is marked on the call itself, and the same record again teaches the profile nothing more."""
    p = pipeline()
    row = call(TODAY + 9 * H, BERLIN, minutes=2.0)
    feed(p, [row])
    found = p.calls.current
    assert found is not None
    learned = found[0]
    assert learned.judged & (SOURCE | DESTINATION) == SOURCE | DESTINATION
    assert learned.learned_minutes == pytest.approx(2.0)
    detector = next(d for d in p.detectors if isinstance(d, BehaviourDetector))
    before = repr(detector.book.profiles)
    feed(p, [copy.copy(row)])  # (the same call's row again: Master.csv and the account's own file)
    assert p.calls.current is not None and p.calls.current[0] is learned
    assert repr(detector.book.profiles) == before
