"""Detector behaviour through `sipwatch.pipeline.Pipeline`, fed with constructed events.

Time is the events' own (seconds from an arbitrary origin), so windows are tested at their edges
exactly: an event `window` seconds before the newest one is still inside; one more second is not.
Defaults (README, "Detection defaults"): brute force 6 in 300 s, enumeration 5 accounts in 600 s,
3 rejected calls in 600 s, INVITE flood 30 in 60 s, prefix walking 10 prefixes in 10 s,
distributed 10 addresses in 3600 s, stale password 5 in 3600 s, unanswered challenges 20 in 60 s.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import pytest

from sipwatch.config import Config, ConfigError, from_dict
from sipwatch.detectors import Action, Decision
from sipwatch.event import Event, Evidence, Kind, Service
from sipwatch.numbers import NumberClassifier
from sipwatch.pipeline import Pipeline

ATTACKER = "198.51.100.7"
T0 = 1_714_557_600.0  # 2024-05-01 10:00:00 UTC


def ev(t: float, kind: Kind = Kind.AUTH_FAILURE, ip: str | None = ATTACKER, *, port: int | None = 5060,
       account: str | None = "6001", target: str | None = None, form: str = "chan_sip.register_failed",
       reason: str = "Wrong password", evidence: Evidence = Evidence.WEAK, service: Service = Service.SIP,
       extra: dict[str, str] | None = None) -> Event:
    """An event `t` seconds after T0, shaped like one a parser makes."""
    return Event(time=T0 + t, kind=kind, service=service, ip=ipaddress.ip_address(ip) if ip else None, port=port,
                 account=account, target=target, evidence=evidence, form=form, reason=reason, extra=extra or {})


def call(t: float, target: str, ip: str = ATTACKER, kind: Kind = Kind.CALL_ATTEMPT) -> Event:
    return ev(t, kind, ip, account=None, target=target, form="asterisk.unknown_peer_call", reason="")


def config(**sections: Any) -> Config:
    return from_dict(sections)


def run(events: Iterable[Event], cfg: Config | None = None) -> list[Decision]:
    pipeline = Pipeline(cfg or Config())
    return [d for e in events for d in pipeline.process(e)]


def by(decisions: list[Decision], detector: str, action: Action | None = None) -> list[Decision]:
    return [d for d in decisions if d.detector == detector and (action is None or d.action == action)]


def bans(decisions: list[Decision]) -> list[Decision]:
    return [d for d in decisions if d.action == Action.BAN]


# --- brute force ---------------------------------------------------------------------------------------

def test_brute_force_bans_at_exactly_the_threshold_on_the_window_edge() -> None:
    """Six failures spanning exactly the 300 s window: the sixth bans."""
    decisions = run(ev(t) for t in (0, 60, 120, 180, 240, 300))
    (ban,) = by(decisions, "brute_force", Action.BAN)
    assert (str(ban.ip), ban.time) == (ATTACKER, T0 + 300)


def test_brute_force_below_the_threshold_does_not_ban() -> None:
    """Five failures are a phone with a typo, not yet an attack."""
    assert bans(run(ev(t) for t in (0, 10, 20, 30, 40))) == []


def test_brute_force_attempts_straddling_the_window_do_not_ban() -> None:
    """Six failures spread over 301 s: at the sixth, the first is out of the window."""
    assert bans(run(ev(t) for t in (0, 61, 122, 183, 244, 301))) == []


def test_brute_force_counts_per_address() -> None:
    """Failures from two addresses are not added up."""
    events = [ev(t, ip=ATTACKER if t % 2 else "198.51.100.8") for t in range(10)]
    assert bans(run(events)) == []


def test_lines_of_one_request_count_once() -> None:
    """PJSIP writes `No matching endpoint found`, `Failed to authenticate` and a security event for one
    request within a second: five such requests (15 lines) are five attempts, not fifteen."""
    events = []
    for i in range(5):
        t = 30.0 * i
        events += [
            ev(t, Kind.UNKNOWN_ACCOUNT, form="pjsip.request_failed", reason="No matching endpoint found"),
            ev(t + 0.01, Kind.AUTH_FAILURE, form="pjsip.request_failed", reason="Failed to authenticate"),
            ev(t + 0.2, Kind.UNKNOWN_ACCOUNT, form="asterisk.security", reason="InvalidAccountID"),
        ]
    decisions = run(events)
    assert bans(decisions) == []
    assert [e.repeat for e in events[:3]] == [False, True, True]


def test_sixth_request_of_three_lines_bans() -> None:
    """The same, one request more: six attempts ban."""
    events = []
    for i in range(6):
        t = 30.0 * i
        events += [
            ev(t, Kind.UNKNOWN_ACCOUNT, form="pjsip.request_failed", reason="No matching endpoint found"),
            ev(t + 0.01, Kind.AUTH_FAILURE, form="pjsip.request_failed", reason="Failed to authenticate"),
            ev(t + 0.2, Kind.UNKNOWN_ACCOUNT, form="asterisk.security", reason="InvalidAccountID"),
        ]
    assert len(by(run(events), "brute_force", Action.BAN)) == 1


def test_svcrack_same_call_id_repeated_counts_each_request() -> None:
    """svcrack reuses one Call-ID for every guess and sends them fast: the same form again is a new request."""
    events = [ev(0.1 * i, form="pjsip.request_failed", reason="Failed to authenticate") for i in range(6)]
    for e in events:
        e.session = "1287437621"
    assert len(by(run(events), "brute_force", Action.BAN)) == 1


# --- enumeration ---------------------------------------------------------------------------------------

def test_enumeration_bans_on_distinct_accounts() -> None:
    """svwar walks extensions: five distinct accounts from one address is enumeration."""
    events = [ev(10 * i, Kind.UNKNOWN_ACCOUNT, account=str(100 + i), reason="No matching peer found")
              for i in range(5)]
    (ban,) = by(run(events), "enumeration", Action.BAN)
    assert str(ban.ip) == ATTACKER


def test_enumeration_ignores_repeats_of_one_account() -> None:
    """Five failures on one account are not an enumeration (and not yet brute force)."""
    events = [ev(10 * i, Kind.UNKNOWN_ACCOUNT, reason="No matching peer found") for i in range(5)]
    assert run(events) == []


def test_enumeration_outside_the_window_does_not_ban() -> None:
    """Five accounts over more than 600 s are not counted together."""
    events = [ev(151 * i, Kind.UNKNOWN_ACCOUNT, account=str(100 + i), reason="No matching peer found")
              for i in range(5)]
    assert by(run(events), "enumeration") == []


# --- rejected calls and INVITE floods ---------------------------------------------------------------------

def test_rejected_calls_ban_at_three() -> None:
    """Three calls to extensions that do not exist: an INVITE scanner."""
    events = [call(10 * i, target, kind=Kind.REJECTED_CALL) for i, target in enumerate(["100", "101", "102"])]
    (ban,) = by(run(events), "rejected_calls", Action.BAN)
    assert str(ban.ip) == ATTACKER


def test_two_rejected_calls_do_not_ban() -> None:
    """A misdial or two is normal."""
    events = [call(10 * i, target, kind=Kind.REJECTED_CALL) for i, target in enumerate(["100", "101"])]
    assert bans(run(events)) == []


def test_rejected_calls_to_empty_extension() -> None:
    """`to extension ''` (a scanner's empty Request-URI user) counts like any other and is reported."""
    events = [call(10 * i, "", kind=Kind.REJECTED_CALL) for i in range(3)]
    (ban,) = by(run(events), "rejected_calls", Action.BAN)
    assert "''" in ban.reason


def test_invite_flood_bans_at_thirty_calls_a_minute() -> None:
    """Thirty call attempts within 60 s from one address is a flood, whatever was dialled."""
    events = [call(2 * i, "100") for i in range(30)]
    (ban,) = by(run(events), "invite_flood", Action.BAN)
    assert ban.time == T0 + 58


def test_calls_below_flood_rate_do_not_ban() -> None:
    """Twenty-nine attempts a minute are below the flood threshold."""
    assert bans(run(call(2 * i, "100") for i in range(29))) == []


# --- scanners -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [Kind.SCANNER, Kind.FLOOD])
def test_scanner_or_flood_event_bans_at_once(kind: Kind) -> None:
    """A scanner fingerprint or a pike block is conclusive on its own."""
    (ban,) = bans(run([ev(0, kind, account=None, form="asterisk.sip_dump", reason="SIPVicious")]))
    assert (ban.detector, str(ban.ip)) == ("scanner", ATTACKER)


def test_scanner_event_without_address_bans_nobody() -> None:
    """`Friendly Scanner from <Via host>` has no trustworthy address."""
    assert bans(run([ev(0, Kind.SCANNER, ip=None, form="freepbx.friendly_scanner", reason="")])) == []


# --- toll fraud -----------------------------------------------------------------------------------------

ONLY_TOLL_FRAUD = {"detectors": {"rejected_calls": {"enabled": False}, "toll_fraud": {"probes": 50}}}


def test_same_number_behind_different_access_prefixes_bans() -> None:
    """`00972…`, `000972…` and `9011972…` are one subscriber number: probing which prefix gets out."""
    events = [call(0, "0097259123456"), call(5, "00097259123456"), call(10, "901197259123456")]
    (ban,) = by(run(events, config(**ONLY_TOLL_FRAUD)), "toll_fraud", Action.BAN)
    assert "+97259123456" in ban.reason


def test_different_international_numbers_are_not_the_same_number_probe() -> None:
    """Two different international numbers are not a prefix probe (with the probe count set high)."""
    events = [call(0, "0097259123456"), call(5, "0046812345678")]
    assert by(run(events, config(**ONLY_TOLL_FRAUD)), "toll_fraud") == []


@pytest.mark.parametrize(
    "targets",
    [
        pytest.param(["0019005551234", "0019005559876"], id="nanp-premium-rate"),
        pytest.param(["00882123456789", "00881612345678"], id="international-networks"),
        pytest.param(["0025261234567", "0022031234567"], id="high-risk-countries"),
    ],
)
def test_calls_to_premium_or_high_risk_numbers_ban(targets: list[str]) -> None:
    """With the PBX's country set, two calls to premium-rate or high-risk destinations are toll fraud."""
    cfg = config(numbers={"country": "DE"}, detectors={"rejected_calls": {"enabled": False}})
    events = [call(60 * i, t) for i, t in enumerate(targets)]
    (ban,) = by(run(events, cfg), "toll_fraud", Action.BAN)
    assert str(ban.ip) == ATTACKER


def test_domestic_calls_are_not_toll_fraud() -> None:
    """Ordinary national numbers of the PBX's own country are no probe."""
    cfg = config(numbers={"country": "DE"}, detectors={"rejected_calls": {"enabled": False}})
    events = [call(60 * i, t) for i, t in enumerate(["03012345678", "08912345678", "004930123456"])]
    assert by(run(events, cfg), "toll_fraud") == []


def test_domestic_premium_rate_number_is_premium() -> None:
    """With country DE, 0900… is a national premium-rate number, not an international call to +1234567."""
    number = NumberClassifier("DE").classify("09001234567")
    assert (number.e164, number.number_type) == ("+499001234567", "premium_rate")


@pytest.mark.parametrize(
    ("dialled", "region"),
    [
        pytest.param("00252612345678", "SO", id="one-country-code"),
        pytest.param("002526123456789012", "SO", id="impossible-length-still-somalia"),
        pytest.param("00882123456789", "001", id="international-network"),
        pytest.param("0018765551234", "JM", id="nanp-needs-the-full-number"),
        pytest.param("00442071838750", "GB", id="shared-code-44"),
        pytest.param("00447911123456", "GG", id="shared-code-44-guernsey-mobile"),
        pytest.param("0014165551234", "CA", id="nanp-canada"),
        pytest.param("0077012345678", "KZ", id="shared-code-7"),
        pytest.param("00390669812345", "VA", id="shared-code-39-leading-zero"),
        pytest.param("0044207946", "GB", id="shared-code-unplaceable-main-country"),
        pytest.param("030123456", "DE", id="national"),
        pytest.param("0001234567", None, id="no-calling-code-starts-with-0"),
    ],
)
def test_region_of_a_dialled_number(dialled: str, region: str | None) -> None:
    """A ban's reason names the countries dialled: read from the calling code when it is one country's,
    from the digits as they are when several share it (no phonenumbers parse per attacker's number)."""
    assert NumberClassifier("DE").region_of(dialled) == region


@pytest.mark.parametrize("code", [1, 7, 39, 44, 47, 61, 212, 262, 290, 358, 590, 599])
def test_a_shared_calling_code_is_placed_as_phonenumbers_places_it(code: int) -> None:
    """Every region's example numbers of a code that several regions share, and made-up digits of every
    length: the region the reason names is phonenumbers' own (or the code's main country when it names
    none), without its parse."""
    import random

    import phonenumbers

    rng = random.Random(code)
    numbers = [phonenumbers.example_number_for_type(region, kind)
               for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]
               for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE)]
    numbers += [phonenumbers.PhoneNumber(country_code=code, national_number=rng.randrange(10 ** n, 10 ** (n + 1)))
                for n in range(5, 13) for _ in range(50)]
    for number in filter(None, numbers):
        national = phonenumbers.national_significant_number(number)
        expected = phonenumbers.region_code_for_number(number) or phonenumbers.region_code_for_country_code(code)
        assert NumberClassifier._shared_region(str(code), national) == expected, national


