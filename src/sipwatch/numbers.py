"""Dialled-number classification: strip access prefixes, then ask `phonenumbers` what it is.

Attackers probe the same subscriber number behind several access prefixes (`00972…`, `000972…`,
`9011972…`, `+972…`), so every number is reduced to E.164 first; then country, number type
(premium rate, shared cost, satellite/international networks, mobile, …) and a risk class from the
data table below decide whether a call attempt is a toll-fraud probe.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from functools import cache
from itertools import islice
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sipwatch import lazy


def _keep_patterns(module: ModuleType) -> None:
    """phonenumbers compiles its metadata's patterns through the `re` module's cache (512 entries), which
    numbers of many countries overflow: each classification then compiles again (~27 vs 19 us a number).
    Its own cache of the (fixed, bounded) metadata patterns stops that; older releases lack it."""
    keep = getattr(module, "enable_pattern_cache", None)
    if keep is not None:
        keep()


if TYPE_CHECKING:
    import phonenumbers
else:  # imported on first use (`sipwatch.lazy`): many commands never classify a number
    phonenumbers = lazy.module("phonenumbers", _keep_patterns)


def load_phonenumbers() -> None:
    """Import phonenumbers now, if nothing has asked it anything yet: a parallel scan's main process imports it
    while its parse workers parse their first buffers, rather than later, when its detectors first ask."""
    phonenumbers.PhoneNumber  # noqa: B018 (the first attribute read imports it)


# Risk classes: what kind of danger a destination is (the source of each entry says who names it).
SATELLITE = "satellite"  # satellite networks: among the dearest minutes there are
NETWORK = "international_network"  # +882/+883 international networks: revenue-share numbers abound
COUNTRY = "high_risk_country"  # destinations named in fraud cases and carriers' suspicious-traffic lists
PREMIUM = "premium"  # premium-rate ranges
ELEVATED = "elevated"  # shared-cost, UAN, personal and pager numbers: dearer than they look
CONFIGURED = "configured"  # `numbers.high_risk_extra`

_PORTAONE = "PortaOne suspicious-traffic list"
_FREEPBX = "FreePBX offshore howto"
_OPERATORS = "ITU E.164 assignment; operators' general practice"

#: E.164 prefix -> (risk class, the source that names it). Longest prefix wins.
RISK_TABLE: dict[str, tuple[str, str]] = {
    "+870": (SATELLITE, f"Inmarsat satellite ({_OPERATORS})"),
    "+881": (SATELLITE, f"global mobile satellite systems ({_OPERATORS})"),
    "+882": (NETWORK, f"international networks ({_OPERATORS})"),
    "+883": (NETWORK, f"international networks ({_OPERATORS})"),
    "+355": (COUNTRY, f"Albania ({_PORTAONE})"),
    "+93": (COUNTRY, f"Afghanistan ({_PORTAONE})"),
    "+53": (COUNTRY, f"Cuba ({_PORTAONE})"),
    "+242": (COUNTRY, f"Congo ({_PORTAONE})"),
    "+243": (COUNTRY, f"DR Congo ({_PORTAONE})"),
    "+232": (COUNTRY, f"Sierra Leone ({_PORTAONE})"),
    "+252": (COUNTRY, f"Somalia ({_PORTAONE}; NYT 2014 fraud case)"),
    "+970": (COUNTRY, f"Palestine ({_PORTAONE})"),
    "+387": (COUNTRY, f"Bosnia and Herzegovina ({_PORTAONE})"),
    "+220": (COUNTRY, "Gambia (NYT 2014 fraud case)"),
    "+960": (COUNTRY, "Maldives (NYT 2014 fraud case)"),
    "+972": (COUNTRY, "Palestinian mobile ranges probed in published Asterisk logs (line5.de 2013)"),
    "+1242": (COUNTRY, f"Bahamas, looks domestic in NANP ({_FREEPBX})"),
    "+1664": (COUNTRY, f"Montserrat, looks domestic in NANP ({_FREEPBX})"),
    "+1809": (COUNTRY, f"Dominican Republic, looks domestic in NANP ({_FREEPBX})"),
    "+1829": (COUNTRY, f"Dominican Republic ({_FREEPBX})"),
    "+1849": (COUNTRY, f"Dominican Republic ({_FREEPBX})"),
    "+1876": (COUNTRY, f"Jamaica, looks domestic in NANP ({_FREEPBX})"),
    "+1284": (COUNTRY, f"British Virgin Islands ({_FREEPBX})"),
    "+1473": (COUNTRY, f"Grenada ({_FREEPBX})"),
    "+1900": (PREMIUM, f"NANP premium rate ({_FREEPBX})"),
}
#: Back-compatible view: prefix -> source
HIGH_RISK_PREFIXES: dict[str, str] = {prefix: source for prefix, (_, source) in RISK_TABLE.items()}

#: Number types (phonenumbers' `PhoneNumberType` names, lower case) that are a risk by themselves -> risk class
RISKY_TYPES: dict[str, str] = {"premium_rate": PREMIUM, "shared_cost": ELEVATED, "uan": ELEVATED,
                               "pager": ELEVATED, "personal_number": ELEVATED}
#: Non-geographic ranges whose type phonenumbers does not name: prefix -> number type
NETWORK_TYPES = {"+870": SATELLITE, "+881": SATELLITE, "+882": NETWORK, "+883": NETWORK}


@dataclass(frozen=True, slots=True)
class Classified:
    """What a dialled number is: its country, type and risk."""

    dialled: str
    e164: str | None
    country: str | None  # ISO region, e.g. "GB"
    number_type: str  # premium_rate, mobile, fixed_line, ...
    international: bool
    risk: str | None  # why the number is risky (the source of the table entry), or None
    risk_class: str | None = None  # satellite, international_network, high_risk_country, premium, ...
    internal: bool = False  # an extension of the PBX (at most `internal_digits` digits)

    @property
    def probe(self) -> bool:
        """A destination that toll fraudsters go for."""
        return self.risk is not None or self.international

    def to_tuple(self) -> ClassifiedTuple:
        """Plain values (they pickle fast): `Classified(*c.to_tuple()) == c`."""
        return (self.dialled, self.e164, self.country, self.number_type, self.international, self.risk,
                self.risk_class, self.internal)


ClassifiedTuple = tuple[str, str | None, str | None, str, bool, str | None, str | None, bool]
Settings = tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], str, int]
MAX_CACHED = 65536  # classified numbers remembered (phonenumbers takes ~100 µs for one)
INTL_CACHED = 16384  # dialled numbers' international forms remembered
CLASSIFIED_FIELDS = tuple(f.name for f in fields(Classified))


def _remember_in_c() -> Callable[..., None] | None:
    """`_calls.remember` when it is built and turned on, and Classified is still the plain dataclass it fills."""
    from sipwatch.formats import native

    try:  # pragma: no cover - which branch runs depends on the build
        from sipwatch import _calls  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover
        return None
    found: Callable[..., None] = _calls.remember
    return found if plain_classified() and native.available() else None


def plain_classified() -> bool:
    """Classified is still the plain slotted dataclass that the C parts make and fill (each field in its slot)."""
    return "__slots__" in vars(Classified) and not hasattr(Classified, "__post_init__")


def _worked_out_in_c() -> Callable[..., list[ClassifiedTuple]] | None:
    """`_calls.worked_out` when it is built and turned on."""
    from sipwatch.formats import native

    try:  # pragma: no cover - which branch runs depends on the build
        from sipwatch import _calls  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover
        return None
    found: Callable[..., list[ClassifiedTuple]] = _calls.worked_out
    return found if native.available() else None


#: what the C parts need to tell an extension or an "unknown" number from its text alone, as `_work_out` tells it
#: (`NumberClassifier.plain_rules`): the international prefixes and outside-line codes in the classifier's order,
#: the most digits of an extension, and whether a country is configured
PlainRules = tuple[tuple[str, ...], tuple[str, ...], int, bool]


def _forget_in_c(cache: dict[str, Classified], numbers: list[ClassifiedTuple]) -> None:
    from sipwatch import _calls  # type: ignore[attr-defined]  # (built: `_remember_in_c` found it)

    _calls.forget(cache, numbers)


_UNSEEN = object()


def _forget_oldest(kept: dict[str, Any], n: int) -> None:
    """The `n` oldest keys of a cache go (a dict keeps the order its keys came in; `detectors.base.forget_oldest`
    does the same for the detectors, a layer this module, imported by the parse workers, stays below)."""
    for key in list(islice(kept, n)):
        del kept[key]


def _make_room(kept: dict[str, str | None], coming: int) -> None:
    """Keep `kept` within `INTL_CACHED` entries when `coming` more come: the older half goes (the numbers of
    an address's current window, which a ban's reason names, are among the newest)."""
    if len(kept) + coming > INTL_CACHED:
        _forget_oldest(kept, max(len(kept) // 2, len(kept) + coming - INTL_CACHED))


def _international_regex(access: tuple[str, ...], intl: tuple[str, ...]) -> re.Pattern[str] | None:
    """`_international_form_of` as one regex, for ASCII text: no outside-line code first (lazy `??`), then
    each in order, each international prefix in order, 7 characters or more after it, `+`s, then digits, the
    number without the zeros of a prefix dialled twice (`_without_extra_zeros`: a zero goes while 8 digits
    follow it)."""
    if not intl:
        return None
    outside = f"(?:{'|'.join(map(re.escape, access))})??" if access else ""
    return re.compile(rf"{outside}(?:{'|'.join(map(re.escape, intl))})(?=.{{7}})\+*(?:0(?=[0-9]{{8}}))*([0-9]+)",
                      re.ASCII | re.DOTALL)


def _without_extra_zeros(digits: str) -> str:
    """`+` and the digits after an international prefix, without the zeros of a prefix dialled twice
    (`000972…` as `00` + `0972…`) while more than 8 digits remain."""
    extra = min(len(digits) - len(digits.lstrip("0")), len(digits) - 8)
    return "+" + digits[extra:] if extra > 0 else "+" + digits


#: the number types that phonenumbers' `_number_type_helper` tries, in its order, before fixed line and mobile
_TYPE_ORDER = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail")
#: how `_type_of` tells a national number's type for one region and length: the general pattern (None: no number of
#: that length is valid), one pattern with each type's as an alternative in the helper's order (named `_<i>`, i
#: its place in `_TYPE_ORDER` + fixed line + mobile; None: none of that length), the mobile pattern (None: none),
#: and whether fixed line and mobile share their pattern
TypeSteps = tuple[re.Pattern[str] | None, re.Pattern[str] | None, re.Pattern[str] | None, bool]
_TYPE_STEPS: dict[int, tuple[Any, dict[int, TypeSteps]]] = {}


def _fits(desc: Any, length: int) -> bool:
    """phonenumbers' `_is_number_matching_desc` short of its pattern: a description with a pattern that a number
    of this length may match (no possible lengths: any length)."""
    return (desc is not None and bool(desc.national_number_pattern)
            and (not desc.possible_length or length in desc.possible_length))


def _type_steps(metadata: Any, length: int) -> TypeSteps:
    kept = _TYPE_STEPS.get(id(metadata))
    if kept is None or kept[0] is not metadata:  # (the metadata is kept too: its id is never another's)
        kept = _TYPE_STEPS[id(metadata)] = (metadata, {})
    steps = kept[1].get(length)
    if steps is None:
        general, mobile = metadata.general_desc, metadata.mobile
        descs = [getattr(metadata, name) for name in _TYPE_ORDER] + [metadata.fixed_line, mobile]
        alternatives = "|".join(f"(?P<_{i}>{desc.national_number_pattern})"
                                for i, desc in enumerate(descs) if _fits(desc, length))
        steps = kept[1][length] = (
            re.compile(general.national_number_pattern) if _fits(general, length) else None,
            re.compile(alternatives) if alternatives else None,
            re.compile(mobile.national_number_pattern) if _fits(mobile, length) else None,
            bool(metadata.same_mobile_and_fixed_line_pattern))
    return steps


def _type_of(national: str, metadata: Any) -> int:
    """phonenumbers' `_number_type_helper(national, metadata)` in two pattern matches where it takes up to eleven
    calls of three Python functions each (a third of a worker's classification of an international number): the
    patterns of the types it tries in turn are one pattern's alternatives in its order, and a full match takes
    the first alternative that matches the whole number, as asking each in turn does. Its data, its order and
    its rules for fixed line and mobile (a test holds the two to the same answers on random numbers of every
    region)."""
    codes = _type_codes()
    general, types, mobile, same = _type_steps(metadata, len(national))
    found = types.fullmatch(national) if types is not None and general is not None and general.fullmatch(national) \
        else None
    if found is None:
        return codes[-1]
    at = int(str(found.lastgroup)[1:])  # (every alternative is a named group, which closes last)
    if at < len(_TYPE_ORDER):
        return codes[at]
    if at == len(_TYPE_ORDER):  # fixed line (and mobile too?)
        both = same or (mobile is not None and mobile.fullmatch(national) is not None)
        return codes[-3] if both else codes[-4]
    return codes[-1] if same else codes[-2]


@cache
def _type_codes() -> tuple[int, ...]:
    """phonenumbers' codes of the types in `_TYPE_ORDER`, then fixed line, fixed line or mobile, mobile, unknown."""
    names = [*(name.upper() for name in _TYPE_ORDER), "FIXED_LINE", "FIXED_LINE_OR_MOBILE", "MOBILE", "UNKNOWN"]
    return tuple(int(getattr(phonenumbers.PhoneNumberType, name)) for name in names)


@cache
def _type_helper() -> Callable[[str, Any], int] | None:
    """`_type_of` where phonenumbers has the helper it stands for (a release without it: None, `number_type`)."""
    return _type_of if hasattr(phonenumbers.phonenumberutil, "_number_type_helper") else None


def number_type_in(number: phonenumbers.PhoneNumber, region: str | None, national: str | None = None) -> int:
    """`phonenumbers.number_type(number)` for the region `region_code_for_number` found already: number_type finds
    it again first (a fifth of an international number's classification, where a calling code is shared). The
    steps are phonenumbers' own; a release without its helper gets `number_type` itself (a test holds the two to
    the same answers). `national`: the number's national significant number, when it is known already."""
    helper = _type_helper()
    if helper is None or region is None or number.country_code is None:  # (no region: number_type's own way)
        return int(phonenumbers.number_type(number))
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(number.country_code, region)
    if metadata is None:
        return int(phonenumbers.PhoneNumberType.UNKNOWN)
    return helper(national or phonenumbers.national_significant_number(number), metadata)


def region_and_type(number: phonenumbers.PhoneNumber, national: str) -> tuple[str | None, int]:
    """(`region_code_for_number(number)`, `number_type(number)`), with `national` its national significant
    number. Where several regions share the calling code (+1, +44, +7, ...), phonenumbers finds the region by
    working out the number's type for each region in turn until one knows it, then number_type works it out once
    more for that region (a third of the international numbers of a CDR file, ~4 us each): the type found is
    kept here. The steps are phonenumbers' own, in its order (a test holds the answers to its functions')."""
    helper = _type_helper()
    code = number.country_code
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code) if code is not None else None
    if helper is None or regions is None or len(regions) == 1:
        region = phonenumbers.region_code_for_number(number)
        return region, number_type_in(number, region, national)
    unknown = int(phonenumbers.PhoneNumberType.UNKNOWN)
    for region in regions:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            if _leading_digits(metadata.leading_digits).match(national):
                return region, number_type_in(number, region, national)
        else:
            found = helper(national, metadata)
            if found != unknown:
                return region, found
    return None, number_type_in(number, None, national)


