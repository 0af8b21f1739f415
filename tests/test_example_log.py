"""The bundled example log, scanned end to end: each attack in it gets the decision it deserves."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipwatch.config import Config
from sipwatch.scan import scan

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "asterisk-full.log"


@pytest.fixture(scope="module")
def offenders() -> dict[str, tuple[str, str]]:
    result = scan([str(EXAMPLE)], Config())
    return {str(o.ip): (o.decision, o.reason) for o in result.offenders.values()}


@pytest.mark.parametrize(
    ("ip", "decision", "detector"),
    [
        ("198.51.100.23", "ban", "enumeration"),  # svwar-style REGISTER walk
        ("198.51.100.77", "ban", "brute_force"),  # svcrack: one Call-ID, many guesses
        ("2001:db8:bad:1::5", "ban", "toll_fraud"),  # one number behind several access prefixes
        ("203.0.113.66", "ban", "rejected_calls"),  # chan_sip guest scanner
        ("203.0.113.200", "ban", "enumeration"),  # AMI account guessing
        ("192.0.2.22", "alert", "stale_password"),  # the owner's phone with an old password
    ],
)
def test_each_attacker_gets_its_decision(offenders: dict[str, tuple[str, str]], ip: str, decision: str,
                                         detector: str) -> None:
    assert offenders[ip][0] == decision
    assert offenders[ip][1].startswith(detector)


def test_the_good_phone_and_forged_addresses_are_never_blamed(offenders: dict[str, tuple[str, str]]) -> None:
    assert "192.0.2.21" not in offenders  # a working phone, also named inside forged text
    assert "198.51.100.99" not in offenders  # an address that only appears inside a forged record