@pytest.mark.parametrize(
    ("dialled", "international"),
    [
        ("0097235551234", "+97235551234"),
        ("9011972 3555-1234", "+97235551234"),  # outside line, NANP prefix, spaces and dashes
        ("0000972355512345", "+972355512345"),  # `0` + `00` + a zero too many
        ("+4420794600", "+4420794600"),
        ("00123456", None),  # fewer than 7 digits after the prefix
        ("0049x1234567", None),
        ("030123456", None),  # national
        ("00٤٤٢٠٧٩٤٦٠٠", "+٤٤٢٠٧٩٤٦٠٠"),  # Arabic-Indic digits: the step-by-step reading, as before
    ],
)
def test_the_international_form_of_a_dialled_number(dialled: str, international: str | None) -> None:
    assert NumberClassifier("DE").international_form(dialled) == international


@pytest.mark.parametrize(("intl", "access"), [(("00", "011", "810", "+"), ("9", "0")), (("00",), ()),
                                              (("+", "0011", "00"), ("9", "99", "")), ((), ("9",))])
def test_the_international_form_in_one_regex_reads_as_the_steps_do(intl: tuple[str, ...], access: tuple[str, ...]
                                                                  ) -> None:
    """Made-up dialled strings, half of them behind outside-line codes and prefixes: the regex and the
    step-by-step reading agree on every one."""
    import random

    rng = random.Random(5)
    classifier = NumberClassifier("", intl, access)
    for _ in range(20_000):
        text = "".join(rng.choice("0123456789+ -#a" if rng.random() < 0.3 else "00000123456789")
                       for _ in range(rng.randint(0, 20)))
        if rng.random() < 0.5:
            text = rng.choice(["", *access]) + rng.choice([*intl, "0", ""]) + text
        digits = text.strip().replace(" ", "").replace("-", "")
        assert classifier._international_form(text) == classifier._international_form_of(digits), text