@cache
def _leading_digits(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


#: what `_parse_international` reads of phonenumbers (its own steps, private names): present in the releases we
#: know; a release without one of them gets `phonenumbers.parse` itself
_PARSE_STEPS = ("_extract_country_code", "_maybe_strip_national_prefix_carrier_code", "_test_number_length",
                "_set_italian_leading_zeros_for_phone_number", "_MIN_LENGTH_FOR_NSN", "_MAX_LENGTH_FOR_NSN",
                "_MAX_INPUT_STRING_LENGTH", "ValidationResult")


@cache
def _parse_steps() -> ModuleType | None:
    util = phonenumbers.phonenumberutil
    return util if all(hasattr(util, name) for name in _PARSE_STEPS) else None


#: a parsed number: (the number, its calling code's metadata (that of the code's main region, which
#: `is_possible_number` reads), its national significant number)
Parsed = tuple["phonenumbers.PhoneNumber", Any, str]


def _parsed(number: phonenumbers.PhoneNumber) -> Parsed:
    code = number.country_code or 0  # (parse always sets it)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        code, phonenumbers.region_code_for_country_code(code))
    return number, metadata, phonenumbers.national_significant_number(number)


def _parse_international(digits: str) -> Parsed | None:
    """`phonenumbers.parse("+" + digits)` for digits (an international form), or None where parse raises. parse
    takes ~11 us to find in free text what is plain here (no extension, no letters, no phone-context), and
    raises, catches and raises again for an unknown calling code; these are the steps it takes for such a text,
    its own functions in its order (a test holds the two to the same numbers on random digits of every calling
    code). Other than ASCII digits, or a release without those functions: parse itself."""
    return _international(digits)[0]


def _international(digits: str) -> tuple[Parsed | None, bool]:
    """(`_parse_international(digits)`, and whether the number it parses is possible: `_possible` of it, from the
    length test parse made already when its national number is the one tested, as it mostly is: ~0.5 us of the
    ~6 us a worker spends on an international number)."""
    util = _parse_steps()
    if util is None or not (digits.isascii() and digits.isdigit()):
        number = NumberClassifier._parse("+" + digits, None)
        parsed = _parsed(number) if number is not None else None
        return parsed, parsed is not None and _possible(parsed)
    if len(digits) + 1 > util._MAX_INPUT_STRING_LENGTH or len(digits) <= util._MIN_LENGTH_FOR_NSN:
        return None, False
    code, national = _country_code(digits)
    if code == 0 or len(national) < util._MIN_LENGTH_FOR_NSN:
        return None, False
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        code, phonenumbers.region_code_for_country_code(code))
    _, stripped, _ = util._maybe_strip_national_prefix_carrier_code(national, metadata)
    short = util.ValidationResult
    tested = util._test_number_length(stripped, metadata)
    if tested not in (short.TOO_SHORT, short.IS_POSSIBLE_LOCAL_ONLY, short.INVALID_LENGTH):
        national = stripped
    if not util._MIN_LENGTH_FOR_NSN <= len(national) <= util._MAX_LENGTH_FOR_NSN:
        return None, False
    number = phonenumbers.PhoneNumber(country_code=code)
    util._set_italian_leading_zeros_for_phone_number(national, number)
    number.national_number = int(national)
    parsed = number, metadata, national  # (the digits as they are: its national significant number)
    if national != stripped:
        tested = util._test_number_length(national, metadata)
    return parsed, tested in (short.IS_POSSIBLE, short.IS_POSSIBLE_LOCAL_ONLY)


