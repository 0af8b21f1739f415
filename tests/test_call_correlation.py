"""Dialled-number classification and call correlation (issue 7).

A PBX in Germany (national prefix 0, international 00, outside-line digit 0 before either): what
`phonenumbers` and the risk table make of what its phones dial; and one call seen through the `full`
log, CEL and the CDR counted once.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from conftest import one
from sipwatch import numbers
from sipwatch.calls import CallBook
from sipwatch.config import Config, ConfigError, from_dict
from sipwatch.numbers import COUNTRY, NETWORK, PREMIUM, SATELLITE, NumberClassifier
from sipwatch.pipeline import Pipeline

DE = NumberClassifier("DE", ("00",), ("0",))
US = NumberClassifier("US", ("011",), ("9",), internal_digits=4)

NUMBERS = [
    # dialled, classifier, country, number type, risk class, internal
    ("6002", DE, None, "extension", None, True),
    ("0301234567", DE, "DE", "fixed_line", None, False),
    ("000442079460000", DE, "GB", "fixed_line", None, False),  # outside-line 0, then 00 44
    ("09001234567", DE, "DE", "premium_rate", PREMIUM, False),
    ("0180512345678", DE, "DE", "shared_cost", "elevated", False),
    ("08001234567", DE, "DE", "toll_free", None, False),
    ("015112345678", DE, "DE", "mobile", None, False),
    ("00442079460000", DE, "GB", "fixed_line", None, False),
    ("00881612345678", DE, "001", "satellite", SATELLITE, False),
    ("00882123456789", DE, "001", "international_network", NETWORK, False),
    ("00252612345678", DE, "SO", "mobile", COUNTRY, False),
    ("912125551234", US, "US", "fixed_line_or_mobile", None, False),
    ("9011442079460000", US, "GB", "fixed_line", None, False),
    ("919005551234", US, "US", "premium_rate", PREMIUM, False),
    ("12425551234", US, "BS", "unknown", COUNTRY, False),  # looks domestic, is the Bahamas
]


@pytest.mark.parametrize(("dialled", "classifier", "country", "ntype", "risk_class", "internal"), NUMBERS,
                         ids=[n[0] for n in NUMBERS])
def test_dialled_numbers_are_classified(dialled: str, classifier: NumberClassifier, country: str | None,
                                        ntype: str, risk_class: str | None, internal: bool) -> None:
    number = classifier.classify(dialled)
    assert (number.country, number.number_type, number.risk_class, number.internal) == (
        country, ntype, risk_class, internal)
    assert (number.risk is None) == (risk_class is None)  # every risk names its source


def test_a_number_s_type_is_phonenumbers_number_type_found_with_its_region_once() -> None:
    """`number_type_in` spares phonenumbers finding a number's region twice, `region_and_type` its type twice; they
    answer what `region_code_for_number` and `number_type` do, shared calling codes (+1, +44, +7, +39, +61),
    non-geographic ones (+800, +881, +882) and invalid numbers included, on random digits (seeded)."""
    import random

    import phonenumbers

    from sipwatch.numbers import number_type_in, region_and_type

    rng = random.Random(7)
    codes = ["1", "1876", "1242", "1416", "44", "441481", "447781", "7", "77", "39", "3906698", "61", "6189164",
             "800", "881", "882", "883", "49", "33", "252", "960", "675", "423", "370"]
    checked = 0
    for _ in range(3000):
        text = "+" + rng.choice(codes) + "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 11)))
        try:
            number = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException:
            continue
        region = phonenumbers.region_code_for_number(number)
        assert number_type_in(number, region) == phonenumbers.number_type(number), text
        national = phonenumbers.national_significant_number(number)
        assert region_and_type(number, national) == (region, phonenumbers.number_type(number)), text
        checked += 1
    assert checked > 2500


def test_a_national_number_s_type_is_phonenumbers_own_helper_s() -> None:
    """`_type_of` (one pattern of every type's alternatives, in phonenumbers' order) answers what phonenumbers'
    `_number_type_helper` does for every region and non-geographic code: on each type's example number, the
    example with its last digits changed, one digit more and one fewer, and random digits (seeded)."""
    import random

    import phonenumbers

    from sipwatch.numbers import _type_of

    rng = random.Random(5)
    helper = phonenumbers.phonenumberutil._number_type_helper
    kinds = [getattr(phonenumbers.PhoneNumberType, name) for name in dir(phonenumbers.PhoneNumberType)
             if name.isupper() and name not in ("UNKNOWN",)]
    metadata = [(region, phonenumbers.PhoneMetadata.metadata_for_region(region))
                for region in sorted(phonenumbers.SUPPORTED_REGIONS)]
    metadata += [(str(code), phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code))
                 for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)]
    seen: set[int] = set()
    checked = 0
    for region, data in metadata:
        assert data is not None, region
        examples = []
        for kind in kinds:
            example = (phonenumbers.example_number_for_type(region, kind) if region.isalpha()
                       else phonenumbers.example_number_for_non_geo_entity(int(region)))
            if example is not None:
                examples.append(phonenumbers.national_significant_number(example))
        numbers = list(examples)
        for text in examples:
            changed = text[:-3] + "".join(rng.choice("0123456789") for _ in range(3))
            numbers += [changed, text + rng.choice("0123456789"), text[:-1]]
        numbers += ["".join(rng.choice("0123456789") for _ in range(rng.randint(3, 16))) for _ in range(30)]
        for national in numbers:
            expected = helper(national, data)
            assert _type_of(national, data) == expected, (region, national)
            seen.add(int(expected))
            checked += 1
    assert checked > 10_000
    assert len(seen) >= 10  # premium, toll-free, shared cost, VoIP, personal, pager, UAN, voicemail, fixed, mobile...


def test_a_network_s_type_is_found_by_its_four_characters() -> None:
    """`_network_type` looks up an E.164 number's first four characters: every prefix it knows is "+" and three
    digits, and a number of another code (or none) has no network type."""
    from sipwatch.numbers import NETWORK_TYPES, SATELLITE, _network_type

    assert all(len(prefix) == 4 and prefix[1:].isdigit() for prefix in NETWORK_TYPES)
    assert _network_type("+881612345678") == SATELLITE
    assert [_network_type(n) for n in ("+8816", "+88", "", None, "+4930123456")] == [SATELLITE, None, None, None, None]


def test_an_international_form_parses_as_phonenumbers_parses_it() -> None:
    """`_parse_international` takes phonenumbers' own steps for `+<digits>` (parse spends ~11 us looking for a
    number in free text): the same numbers, and None where parse raises, and whether they are possible, on random
    digits after every calling code (and codes that are none), with leading zeros, too short and too long (seeded)."""
    import random

    import phonenumbers

    from sipwatch.numbers import _international, _parse_international

    rng = random.Random(11)
    codes = [str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE] + ["0", "99", "999", "28", "80"]
    texts = ["1", "12", "123", "7" * 18, "39" + "0" * 9, "1" * 300, "\u0664\u0664\u0662\u0660\u0667\u0669\u0664\u0666"]
    for _ in range(6000):
        zeros = "0" * rng.randint(1, 3) if rng.random() < 0.1 else ""
        texts.append(rng.choice(codes) + zeros + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 15))))
    parsed = 0
    for digits in texts:
        try:
            expected = phonenumbers.parse("+" + digits, None)
        except phonenumbers.NumberParseException:
            expected = None
        found = _parse_international(digits)
        assert (found[0] if found else None) == expected, digits
        if found is not None:
            assert found[2] == phonenumbers.national_significant_number(expected), digits
            parsed += 1
        again, possible = _international(digits)  # (with whether the number is possible: is_possible_number's answer)
        assert again == found and possible == (found is not None and phonenumbers.is_possible_number(expected)), digits
    assert parsed > 4000


def test_a_buffer_s_numbers_are_forgotten_once_its_events_are_done() -> None:
    """A parse worker sends each buffer's classified numbers; the main process files them for the buffer's
    events and forgets them after (`parallel_events`): the cache the call book reads stays small."""
    worker, main = NumberClassifier("DE", ("00",), ("0",)), NumberClassifier("DE", ("00",), ("0",))
    sent = [worker.values(n) for n in ("0301234567", "00442079460000", "09001234567")]
    main.classify("6002")  # (an extension: the main process classifies those itself, and keeps them)
    main.remember_all(sent)
    assert [main.classify(n[0]).to_tuple() for n in sent] == sent
    main.forget_all(sent)
    assert set(main._cache) == {"6002"}
    assert main.classify("09001234567").number_type == "premium_rate"  # (worked out again when asked)


#: classifiers whose plain numbers the C parts tell (and one with more outside-line codes than they hold)
PLAIN_CLASSIFIERS = [NumberClassifier(), DE, US, NumberClassifier(internal_digits=0),
                     NumberClassifier("", ("00", "+", "0011", "", "810"), ("9", "0", "81", "+")),
                     NumberClassifier("", ("00",), tuple("0123456789"))]


def _random_texts(seed: int, count: int) -> list[str]:
    """Distinct texts like and unlike dialled numbers: prefixes, `+`s, short and long, other characters."""
    import random

    rng = random.Random(seed)
    heads = ["", "0", "00", "000", "9", "9011", "011", "+", "++", "81", "810", "0+", "00+"]
    middle = "0123456789" * 6 + "+*# -a\u00e9\t"
    texts = {rng.choice(heads) + "".join(rng.choice(middle) for _ in range(rng.randrange(12)))
             + "".join(rng.choice("0123456789") for _ in range(rng.randrange(12))) for _ in range(count)}
    return sorted(texts)


def _plain(classifier: NumberClassifier, dialled: str) -> bool:
    """What the C parts tell from the text alone: ASCII digits, `+`, `*` and `#` that `_work_out` finds an
    extension, or, with no country configured, a number with no international prefix."""
    values = classifier._work_out(dialled)
    simple = dialled != "" and set(dialled) <= set("0123456789+*#")
    extension = (dialled, None, None, "extension", False, None, None, True)
    unknown = (dialled, None, None, "unknown", False, None, None, False)
    return simple and (values == extension or (not classifier.country and values == unknown))


@pytest.mark.parametrize("classifier", PLAIN_CLASSIFIERS[:-1])
def test_a_worker_sends_the_numbers_the_call_book_cannot_tell_from_their_text(classifier: NumberClassifier) -> None:
    """`worked_out` (in C) leaves out exactly the plain numbers, and gives the others' values in their order."""
    texts = _random_texts(len(classifier.intl) + classifier.internal_digits, 3000)
    if numbers._worked_out_in_c() is None:
        pytest.skip("the C parts are not built (needs gcc and python3-dev)")
    expected = [classifier._work_out(t) for t in texts if not _plain(classifier, t)]
    assert classifier.worked_out(texts) == expected
    assert classifier.worked_out(texts) == expected  # (again, from its cache)
    assert 0 < len(expected) < len(texts)