@pytest.mark.parametrize(
    ("dialled", "described"),
    [
        pytest.param("0018765551234", ("+18765551234", "Jamaica"), id="risk-table"),
        pytest.param("00882123456789", ("+882123456789", "international networks"), id="network"),
        pytest.param("0046812345678", ("+46812345678", None), id="no-risk"),
        pytest.param("5551", ("5551", None), id="not-international"),
    ],
)
def test_describe_a_number_for_a_reason_without_classifying_it(dialled: str, described: tuple[str, str | None]
                                                                ) -> None:
    """A toll-fraud ban names one number and its risk from the table alone: an attacker's thousands of
    distinct numbers are never parsed by phonenumbers for a reason's text."""
    classifier = NumberClassifier()
    number, risk = classifier.describe(dialled)
    assert (number, risk and risk.split(",")[0].split(" (")[0]) == described
    assert dialled not in classifier._cache


def test_toll_fraud_reason_names_the_countries_dialled() -> None:
    cfg = config(numbers={"country": "DE"}, detectors={"rejected_calls": {"enabled": False}})
    events = [call(0, "0025261234567"), call(60, "0018765551234")]
    (ban,) = by(run(events, cfg), "toll_fraud", Action.BAN)
    assert "(JM, SO)" in ban.reason


def test_prefix_walking_bans_at_ten_prefixes_in_ten_seconds() -> None:
    """Ten distinct number prefixes in 10 s: a dial-plan walk looking for a way out."""
    events = [call(i, f"55{i}0100") for i in range(10)]
    (ban,) = by(run(events, config(**ONLY_TOLL_FRAUD)), "toll_fraud", Action.BAN)
    assert "prefix walking" in ban.reason


