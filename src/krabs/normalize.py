"""Identity normalization: one canonical string per contact identity.

Every identity keeps its raw value plus ``normalize_identity(kind, raw)``. A unique index on the
normalized value decides "same person", so normalization is deterministic, idempotent and strict:
anything ambiguous is rejected with a message an agent can act on instead of being guessed at.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import email_validator
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from krabs.phone_fastpath import simple_phone as simple_phone

IDENTITY_KINDS: tuple[str, ...] = (
    "email",
    "phone",
    "linkedin",
    "x",
    "github",
    "domain",
    "url",
    "other",
)
MAX_LENGTH = 2048

# What each kind accepts; appended to every error so the caller knows how to fix the input.
EXPECTED: dict[str, str] = {
    "email": "e.g. ada@lovelace.dev",
    "phone": "an international number like +14155552671, or a national number with the "
    "account's default region set",
    "linkedin": "a profile URL like https://www.linkedin.com/in/ada-lovelace, a company page "
    "like linkedin.com/company/acme, or a bare handle like ada-lovelace (3-100 letters, digits, "
    "hyphens or underscores)",
    "x": "a handle like @ada_lovelace (1-15 letters, digits or underscores) or a URL like "
    "https://x.com/ada_lovelace",
    "github": "a username like ada-lovelace (1-39 letters, digits or single inner hyphens) or a "
    "URL like https://github.com/ada-lovelace",
    "domain": "a domain like lovelace.dev or a URL like https://www.lovelace.dev/",
    "url": "an http or https URL like https://lovelace.dev/about",
    "other": "any non-empty text without control characters",
}

_HAS_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_OTHER_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?!\d)")  # "mailto:", not "host:8080"
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_X_HANDLE = re.compile(r"[A-Za-z0-9_]{1,15}")
_GITHUB_HANDLE = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
# First path segments that are site pages, not accounts: "x.com/home" is nobody's profile.
_X_RESERVED = frozenset(
    {"home", "i", "search", "explore", "settings", "messages", "notifications", "intent", "share"}
    | {"hashtag", "compose", "login", "signup", "tos", "privacy"}
)
_GITHUB_RESERVED = frozenset(
    {"orgs", "settings", "features", "marketplace", "topics", "sponsors", "explore", "login"}
    | {"notifications", "pulls", "issues", "search", "apps", "about", "pricing", "new"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class NormalizationError(ValueError):
    """Raised with a message an AI agent can act on: says what was wrong and what would be accepted."""


def _show(value: str) -> str:
    """Quote a value for a message without echoing huge inputs or raw control characters."""
    return repr(value if len(value) <= 64 else value[:64] + "…")


def _fail(kind: str, value: str, problem: str) -> NormalizationError:
    return NormalizationError(f"{kind} {_show(value)} {problem} (expected {EXPECTED[kind]})")


#: Exactly the characters of Unicode categories Cc (controls) and Cs (surrogates).
_CC_OR_CS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _clean(kind: str, value: object) -> str:
    """Reject input no kind can accept, so the per-kind code only sees sane text."""
    if not isinstance(value, str):
        raise NormalizationError(
            f"{kind} value must be a string, got {type(value).__name__} (expected {EXPECTED[kind]})"
        )
    s = value.strip()
    if not s:
        raise NormalizationError(f"{kind} value is empty (expected {EXPECTED[kind]})")
    if len(s) > MAX_LENGTH:
        raise NormalizationError(
            f"{kind} value is {len(s)} characters, longer than the {MAX_LENGTH} allowed "
            f"(expected {EXPECTED[kind]})"
        )
    bad = _CC_OR_CS.search(s)
    if bad is not None:
        c = bad.group()
        what = "lone surrogate" if "\ud800" <= c <= "\udfff" else "control character"
        raise _fail(kind, s, f"contains a {what} U+{ord(c):04X} at position {bad.start()}")
    return s if s.isascii() else unicodedata.normalize("NFC", s)


def _split_url(kind: str, s: str) -> SplitResult:
    """Parse an http(s) URL, defaulting the scheme to https so 'x.com/ada' works."""
    if not _HAS_SCHEME.match(s):
        if _OTHER_SCHEME.match(s):
            raise _fail(kind, s, "uses an unsupported URL scheme")
        s = "https://" + s
    try:
        url = urlsplit(s)
        url.port  # noqa: B018 - validates the port, raising ValueError when malformed
    except ValueError as exc:
        raise _fail(kind, s, f"is not a parseable URL: {exc}") from None
    if url.scheme not in _DEFAULT_PORTS:
        raise _fail(kind, s, f"uses the unsupported scheme {url.scheme!r}")
    return url


def _on_site(host: str | None, site: str) -> bool:
    return host is not None and (host == site or host.endswith("." + site))


def _host(kind: str, raw: str, host: str, *, strip_www: bool) -> str:
    """Canonical ASCII (punycode) domain; IDNA makes 'bücher.de' and 'xn--bcher-kva.de' equal."""
    host = host.lower().removesuffix(".")
    if strip_www and host.startswith("www.") and "." in host[4:]:
        host = host[4:]
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise _fail(kind, raw, f"has an invalid domain name: {exc}") from None
    labels = ascii_host.split(".")
    if (
        len(labels) < 2
        or len(ascii_host) > 253
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise _fail(kind, raw, "is not a valid domain name")
    return ascii_host


#: The common simple form: an ASCII dot-atom local part and a plain LDH host name of 2+ labels
#: under an alphabetic top-level label (no punycode, no ``--``). For it email-validator's
#: normalized form is the address itself, so lower-casing is the whole job.
_SIMPLE_EMAIL = re.compile(
    r"[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+(?:\.[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+)*"
    r"@(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}"
)
_SPECIAL_DOMAINS = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)
#: A domain that is one of them or under one of them (``x.local``), in one search.
_SPECIAL_DOMAIN = re.compile(
    r"(?:\A|\.)(?:" + "|".join(re.escape(d) for d in _SPECIAL_DOMAINS) + r")\Z"
)


def simple_email(addr: str) -> str | None:
    """The normalized form of a simple address without email-validator (~40 µs a call, the bulk of
    a CSV import's time), or None when the address is not of the simple form. Byte-identical to the
    full path for every address it accepts (tests/test_normalize_fastpath.py checks by property)."""
    if len(addr) > 254 or not _SIMPLE_EMAIL.fullmatch(addr):
        return None
    local, _, domain = addr.rpartition("@")
    domain = domain.lower()
    if len(local) > 64 or len(domain) > 253 or "--" in domain:
        return None
    if _SPECIAL_DOMAIN.search(domain):
        return None
    return f"{local}@{domain}".lower()


def _email(s: str) -> str:
    addr = s
    if s[:7].lower() == "mailto:":
        addr = s[7:].split("?", 1)[0]  # a mailto query (?subject=...) is not part of the address
    fast = simple_email(addr)
    if fast is not None:
        return fast
    try:
        info = validate_email(addr, check_deliverability=False)
    except EmailNotValidError as exc:
        raise _fail("email", s, f"is not a valid address: {exc}") from None
    return info.normalized.lower()


@functools.lru_cache(maxsize=1 << 12)
def _phone(s: str, default_region: str | None) -> str:
    """E.164 form. Cached: parsing and validating costs ~100 µs, and bulk inputs repeat numbers
    (nearby: 4,096 entries, about 1.5 MB; numbers in the usual shapes take the fast path anyway)."""
    region = None
    if default_region is not None:
        region = default_region.strip().upper() if isinstance(default_region, str) else ""
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise NormalizationError(
                f"default_region {default_region!r} is not a known region "
                "(expected an ISO 3166 alpha-2 code such as US, GB or DE)"
            )
    number = (s[4:] if s[:4].lower() == "tel:" else s).strip()
    if number.startswith("00"):
        number = "+" + number[2:]
    if region is None and not number.startswith(("+", "＋")):
        raise _fail(
            "phone",
            s,
            "has no country code and no default region is set; give an international number "
            "(+...) or set the account's default region",
        )
    fast = simple_phone(number, region)
    if fast is not None:
        return fast
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException as exc:
        raise _fail("phone", s, f"could not be parsed: {exc}") from None
    if not (phonenumbers.is_possible_number(parsed) and phonenumbers.is_valid_number(parsed)):
        where = f" for region {region}" if region and not number.startswith("+") else ""
        raise _fail("phone", s, f"is not a valid phone number{where}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _linkedin_char(c: str, first: bool) -> bool:
    if c in "-_" or (c.isascii() and c.isdigit()) or c.isalpha():
        return True
    return not first and unicodedata.category(c) in ("Mn", "Mc")  # e.g. Devanagari vowel signs


def _linkedin(s: str) -> str:
    if s.startswith("/"):
        path = urlsplit(s).path
    elif "/" in s or "linkedin." in s.lower():
        url = _split_url("linkedin", s)
        if not _on_site(url.hostname, "linkedin.com"):
            raise _fail("linkedin", s, "is not a linkedin.com URL")
        path = url.path
    else:
        path = "/in/" + s
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2 or parts[0].lower() not in ("in", "company"):
        raise _fail("linkedin", s, "is not a /in/<handle> or /company/<slug> page")
    try:
        handle = unquote(parts[1], errors="strict")
    except UnicodeDecodeError:
        raise _fail("linkedin", s, "has a handle that is not valid percent-encoded UTF-8") from None
    handle = unicodedata.normalize("NFC", handle).lower()
    if not 3 <= len(handle) <= 100 or not all(
        _linkedin_char(c, i == 0) for i, c in enumerate(handle)
    ):
        raise _fail("linkedin", s, f"has an invalid handle {_show(handle)}")
    return f"linkedin.com/{parts[0].lower()}/{handle}"


def _site_handle(kind: str, s: str, sites: tuple[str, ...], reserved: frozenset[str]) -> str:
    """Handle from '@ada', 'ada' or a profile URL on one of `sites` (its first path segment)."""
    if "/" not in s and "." not in s:
        return s.removeprefix("@")
    url = _split_url(kind, s)
    if not any(_on_site(url.hostname, site) for site in sites):
        raise _fail(kind, s, f"is not a URL on {' or '.join(sites)}")
    handle = next((p for p in url.path.split("/") if p), "").removeprefix("@")
    if not handle or handle.lower() in reserved:
        raise _fail(kind, s, "does not point at a profile")
    return handle


def _x(s: str) -> str:
    handle = _site_handle("x", s, ("x.com", "twitter.com"), _X_RESERVED)
    if not _X_HANDLE.fullmatch(handle):
        raise _fail("x", s, f"has an invalid handle {_show(handle)}")
    return handle.lower()


def _github(s: str) -> str:
    handle = _site_handle("github", s, ("github.com",), _GITHUB_RESERVED)
    if len(handle) > 39 or not _GITHUB_HANDLE.fullmatch(handle):
        raise _fail("github", s, f"has an invalid username {_show(handle)}")
    return handle.lower()


def _domain(s: str) -> str:
    try:
        host = urlsplit(s if _HAS_SCHEME.match(s) else "//" + s).hostname
    except ValueError as exc:
        raise _fail("domain", s, f"is not parseable: {exc}") from None
    if not host:
        raise _fail("domain", s, "has no host name")
    return _host("domain", s, host, strip_www=True)


def _url(s: str) -> str:
    if any(c.isspace() for c in s):
        raise _fail("url", s, "contains whitespace")
    url = _split_url("url", s)
    if "@" in url.netloc:
        raise _fail("url", s, "contains a user name or password, which is never stored")
    if not url.hostname:
        raise _fail("url", s, "has no host name")
    try:
        ip = ipaddress.ip_address(url.hostname)
    except ValueError:
        host = _host("url", s, url.hostname, strip_www=False)
    else:
        host = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    if url.port is not None and url.port != _DEFAULT_PORTS[url.scheme]:
        host = f"{host}:{url.port}"
    query = f"?{url.query}" if url.query else ""
    return f"{url.scheme}://{host}{url.path.rstrip('/')}{query}"


def _other(s: str) -> str:
    # NFC again after casefold: folding can leave decomposed sequences, breaking idempotence.
    return unicodedata.normalize("NFC", " ".join(s.split()).casefold())


_NORMALIZERS: dict[str, Callable[[str], str]] = {
    "email": _email,
    "linkedin": _linkedin,
    "x": _x,
    "github": _github,
    "domain": _domain,
    "url": _url,
    "other": _other,
}


def normalize_identity(kind: str, value: str, *, default_region: str | None = None) -> str:
    """Canonical form of `value`; equal outputs mean the same identity (unique DB index)."""
    if kind not in IDENTITY_KINDS:
        raise NormalizationError(
            f"unknown identity kind {kind!r} (expected one of: {', '.join(IDENTITY_KINDS)})"
        )
    s = _clean(kind, value)
    if kind == "phone":
        return _phone(s, default_region)
    return _NORMALIZERS[kind](s)


def duplicate_signal(kind: str, normalized: str) -> str | None:
    """A looser key for 'possible duplicate' reporting (never auto-merged).

    For gmail.com/googlemail.com emails drop dots in the local part and any +tag and map
    googlemail.com->gmail.com; for other emails drop +tag; None when no looser signal applies
    (or it equals normalized).
    """
    if kind not in IDENTITY_KINDS:
        raise NormalizationError(
            f"unknown identity kind {kind!r} (expected one of: {', '.join(IDENTITY_KINDS)})"
        )
    if kind != "email" or "@" not in normalized:
        return None
    local, _, domain = normalized.rpartition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    signal = f"{local}@{domain}"
    return None if not local or signal == normalized else signal


def norm_hash(account_id: str, kind: str, normalized: str) -> str:
    """The key of the live-identity unique index: 128 bits of SHA-256 over the account, the kind
    and the normalized value. Folding all three into one short key keeps that index small (about
    40 bytes an entry instead of 110), so an import's random probes and inserts into it stay in the
    page cache: at a million contacts this halved the SQL time of an import."""
    return hashlib.sha256(f"{account_id}\x00{kind}\x00{normalized}".encode()).hexdigest()[:32]


def rekeyed_identity(row: dict[str, Any]) -> dict[str, Any]:
    """An identity row (or audit image) with the ``norm_hash`` this version computes: audit images
    recorded before migration 0007 carry the older key, which the index no longer knows."""
    if row.get("normalized") is None or row.get("account_id") is None:
        return row
    return {**row, "norm_hash": norm_hash(row["account_id"], row["kind"], row["normalized"])}


def tag_key(name: str) -> str:
    """What tag-name uniqueness compares: case-folded, inner whitespace collapsed."""
    return " ".join(name.split()).casefold()