_COUNTRY_CODES: dict[str, tuple[int, int]] = {}


def _country_code(digits: str) -> tuple[int, str]:
    """phonenumbers' `_extract_country_code(digits)` for ASCII digits, at least three: the calling code is read from
    the first three digits alone (the shortest code that is one), so their answer is kept by them (~0.6 us a number;
    at most 1,000 kept)."""
    head = digits[:3]
    found = _COUNTRY_CODES.get(head)
    if found is None:
        code, rest = phonenumbers.phonenumberutil._extract_country_code(head)
        found = _COUNTRY_CODES[head] = (code, len(head) - len(rest) if code else 0)
    return found[0], digits[found[1]:]


def _possible(parsed: Parsed) -> bool:
    """`phonenumbers.is_possible_number` of a parsed number, its metadata found already."""
    util = _parse_steps()
    if util is None:
        return bool(phonenumbers.is_possible_number(parsed[0]))
    valid = util.ValidationResult
    return util._test_number_length(parsed[2], parsed[1]) in (valid.IS_POSSIBLE, valid.IS_POSSIBLE_LOCAL_ONLY)


class NumberClassifier:
    def __init__(
        self,
        country: str = "",
        international_prefixes: tuple[str, ...] = ("00", "011", "810", "+"),
        access_codes: tuple[str, ...] = ("9", "0"),
        extra_high_risk: tuple[str, ...] = (),
        national_prefix: str = "",
        internal_digits: int = 6,
    ) -> None:
        #: the arguments, to build the same classifier elsewhere (a parse worker): NumberClassifier(*settings)
        self.settings: Settings = (country, international_prefixes, access_codes, extra_high_risk, national_prefix,
                                   internal_digits)
        self.country = country.upper() or None
        self.intl = tuple(sorted(international_prefixes, key=len, reverse=True))
        self.access = tuple(sorted(access_codes, key=len, reverse=True))
        self._intl_re = _international_regex(self.access, self.intl)
        self.internal_digits = internal_digits
        self.national = national_prefix or (_national_prefix(self.country) if self.country else "")
        self.high_risk = dict(RISK_TABLE)
        self.high_risk.update({p: (CONFIGURED, "configured (numbers.high_risk_extra)") for p in extra_high_risk})
        #: the lengths of the table's prefixes, longest first: `_risk` looks each up (the longest match wins)
        self._risk_lengths = sorted({len(p) for p in self.high_risk}, reverse=True)
        self._cache: dict[str, Classified] = {}  # oldest first
        self._values: dict[str, ClassifiedTuple] = {}  # `values`: a parse worker's
        self._intl: dict[str, str | None] = {}
        self._regions: dict[str, str | None] = {}  # `region_of` an internationally dialled number
        self._own_code = f"+{phonenumbers.country_code_for_region(self.country)}" if self.country else None

    def classify(self, dialled: str) -> Classified:
        """What a dialled number is; each distinct number is worked out once (while remembered)."""
        found = self._cache.get(dialled)
        if found is None:
            found = self._classify(dialled)
            self.remember(found)
        return found

    def remember_all(self, numbers: list[ClassifiedTuple]) -> None:
        """`remember` the numbers a parse worker classified (`Classified.to_tuple()`s): in C where it is built
        (`_calls.remember`, the same objects in the same cache; ~0.9 us a number less: a CDR file's dialled
        numbers are mostly distinct), else one by one."""
        made_in_c = _remember_in_c()
        if made_in_c is not None and type(self).remember is NumberClassifier.remember:
            made_in_c(self._cache, Classified, CLASSIFIED_FIELDS, numbers, MAX_CACHED)
            return
        for number in numbers:
            self.remember(Classified(*number))

    def forget_all(self, numbers: list[ClassifiedTuple]) -> None:
        """Forget what `remember_all` filed once the events of its buffer are all done: a parse worker sends each
        buffer's numbers anew (its own cache keeps those it saw before), so keeping them here would only grow the
        cache that the call book reads for every call (the last buffer's ~8,000 numbers instead of 65,536, of
        which a CDR file's mostly distinct numbers would seldom hit one: -6% of the main process's time)."""
        cache = self._cache
        if _remember_in_c() is not None:
            _forget_in_c(cache, numbers)
            return
        for number in numbers:
            cache.pop(number[0], None)

    def remember(self, classified: Classified) -> None:
        """Keep a classification (also one worked out in a parse worker with the same settings)."""
        cache = self._cache
        if len(cache) >= MAX_CACHED:  # the oldest tenth goes (one key at a time, finding a dict's oldest is slow)
            _forget_oldest(cache, max(1, MAX_CACHED // 10))
        cache[classified.dialled] = classified

    def region_of(self, dialled: str) -> str | None:
        """The country a dialled number goes to, for a reason's text, with no phonenumbers parse when it
        can be helped (an attacker dials thousands of distinct numbers, and each costs ~20-40 us to
        classify): read from the calling code when the code is one country's; for a code that several
        share (+1, +44, +7, ...) phonenumbers picks the region from the digits: `+1876` is JM, `+1416` CA."""
        found = self._cache.get(dialled)
        if found is not None:
            return found.country
        intl = self.international_form(dialled)
        if intl is None:
            return self.classify(dialled).country
        region = self._regions.get(dialled, _UNSEEN)  # (per number: two that begin alike may differ)
        if region is _UNSEEN:
            if len(self._regions) >= INTL_CACHED:
                _make_room(self._regions, 1)
            region = self._regions[dialled] = self._region_of_code(intl)
        return region  # type: ignore[return-value]

    @staticmethod
    def _region_of_code(intl: str) -> str | None:
        """The region of a number in `+<digits>` form from its calling code, and from its digits when several
        regions share the code."""
        digits = intl[1:]
        if digits[:1] == "0":
            return None  # no calling code starts with 0
        for size in (1, 2, 3):  # calling codes are prefix-free: the first known one is the code
            regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:size]))
            if regions:
                return regions[0] if len(regions) == 1 else NumberClassifier._shared_region(digits[:size],
                                                                                           digits[size:])
        return None

    @staticmethod
    def _shared_region(code: str, national: str) -> str:
        """phonenumbers' own choice among a shared code's regions, made as it makes it (a region's leading
        digits, else a valid number of that region), from the digits as they are, with no parse; a region
        whose numbers never have this many digits is passed over unasked (an attacker's made-up numbers
        often do not: each question costs ~20 us). A number no region claims is put in the code's main
        country."""
        main = phonenumbers.region_code_for_country_code(int(code))
        if not national.isdigit():
            return main
        number = None
        for regions, leading, lengths in _regions_of_code(code):
            if leading is not None:
                found = leading.match(national)
                if found is not None:
                    return regions[int(found.lastgroup[1:])]  # type: ignore[index]
                continue
            region = regions[0]
            if (not lengths or len(national) in lengths) and _may_be_valid(region, national):
                if number is None:
                    number = phonenumbers.PhoneNumber(country_code=int(code), national_number=int(national),
                                                      italian_leading_zero=national.startswith("0") or None)
                if phonenumbers.is_valid_number_for_region(number, region):
                    return region
        return main

    def describe(self, dialled: str) -> tuple[str, str | None]:
        """(the number in `+<digits>` form, or as dialled; why it is risky, or None) for a reason's text,
        with no phonenumbers parse: the risk comes from the table's prefixes, or from the number's
        classification when it was classified already (national premium numbers are: `is_probe` asks)."""
        found = self._cache.get(dialled)
        if found is not None:
            return found.e164 or dialled, found.risk
        intl = self.international_form(dialled)
        return intl or dialled, self._risk(intl, None)[1]

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

    def international_forms(self, dialled: Iterable[str]) -> list[tuple[str, str | None]]:
        """(number, `international_form`) of each: a parse worker works them out for the numbers of the probes it
        read (the toll-fraud detector asks `is_probe` of each, and an attacker's numbers are mostly distinct)."""
        form = self.international_form
        return [(number, form(number)) for number in dialled]

    def remember_forms(self, forms: list[tuple[str, str | None]]) -> None:
        """Keep `international_forms` worked out in a parse worker with the same settings (the same results:
        the form is the dialled text's alone)."""
        _make_room(self._intl, len(forms))
        self._intl.update(forms)

    def international_form(self, dialled: str) -> str | None:
        found = self._intl.get(dialled, _UNSEEN)
        if found is _UNSEEN:
            if len(self._intl) >= INTL_CACHED:
                _make_room(self._intl, 1)
            found = self._intl[dialled] = self._international_form(dialled)
        return found  # type: ignore[return-value]

    def _international_form(self, dialled: str) -> str | None:
        """`+<digits>` when the dialled string carries an international access prefix, directly or
        after one outside-line digit (`9011…`, `000…` = `0` + `00…`); None for national numbers."""
        digits = dialled.strip().replace(" ", "").replace("-", "")
        if not digits.isascii():
            return self._international_form_of(digits)
        found = self._intl_re.fullmatch(digits) if self._intl_re is not None else None
        return "+" + found[1] if found is not None else None

    def _international_form_of(self, digits: str) -> str | None:
        """`_international_form` step by step (what its regex does in one call, on ASCII text): the digits
        as dialled, then without each outside-line code they start with; each international prefix in
        turn, longest first; at least 7 characters after it, all digits after any `+`."""
        candidates = [digits, *(digits[len(a):] for a in self.access if digits.startswith(a))]
        for candidate in candidates:
            for prefix in self.intl:
                if not candidate.startswith(prefix) or len(candidate) < len(prefix) + 7:
                    continue
                rest = candidate[len(prefix):].lstrip("+")
                if rest.isdigit():
                    return _without_extra_zeros(rest)
        return None

    def outside(self, number: Classified) -> bool:
        """A call that leaves the PBX (not to one of its extensions)."""
        return not number.internal

    def values(self, dialled: str) -> ClassifiedTuple:
        """`classify(dialled).to_tuple()`, remembered as such: what a parse worker sends, with no `Classified`
        made (a frozen dataclass takes ~1 us to build; a CDR file's dialled numbers are mostly distinct)."""
        return self.values_all((dialled,))[0]

    def values_all(self, dialled: Iterable[str]) -> list[ClassifiedTuple]:
        """`values` of each number, in one loop (a parse worker's buffer of a million-row CDR file: a method call
        per number was ~3% of the worker)."""
        kept = self._values
        get, work_out = kept.get, self._work_out
        found_all = []
        for number in dialled:
            found = get(number)
            if found is None:
                if len(kept) >= MAX_CACHED:
                    kept.clear()
                found = kept[number] = work_out(number)
            found_all.append(found)
        return found_all

    def worked_out(self, dialled: list[str]) -> list[ClassifiedTuple]:
        """The `values` of the numbers that the main process's call book cannot tell from their text alone: what a
        parse worker sends it. An extension, and a number with no international prefix where no country is
        configured, are told in C from the text (`_numbers.c`, both here and in the call book: most of a CDR file's
        numbers, each distinct, ~1 us each here and a filed, looked up and dropped classification there); the rest
        are `values_all`'s. Without the C parts (or with prefixes they cannot hold): every number's."""
        rules = self.plain_rules()
        in_c = _worked_out_in_c() if rules is not None else None
        if in_c is None:
            return self.values_all(dialled)
        return in_c(dialled, rules, self._values, self._work_out, MAX_CACHED)

    def plain_rules(self) -> PlainRules | None:
        """What the C parts read to tell the numbers `_work_out` tells from their text alone (see `worked_out`);
        None where a subclass changed how it tells them."""
        cls = type(self)
        if (cls._work_out is not NumberClassifier._work_out
                or cls._international_form is not NumberClassifier._international_form):
            return None
        return self.intl, self.access, self.internal_digits, bool(self.country)

    def _classify(self, dialled: str) -> Classified:
        return Classified(*self._work_out(dialled))

    def _work_out(self, dialled: str) -> ClassifiedTuple:
        """What a dialled number is, as `Classified`'s fields in order."""
        text = dialled.strip()
        if not text.startswith("+") and len(text) <= self.internal_digits:
            return (dialled, None, None, "extension", False, None, None, True)
        intl = self._international_form(dialled)  # (not remembered apart: what this makes is)
        if intl is None and not self.country:
            return (dialled, None, None, "unknown", False, None, None, False)  # (as below: nothing to parse)
        if intl:
            parsed, possible = _international(intl[1:])
        else:
            national = self._national(dialled)
            parsed = _parsed(national) if national is not None else None
            possible = parsed is not None and _possible(parsed)
        if parsed is None or not possible:
            risk_class, risk = self._risk(intl, None)
            return (dialled, intl, None, _network_type(intl) or "unknown", intl is not None, risk, risk_class, False)
        number, _, significant = parsed
        e164 = f"+{number.country_code}{significant}"  # (format_number's E.164)
        region, ntype = region_and_type(number, significant)
        international = region != self.country if self.country else intl is not None
        type_name = _type_name(ntype)
        risk_class, risk = self._risk(e164, type_name)
        return (dialled, e164, region, _network_type(e164) or type_name, international, risk, risk_class, False)

    def _national(self, dialled: str) -> phonenumbers.PhoneNumber | None:
        """A national number, dialled as it is or after an outside-line digit (`9` + `0301234567`)."""
        if not self.country:
            return None
        digits = dialled.strip()
        candidates = [digits, *(digits[len(a):] for a in self.access if digits.startswith(a))]
        if self.national:
            candidates.sort(key=lambda c: not c.startswith(self.national))  # a national prefix first
        fallback = None
        for candidate in candidates:
            number = self._parse(candidate, self.country)
            if number is not None and phonenumbers.is_valid_number(number):
                return number
            fallback = fallback or number
        return fallback

    @staticmethod
    def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
        try:
            return phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException as exc:
            _let_go(exc)
            return None

    def _risk(self, e164: str | None, type_name: str | None) -> tuple[str | None, str | None]:
        """(risk class, why) from the table, else from the number type."""
        if e164:
            table = self.high_risk
            for size in self._risk_lengths:  # (a number shorter than `size` is its own slice: still the longest match)
                found = table.get(e164[:size])
                if found is not None:
                    return found
        if type_name is not None and type_name in RISKY_TYPES:
            return RISKY_TYPES[type_name], f"{type_name.replace('_', ' ')} (phonenumbers metadata)"
        return None, None