def test_prefix_walking_slower_than_the_window_does_not_ban() -> None:
    """The same ten prefixes over 18 s never have ten inside one 10 s window."""
    events = [call(2 * i, f"55{i}0100") for i in range(10)]
    assert by(run(events, config(**ONLY_TOLL_FRAUD)), "toll_fraud") == []


# --- distributed attacks ---------------------------------------------------------------------------------

def test_distributed_attack_alerts_on_the_account_without_an_address() -> None:
    """Ten addresses failing once each on one account: nobody to ban, but the account is under attack."""
    events = [ev(30 * i, ip=f"198.51.100.{10 + i}") for i in range(10)]
    decisions = run(events)
    (alert,) = by(decisions, "distributed", Action.ALERT)
    assert (alert.ip, alert.account) == (None, "6001")
    assert bans(decisions) == []


def test_nine_addresses_are_not_yet_distributed() -> None:
    """Below the address threshold there is no alert."""
    assert run(ev(30 * i, ip=f"198.51.100.{10 + i}") for i in range(9)) == []


# --- stale passwords -------------------------------------------------------------------------------------

def _logged_in(t: float = 0) -> Event:
    return ev(t, Kind.AUTH_SUCCESS, form="asterisk.security", reason="SuccessfulAuth")


def test_stale_password_alerts_and_never_bans() -> None:
    """A phone that logged in as 6001 and now fails on 6001 has an old password: alert the admin."""
    events = [_logged_in(), *(ev(60 + 30 * i) for i in range(12))]
    decisions = run(events)
    assert bans(decisions) == []
    alerts = by(decisions, "stale_password", Action.ALERT)
    assert alerts and all((str(a.ip), a.account) == (ATTACKER, "6001") for a in alerts)


