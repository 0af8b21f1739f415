"""Detectors: small units that turn events into decisions (ban, alert, watch).

`build()` creates every enabled detector from the configuration; the registry below is the one
place to add a new one (see README.md in this folder).
"""

from __future__ import annotations

from collections.abc import Callable

from sipwatch.config import Config, zones
from sipwatch.detectors.account_rules import AccountRulesDetector
from sipwatch.detectors.base import Action, Decision, Detector
from sipwatch.detectors.behaviour import BehaviourDetector
from sipwatch.detectors.brute_force import BruteForceDetector
from sipwatch.detectors.distributed import DistributedDetector
from sipwatch.detectors.enumeration import EnumerationDetector
from sipwatch.detectors.injection import InjectionDetector
from sipwatch.detectors.ipv6_rotation import Ipv6RotationDetector
from sipwatch.detectors.knowledge import Knowledge
from sipwatch.detectors.rejected_calls import RejectedCallsDetector
from sipwatch.detectors.scanner import ScannerDetector
from sipwatch.detectors.stale_password import StalePasswordDetector
from sipwatch.detectors.toll_fraud import TollFraudDetector
from sipwatch.detectors.unanswered import UnansweredChallengesDetector
from sipwatch.numbers import NumberClassifier

__all__ = ["Action", "BehaviourDetector", "Decision", "Detector", "Knowledge", "build"]

Factory = Callable[[Config, Knowledge, NumberClassifier], Detector]

#: name -> (is it enabled in this config?, factory)
REGISTRY: dict[str, tuple[Callable[[Config], bool], Factory]] = {
    "brute_force": (lambda c: c.detectors.brute_force.enabled,
                    lambda c, k, n: BruteForceDetector(c.detectors.brute_force, k)),
    "enumeration": (lambda c: c.detectors.enumeration.enabled,
                    lambda c, k, n: EnumerationDetector(c.detectors.enumeration)),
    "rejected_calls": (lambda c: c.detectors.rejected_calls.enabled,
                       lambda c, k, n: RejectedCallsDetector(c.detectors.rejected_calls)),
    "scanner": (lambda c: c.detectors.scanner.enabled, lambda c, k, n: ScannerDetector(c.detectors.scanner)),
    "toll_fraud": (lambda c: c.detectors.toll_fraud.enabled,
                   lambda c, k, n: TollFraudDetector(c.detectors.toll_fraud, n)),
    "distributed": (lambda c: c.detectors.distributed.enabled,
                    lambda c, k, n: DistributedDetector(c.detectors.distributed)),
    "stale_password": (lambda c: c.detectors.stale_password.enabled,
                       lambda c, k, n: StalePasswordDetector(c.detectors.stale_password, k)),
    "unanswered_challenges": (lambda c: c.detectors.unanswered_challenges.enabled,
                              lambda c, k, n: UnansweredChallengesDetector(c.detectors.unanswered_challenges)),
    "ipv6_rotation": (lambda c: c.detectors.ipv6_rotation.enabled,
                      lambda c, k, n: Ipv6RotationDetector(c.detectors.ipv6_rotation)),
    "injection": (lambda c: True, lambda c, k, n: InjectionDetector()),
    "account_rules": (lambda c: c.accounts.enabled,
                      lambda c, k, n: AccountRulesDetector(c.accounts, k, zones(c)[0])),
    "behaviour": (lambda c: c.behaviour.enabled,
                  lambda c, k, n: BehaviourDetector(c.behaviour, k, zones(c)[0], c.accounts.exclude)),
}


def build(config: Config, knowledge: Knowledge, classifier: NumberClassifier) -> list[Detector]:
    return [factory(config, knowledge, classifier) for enabled, factory in REGISTRY.values() if enabled(config)]
