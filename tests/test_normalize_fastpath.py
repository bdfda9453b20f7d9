"""The fast paths agree with the libraries they skip: the email one (``simple_email``) byte for byte
with email-validator, the phone one (``simple_phone``) with phonenumbers, on every input they
accept; everything outside their simple forms declines (falls back)."""

from __future__ import annotations

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from krabs.normalize import NormalizationError, normalize_identity, simple_email, simple_phone

ATEXT = "abcxyzABCXYZ0189_!#$%&'*+-/=?^`{|}~"
LDH = "abzAZ09-"


def slow(addr: str) -> str | None:
    """What the full path (email-validator) makes of ``addr``: its normalized form, lower-cased."""
    try:
        return validate_email(addr, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


atoms = st.text(alphabet=ATEXT + ".", min_size=0, max_size=70)
labels = st.text(alphabet=LDH, min_size=0, max_size=66)
tlds = st.sampled_from(
    [
        "com",
        "DEV",
        "io",
        "test",
        "local",
        "arpa",
        "onion",
        "invalid",
        "localhost",
        "x",
        "123",
        "xn--p1ai",
        "a1",
        "Co",
        "internal",
        "example",
    ]
)
addresses = st.builds(
    lambda local, hosts, tld: f"{local}@{'.'.join([*hosts, tld])}",
    atoms,
    st.lists(labels, min_size=0, max_size=4),
    tlds,
)
TRICKY = [
    "ada@lovelace.dev",
    "Ada.Lovelace+crm@Example.COM",
    "a..b@x.co",
    ".a@x.co",
    "a.@x.co",
    "a@x..co",
    "a@-x.co",
    "a@x-.co",
    "a@x.c",
    "a@x.co.",
    "a@localhost",
    "a@x.local",
    "a@sub.x.arpa",
    "a@x.test",
    "a@x.onion",
    '"quoted"@x.co',
    "a b@x.co",
    "a@b@x.co",
    "a@[127.0.0.1]",
    "a@1.2.3.4",
    "ü@x.co",
    "a@bücher.de",
    "a@xn--bcher-kva.de",
    "a@ab--cd.com",
    "A" * 64 + "@x.co",
    "A" * 65 + "@x.co",
    "a@" + "b" * 63 + ".com",
    "a@" + "b" * 64 + ".com",
    "a@" + ".".join(["b" * 63] * 4) + ".com",
    "a@" + ".".join(["b" * 49] * 5) + ".com",
    "{|}~@x.co",
    "a@x.co\n",
    "",
    "@x.co",
    "a@",
]


@pytest.mark.parametrize("addr", TRICKY)
def test_tricky_addresses_agree(addr: str) -> None:
    fast = simple_email(addr)
    if fast is not None:
        assert fast == slow(addr)


@settings(max_examples=600, deadline=None)
@given(addresses)
@example("x@y.com")
def test_generated_addresses_agree(addr: str) -> None:
    fast = simple_email(addr)
    if fast is not None:
        assert fast == slow(addr)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_never_passes_where_the_validator_fails(text: str) -> None:
    fast = simple_email(text)
    if fast is not None:
        assert fast == slow(text)


def test_the_fast_path_takes_the_common_forms() -> None:
    assert simple_email("Ada.Lovelace+crm@Example.COM") == "ada.lovelace+crm@example.com"
    assert simple_email("o'brien@x.co.uk") == "o'brien@x.co.uk"
    for special in ("a@x.local", "a@x.test", "a@bücher.de", "a@xn--bcher-kva.de", '"a"@x.co'):
        assert simple_email(special) is None


@pytest.mark.parametrize(
    "value",
    ["Ada@Lovelace.DEV", "mailto:Ada@Lovelace.dev?subject=hi", "a@bücher.de", "ü@x.co"],
)
def test_normalize_identity_is_unchanged(value: str) -> None:
    addr = value[7:].split("?", 1)[0] if value.startswith("mailto:") else value
    assert normalize_identity("email", value) == slow(addr)


@pytest.mark.parametrize("value", ["a..b@x.co", "a@localhost", "a@x.test", "nope"])
def test_invalid_addresses_still_fail(value: str) -> None:
    with pytest.raises(NormalizationError):
        normalize_identity("email", value)


# The phone fast path (``krabs.phone_fastpath.simple_phone``): phonenumbers' answer, without its parser.

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
TYPES = [
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.PREMIUM_RATE,
    phonenumbers.PhoneNumberType.VOIP,
]
FORMATS = [
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
]


def slow_phone(number: str, region: str | None) -> str | None:
    """What phonenumbers makes of ``number``: its E.164 form when possible and valid, else None."""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number(parsed) and phonenumbers.is_valid_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None


def agree(number: str, region: str | None) -> None:
    fast = simple_phone(number, region)
    if fast is not None:
        assert fast == slow_phone(number, region), (number, region)


@st.composite
def written_numbers(draw: st.DrawFn) -> tuple[str, str | None]:
    """A region's example number of some type, in some format, with some digits changed, read
    with that region, another one, or none as the default."""
    region = draw(st.sampled_from(REGIONS))
    example = phonenumbers.example_number_for_type(region, draw(st.sampled_from(TYPES)))
    if example is None:
        example = phonenumbers.example_number(region) or phonenumbers.parse("+14155552671")
    text = list(phonenumbers.format_number(example, draw(st.sampled_from(FORMATS))))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text) - 1))
        if text[at].isdigit():
            text[at] = draw(st.sampled_from("0123456789"))
    if draw(st.booleans()):
        text = text[: draw(st.integers(1, len(text)))]
    default = draw(st.sampled_from([region, None, "US", "GB", "DE", "IT", "AR"]))
    return "".join(text), default