@pytest.mark.parametrize("classifier", [PLAIN_CLASSIFIERS[-1], NumberClassifier("", ("00", "0" * 9), ("9",))],
                         ids=["ten outside-line codes", "a nine-digit prefix"])
def test_a_classifier_with_codes_c_does_not_hold_sends_every_number(classifier: NumberClassifier) -> None:
    texts = _random_texts(7, 500)
    assert classifier.worked_out(texts) == classifier.values_all(texts)


def test_the_c_worked_out_refuses_bad_rules_and_leaves_odd_numbers_to_python() -> None:
    """Rules of the wrong shape are an error, not a guess; a number that is not a str is Python's to work out."""
    from sipwatch import _calls  # type: ignore[attr-defined]

    if numbers._worked_out_in_c() is None:
        pytest.skip("the C parts are not built (needs gcc and python3-dev)")
    asked: list[object] = []

    def work_out(number: object) -> tuple[object, ...]:
        asked.append(number)
        return (number,)

    with pytest.raises(TypeError):
        _calls.worked_out(["0301234567"], ("00",), {}, work_out, 10)
    with pytest.raises(TypeError):
        _calls.worked_out(["0301234567"], ("00", ("9",), 6, False), {}, work_out, 10)
    odd = [None, b"0301234567", "0301234567"]
    assert _calls.worked_out(odd, (("00",), ("9",), 6, False), {}, work_out, 10) == [(None,), (b"0301234567",)]
    assert asked == [None, b"0301234567"]