def test_known_address_failing_on_another_account_is_banned() -> None:
    """Owning 6001 is no licence to guess 6002's password: wrong answers to challenges (a round trip)."""
    events = [_logged_in(), *(ev(60 + 30 * i, account="6002", evidence=Evidence.STRONG) for i in range(6))]
    assert len(by(run(events), "brute_force", Action.BAN)) == 1


@pytest.mark.parametrize("kind", [Kind.AUTH_FAILURE, Kind.UNKNOWN_ACCOUNT])
def test_one_packet_failures_in_a_phone_s_name_do_not_lock_it_out(kind: Kind) -> None:
    """A phone logged in as 6001 from its address; then single UDP packets that anyone can send with that
    source address fail on other accounts: an alert that says so, never a ban of the phone."""
    events = [_logged_in(), *(ev(60 + 5 * i, kind, account=f"70{i:02d}") for i in range(12))]
    decisions = run(events)
    assert bans(decisions) == []
    alerts = [d for d in decisions if d.action is Action.ALERT and d.ip is not None]
    assert alerts and all("logged in as 6001" in a.reason for a in alerts)


def test_one_packet_failures_ban_without_the_setting() -> None:
    events = [_logged_in(), *(ev(60 + 5 * i, account=f"70{i:02d}") for i in range(12))]
    assert bans(run(events, config(policy={"spare_logged_in": False})))


# --- unanswered challenges ------------------------------------------------------------------------------

def _challenge(t: float) -> Event:
    return ev(t, Kind.AUTH_CHALLENGE, form="asterisk.security", reason="ChallengeSent", extra={"Challenge": f"n{t}"})


def test_unanswered_challenges_ban() -> None:
    """Twenty challenges in a minute and no login: an INVITE flood against allowguest=no."""
    (ban,) = by(run(_challenge(2.5 * i) for i in range(20)), "unanswered_challenges", Action.BAN)
    assert str(ban.ip) == ATTACKER


def test_answered_challenges_do_not_ban() -> None:
    """A busy phone is challenged for every request and answers each one."""
    events = []
    for i in range(40):
        events += [_challenge(1.5 * i), _logged_in(1.5 * i + 0.1)]
    assert bans(run(events)) == []


def test_failure_answering_our_nonce_is_strong_evidence() -> None:
    """An InvalidPassword carrying a nonce we sent to that address proves a round trip."""
    failure = ev(1, form="asterisk.security", reason="InvalidPassword", extra={"Challenge": "n0"})
    run([_challenge(0), failure])
    assert failure.evidence == Evidence.STRONG


# --- injection ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ip", [ATTACKER, None])
def test_injection_alerts_and_never_bans(ip: str | None) -> None:
    """A forged record is worth an alert; it is never grounds for a ban."""
    decisions = run(ev(i, Kind.INJECTION, ip=ip, reason="caller text holds a line break") for i in range(10))
    assert decisions and all(d.action == Action.ALERT for d in decisions)


