"""Dialled-number classification: strip access prefixes, then ask `phonenumbers` what it is.

Attackers probe the same subscriber number behind several access prefixes (`00972…`, `000972…`,
`9011972…`, `+972…`), so every number is reduced to E.164 first; then country, number type
(premium rate, shared cost, satellite/international networks, mobile, …) and a risk class from the
data table below decide whether a call attempt is a toll-fraud probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType as T

#: E.164 prefixes of high-risk destinations, each with the source that names it.
HIGH_RISK_PREFIXES: dict[str, str] = {
    "+870": "Inmarsat satellite (operators' general practice)",
    "+881": "global mobile satellite systems (ITU, operators' general practice)",
    "+882": "international networks (ITU, operators' general practice)",
    "+883": "international networks (ITU, operators' general practice)",
    "+355": "Albania (PortaOne suspicious-traffic list)",
    "+93": "Afghanistan (PortaOne suspicious-traffic list)",
    "+53": "Cuba (PortaOne suspicious-traffic list)",
    "+242": "Congo (PortaOne suspicious-traffic list)",
    "+243": "DR Congo (PortaOne suspicious-traffic list)",
    "+232": "Sierra Leone (PortaOne suspicious-traffic list)",
    "+252": "Somalia (PortaOne suspicious-traffic list; NYT 2014 fraud case)",
    "+970": "Palestine (PortaOne suspicious-traffic list)",
    "+387": "Bosnia and Herzegovina (PortaOne suspicious-traffic list)",
    "+220": "Gambia (NYT 2014 fraud case)",
    "+960": "Maldives (NYT 2014 fraud case)",
    "+972": "Palestinian mobile ranges probed in published Asterisk logs (line5.de 2013)",
    "+1242": "Bahamas, looks domestic in NANP (FreePBX offshore howto)",
    "+1664": "Montserrat, looks domestic in NANP (FreePBX offshore howto)",
    "+1809": "Dominican Republic, looks domestic in NANP (FreePBX offshore howto)",
    "+1829": "Dominican Republic (FreePBX offshore howto)",
    "+1849": "Dominican Republic (FreePBX offshore howto)",
    "+1876": "Jamaica, looks domestic in NANP (FreePBX offshore howto)",
    "+1284": "British Virgin Islands (FreePBX offshore howto)",
    "+1473": "Grenada (FreePBX offshore howto)",
    "+1900": "NANP premium rate (FreePBX offshore howto)",
}

RISKY_TYPES = frozenset({T.PREMIUM_RATE, T.SHARED_COST, T.UAN, T.PAGER, T.PERSONAL_NUMBER})


@dataclass(frozen=True, slots=True)
class Classified:
    dialled: str
    e164: str | None
    country: str | None  # ISO region, e.g. "GB"
    number_type: str  # premium_rate, mobile, fixed_line, ...
    international: bool
    risk: str | None  # why the number is risky, or None

    @property
    def probe(self) -> bool:
        """A destination that toll fraudsters go for."""
        return self.risk is not None or self.international


_UNSEEN = object()


class NumberClassifier:
    def __init__(
        self,
        country: str = "",
        international_prefixes: tuple[str, ...] = ("00", "011", "810", "+"),
        access_codes: tuple[str, ...] = ("9", "0"),
        extra_high_risk: tuple[str, ...] = (),
    ) -> None:
        self.country = country.upper() or None
        self.intl = tuple(sorted(international_prefixes, key=len, reverse=True))
        self.access = tuple(sorted(access_codes, key=len, reverse=True))
        self.high_risk = dict(HIGH_RISK_PREFIXES)
        self.high_risk.update({p: "configured" for p in extra_high_risk})
        self._prefixes = sorted(self.high_risk, key=len, reverse=True)
        self.classify = lru_cache(maxsize=16384)(self._classify)
        self._intl: dict[str, str | None] = {}
        self._own_code = f"+{phonenumbers.country_code_for_region(self.country)}" if self.country else None

    def is_probe(self, dialled: str) -> bool:
        """Whether a dialled number is a toll-fraud destination, asking `phonenumbers` only when the
        answer needs it (a number in our own country code, or a national number)."""
        intl = self.international_form(dialled)
        if intl is not None and (self._own_code is None or not intl.startswith(self._own_code)):
            return True
        if intl is None and not self.country:
            return False
        return self.classify(dialled).probe

    def identity(self, dialled: str) -> str:
        """The number itself, whatever access prefix it was dialled with."""
        return self.international_form(dialled) or dialled

    def international_form(self, dialled: str) -> str | None:
        found = self._intl.get(dialled, _UNSEEN)
        if found is _UNSEEN:
            if len(self._intl) > 16384:
                self._intl.clear()
            found = self._intl[dialled] = self._international_form(dialled)
        return found  # type: ignore[return-value]

    def _international_form(self, dialled: str) -> str | None:
        """`+<digits>` when the dialled string carries an international access prefix, directly or
        after one outside-line digit (`9011…`, `000…` = `0` + `00…`); None for national numbers."""
        digits = dialled.strip().replace(" ", "").replace("-", "")
        candidates = [digits, *(digits[len(a):] for a in self.access if digits.startswith(a))]
        for candidate in candidates:
            for prefix in self.intl:
                if not candidate.startswith(prefix) or len(candidate) < len(prefix) + 7:
                    continue
                rest = candidate[len(prefix):].lstrip("+")
                if rest.isdigit():
                    while rest.startswith("0") and len(rest) > 8:  # `000972…` dialled as `00` + `0972…`
                        rest = rest[1:]
                    return "+" + rest
        return None

    def _classify(self, dialled: str) -> Classified:
        intl = self.international_form(dialled)
        candidate = intl
        if candidate is None and self.country:
            candidate = dialled
        number = None
        if candidate is not None:
            try:
                number = phonenumbers.parse(candidate, None if intl else self.country)
            except phonenumbers.NumberParseException:
                number = None
        if number is None or not phonenumbers.is_possible_number(number):
            return Classified(dialled, intl, None, "unknown", intl is not None, self._risk(intl, None))
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        region = phonenumbers.region_code_for_number(number)
        ntype = phonenumbers.number_type(number)
        international = region != self.country if self.country else intl is not None
        return Classified(dialled, e164, region, _type_name(ntype), international, self._risk(e164, ntype))

    def _risk(self, e164: str | None, ntype: int | None) -> str | None:
        if e164:
            for p in self._prefixes:
                if e164.startswith(p):
                    return self.high_risk[p]
        if ntype in RISKY_TYPES:
            return _type_name(ntype).replace("_", " ")
        return None


_TYPE_NAMES = {getattr(T, name): name.lower() for name in dir(T) if name.isupper()}


def _type_name(ntype: int | None) -> str:
    return _TYPE_NAMES.get(ntype, "unknown") if ntype is not None else "unknown"
