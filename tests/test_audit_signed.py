"""The signed log through the engine: every record signed over its Merkle leaf hash, checkpoints as
C2SP signed notes, proofs that verify, the GET aliases, and hostile input for the audit.* reads."""

from __future__ import annotations

import base64
import stat
from typing import Any

import sqlalchemy as sa
from tests.conftest import err, ok

from krabs.audit import merkle
from krabs.audit.checkpoint import verify_note
from krabs.audit.signing import key_path, verify
from krabs.store.tables import audit_actions


def write(call: Any, n: int = 3) -> list[str]:
    out = []
    for i in range(n):
        outcome = call("contact.create", {"display_name": f"Signed {i}"})
        ok(outcome)
        out.append(outcome.action_id)
    return out


def records(engine: Any, account_id: str) -> list[Any]:
    with engine.store.connect(write=False) as conn:
        t = audit_actions
        return conn.execute(
            sa.select(t.c.seq, t.c.record, t.c.signing_key, t.c.signature)
            .where(t.c.account_id == account_id)
            .order_by(t.c.seq)
        ).all()


def test_every_record_is_signed_over_its_leaf_hash(call, engine, account):
    write(call)
    keys = ok(call("audit.key", {}))
    assert keys["active"]["algorithm"] == "ed25519"
    [key] = keys["keys"]
    assert key["name"] == keys["active"]["name"] and key["from_seq"] == 1 and key["to_seq"] is None
    public = base64.b64decode(key["public_key"])
    rows = records(engine, account.account_id)
    assert [r.seq for r in rows] == [1, 2, 3]
    for r in rows:
        leaf = merkle.leaf_hash(r.record.encode())
        assert r.signing_key == key["name"]
        assert verify(public, base64.b64decode(r.signature), leaf)
        assert not verify(public, base64.b64decode(r.signature), merkle.leaf_hash(b"x" + leaf))


def test_key_file_is_private(engine):
    path = key_path(engine.settings.data_dir)
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_first_write_signs_a_checkpoint_and_its_note_verifies(call, engine, account):
    write(call, 1)
    cp = ok(call("audit.checkpoint", {}))
    assert cp["tree_size"] == 1
    public = base64.b64decode(ok(call("audit.key", {}))["active"]["public_key"])
    name = ok(call("audit.key", {}))["active"]["name"]
    note = verify_note(cp["note"], {name: public})
    assert note.origin == f"krabs/{account.account_id}" and note.size == 1
    rows = records(engine, account.account_id)
    assert note.root == merkle.root([merkle.leaf_hash(rows[0].record.encode())])
    assert cp["root_hash"] == note.root.hex()
    assert cp["note"].splitlines()[3] == "" and cp["note"].splitlines()[4].startswith("\u2014 ")


def test_inclusion_and_consistency_proofs_verify(call, engine, account):
    ids = write(call, 6)
    got = ok(call("audit.proof", {"action": ids[2]}))
    assert got["seq"] == 3 and got["tree_size"] == 6
    root = bytes.fromhex(got["root_hash"])
    leaf = merkle.leaf_hash(got["record"].encode())
    assert leaf.hex() == got["leaf_hash"]
    merkle.verify_inclusion(2, 6, leaf, [bytes.fromhex(h) for h in got["proof"]], root)
    older = ok(call("audit.proof", {"action": ids[0], "tree_size": 1}))
    assert older["checkpoint"]["tree_size"] == 1  # the first write's checkpoint
    cons = ok(call("audit.proof", {"from_size": 1, "to_size": 6}))
    merkle.verify_consistency(
        1,
        6,
        bytes.fromhex(cons["from_root"]),
        bytes.fromhex(cons["to_root"]),
        [bytes.fromhex(h) for h in cons["proof"]],
    )
    assert cons["from_root"] == older["root_hash"] and cons["to_root"] == got["root_hash"]


