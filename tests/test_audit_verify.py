"""``krabs audit verify`` on a real log: an export verifies, and every way of tampering with it is
rejected naming the first bad record (flipped byte, dropped record, reordered records, swapped
signature, truncated log, forged checkpoint, altered payload, a re-signed history against a pinned
key); key rotation keeps the log verifiable."""

from __future__ import annotations

import base64
import functools
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from tests.conftest import make_store, ok
from tests.conftest import test_settings as settings_for

from krabs.accounts import create_account
from krabs.audit import merkle
from krabs.audit.checkpoint import note_body, sign_checkpoint, sign_note
from krabs.audit.log import RECORD_VERSION
from krabs.audit.signing import SigningKey
from krabs.audit.sources import from_export
from krabs.audit.verify import Tampered, verify_log
from krabs.cli import cli
from krabs.engine import CallRequest, Engine

Tables = dict[str, list[dict[str, Any]]]


def export(call: Any, engine: Engine, account: Any) -> Path:
    """Six writes, the checkpoint a run's close signs, and the account's export."""
    for i in range(6):
        ok(call("contact.create", {"display_name": f"Verified {i}"}))
    with engine.store.transaction() as conn:
        sign_checkpoint(conn, account.account_id, engine.settings.data_dir)
    return Path(ok(call("account.export", {}))["path"])


def load(path: Path) -> tuple[dict[str, Any], Tables]:
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        tables = {
            n[: -len(".ndjson")]: [json.loads(x) for x in zf.read(n).splitlines() if x.strip()]
            for n in zf.namelist()
            if n.endswith(".ndjson")
        }
    return manifest, tables


def save(manifest: dict[str, Any], tables: Tables, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for name, rows in tables.items():
            zf.writestr(f"{name}.ndjson", "".join(json.dumps(r) + "\n" for r in rows))
    return path


def by_seq(rows: list[dict[str, Any]], seq: int) -> dict[str, Any]:
    return next(r for r in rows if int(r["seq"]) == seq)


def test_an_export_verifies(call, engine, account):
    report = verify_log(from_export(export(call, engine, account)), workers=1)
    assert report.records == 6 and report.signed == 6  # the export itself is a read
    assert report.checkpoints == 2 and report.keys  # the first write's and the run's


def flip_byte(t: Tables) -> None:
    r = by_seq(t["audit_actions"], 3)
    flipped = r["record"].replace(f'"v":{RECORD_VERSION}', f'"v":{RECORD_VERSION + 1}')
    assert flipped != r["record"]
    r["record"] = flipped


def drop_record(t: Tables) -> None:
    t["audit_actions"] = [r for r in t["audit_actions"] if int(r["seq"]) != 3]


def reorder(t: Tables) -> None:
    a, b = by_seq(t["audit_actions"], 3), by_seq(t["audit_actions"], 4)
    a["record"], b["record"] = b["record"], a["record"]


def swap_signature(t: Tables) -> None:
    a, b = by_seq(t["audit_actions"], 3), by_seq(t["audit_actions"], 4)
    a["signature"], b["signature"] = b["signature"], a["signature"]


def truncate(t: Tables) -> None:
    last = max(int(r["seq"]) for r in t["audit_actions"])
    t["audit_actions"] = [r for r in t["audit_actions"] if int(r["seq"]) != last]


def forge_checkpoint(t: Tables) -> None:
    cp = t["audit_checkpoints"][-1]
    name = t["audit_account_keys"][0]["name"]
    fake = SigningKey.generate()
    forged = SigningKey(fake.private, fake.public, name)  # the real key's name, another key
    body = note_body(cp["account_id"], int(cp["size"]), bytes.fromhex(cp["root"]))
    cp["note"] = sign_note(body, [forged])


def alter_payload(t: Tables) -> None:
    row = t["audit_payloads"][0]
    body = row["body"]  # sealed: a character of the ciphertext changed
    row["body"] = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]