#: how `_shared_region` asks a calling code's regions, in phonenumbers' order (the main country first): (region,
#: None, the lengths its numbers can have) for a region that claims the numbers valid for it; (the regions, the
#: pattern of their leading digits, ()) for a run of regions that claim numbers by their leading digits
RegionStep = tuple[tuple[str, ...], re.Pattern[str] | None, frozenset[int]]


@cache
def _regions_of_code(code: str) -> tuple[RegionStep, ...]:
    """The steps of `_shared_region` for a calling code. A run of regions told apart by leading digits is one
    pattern, each region's an alternative in their order, named by its place in the run: the first that matches
    is the one asking each in turn finds (+1's twenty Caribbean regions: one match a number, not twenty)."""
    found: list[RegionStep] = []
    run: list[tuple[str, str]] = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(code), ()):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            continue
        if metadata.leading_digits:
            run.append((region, metadata.leading_digits))
            continue
        found += _leading_run(run)
        desc = metadata.general_desc
        found.append(((region,), None, frozenset(desc.possible_length or ()) if desc is not None else frozenset()))
    return tuple(found + _leading_run(run))


def _leading_run(run: list[tuple[str, str]]) -> list[RegionStep]:
    """The step of a run of regions with leading digits (none for no run), and the run emptied."""
    if not run:
        return []
    pattern = re.compile("|".join(f"(?P<_{i}>{leading})" for i, (_, leading) in enumerate(run)))
    regions = tuple(region for region, _ in run)
    run.clear()
    return [(regions, pattern, frozenset())]