def test_get_aliases(call, http):
    ids = write(call, 2)
    cp = http.get("/v1/audit/checkpoint")
    assert cp.status_code == 200 and cp.json()["object"] == "checkpoint"
    assert http.get("/v1/audit/key").json()["object"] == "audit_keys"
    proof = http.get("/v1/audit/proof", params={"action": ids[1]}).json()
    assert proof["object"] == "inclusion_proof" and proof["seq"] == 2
    cons = http.get("/v1/audit/proof", params={"from": 1, "to": 2}).json()
    assert cons["object"] == "consistency_proof" and cons["to_size"] == 2
    bad = http.get("/v1/audit/proof", params={"from": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_argument"
    assert http.get("/v1/audit/key", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_hostile_input(call, engine):
    ids = write(call, 2)
    err(call("audit.proof", {}), "invalid_argument")
    err(call("audit.proof", {"action": ids[0], "from_size": 1}), "invalid_argument")
    err(call("audit.proof", {"action": ids[0], "to_size": 2}), "invalid_argument")
    err(call("audit.proof", {"from_size": 1, "tree_size": 2}), "invalid_argument")
    err(call("audit.proof", {"action": "act_01HG7Z4X9Q8M2N7P3R5T6V8W"}), "not_found")
    err(call("audit.proof", {"action": "x" * 10_000}), "invalid_argument")
    err(call("audit.proof", {"action": ids[1], "tree_size": 1}), "invalid_argument")
    err(call("audit.proof", {"action": ids[0], "tree_size": 99}), "invalid_argument")
    err(call("audit.proof", {"from_size": 2, "to_size": 1}), "invalid_argument")
    err(call("audit.proof", {"from_size": -1}), "invalid_argument")
    err(call("audit.proof", {"from_size": "1"}), "invalid_argument")
    err(call("audit.proof", {"from_size": 1, "to_size": 10**6}), "invalid_argument")
    err(call("audit.checkpoint", {"tree_size": 0}), "invalid_argument")
    err(call("audit.checkpoint", {"tree_size": 2}), "not_found")
    err(call("audit.checkpoint", {"size": 1}), "invalid_argument")
    err(call("audit.key", {"name": "x"}), "invalid_argument")


def test_another_accounts_action_is_not_found(call, engine):
    from krabs.accounts import create_account
    from krabs.engine import CallRequest

    other = create_account(engine.store, "Other")
    theirs = engine.call(
        CallRequest(op="contact.create", args={"display_name": "Theirs"}, api_key=other.secret)
    )
    assert theirs.ok
    write(call, 1)
    err(call("audit.proof", {"action": theirs.action_id}), "not_found")


def test_empty_log_has_no_checkpoint(call):
    err(call("audit.checkpoint", {}), "not_found")
    assert ok(call("audit.key", {}))["keys"] == []


def test_checkpoint_every_n_records(call, monkeypatch):
    from krabs.audit import checkpoint

    monkeypatch.setattr(checkpoint, "EVERY_RECORDS", 3)
    write(call, 7)
    assert ok(call("audit.checkpoint", {}))["tree_size"] == 7  # sizes 1, 4 and 7
    assert ok(call("audit.checkpoint", {"tree_size": 4}))["reason"] == "auto"
    err(call("audit.checkpoint", {"tree_size": 3}), "not_found")


def test_the_periodic_sweep_checkpoints_a_quiet_log(call, engine, account):
    from krabs.audit.periodic import sweep
    from krabs.store.tables import audit_checkpoints

    write(call, 3)
    assert ok(call("audit.checkpoint", {}))["tree_size"] == 1
    assert account.account_id not in sweep(engine.store, engine.settings.data_dir)  # too recent
    with engine.store.transaction() as conn:
        t = audit_checkpoints
        conn.execute(
            t.update()
            .where(t.c.account_id == account.account_id)
            .values(created_at="2020-01-01T00:00:00.000000Z")
        )
    assert account.account_id in sweep(engine.store, engine.settings.data_dir)
    cp = ok(call("audit.checkpoint", {}))
    assert cp["tree_size"] == 3 and cp["reason"] == "time"


def test_closing_a_run_signs_a_checkpoint_over_its_writes(call):
    """The end of every run is a signed checkpoint: every write of the run lies under it."""
    run = ok(call("run.create", {"name": "checkpointed"}))
    for n in range(3):
        ok(call("tag.create", {"name": f"run-tag-{n}"}, run=run["id"]))
    head = ok(call("action.list", {"limit": 1}))["data"][0]["seq"]
    assert ok(call("audit.checkpoint", {}))["tree_size"] == 1  # only the first write's, so far
    ok(call("run.close", {"id": run["id"]}))
    cp = ok(call("audit.checkpoint", {"tree_size": head}))
    assert cp["reason"] == "run"


def test_a_dry_run_first_write_does_not_stand_in_for_the_first_checkpoint(call):
    """A dry-run's checkpoint is rolled back with it; the real first write must still sign one."""
    err(call("audit.checkpoint", {}), "not_found")
    plan = ok(call("tag.create", {"name": "dry first", "dry_run": True}))
    assert plan["dry_run"] is True
    err(call("audit.checkpoint", {}), "not_found")
    ok(call("tag.create", {"name": "real first"}))
    assert ok(call("audit.checkpoint", {}))["tree_size"] >= 1


def test_verification_agrees_with_rfc8032_and_the_signer():
    """Records are signed with OpenSSL (``cryptography``) and verified with libsodium (PyNaCl):
    both must agree on RFC 8032's first test vector, and every corruption must be refused."""
    from krabs.audit.signing import SigningKey

    key = SigningKey.from_seed(
        bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    )
    assert key.public.hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    sig = key.sign(b"")
    assert sig.hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert verify(key.public, sig, b"")
    leaf = merkle.leaf_hash(b'{"seq":1}')
    sig = key.sign(leaf)
    assert verify(key.public, sig, leaf)
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    assert not verify(key.public, flipped, leaf)
    assert not verify(key.public, sig, leaf[:-1] + b"\x00")
    assert not verify(key.public, sig[:63], leaf)  # wrong lengths are refusals, not errors
    assert not verify(key.public[:31], sig, leaf)
    assert not verify(bytes(32), sig, leaf)
    other = SigningKey.generate()
    assert not verify(other.public, sig, leaf)


def test_signing_off_is_a_setting(store, tmp_path, monkeypatch):
    """``Settings.audit_signing`` (``KRABS_AUDIT_SIGNING=off``): records are still chained but go
    unsigned, no key file is made, no checkpoint is signed, and key rotation refuses."""
    from click.testing import CliRunner
    from tests.conftest import test_settings

    from krabs.accounts import create_account
    from krabs.cli import cli
    from krabs.config import Settings
    from krabs.engine import CallRequest, Engine
    from krabs.store.tables import audit_checkpoints

    monkeypatch.setenv("KRABS_AUDIT_SIGNING", "off")
    assert Settings.from_env().signing_dir is None
    monkeypatch.setenv("KRABS_AUDIT_SIGNING", "")
    assert Settings.from_env().signing_dir == Settings.from_env().data_dir

    settings = test_settings(data_dir=tmp_path / "unsigned", audit_signing=False)
    engine = Engine(store, settings)
    acct = create_account(store, "unsigned")

    def call(op: str, args: dict[str, Any]) -> Any:
        outcome = engine.call(CallRequest(op=op, args=args, api_key=acct.secret))
        assert outcome.ok, outcome.error
        return outcome.result

    for n in range(2):
        call("contact.create", {"display_name": f"Unsigned {n}"})
    run = call("run.create", {"name": "closed"})["id"]
    call("run.close", {"id": run})
    rows = records(engine, acct.account_id)
    assert [r.seq for r in rows] == [1, 2, 3, 4]  # two contacts, the run's creation and close
    assert all(r.signature is None and r.signing_key is None for r in rows)
    assert call("audit.key", {})["active"] is None
    assert not key_path(settings.data_dir).exists()
    with store.connect(write=False) as conn:
        signed = conn.execute(
            sa.select(sa.func.count())
            .select_from(audit_checkpoints)
            .where(audit_checkpoints.c.account_id == acct.account_id)
        ).scalar_one()
    assert signed == 0

    env = {"KRABS_AUDIT_SIGNING": "off", "KRABS_DATA_DIR": str(tmp_path / "cli")}
    refused = CliRunner().invoke(cli, ["audit", "rotate-key"], env=env)
    assert refused.exit_code != 0 and "signing is off" in refused.output
    assert not key_path(tmp_path / "cli").exists()
