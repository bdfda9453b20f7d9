"""The email fast path (``krabs.normalize.simple_email``) agrees byte for byte with email-validator on
every address it accepts, and declines (falls back) on everything outside its simple form."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from krabs.normalize import NormalizationError, normalize_identity, simple_email

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