@settings(max_examples=1500, deadline=None)
@given(written_numbers())
@example(("+1 (415) 200-0001", None))
@example(("011 44 20 7200 0001", "US"))
@example(("1 415 200 0001", "US"))
@example(("+39 06 1234 5678", None))
@example(("030 123456", "DE"))
def test_generated_numbers_agree(case: tuple[str, str | None]) -> None:
    agree(*case)


@settings(max_examples=800, deadline=None)
@given(
    st.text(alphabet="+0123456789 .()-", min_size=0, max_size=24),
    st.sampled_from([None, "US", "GB", "DE", "FR", "IN", "BR", "AU", "IT", "MX"]),
)
def test_digit_strings_agree(number: str, region: str | None) -> None:
    agree(number, region)


def test_the_phone_fast_path_takes_the_common_forms() -> None:
    assert simple_phone("+1 (415) 200-0001", None) == "+14152000001"
    assert simple_phone("415.200.0001", "US") == "+14152000001"
    assert simple_phone("+44 20 7200 0001", "US") == "+442072000001"
    # Prefixes phonenumbers would strip or reinterpret, and non-simple text, go the slow way.
    for number, region in [
        ("011 44 20 7200 0001", "US"),
        ("030 123456", "DE"),
        ("+39 06 1234 5678", None),
        ("415.200.0001", None),
        ("+1 415 200 0001 ext. 7", None),
        ("＋1 415 200 0001", None),
    ]:
        assert simple_phone(number, region) is None
    assert normalize_identity("phone", "030 123456", default_region="DE") == "+4930123456"
    assert normalize_identity("phone", "+39 06 1234 5678") == "+390612345678"


def test_the_control_character_check_is_exactly_categories_cc_and_cs() -> None:
    import sys
    import unicodedata

    from krabs.normalize import _CC_OR_CS

    for c in map(chr, range(sys.maxunicode + 1)):
        assert (unicodedata.category(c) in ("Cc", "Cs")) == bool(_CC_OR_CS.fullmatch(c)), c