@pytest.mark.parametrize("classifier", PLAIN_CLASSIFIERS)
def test_the_c_call_book_classifies_plain_numbers_as_python_does(classifier: NumberClassifier) -> None:
    """Each call's number as the C book classifies it (itself for the plain ones, else through the classifier)
    is `_work_out`'s, and the plain ones leave nothing in the classifier's cache."""
    from sipwatch import core

    book = CallBook(classifier)
    if not core.native_calls(book):
        pytest.skip("the C call book is not built (needs gcc and python3-dev)")
    texts = [t for t in _random_texts(3, 400) if t.strip()]
    for i, text in enumerate(texts):
        row = (CDR.replace("00442079460000", text.replace('"', "")).replace("1714764002.1", f"1714764002.{i + 2}")
               .replace("6001-00000001", f"6001-{i + 2:08x}"))  # (a call of its own)
        found = book.observe(replace(one(row), target=text))
        assert found is not None and found[0].classified.to_tuple() == classifier._work_out(text), text
    plain = {t for t in texts if _plain(classifier, t)}
    held = classifier is not PLAIN_CLASSIFIERS[-1]  # (whose ten outside-line codes C does not hold: all asked)
    assert plain and (not plain & set(classifier._cache) if held else plain <= set(classifier._cache))


@pytest.mark.parametrize("dialled", ["00999123456789", "+0123456789", "0009991234567", "00123456"])
@pytest.mark.parametrize("classifier", [NumberClassifier(), DE], ids=["no country", "DE"])
def test_a_number_phonenumbers_refuses_leaves_no_cycle_behind(dialled: str, classifier: NumberClassifier) -> None:
    """phonenumbers handles an exception by keeping it and its traceback in locals, then raises another: left
    alone, that cycle held every frame up to the scan's (a parse worker's buffer and results) until the cyclic
    collector ran, and a worker grew ~5 MB a buffer. Classifying leaves nothing for the collector."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        classifier._work_out(dialled)
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()


@pytest.mark.parametrize(("numbers", "problem"), [
    ({"country": "Germany"}, "numbers.country: 'Germany' is not an ISO 3166 country code"),
    ({"access_codes": ["nine"]}, "numbers.access_codes: 'nine' is not a dialling prefix"),
    ({"national_prefix": "O"}, "numbers.national_prefix: 'O' is not a dialling prefix"),
    ({"high_risk_extra": ["882"]}, "numbers.high_risk_extra: '882' is not an E.164 prefix"),
    ({"internal_digits": 0}, "numbers.internal_digits: expected a whole number of at least 1"),
])
def test_malformed_number_settings_name_the_key(numbers: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        from_dict({"numbers": numbers})


# --- one call, several sources --------------------------------------------------------------------

V = "[2024-05-03 19:20:02] VERBOSE[2817][C-00000001] "
DIAL = V + 'pbx.c: Executing [00442079460000@from-internal:1] Dial("PJSIP/6001-00000001", "PJSIP/x@trunk")'
ANSWERED = V.replace(":02]", ":05]") + "app_dial.c: PJSIP/trunk-00000002 answered PJSIP/6001-00000001"
CEL_START = ('"CHAN_START","1714764002.000000","Alice","6001","6001","","00442079460000","00442079460000",'
             '"from-internal","PJSIP/6001-00000001","","","3","","1714764002.1","1714764002.1","","","",""')
CDR = ('"","6001","00442079460000","from-internal","""Alice"" <6001>","PJSIP/6001-00000001","PJSIP/trunk-00000002",'
       '"Dial","PJSIP/x@trunk","2024-05-03 19:20:02","2024-05-03 19:20:05","2024-05-03 19:21:05",63,60,"ANSWERED",'
       '"DOCUMENTATION","1714764002.1","src=198.51.100.7:5060"')


