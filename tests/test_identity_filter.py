"""The import's identity filter: a large import looks up only the identity hashes a Bloom filter
may have seen, with exactly the outcome of looking everything up (existing contacts matched by any
identity, secondary emails included; rows naming a person of an earlier batch folded into it)."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from bulk_helpers import all_contacts, as_caller
from conftest import ok
from krabs.accounts import NewAccount, create_account
from krabs.bulk import lookups, upsert
from krabs.bulk.identity_filter import IdentityFilter
from krabs.engine import Engine
from krabs.normalize import norm_hash


def sha(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_the_filter_has_no_false_negatives_and_few_false_positives() -> None:
    f = IdentityFilter(10_000)
    for n in range(10_000):
        f.add(sha(n))
    assert all(f.may_contain(sha(n)) for n in range(10_000))
    false = sum(f.may_contain(sha(n)) for n in range(10_000, 30_000))
    assert false < 20_000 * 0.04  # about 1.7 % by design


def test_a_hash_that_is_not_hex_is_left_out() -> None:
    f = IdentityFilter(10)
    f.add("not-a-sha256-at-all")
    f.add("")
    assert not f.may_contain(sha(1))


def seed(call: Any) -> None:
    """Existing contacts: one with two emails, one with a phone."""
    ok(
        call(
            "contact.create",
            {
                "display_name": "Old Ada",
                "identities": [
                    {"kind": "email", "value": "ada@old.dev"},
                    {"kind": "email", "value": "ada.second@old.dev"},
                ],
            },
        )
    )
    ok(
        call(
            "contact.create",
            {"display_name": "Old Bob", "identities": [{"kind": "phone", "value": "+14155550100"}]},
        )
    )


def big_csv(rows: int) -> str:
    rng = random.Random(3)
    lines = ["name,email,phone,company,tags"]
    for n in range(rows):
        email = f"p{n}@x.dev"
        if n and rng.random() < 0.15:  # a person of an earlier row (maybe an earlier batch)
            earlier = rng.randrange(n)
            email = f"P{earlier}@X.DEV"
        lines.append(f"P{n},{email},,C{n % 7},t{n % 3}")
    lines.append("Ada again,ADA.SECOND@old.dev,,Engines,")  # an existing contact's second email
    lines.append("Bob again,,+1 415 555 0100,Bobco,")  # an existing contact's phone
    return "\n".join(lines) + "\n"


def contacts_of(engine: Engine, account: NewAccount) -> list[tuple[Any, ...]]:
    return sorted(
        (
            c["display_name"],
            c["company"],
            tuple(sorted((i["kind"], i["normalized"]) for i in c["identities"])),
        )
        for c in all_contacts(as_caller(engine, account))
    )


@pytest.mark.parametrize("on_match", ["update", "skip", "create"])
def test_a_filtered_import_matches_an_unfiltered_one(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, on_match: str
) -> None:
    monkeypatch.setattr(upsert, "BATCH", 40)
    text = big_csv(400)
    probed: list[int] = []
    real_probe = lookups._probe

    def probe(uow: Any, kind: str, part: list[str]) -> Any:
        probed.append(len(part))
        return real_probe(uow, kind, part)

    monkeypatch.setattr(lookups, "_probe", probe)
    results = {}
    for filtered in (False, True):
        monkeypatch.setattr(lookups, "FILTER_MIN_ROWS", 100 if filtered else 10**9)
        account = create_account(engine.store, f"filter {filtered}")
        call = as_caller(engine, account)
        seed(call)
        probed.clear()
        result = ok(call("contact.import_csv", {"csv": text, "on_match": on_match}))
        results[filtered] = (
            {k: result[k] for k in ("created", "updated", "merged", "unchanged", "skipped")},
            contacts_of(engine, account),
            sum(probed),
        )
    (counts, rows, probes), (f_counts, f_rows, f_probes) = results[False], results[True]
    assert f_counts == counts and f_rows == rows
    assert counts["merged"] > 20  # rows folded into contacts of earlier batches
    assert ("Old Ada", None) in [(r[0], r[1]) for r in rows] or on_match != "skip"
    # From the fifth batch on only possible matches are probed: far fewer than every identity.
    assert f_probes < probes / 2


def test_an_account_with_far_more_identities_than_the_import_gets_no_filter(
    engine: Engine, account: NewAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    from krabs.auth import authenticate
    from krabs.engine.uow import UnitOfWork

    call = as_caller(engine, account)
    for n in range(30):
        ok(call("contact.create", {"identities": [{"kind": "email", "value": f"e{n}@x.dev"}]}))
    monkeypatch.setattr(lookups, "FILTER_MIN_ROWS", 1)
    who = authenticate(engine.store, engine.keys, account.secret)
    with engine.store.connect(write=False) as conn:
        uow = UnitOfWork(conn=conn, principal=who, run_id=None, dialect=engine.store.dialect)
        assert lookups.identity_filter(uow, rows_hint=2) is None  # 30 > 4 × 2 × 3
        assert lookups.identity_filter(uow, rows_hint=None) is None
        found = lookups.identity_filter(uow, rows_hint=10)
        assert found is not None
        assert all(
            found.may_contain(norm_hash(account.account_id, "email", f"e{n}@x.dev"))
            for n in range(30)
        )
