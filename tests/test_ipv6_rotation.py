"""IPv6 rotation: an attacker holds a whole /64 and sends each request from a fresh address of it.

Per-address counting never fires (fail2ban's and CrowdSec's default, and ours before): each address fails
once. The network is what the attacker holds, so `ipv6_rotation` counts hostile requests per /64 and bans the
network when they come from at least three of its addresses (defaults: 10 in 300 s). The policy never bans a
network that holds loopback, this host's own address or an allowlisted address, nor one that overlaps an
allowlisted network: then only the address that tipped it is banned.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from sipwatch.config import Config, ConfigError
from sipwatch.detectors import Action
from sipwatch.event import Evidence, Kind
from sipwatch.pipeline import Pipeline
from sipwatch.scan import scan
from test_detectors import by, config, ev, run

NET = "2001:db8:aa:bb"


def rotating(n: int, net: str = NET, start: float = 0.0, step: float = 1.0, kind: Kind = Kind.AUTH_FAILURE):
    """`n` failures, each from another address of `net`::/64."""
    return [ev(start + i * step, kind, f"{net}::{i + 1:x}", account=str(100 + i)) for i in range(n)]


def test_rotation_within_a_64_bans_the_network() -> None:
    (ban,) = by(run(rotating(10)), "ipv6_rotation", Action.BAN)
    assert (str(ban.network), ban.prefix, str(ban.ip)) == (f"{NET}::/64", 64, f"{NET}::a")
    assert "10 hostile requests from 10 addresses of 2001:db8:aa:bb::/64" in ban.reason


def test_no_per_address_detector_sees_a_rotating_attacker() -> None:
    """The reason this detector exists: without it, ten failures from ten addresses ban nothing."""
    decisions = run(rotating(10), config(detectors={"ipv6_rotation": {"enabled": False}}))
    assert [d for d in decisions if d.action is Action.BAN] == []


@pytest.mark.parametrize(
    ("events", "why"),
    [
        pytest.param(rotating(9), "below the count", id="nine-requests"),
        pytest.param([ev(i, ip=f"{NET}::{1 + i % 2}") for i in range(5)], "two addresses only",
                     id="two-addresses"),
        pytest.param(rotating(10, step=34.0), "spread over 306 s", id="slower-than-the-window"),
        pytest.param([ev(i, ip=f"2001:db8:aa:{i:x}::1", account=str(i)) for i in range(12)], "twelve /64s",
                     id="one-address-per-64"),
        pytest.param(rotating(10, kind=Kind.AUTH_CHALLENGE), "challenges are not hostile", id="challenges"),
    ],
)
def test_what_is_not_rotation(events: list, why: str) -> None:
    assert by(run(events), "ipv6_rotation") == [], why


def test_ipv4_addresses_are_never_grouped() -> None:
    events = [ev(i, ip=f"198.51.100.{i + 1}", account=str(i)) for i in range(12)]
    assert by(run(events), "ipv6_rotation") == []


def test_the_banned_network_drops_its_other_addresses() -> None:
    """Once the /64 is banned, a fresh address of it is blocked like the banned ones (the firewall drops it)."""
    pipeline = Pipeline(Config())
    for event in rotating(10):
        pipeline.process(event)
    fresh = ev(20, ip=f"{NET}::ffff")
    assert pipeline.process(fresh) == [] and fresh.blocked
    other = ev(21, ip="2001:db8:aa:cc::1")
    pipeline.process(other)
    assert not other.blocked


def test_network_ban_ends_with_its_duration() -> None:
    pipeline = Pipeline(Config())
    for event in rotating(10):
        pipeline.process(event)
    later = ev(9 + 600 + 1, ip=f"{NET}::ffff")  # weak evidence: the 600 s ban is over
    pipeline.process(later)
    assert not later.blocked


@pytest.mark.parametrize(
    ("policy", "own", "why"),
    [
        pytest.param({"allowlist": [f"{NET}::5"]}, set(), "allowlisted 2001:db8:aa:bb::5", id="allowlisted-address"),
        pytest.param({"allowlist": [f"{NET}:1::/80"]}, set(), "overlaps allowlisted", id="narrower-allowlisted-net"),
        pytest.param({}, {ipaddress.ip_address(f"{NET}::1:1")}, "this host's own address", id="own-address"),
    ],
)
def test_a_network_holding_what_is_never_banned_bans_only_the_address(policy: dict, own: set, why: str) -> None:
    pipeline = Pipeline(config(policy=policy), own=own)
    decisions = [d for e in rotating(12) if str(e.ip) != f"{NET}::5" for d in pipeline.process(e)]
    (ban,) = by(decisions, "ipv6_rotation", Action.BAN)
    assert ban.network is None and str(ban.ip).startswith(NET) and why in ban.reason


def test_rotation_inside_an_allowlisted_network_is_an_alert() -> None:
    (alert,) = by(run(rotating(10), config(policy={"allowlist": ["2001:db8:aa::/48"]})), "ipv6_rotation")
    assert alert.action is Action.ALERT and "allowlisted" in alert.reason


def test_the_loopback_network_is_never_banned() -> None:
    events = [ev(i, ip=f"::{i + 2:x}", account=str(i)) for i in range(10)]  # ::/64 holds ::1
    (ban,) = by(run(events), "ipv6_rotation", Action.BAN)
    assert ban.network is None and "loopback" in ban.reason


def test_weak_evidence_spares_a_network_where_a_phone_logged_in() -> None:
    """Forged UDP from addresses of the office /64 must not lock the office's phones out."""
    phone = ev(0, Kind.AUTH_SUCCESS, f"{NET}::100", account="6001", evidence=Evidence.STRONG)
    decisions = run([phone, *rotating(10, start=1)])
    (alert,) = by(decisions, "ipv6_rotation")
    assert alert.action is Action.ALERT and "an address of 2001:db8:aa:bb::/64 logged in as 6001" in alert.reason