@pytest.mark.parametrize("sources", [
    pytest.param([DIAL, ANSWERED, CDR], id="log-then-cdr"),
    pytest.param([CEL_START, CDR], id="cel-then-cdr"),
    pytest.param([DIAL, CEL_START, ANSWERED, CDR], id="log-cel-cdr"),
    pytest.param([CDR], id="cdr-alone"),
])
def test_one_call_through_several_sources_is_counted_once(sources: list[str]) -> None:
    book = CallBook(DE)
    found = [book.observe(one(line)) for line in sources]
    assert [f[1] for f in found if f] == [True] + [False] * (len(sources) - 1)
    call = found[-1][0] if found[-1] else None
    assert call is not None
    assert (call.account, call.number, call.billsec, call.disposition, str(call.ip)) == (
        "6001", "00442079460000", 60, "ANSWERED", "198.51.100.7")
    tally = book.accounts["6001"]
    assert (tally.calls, tally.answered, tally.outside, tally.seconds, dict(tally.countries)) == (
        1, 1, 1, 60, {"GB": 1})


def test_cdr_rows_of_one_call_share_its_uniqueid() -> None:
    """Dial trying two trunks writes two rows with the caller's uniqueid (sequence differs): one call."""
    book = CallBook(DE)
    failed = CDR.replace('"ANSWERED"', '"FAILED"').replace(",63,60,", ",3,0,").replace('"2024-05-03 19:20:05"', "")
    for row in (failed, CDR):
        book.observe(one(row))
    tally = book.accounts["6001"]
    assert (tally.calls, tally.answered, tally.seconds, dict(tally.sources)) == (1, 1, 60, {"198.51.100.7": 1})


