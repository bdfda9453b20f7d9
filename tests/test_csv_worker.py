"""A large upload is parsed in a second process (``bulk.csv_worker``) with exactly the outcome of
parsing it in-process: the same counts, report, columns and contacts; the same typed errors for a
bad header, a line over the cap or bytes that are not UTF-8, with nothing imported; and no parser
process left behind."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from bulk_helpers import as_caller
from conftest import Caller, err, ok
from krabs.accounts import NewAccount, create_account
from krabs.bulk import csv_worker
from krabs.bulk.uploads import spool_file
from krabs.engine import Engine
from krabs.ops import contact_import

ROWS = [
    "First Name,Last Name,Email,Phone,Company,Tags,Shoe size",
    "Ada,Lovelace,ada@lovelace.dev,+44 20 7946 0000,Engines,vip;partner,37",
    "Alan,Turing,alan@bletchley.uk,,Bletchley,,",
    "Ada,L.,ADA@LOVELACE.DEV,,Engines Ltd,newsletter,",  # merges into the first row
    "Bad,Row,not-an-email,,,,",
    "Ragged,Row",
    ",,,,,,",
    'Grace,"Hopper, Rear Admiral",grace@navy.mil,,"Navy\nReserve",,',  # quoted line break
]


def upload(engine: Engine, account: NewAccount, tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    return spool_file(engine.settings.data_dir, account.account_id, path, 1 << 30)


def contacts_of(call: Any) -> list[tuple[Any, ...]]:
    page = ok(call("contact.list", {"limit": 100}))
    return sorted(
        (
            c["display_name"],
            c["company"],
            tuple(sorted(i["normalized"] for i in c["identities"])),
            tuple(sorted(c["attributes"].items())),
        )
        for c in page["data"]
    )


def parsers() -> list[Any]:
    return [p for p in multiprocessing.active_children() if p.name == "krabs-csv-parse"]


@pytest.mark.parametrize("on_match", ["update", "skip"])
def test_the_parser_process_gives_the_in_process_outcome(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_match: str
) -> None:
    data = ("\n".join(ROWS) + "\n").encode()
    outcomes = {}
    for parallel in (False, True):
        monkeypatch.setattr(contact_import, "PARALLEL_MIN_BYTES", 0 if parallel else 1 << 40)
        account = create_account(engine.store, f"parallel {parallel}")
        call = as_caller(engine, account)
        ref = upload(engine, account, tmp_path, data)
        result = ok(call("contact.import_csv", {"upload": ref, "on_match": on_match}))
        result.pop("undo_token", None)
        result.pop("undo_expires_at", None)
        outcomes[parallel] = (result, contacts_of(call))
    assert outcomes[True] == outcomes[False]
    result, rows = outcomes[True]
    assert (result["created"], result["merged"], result["failed"]) == (4, 1, 1)
    assert {e["code"] for e in result["report"]} == {"ragged_row", "invalid_identity"}
    assert ("Grace Hopper, Rear Admiral", "Navy Reserve") in [(r[0], r[1]) for r in rows]
    assert not parsers()
    # Its own peak, not the forked parent's: a parser needs no database, SQLAlchemy or pydantic.
    assert 0 < csv_worker.LAST_PARSER_PEAK_KIB[0] < 60 * 1024


def test_a_bad_header_is_the_same_typed_error(
    call: Caller, engine: Engine, account: NewAccount, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(contact_import, "PARALLEL_MIN_BYTES", 0)
    ref = upload(engine, account, tmp_path, b"Shoe size,Favourite colour\n44,blue\n")
    e = err(call("contact.import_csv", {"upload": ref}), "invalid_argument")
    assert "no column maps to a name" in e["message"]
    assert not parsers()


@pytest.mark.parametrize(
    "tail, message",
    [
        (b"Zed,Zulu,z\xff\xfez@x.dev,,,,\n", "not UTF-8"),
        (b"Long,Line," + b"x" * 5000 + b"@x.dev,,,,\n", "longer than"),
    ],
)
def test_an_error_deep_in_the_file_imports_nothing(
    call: Caller,
    engine: Engine,
    account: NewAccount,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tail: bytes,
    message: str,
) -> None:
    monkeypatch.setattr(contact_import, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setenv("KRABS_MAX_LINE_BYTES", "4096")
    body = "\n".join(ROWS[:1] + [f"P{n},Q,p{n}@x.dev,,,," for n in range(1500)]) + "\n"
    ref = upload(engine, account, tmp_path, body.encode() + tail)
    e = err(call("contact.import_csv", {"upload": ref}), "invalid_argument")
    assert message in e["message"], e
    assert ok(call("contact.list", {"limit": 1}))["data"] == []  # nothing of the 1,500 rows
    assert not parsers()