@pytest.mark.parametrize("prefix", [31, 128, 0])
def test_prefix_out_of_range_is_a_config_error(prefix: int) -> None:
    with pytest.raises(ConfigError, match=r"detectors\.ipv6_rotation\.prefix"):
        config(detectors={"ipv6_rotation": {"prefix": prefix}})


def test_a_wider_prefix_is_honoured() -> None:
    events = [ev(i, ip=f"2001:db8:aa:{i:x}::1", account=str(i)) for i in range(10)]
    (ban,) = by(run(events, config(detectors={"ipv6_rotation": {"prefix": 48}})), "ipv6_rotation", Action.BAN)
    assert str(ban.network) == "2001:db8:aa::/48"


def _log(tmp_path: Path, n: int = 14) -> Path:
    lines = [f"[2026-03-02 10:00:{i:02d}] NOTICE[1234] chan_sip.c: Registration from '<sip:{100 + i}@example.com>' "
             f"failed for '[{NET}::{i + 1:x}]:5060' - Wrong password" for i in range(n)]
    path = tmp_path / "messages"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_scan_reports_every_address_of_the_banned_network_as_banned(tmp_path: Path) -> None:
    result = scan([str(_log(tmp_path))], Config())
    assert result.actions[Action.BAN] == 1
    assert {o.decision for o in result.offenders.values()} == {"ban"} and len(result.offenders) == 14
    assert all("ipv6_rotation" in o.reason for o in result.offenders.values())


def test_the_report_names_the_network_banned_whole(tmp_path: Path) -> None:
    import io
    import json

    from sipwatch.report import to_json, write_text

    result = scan([str(_log(tmp_path))], Config())
    out = io.StringIO()
    write_text(result, out)
    assert "1 IPv6 network(s) banned whole: 2001:db8:aa:bb::/64" in out.getvalue()
    report = json.loads(json.dumps(to_json(result)))
    assert [d["network"] for d in report["network_bans"]] == ["2001:db8:aa:bb::/64"]