def resign_history(t: Tables) -> None:
    """An attacker with the database rewrites record 3 and re-signs everything with their key."""
    attacker = SigningKey.generate()
    flip_byte(t)
    rows = sorted(t["audit_actions"], key=lambda r: int(r["seq"]))
    import hashlib

    prev = "0" * 64
    for r in rows:
        rec = json.loads(r["record"])
        rec["prev_hash"] = prev
        r["record"] = json.dumps(rec, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        prev = hashlib.sha256(r["record"].encode()).hexdigest()
    for r in rows:
        r["signing_key"] = attacker.name
        leaf = merkle.leaf_hash(r["record"].encode())
        r["signature"] = base64.b64encode(attacker.sign(leaf)).decode()
    for k in t["audit_account_keys"]:
        k["name"], k["public_key"] = attacker.name, base64.b64encode(attacker.public).decode()
    leaves = [merkle.leaf_hash(r["record"].encode()) for r in rows]
    for cp in t["audit_checkpoints"]:
        size = int(cp["size"])
        root = merkle.root(leaves[:size])
        cp["root"] = root.hex()
        cp["note"] = sign_note(note_body(cp["account_id"], size, root), [attacker])


def duplicate_record(t: Tables) -> None:
    t["audit_actions"].append(dict(by_seq(t["audit_actions"], 4)))


def malformed_row(t: Tables) -> None:
    by_seq(t["audit_actions"], 3)["seq"] = "3"  # a hostile export: no integer seq


def seq_far_beyond(t: Tables) -> None:
    """Record 6 claims seq 10**15 (row and record agree): a gap at 6, not an exabyte array."""
    r = by_seq(t["audit_actions"], 6)
    r["seq"] = 10**15
    r["record"] = r["record"].replace('"seq":6', f'"seq":{10**15}')


def lone_surrogate(t: Tables) -> None:
    """A hostile export's JSON escapes make strings no UTF-8 encodes: tampering, not a crash."""
    r = by_seq(t["audit_actions"], 2)
    r["record"] = r["record"].replace(f'"v":{RECORD_VERSION}', f'"v":{RECORD_VERSION},"x":"\ud800"')
    # The same record's payload (the first payload row is any record's: rows sort by digest).
    payload = next(p for p in t["audit_payloads"] if p["digest"] == r["payload_digest"])
    payload["body"] += "\ud800"


def seq_below_one(t: Tables) -> None:
    r = by_seq(t["audit_actions"], 6)
    r["seq"] = -6
    r["record"] = r["record"].replace('"seq":6', '"seq":-6')


MUTATIONS: list[tuple[Callable[[Tables], None], int | None, str]] = [
    (flip_byte, 3, "signature does not match"),
    (drop_record, 3, "missing"),
    (reorder, 3, "stored at seq 3"),
    (swap_signature, 3, "signature does not match"),
    (truncate, None, "truncated"),
    (forge_checkpoint, None, "checkpoint"),
    (alter_payload, None, "payload"),
    (duplicate_record, 4, "two records with this seq"),
    (malformed_row, 3, "missing"),
    (seq_far_beyond, 6, "missing"),
    (seq_below_one, 6, "truncated"),
    (lone_surrogate, 2, "not UTF-8"),
]


@pytest.mark.parametrize(
    ("mutate", "seq", "why"), MUTATIONS, ids=lambda m: getattr(m, "__name__", "")
)
def test_every_mutation_is_rejected(call, engine, account, tmp_path, mutate, seq, why):
    manifest, tables = load(export(call, engine, account))
    mutate(tables)
    with pytest.raises(Tampered) as caught:
        verify_log(from_export(save(manifest, tables, tmp_path / "bad.zip")), workers=1)
    assert why in str(caught.value)
    if seq is not None:
        assert caught.value.seq == seq


def test_rows_out_of_file_order_still_verify(call, engine, account, tmp_path):
    """The verifier places records by seq, whatever order the export's lines come in."""
    manifest, tables = load(export(call, engine, account))
    tables["audit_actions"].reverse()
    tables["audit_payloads"].reverse()
    report = verify_log(from_export(save(manifest, tables, tmp_path / "shuffled.zip")), workers=1)
    assert report.records == 6 and report.signed == 6


def test_lines_that_are_not_json_are_tampering_not_a_crash(call, engine, account, tmp_path):
    manifest, tables = load(export(call, engine, account))
    path = save(manifest, tables, tmp_path / "garbage.zip")
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    for name in ("audit_actions.ndjson", "audit_payloads.ndjson"):
        files[name] += b"{not json\n[1, 2]\n\xff\xfe\n"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    with pytest.raises(Tampered) as caught:
        verify_log(from_export(path), workers=1)
    assert "not JSON" in caught.value.reason or "malformed" in caught.value.reason


def test_a_resigned_history_fails_against_the_pinned_key(call, engine, account, tmp_path):
    original = export(call, engine, account)
    pin = base64.b64decode(load(original)[1]["audit_account_keys"][0]["public_key"])
    manifest, tables = load(original)
    resign_history(tables)
    forged = save(manifest, tables, tmp_path / "resigned.zip")
    verify_log(from_export(forged), workers=1)  # self-consistent: only the pin tells
    with pytest.raises(Tampered, match="pinned"):
        verify_log(from_export(forged), pinned=[pin], workers=1)
    assert verify_log(from_export(original), pinned=[pin], workers=1).pinned


def test_cli_exit_codes_and_since(call, engine, account, tmp_path):
    path = export(call, engine, account)
    manifest, tables = load(path)
    runner = CliRunner()
    since = tmp_path / "since.note"
    since.write_text(tables["audit_checkpoints"][0]["note"])
    good = runner.invoke(cli, ["audit", "verify", "--export", str(path), "--since", str(since)])
    assert good.exit_code == 0, good.output
    assert "verified" in good.output
    swap_signature(tables)
    bad = runner.invoke(
        cli,
        ["audit", "verify", "--export", str(save(manifest, tables, tmp_path / "b.zip")), "--json"],
    )
    assert bad.exit_code == 3
    assert json.loads(bad.output)["seq"] == 3
    forged_since = tmp_path / "forged.note"
    forge_checkpoint(tables)
    forged_since.write_text(tables["audit_checkpoints"][-1]["note"])
    again = runner.invoke(
        cli, ["audit", "verify", "--export", str(path), "--since", str(forged_since)]
    )
    assert again.exit_code == 3


def test_a_truncated_inclusion_proof_fails(call, engine, account):
    ok(call("contact.create", {"display_name": "A"}))
    ids = [ok(call("contact.create", {"display_name": f"P{i}"})) for i in range(4)]
    del ids
    got = ok(call("audit.proof", {"from_size": 1, "to_size": 5}))
    proof = [bytes.fromhex(h) for h in got["proof"]]
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(
            1, 5, bytes.fromhex(got["from_root"]), bytes.fromhex(got["to_root"]), proof[:-1]
        )


@pytest.fixture
def private_engine(backend: str, tmp_path: Path):
    """A database and data directory of its own: rotation changes the deployment's key."""
    from krabs.store.migrate import migrate

    store, cleanup = make_store(backend, tmp_path)
    migrate(store)
    engine = Engine(store, settings_for(data_dir=tmp_path / "data"))
    yield engine
    cleanup()


def test_rotation_keeps_the_log_verifiable(private_engine, tmp_path):
    from krabs.audit.rotation import rotate_key
    from krabs.audit.sources import from_database

    engine = private_engine
    acct = create_account(engine.store, "Rotating")

    def write(name: str) -> None:
        out = engine.call(
            CallRequest(op="contact.create", args={"display_name": name}, api_key=acct.secret)
        )
        assert out.ok, out.error

    write("before")
    done = rotate_key(engine.store, engine.settings.data_dir)
    assert done["old_key"] != done["new_key"] and acct.account_id in done["accounts"]
    write("after")
    with engine.store.connect(write=False) as conn:
        report = verify_log(from_database(conn, acct.account_id), workers=1)
        assert report.keys == [done["old_key"], done["new_key"]] and report.records == 3
        data = from_database(conn, acct.account_id)
        # A key swapped in without a rotation record is refused.
        old_key, new_key = sorted(data.keys, key=lambda k: int(k["from_seq"]))
        new_key["from_seq"], old_key["to_seq"] = 2, 1
        with pytest.raises(Tampered, match="without a rotation record"):
            verify_log(data, workers=1)
        # Pinning the first key accepts the rotated-in one, and refuses a key slipped in.
        pin = base64.b64decode(old_key["public_key"])
        assert verify_log(from_database(conn, acct.account_id), pinned=[pin], workers=1).pinned
        slipped = from_database(conn, acct.account_id)
        intruder = SigningKey.generate()
        slipped.keys.append(
            {
                "name": intruder.name,
                "public_key": base64.b64encode(intruder.public).decode(),
                "from_seq": 3,
                "to_seq": None,
            }
        )
        with pytest.raises(Tampered, match="neither pinned nor rotated in"):
            verify_log(slipped, pinned=[pin], workers=1)


def test_cli_verifies_a_live_server_and_pins_its_vkey(call, engine, account, live, tmp_path):
    for i in range(3):
        ok(call("contact.create", {"display_name": f"Remote {i}"}))
    vkey = ok(call("audit.key", {}))["active"]["vkey"]
    runner = CliRunner()
    remote = runner.invoke(
        cli, ["audit", "verify", "--url", live.url, "--api-key", account.secret, "--key", vkey]
    )
    assert remote.exit_code == 0, remote.output
    assert "3 records" in remote.output
    path = export(call, engine, account)
    other = SigningKey.generate()
    wrong = runner.invoke(
        cli,
        [
            "audit",
            "verify",
            "--export",
            str(path),
            "--key",
            base64.b64encode(other.public).decode(),
        ],
    )
    assert wrong.exit_code == 3 and "pinned" in wrong.output
    bad = runner.invoke(cli, ["audit", "verify", "--export", str(path), "--key", "not a key!"])
    assert bad.exit_code == 2


def test_worker_processes_give_the_same_verdicts(call, engine, account, tmp_path, monkeypatch):
    from krabs.audit import verify_pool

    monkeypatch.setattr(verify_pool, "BATCH", 2)
    path = export(call, engine, account)
    assert verify_log(from_export(path), workers=2).signed == 6
    manifest, tables = load(path)
    swap_signature(tables)
    with pytest.raises(Tampered) as caught:
        verify_log(from_export(save(manifest, tables, tmp_path / "bad.zip")), workers=2)
    assert caught.value.seq == 3


def test_worker_processes_name_the_first_of_several_bad_records(
    call, engine, account, tmp_path, monkeypatch
):
    """Batches come back from the workers in any order of completion: the lowest bad record is
    still the one named, from an export and from the database."""
    from krabs.audit import verify_pool
    from krabs.audit.sources import from_database
    from krabs.store.tables import audit_actions

    monkeypatch.setattr(verify_pool, "BATCH", 2)
    manifest, tables = load(export(call, engine, account))
    for seq in (5, 2):
        r = by_seq(tables["audit_actions"], seq)
        r["signature"] = by_seq(tables["audit_actions"], 1)["signature"]
    with pytest.raises(Tampered) as caught:
        verify_log(from_export(save(manifest, tables, tmp_path / "bad.zip")), workers=2)
    assert caught.value.seq == 2 and "signature" in caught.value.reason
    a = audit_actions
    with engine.store.transaction() as conn:
        first = conn.execute(
            sa.select(a.c.signature).where(a.c.account_id == account.account_id, a.c.seq == 1)
        ).scalar_one()
        for seq in (5, 2):
            conn.execute(
                a.update()
                .where(a.c.account_id == account.account_id, a.c.seq == seq)
                .values(signature=first)
            )
    with engine.store.connect(write=False) as conn, pytest.raises(Tampered) as caught:
        verify_log(from_database(conn, account.account_id), workers=2)
    assert caught.value.seq == 2 and "signature" in caught.value.reason


def test_database_ranges_on_worker_processes(call, engine, account, monkeypatch):
    from krabs.audit import verify_pool
    from krabs.audit.sources import from_database
    from krabs.store.tables import audit_actions, audit_payloads

    monkeypatch.setattr(verify_pool, "BATCH", 2)
    export(call, engine, account)
    with engine.store.connect(write=False) as conn:
        assert verify_log(from_database(conn, account.account_id), workers=2).records == 6
    a = audit_actions
    with engine.store.transaction() as conn:
        row = conn.execute(
            sa.select(a.c.record, a.c.payload_digest).where(
                a.c.account_id == account.account_id, a.c.seq == 4
            )
        ).one()
        conn.execute(
            audit_payloads.delete().where(
                audit_payloads.c.account_id == account.account_id,
                audit_payloads.c.digest == row.payload_digest,
            )
        )
        conn.execute(
            a.update()
            .where(a.c.account_id == account.account_id, a.c.seq == 5)
            .values(record=row.record.replace(f'"v":{RECORD_VERSION}', '"v":9'))
        )
    with engine.store.connect(write=False) as conn, pytest.raises(Tampered) as caught:
        verify_log(from_database(conn, account.account_id), workers=2)
    assert caught.value.seq == 4 and "payload missing" in caught.value.reason


def test_worker_processes_are_spawned_not_forked(monkeypatch):
    """A fork of this threaded process could inherit a lock another thread held (a worker once
    hung in SQLite's connect): the pool's processes start fresh."""
    from concurrent.futures import ProcessPoolExecutor

    from krabs.audit import verify_pool

    contexts: list[str] = []

    class Recording(ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            contexts.append(kwargs["mp_context"].get_start_method())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(verify_pool, "ProcessPoolExecutor", Recording)
    tasks = [functools.partial(abs, -n) for n in range(5)]
    assert list(verify_pool.in_order(tasks, workers=2)) == [0, 1, 2, 3, 4]
    assert contexts == ["spawn"]