# --- policy ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ip", ["127.0.0.1", "::1"])
def test_loopback_is_never_banned(ip: str) -> None:
    """A local process (e.g. a proxy on the same host) is never cut off; the admin is told instead."""
    decisions = run(ev(10 * i, ip=ip) for i in range(6))
    assert bans(decisions) == []
    (alert,) = by(decisions, "brute_force", Action.ALERT)
    assert "loopback" in alert.reason


@pytest.mark.parametrize("ip", ["192.0.2.40", "2001:db8:100::40"])
def test_allowlisted_address_is_never_banned(ip: str) -> None:
    """Trunks and offices in `policy.allowlist` get an alert, not a ban."""
    cfg = config(policy={"allowlist": ["192.0.2.0/24", "2001:db8:100::/48"]})
    decisions = run((ev(10 * i, ip=ip) for i in range(6)), cfg)
    assert bans(decisions) == []
    (alert,) = by(decisions, "brute_force", Action.ALERT)
    assert "allowlisted" in alert.reason


def test_weak_evidence_gets_the_shorter_ban() -> None:
    """Spoofable single UDP datagrams: the short ban (default 10 min)."""
    (ban,) = bans(run(ev(10 * i, Kind.UNKNOWN_ACCOUNT, evidence=Evidence.WEAK) for i in range(6)))
    assert ban.duration == Config().policy.ban_weak


def test_strong_evidence_gets_the_longer_ban() -> None:
    """A round trip was completed: the long ban (default 1 h)."""
    (ban,) = bans(run(ev(10 * i, evidence=Evidence.STRONG) for i in range(6)))
    assert ban.duration == Config().policy.ban_strong


def test_second_ban_inside_the_ban_time_is_suppressed() -> None:
    """While an address is banned, more of its attempts make no second ban decision."""
    decisions = run(ev(10 * i) for i in range(12))  # second sextet ends at 110 s, inside the 600 s ban
    assert len(bans(decisions)) == 1


def test_address_is_banned_again_after_its_ban_expires() -> None:
    """Once the ban has run out, a new attack gets a new ban."""
    first = [ev(10 * i) for i in range(6)]
    second = [ev(1000 + 10 * i) for i in range(6)]
    assert len(bans(run(first + second))) == 2


