"""Tests for identity normalization: canonical forms, equivalences, and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from krabs.normalize import (
    IDENTITY_KINDS,
    NormalizationError,
    duplicate_signal,
    normalize_identity,
)

# A fragment of the "what would be accepted" hint every error for that kind must carry.
HINTS: dict[str, str] = {
    "email": "ada@lovelace.dev",
    "phone": "+14155552671",
    "linkedin": "linkedin.com/in/ada-lovelace",
    "x": "https://x.com/",
    "github": "https://github.com/",
    "domain": "lovelace.dev",
    "url": "https://lovelace.dev",
    "other": "non-empty text",
}


def rejected(kind: str, value: object, region: str | None = None) -> str:
    """Assert the value is rejected with an actionable message, and return that message."""
    with pytest.raises(NormalizationError) as info:
        normalize_identity(kind, value, default_region=region)  # type: ignore[arg-type]
    msg = str(info.value)
    assert "expected" in msg
    assert HINTS[kind] in msg
    return msg


VALID: list[tuple[str, str, str | None, str]] = [
    # email
    ("email", "ada@lovelace.dev", None, "ada@lovelace.dev"),
    ("email", "  Ada.Lovelace@Lovelace.DEV \n", None, "ada.lovelace@lovelace.dev"),
    ("email", "mailto:ADA@lovelace.dev", None, "ada@lovelace.dev"),
    ("email", "MAILTO:ada@lovelace.dev?subject=hi", None, "ada@lovelace.dev"),
    ("email", "ada+crm@lovelace.dev", None, "ada+crm@lovelace.dev"),
    ("email", "ada@BÜCHER.de", None, "ada@bücher.de"),
    ("email", "ada@xn--bcher-kva.de", None, "ada@bücher.de"),
    # phone
    ("phone", "+1 (415) 555-2671", None, "+14155552671"),
    ("phone", "415.555.2671", "US", "+14155552671"),
    ("phone", "415.555.2671", "us", "+14155552671"),
    ("phone", "tel:+1-415-555-2671", None, "+14155552671"),
    ("phone", "+1 415 555 2671 ext. 12", None, "+14155552671"),
    ("phone", "tel:+1-415-555-2671;ext=12", None, "+14155552671"),
    ("phone", "0044 20 7946 0958", None, "+442079460958"),
    ("phone", "tel:+44-20-7946-0958", None, "+442079460958"),
    ("phone", "020 7946 0958", "GB", "+442079460958"),
    ("phone", "+44 20 7946 0958", "US", "+442079460958"),
    ("phone", "０２０ ７９４６ ０９５８", "GB", "+442079460958"),
    # linkedin
    ("linkedin", "https://www.linkedin.com/in/Ada-Lovelace/", None, "linkedin.com/in/ada-lovelace"),
    ("linkedin", "linkedin.com/in/ada-lovelace?trk=x", None, "linkedin.com/in/ada-lovelace"),
    ("linkedin", "http://uk.linkedin.com/in/ada-lovelace", None, "linkedin.com/in/ada-lovelace"),
    ("linkedin", "/in/ada", None, "linkedin.com/in/ada"),
    ("linkedin", "ada-lovelace", None, "linkedin.com/in/ada-lovelace"),
    ("linkedin", "Ada_Lovelace_1815", None, "linkedin.com/in/ada_lovelace_1815"),
    ("linkedin", "linkedin.com/company/Acme", None, "linkedin.com/company/acme"),
    ("linkedin", "https://www.linkedin.com/company/acme/about/", None, "linkedin.com/company/acme"),
    ("linkedin", "linkedin.com/in/Jos%C3%A9-G", None, "linkedin.com/in/josé-g"),
    ("linkedin", "linkedin.com/in/josé-g", None, "linkedin.com/in/josé-g"),
    ("linkedin", "https://linkedin.com/in/ada#top", None, "linkedin.com/in/ada"),
    # x
    ("x", "@Ada", None, "ada"),
    ("x", "Ada", None, "ada"),
    ("x", "https://x.com/Ada", None, "ada"),
    ("x", "twitter.com/ada", None, "ada"),
    ("x", "https://mobile.twitter.com/ada/status/123", None, "ada"),
    ("x", "https://www.twitter.com/Ada_Lovelace?lang=en", None, "ada_lovelace"),
    ("x", "A" * 15, None, "a" * 15),
    # github
    ("github", "@ada", None, "ada"),
    ("github", "ada", None, "ada"),
    ("github", "https://github.com/Ada/repo", None, "ada"),
    ("github", "github.com/Ada-Lovelace", None, "ada-lovelace"),
    ("github", "a" * 39, None, "a" * 39),
    # domain
    ("domain", "Lovelace.DEV", None, "lovelace.dev"),
    ("domain", "https://www.lovelace.dev/path", None, "lovelace.dev"),
    ("domain", "www.lovelace.dev.", None, "lovelace.dev"),
    ("domain", "http://user:pw@Lovelace.dev:8080/x?y#z", None, "lovelace.dev"),
    ("domain", "bücher.de", None, "xn--bcher-kva.de"),
    ("domain", "BÜCHER.DE", None, "xn--bcher-kva.de"),
    ("domain", "xn--bcher-kva.de", None, "xn--bcher-kva.de"),
    ("domain", "www.com", None, "www.com"),
    ("domain", "mail.lovelace.co.uk", None, "mail.lovelace.co.uk"),
    # url
    ("url", "lovelace.dev", None, "https://lovelace.dev"),
    ("url", "https://lovelace.dev/", None, "https://lovelace.dev"),
    ("url", "HTTPS://Lovelace.DEV/About/", None, "https://lovelace.dev/About"),
    ("url", "http://lovelace.dev:80/a", None, "http://lovelace.dev/a"),
    ("url", "https://lovelace.dev:443/a", None, "https://lovelace.dev/a"),
    ("url", "https://lovelace.dev:8443/a", None, "https://lovelace.dev:8443/a"),
    ("url", "http://lovelace.dev:443/", None, "http://lovelace.dev:443"),
    ("url", "lovelace.dev/p?b=2&a=1#frag", None, "https://lovelace.dev/p?b=2&a=1"),
    ("url", "https://www.lovelace.dev/x", None, "https://www.lovelace.dev/x"),
    ("url", "https://bücher.de/Ü", None, "https://xn--bcher-kva.de/Ü"),
    ("url", "http://127.0.0.1:8080/", None, "http://127.0.0.1:8080"),
    ("url", "http://[2001:DB8::1]/x", None, "http://[2001:db8::1]/x"),
    ("url", "https://lovelace.dev./x", None, "https://lovelace.dev/x"),
    # other
    ("other", "  Hello   World  ", None, "hello world"),
    ("other", "Straße", None, "strasse"),
    ("other", "e\u0301", None, "é"),
    ("other", "Ada\u00a0\u2003Lovelace", None, "ada lovelace"),
    ("other", "'; DROP TABLE contacts;--", None, "'; drop table contacts;--"),
    ("other", "😀 emoji", None, "😀 emoji"),
    ("other", "\u200fשלום", None, "\u200fשלום"),
    ("other", "a\u200db", None, "a\u200db"),
]


@pytest.mark.parametrize(("kind", "value", "region", "expected"), VALID)
def test_valid(kind: str, value: str, region: str | None, expected: str) -> None:
    assert normalize_identity(kind, value, default_region=region) == expected


@pytest.mark.parametrize(("kind", "value", "region", "expected"), VALID)
def test_idempotent(kind: str, value: str, region: str | None, expected: str) -> None:
    """A stored normalized value must normalize to itself, or re-imports would fork identities."""
    assert normalize_identity(kind, expected, default_region=region) == expected


SAME: list[tuple[str, list[str], str | None]] = [
    (
        "email",
        ["ADA@LOVELACE.DEV", "ada@lovelace.dev", "Ada@Lovelace.Dev", "mailto:ada@lovelace.dev"],
        None,
    ),
    ("phone", ["+1 (415) 555-2671", "415.555.2671", "(415) 555 2671", "tel:+14155552671"], "US"),
    ("phone", ["0044 20 7946 0958", "tel:+44-20-7946-0958", "+44 (0)20 7946 0958"], None),
    (
        "linkedin",
        ["ada-lovelace", "/in/Ada-Lovelace", "https://uk.linkedin.com/in/ada-lovelace/"],
        None,
    ),
    ("x", ["@ADA", "ada", "https://x.com/ada", "twitter.com/Ada/status/1"], None),
    ("github", ["@Ada", "ada", "https://github.com/ada/krabs/issues/1"], None),
    (
        "domain",
        ["bücher.de", "xn--bcher-kva.de", "https://www.BÜCHER.de/x", "www.bücher.de."],
        None,
    ),
    ("url", ["lovelace.dev/a", "https://lovelace.dev/a/", "HTTPS://LOVELACE.DEV:443/a#x"], None),
    ("other", ["e\u0301", "é", " É ", "E\u0301"], None),
]


@pytest.mark.parametrize(("kind", "values", "region"), SAME)
def test_equivalent_forms_normalize_equal(kind: str, values: list[str], region: str | None) -> None:
    assert len({normalize_identity(kind, v, default_region=region) for v in values}) == 1


INVALID: list[tuple[str, str, str | None, str]] = [
    ("email", "x", None, "not a valid address"),
    ("email", "ada@", None, "not a valid address"),
    ("email", "@lovelace.dev", None, "not a valid address"),
    ("email", "Ada <ada@lovelace.dev>", None, "not a valid address"),
    ("email", "ada@@lovelace.dev", None, "not a valid address"),
    ("email", "ada@localhost", None, "not a valid address"),
    ("email", "ada\u200b@lovelace.dev", None, "not a valid address"),
    ("phone", "415.555.2671", None, "default region"),
    ("phone", "4155552671", None, "international number (+...)"),
    ("phone", "abc", "US", "could not be parsed"),
    ("phone", "+1 000", None, "not a valid phone number"),
    ("phone", "+999 1234", None, "could not be parsed"),
    ("phone", "12", "US", "not a valid phone number"),
    ("linkedin", "ab", None, "invalid handle"),
    ("linkedin", "a" * 101, None, "invalid handle"),
    ("linkedin", "linkedin.com/pub/ada", None, "/in/<handle>"),
    ("linkedin", "linkedin.com", None, "/in/<handle>"),
    ("linkedin", "https://linkedin.com.evil.com/in/ada", None, "not a linkedin.com URL"),
    ("linkedin", "https://example.com/in/ada", None, "not a linkedin.com URL"),
    ("linkedin", "linkedin.com/in/%FF%FE", None, "percent-encoded"),
    ("linkedin", "linkedin.com/in/ada%2Fx", None, "invalid handle"),
    ("linkedin", "linkedin.com/in/ada%00x", None, "invalid handle"),
    ("linkedin", "ftp://linkedin.com/in/ada", None, "unsupported scheme"),
    ("x", "ada.lovelace", None, "not a URL on x.com"),
    ("x", "a" * 16, None, "invalid handle"),
    ("x", "ada-lovelace", None, "invalid handle"),
    ("x", "@", None, "invalid handle"),
    ("x", "https://x.com/home", None, "does not point at a profile"),
    ("x", "x.com", None, "does not point at a profile"),
    ("x", "https://github.com/ada", None, "not a URL on x.com"),
    ("github", "-ada", None, "invalid username"),
    ("github", "ada-", None, "invalid username"),
    ("github", "a--b", None, "invalid username"),
    ("github", "a" * 40, None, "invalid username"),
    ("github", "ada_lovelace", None, "invalid username"),
    ("github", "https://gitlab.com/ada", None, "not a URL on github.com"),
    ("github", "https://github.com/settings", None, "does not point at a profile"),
    ("domain", "localhost", None, "not a valid domain"),
    ("domain", "1.2.3.4", None, "not a valid domain"),
    ("domain", "[::1]", None, "not a valid domain"),
    ("domain", "a_b.com", None, "not a valid domain"),
    ("domain", "-ada.dev", None, "not a valid domain"),
    ("domain", "ada-.dev", None, "not a valid domain"),
    ("domain", "lovelace..dev", None, "domain"),
    ("domain", "a" * 64 + ".dev", None, "domain"),
    ("domain", "https:///path", None, "no host name"),
    ("domain", "lovelace .dev", None, "not a valid domain"),
    ("url", "ftp://lovelace.dev", None, "unsupported scheme"),
    ("url", "javascript:alert(1)", None, "unsupported URL scheme"),
    ("url", "mailto:ada@lovelace.dev", None, "unsupported URL scheme"),
    ("url", "https://lovelace.dev/a b", None, "whitespace"),
    ("url", "http://lovelace.dev:99999", None, "not a parseable URL"),
    ("url", "http://lovelace.dev:abc", None, "not a parseable URL"),
    ("url", "http://[::1", None, "not a parseable URL"),
    ("url", "https://", None, "no host name"),
    ("url", "https://user:pw@lovelace.dev/", None, "password"),
    ("url", "https://localhost/", None, "not a valid domain"),
    ("url", "https://lovelace_dev.com", None, "not a valid domain"),
]


@pytest.mark.parametrize(("kind", "value", "region", "fragment"), INVALID)
def test_invalid(kind: str, value: str, region: str | None, fragment: str) -> None:
    assert fragment in rejected(kind, value, region)


HOSTILE: list[object] = [
    "",
    "   ",
    "\t\n \r",
    "ada\x00@lovelace.dev",
    "\x00",
    "ada\x07lovelace",
    "a\x1bb",
    "a\x7fb",
    "a\x85b",
    "a\u009fb",
    "a\tb",
    "\ud800",
    "ada\udfffx",
    "a" * 10_000,
    "x" * 2049,
    None,
    42,
    b"ada@lovelace.dev",
]


@pytest.mark.parametrize("kind", IDENTITY_KINDS)
@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_hostile_rejected_for_every_kind(kind: str, value: object) -> None:
    msg = rejected(kind, value, "US")
    assert len(msg) < 1000  # never echo a 10,000-character input back
    assert "\x00" not in msg and "\ud800" not in msg


def test_length_limit_is_2048() -> None:
    assert normalize_identity("other", "a" * 2048) == "a" * 2048
    assert "2048" in rejected("other", "a" * 2049)


@pytest.mark.parametrize("kind", [k for k in IDENTITY_KINDS if k != "other"])
@pytest.mark.parametrize(
    "value",
    ["'; DROP TABLE contacts;--", "1 OR 1=1", "\u202eevil", "a\u200db", "😀", "<script>"],
)
def test_sql_and_unicode_junk_rejected(kind: str, value: str) -> None:
    rejected(kind, value, "US")


def test_combining_characters_equal_for_other() -> None:
    assert normalize_identity("other", "e\u0301") == normalize_identity("other", "é")
    assert normalize_identity("other", "Cafe\u0301") == normalize_identity("other", "CAFÉ")


@pytest.mark.parametrize("kind", ["Email", "EMAIL", "twitter", "", "phone ", None])
def test_unknown_kind_lists_accepted_kinds(kind: str) -> None:
    with pytest.raises(NormalizationError) as info:
        normalize_identity(kind, "ada@lovelace.dev")
    assert all(k in str(info.value) for k in IDENTITY_KINDS)
    with pytest.raises(NormalizationError):
        duplicate_signal(kind, "ada@lovelace.dev")


@pytest.mark.parametrize("region", ["XX", "USA", "", "1", 1])
def test_bad_default_region(region: str) -> None:
    with pytest.raises(NormalizationError, match="ISO 3166 alpha-2") as info:
        normalize_identity("phone", "415 555 2671", default_region=region)
    assert "US" in str(info.value)


def test_phone_without_region_message_is_actionable() -> None:
    msg = rejected("phone", "(415) 555-2671")
    assert "international number (+...)" in msg
    assert "default region" in msg


def test_normalization_error_is_value_error() -> None:
    assert issubclass(NormalizationError, ValueError)


DUPLICATES: list[tuple[str, str, str | None]] = [
    ("email", "ada.lovelace@gmail.com", "adalovelace@gmail.com"),
    ("email", "a.d.a+crm@gmail.com", "ada@gmail.com"),
    ("email", "ada.lovelace+x+y@googlemail.com", "adalovelace@gmail.com"),
    ("email", "ada@googlemail.com", "ada@gmail.com"),
    ("email", "adalovelace@gmail.com", None),
    ("email", "ada+crm@lovelace.dev", "ada@lovelace.dev"),
    ("email", "ada.lovelace@lovelace.dev", None),
    ("email", "ada@lovelace.dev", None),
    ("email", "+crm@lovelace.dev", None),
    ("phone", "+14155552671", None),
    ("other", "ada+crm@gmail.com", None),
    ("url", "https://lovelace.dev", None),
]


@pytest.mark.parametrize(("kind", "normalized", "signal"), DUPLICATES)
def test_duplicate_signal(kind: str, normalized: str, signal: str | None) -> None:
    assert duplicate_signal(kind, normalized) == signal


def test_gmail_variants_share_a_signal_but_not_a_normalized_value() -> None:
    raw = ["Ada.Lovelace@gmail.com", "adalovelace+crm@googlemail.com", "a.da.love.lace@GMAIL.com"]
    normalized = [normalize_identity("email", v) for v in raw]
    assert len(set(normalized)) == 3  # never auto-merged
    assert {duplicate_signal("email", n) for n in normalized} == {"adalovelace@gmail.com"}


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(IDENTITY_KINDS),
    value=st.text(max_size=60)
    | st.emails()
    | st.from_regex(r"(https?://)?[a-zA-Z0-9.ü@:/_%+#?-]{1,40}", fullmatch=True),
)
def test_property_only_normalization_errors_and_idempotent(kind: str, value: str) -> None:
    try:
        normalized = normalize_identity(kind, value, default_region="GB")
    except NormalizationError as exc:
        assert "expected" in str(exc)
        return
    assert normalize_identity(kind, normalized, default_region="GB") == normalized