def test_a_channel_name_reused_after_a_restart_is_a_new_call() -> None:
    book = CallBook(DE)
    first = book.observe(one(DIAL))
    book.observe(one(DIAL.replace("Executing [00442079460000@from-internal:1] Dial", "Executing "
                                  "[00442079460000@from-internal:2] Hangup")))
    later = book.observe(one(DIAL.replace("19:20:02", "19:40:02")))
    assert first is not None and later is not None and later[1] and later[0] is not first[0]
    assert book.accounts["6001"].calls == 2


def test_cdr_rows_without_uniqueid_are_told_apart_by_their_times() -> None:
    """cdr_csv as compiled (no uniqueid): the channel name and the times are all there is. The same row in
    Master.csv and in the account's own file is one call; a later call on a reused name is another."""
    plain = CDR.rsplit(',"1714764002.1"', 1)[0]
    later = plain.replace("19:20:02", "19:30:02").replace("19:20:05", "19:30:05").replace("19:21:05", "19:31:05")
    book = CallBook(DE)
    for row in (plain, plain, later):
        book.observe(one(row))
    assert book.accounts["6001"].calls == 2


@pytest.mark.parametrize("in_c", [False, True], ids=["python", "c"])
@pytest.mark.parametrize(("lines", "kept"), [
    pytest.param([DIAL, ANSWERED, CDR], [DIAL], id="outside: its first record"),
    pytest.param([ANSWERED, DIAL, CDR], [DIAL], id="outside: the first that shows the number"),
    pytest.param([CDR.replace("00442079460000", "6002")], [], id="internal: none"),
])
def test_a_call_keeps_its_first_record_that_shows_it_leaves_the_pbx(lines: list[str], kept: list[str],
                                                                     in_c: bool) -> None:
    """A decision cites outside calls by a record of theirs; an internal call's records are let go at once."""
    from sipwatch import core

    book = CallBook(DE)
    if in_c and not core.native_calls(book):
        pytest.skip("the C call book is not built (needs gcc and python3-dev)")
    found = [book.observe(one(line)) for line in lines][-1]
    assert found is not None
    assert ([found[0].record.raw] if found[0].record is not None else []) == kept


@pytest.mark.parametrize("in_c", [False, True], ids=["python", "c"])
def test_the_kept_record_is_the_event_but_for_its_call_ids(in_c: bool) -> None:
    """The call has the ids (its keys); the record keeps what a decision shows: file, line, text, times."""
    from sipwatch import core

    book = CallBook(DE)
    if in_c and not core.native_calls(book):
        pytest.skip("the C call book is not built (needs gcc and python3-dev)")
    event = one(DIAL)
    found = book.observe(event)
    assert found is not None and found[0].record is not None
    assert found[0].record is not event and event.call is not None
    assert found[0].record == replace(event, call=None)


def test_the_pipeline_correlates_calls() -> None:
    pipeline = Pipeline(Config())
    for line in (DIAL, CDR):
        pipeline.process(one(line))
    assert pipeline.calls.accounts["6001"].calls == 1