# --- configuration --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("data", "key"),
    [
        pytest.param({"detectors": {"brute_force": {"attemps": 5}}}, "detectors.brute_force.attemps",
                     id="misspelt-key"),
        pytest.param({"detector": {}}, "detector", id="unknown-section"),
        pytest.param({"detectors": {"brute_force": {"attempts": "six"}}}, "detectors.brute_force.attempts",
                     id="string-for-int"),
        pytest.param({"detectors": {"brute_force": {"attempts": 0}}}, "detectors.brute_force.attempts",
                     id="zero-attempts"),
        pytest.param({"detectors": {"brute_force": {"enabled": "yes"}}}, "detectors.brute_force.enabled",
                     id="string-for-bool"),
        pytest.param({"detectors": {"enumeration": {"window": "ten minutes"}}}, "detectors.enumeration.window",
                     id="bad-duration"),
        pytest.param({"detectors": {"scanner": True}}, "detectors.scanner", id="value-for-table"),
        pytest.param({"policy": {"allowlist": "192.0.2.0/24"}}, "policy.allowlist", id="string-for-list"),
        pytest.param({"policy": {"allowlist": ["192.0.2.0/33"]}}, "policy.allowlist", id="bad-network"),
        pytest.param({"numbers": {"country": 49}}, "numbers.country", id="int-for-string"),
    ],
)
def test_config_error_names_the_key(data: dict[str, Any], key: str) -> None:
    """A wrong key or type is reported with its dotted key, so the admin can find it."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict(data)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(300, 300.0), (1.5, 1.5), ("90s", 90.0), ("10m", 600.0), ("2h", 7200.0), ("1d", 86400.0), ("500ms", 0.5)],
)
def test_config_durations(value: object, seconds: float) -> None:
    """Windows and ban times are seconds or strings with a unit."""
    assert from_dict({"detectors": {"brute_force": {"window": value}}}).detectors.brute_force.window == seconds


def test_ban_storm_breaker_holds_and_alerts() -> None:
    """Too many bans within seconds (a flood of forged lines?): the rest become alerts, nothing is banned."""
    cfg = config(policy={"storm_bans": 3, "storm_window": "10s"}, detectors={"scanner": {"enabled": True}})
    pipeline = Pipeline(cfg)
    decisions = [d for i in range(5)
                 for d in pipeline.process(Event(float(i) / 10, Kind.SCANNER, Service.SIP,
                                                 ipaddress.ip_address(f"198.51.100.{i + 1}"), reason="probe"))]
    assert [d.action for d in decisions] == [Action.BAN] * 3 + [Action.ALERT] * 2
    assert "held" in decisions[-1].reason


def test_allowlisted_host_names_are_resolved_and_never_banned() -> None:
    pipeline = Pipeline(config(policy={"allowlist": ["localhost"], "allow_loopback": True}))
    pipeline.policy.resolve()
    assert pipeline.policy.protected(ipaddress.ip_address("127.0.0.1")) == "allowlisted (localhost)"


@pytest.mark.parametrize("native_on", [True, False], ids=["c", "python"])
def test_numbers_classified_in_a_worker_are_remembered_as_classified_here(native_on: bool,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The tuples a parse worker sends become the very Classified objects `classify` would make, in the cache
    (the oldest going when it is full), whether C or Python files them."""
    from sipwatch import numbers
    from sipwatch.formats import native

    monkeypatch.setattr(native, "available", lambda: native_on)
    monkeypatch.setattr(numbers, "MAX_CACHED", 3)
    dialled = ["004420794600", "0033142685300", "09001234567", "6002", "00881612345678"]
    sent = [NumberClassifier("DE").classify(d).to_tuple() for d in dialled]
    here, one_by_one = NumberClassifier("DE"), NumberClassifier("DE")
    here.remember_all(sent[:2])
    here.remember_all(sent[1:])  # (one sent twice)
    for number in [*sent[:2], *sent[1:]]:
        one_by_one.remember(numbers.Classified(*number))
    assert list(here._cache) == list(one_by_one._cache) == dialled[-3:]
    assert list(here._cache.values()) == list(one_by_one._cache.values())
    assert [type(c) for c in here._cache.values()] == [numbers.Classified] * 3
    assert here.classify("00881612345678") is here._cache["00881612345678"]