@cache
def _general_pattern(region: str) -> re.Pattern[str] | None:
    """The pattern every valid number of a region matches (its metadata's general description), or None."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    desc = metadata.general_desc if metadata is not None else None
    return re.compile(desc.national_number_pattern) if desc is not None and desc.national_number_pattern else None


def _may_be_valid(region: str, national: str) -> bool:
    """False when `national` (digits) cannot be a valid number of `region`: phonenumbers' own first test,
    the general description's pattern, fails (~0.5 instead of ~8 us; most of an attacker's made-up +44 and +1
    numbers fail it for the regions after the first). A number with more than one leading zero is left to
    phonenumbers (its significant number is not the digits as they are then)."""
    if national.startswith("00"):
        return True
    pattern = _general_pattern(region)
    return pattern is not None and pattern.fullmatch(national) is not None


def _let_go(exc: BaseException) -> None:
    """Break the cycles that a caught phonenumbers exception leaves. phonenumbers handles one exception by keeping
    it and its traceback in locals (`_, e, _ = sys.exc_info()`) and raising another: its frame and that traceback
    hold each other, and through the frames' links every frame up to ours with its locals (a parse worker's
    whole buffer and its results), until the cyclic collector runs: a scan runs it rarely
    (`scan.few_collections`), and a worker grew by ~5 MB a buffer (400 MB at a million CDR rows), each page
    faulted in afresh. The frames that are done (phonenumbers') let go of their locals; ours runs on."""
    seen: BaseException | None = exc
    while seen is not None:
        trace = seen.__traceback__
        while trace is not None:
            with contextlib.suppress(RuntimeError):  # (a frame still running: the caller's)
                trace.tb_frame.clear()
            trace = trace.tb_next
        seen.__traceback__ = None
        seen = seen.__context__


def _network_type(e164: str | None) -> str | None:
    return NETWORK_TYPES.get(e164[:4]) if e164 else None  # (each prefix is "+" and three digits)


def _national_prefix(region: str) -> str:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return (metadata.national_prefix or "") if metadata is not None else ""


@cache
def _type_names() -> dict[int, str]:
    kinds = phonenumbers.PhoneNumberType
    return {getattr(kinds, name): name.lower() for name in dir(kinds) if name.isupper()}


def _type_name(ntype: int | None) -> str:
    return _type_names().get(ntype, "unknown") if ntype is not None else "unknown"