def test_international_forms_from_a_worker_are_remembered_within_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The forms a parse worker sends are the ones worked out here, and the cache of them stays bounded."""
    from sipwatch import numbers

    monkeypatch.setattr(numbers, "INTL_CACHED", 4)
    dialled = ["9011972501234567", "0033142685300", "6002", "+1 876 555 0100", "00abc12345678", "000441234567890"]
    here = NumberClassifier("US", international_prefixes=("011", "00"), access_codes=("9", "0"))
    sent = NumberClassifier("US", international_prefixes=("011", "00"), access_codes=("9", "0"))
    here.remember_forms(sent.international_forms(dialled[:3]))
    assert here._intl == dict(sent.international_forms(dialled[:3]))
    here.remember_forms(sent.international_forms(dialled[3:]))
    assert len(here._intl) <= 4
    assert list(here._intl) == dialled[2:]  # the older half went, not everything
    fresh = NumberClassifier("US", international_prefixes=("011", "00"), access_codes=("9", "0"))
    assert [here.international_form(d) for d in dialled] == [fresh.international_form(d) for d in dialled]


@pytest.mark.parametrize("first, second", [("0044148125678", "00441481256789"), ("0044778112345", "00447781123456")])
def test_the_region_of_a_shared_code_is_each_numbers_own(first: str, second: str) -> None:
    """Two numbers of a shared calling code that begin alike may be in different regions (a Guernsey number,
    and one a digit short that no region claims: the code's main country): each is placed by its own digits,
    whichever is met first."""
    for order in ((first, second), (second, first)):
        classifier = NumberClassifier("DE")
        assert {d: classifier.region_of(d) for d in order} == {first: "GB", second: "GG"}


def test_a_number_takes_the_risk_of_its_longest_prefix_in_the_table() -> None:
    """The table is looked up by prefix length, longest first: whatever the table holds (a configured prefix
    inside a listed one, or one as long as the number itself), a number gets the entry of its longest prefix."""
    from sipwatch.numbers import RISK_TABLE

    classifier = NumberClassifier("DE", extra_high_risk=("+8821", "+4490", "+37069", "+2"))
    table = classifier.high_risk
    numbers = [p + tail for p in [*RISK_TABLE, "+8821", "+4490", "+2", "+1"] for tail in ("", "0", "1234567", "99")]
    for number in numbers:
        longest = max((p for p in table if number.startswith(p)), key=len, default=None)
        expected = table[longest] if longest is not None else (None, None)
        assert classifier._risk(number, None) == expected, number


WORKER_NUMBERS = ["004420794600", "0033142685300", "09001234567", "6002", "00881612345678", "+4930123456",
                  "9011972501234567", "0301234567", "90301234567", "12345678901", "+1 876 555 0100", "00", "",
                  "  6001 ", "0088213479924488", "0900", "00abc12345678", "001900555012345"]


@pytest.mark.parametrize("country", ["DE", "US", ""])
def test_a_parse_worker_s_values_are_what_classify_makes(country: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`values` (what a worker sends, no Classified made) is `classify(...).to_tuple()`, remembered and bounded."""
    from sipwatch import numbers

    monkeypatch.setattr(numbers, "MAX_CACHED", 5)
    worker, here = NumberClassifier(country), NumberClassifier(country)
    for dialled in WORKER_NUMBERS * 2:
        assert worker.values(dialled) == here.classify(dialled).to_tuple(), dialled
        assert len(worker._values) <= 5


def test_a_malformed_classified_tuple_is_refused_not_filed() -> None:
    from sipwatch import numbers

    _calls = pytest.importorskip("sipwatch._calls", reason="the C call book is not built (needs gcc and python3-dev)")

    cache: dict[str, object] = {}
    with pytest.raises(TypeError):
        _calls.remember(cache, numbers.Classified, numbers.CLASSIFIED_FIELDS, [("6002", None)], 10)
    assert cache == {}


def test_a_ban_lets_every_detector_forget_the_address_and_nothing_else() -> None:
    """`Pipeline.forget` empties the banned address's windows in every detector that keeps windows by address
    (popped directly), still calls the own `forget` of the others, and leaves other addresses alone."""
    from sipwatch.detectors.base import DistinctWindows, ForgetsByAddress

    pipeline = Pipeline(Config())
    banned, other = ipaddress.ip_address("198.51.100.7"), ipaddress.ip_address("198.51.100.8")
    keyed = [w for d in pipeline.detectors if isinstance(d, ForgetsByAddress) for w in d.address_windows]
    assert len(keyed) == 7  # brute force, enumeration, unanswered; rejected calls' two, toll fraud's two
    for windows in keyed:
        for address in (banned, other):
            event = Event(time=1.0, ip=address, kind=Kind.AUTH_FAILURE, service=Service.PJSIP, account="100")
            if isinstance(windows, DistinctWindows):
                windows.add(address, event, "100")
            else:
                windows.add(address, event)
    others = [d for d in pipeline.detectors if not isinstance(d, ForgetsByAddress)]
    assert {d.name for d in others} == {"account_rules", "behaviour"}  # (keyed by account: they keep it all)
    assert pipeline._forgets == [d.forget for d in others]
    pipeline.forget(banned)
    assert all(banned not in w._data and other in w._data for w in keyed)


def test_the_nonces_sent_are_remembered_within_their_bound_newest_kept() -> None:
    """Past `max_keys` challenges, the oldest tenth (and any excess) go at once; a failure answering a nonce
    still remembered is a round trip (strong evidence), one answering a forgotten nonce is not."""
    from sipwatch.pipeline import Nonces

    nonces = Nonces(max_keys=20)
    address = ipaddress.ip_address("198.51.100.9")
    for i in range(21):
        challenge = Event(1714557600.0 + i, Kind.AUTH_CHALLENGE, Service.PJSIP, ip=address,
                          extra={"Challenge": f"n{i}"})
        nonces.mark(challenge)
    assert [nonce for _, nonce in nonces._sent] == [f"n{i}" for i in range(3, 21)]
    answers = [Event(1714557700.0, Kind.AUTH_FAILURE, Service.PJSIP, ip=address, extra={"Challenge": nonce})
               for nonce in ("n2", "n3")]
    for answer in answers:
        nonces.mark(answer)
    assert [a.evidence for a in answers] == [Evidence.WEAK, Evidence.STRONG]
