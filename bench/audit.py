"""The signed audit log's two costs, in one run:

1. write throughput with signing on vs off (``Settings.audit_signing``: ``KRABS_AUDIT_SIGNING=off``,
   which exists for this benchmark): ``contact.create`` through the whole engine on two fresh
   SQLite databases, alternating rounds, medians compared. Target: signing costs at most 15 %. Judged on writes per
   CPU second of the (single-threaded) loop, which other load on the machine does not move; the
   wall-clock rates are printed beside it.
2. ``krabs audit verify`` over a log of 1,000,000 records (generated directly with the log's own
   functions, in batches: canonical records, hash chain, signed leaves, a checkpoint every 1,000).
   Target: at most 60 s.

    .venv/bin/python bench/audit.py                       # both, 1,000,000 records
    .venv/bin/python bench/audit.py --records 100000 --writes 2000 --rounds 3 --export
    .venv/bin/python bench/audit.py --skip-writes --keep /tmp/audit-1m   # generate once, re-verify
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from krabs.accounts import create_account
from krabs.app import open_store
from krabs.audit import merkle, sealing
from krabs.audit.canonical import canonical, sha256_hex
from krabs.audit.checkpoint import note_body, sign_note
from krabs.audit.log import RECORD_VERSION
from krabs.audit.signing import b64, signer_for
from krabs.audit.sources import from_database, from_export
from krabs.audit.verify import verify_log
from krabs.config import Settings
from krabs.contract.ids import new_id
from krabs.engine import CallRequest, Engine
from krabs.store.tables import (
    audit_account_keys,
    audit_actions,
    audit_checkpoints,
    audit_data_keys,
    audit_heads,
    audit_payloads,
)

SIGNING_TARGET = 0.15
VERIFY_TARGET_S = 60.0


def _engine(root: Path, name: str, *, signing: bool = True) -> tuple[Engine, str]:
    data = root / name
    settings = Settings(data_dir=data, rate_limit_per_second=0, audit_signing=signing)
    engine = Engine(open_store(settings), settings)
    return engine, create_account(engine.store, name).secret


def _writes(engine: Engine, secret: str, count: int) -> tuple[float, float]:
    """(writes per wall-clock second, writes per CPU second of this process). The loop is one
    thread, so the second is the rate it reaches with a core to itself: on a shared machine the
    wall-clock rate also measures what the other processes took."""
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        out = engine.call(
            CallRequest(
                op="contact.create",
                args={
                    "display_name": f"Bench {i}",
                    "identities": [
                        {"kind": "email", "value": f"{new_id('contact')[3:].lower()}@bench.dev"}
                    ],
                },
                api_key=secret,
            )
        )
        if not out.ok:
            raise SystemExit(f"write failed: {out.error}")
    return count / (time.perf_counter() - started), count / (time.process_time() - cpu)


def write_throughput(root: Path, count: int, rounds: int) -> dict[str, Any]:
    on, on_key = _engine(root, "signing-on")
    off, off_key = _engine(root, "signing-off", signing=False)
    _writes(on, on_key, 50)  # warm-up: key file, registration, statement caches
    _writes(off, off_key, 50)
    rates: dict[str, list[float]] = {"on": [], "off": []}
    cpu_rates: dict[str, list[float]] = {"on": [], "off": []}
    for r in range(rounds):
        order = [("on", on, on_key), ("off", off, off_key)]
        for label, engine, key in order if r % 2 == 0 else reversed(order):
            wall, cpu = _writes(engine, key, count)
            rates[label].append(wall)
            cpu_rates[label].append(cpu)
    on_rate, off_rate = statistics.median(rates["on"]), statistics.median(rates["off"])
    on_cpu, off_cpu = statistics.median(cpu_rates["on"]), statistics.median(cpu_rates["off"])
    for engine in (on, off):
        engine.store.dispose()
    return {
        "on": on_rate,
        "off": off_rate,
        "cost": 1 - on_rate / off_rate,
        "on_cpu": on_cpu,
        "off_cpu": off_cpu,
        "cpu_cost": 1 - on_cpu / off_cpu,
        "rounds": rates,
        "cpu_rounds": cpu_rates,
    }


def generate(root: Path, records: int) -> tuple[Engine, str]:
    """A log of ``records`` signed records, written in batches of 10,000."""
    engine, _secret = _engine(root, "verify")
    account = create_account(engine.store, "Verify bench")
    acct = account.account_id
    signer = signer_for(engine.settings.data_dir)
    assert signer is not None
    prev, frontier, batch = "0" * 64, merkle.Frontier(), 10_000
    with engine.store.transaction() as conn:
        key = signer.bind(conn)
        conn.execute(
            audit_account_keys.insert().values(
                account_id=acct,
                name=key.name,
                public_key=b64(key.public),
                from_seq=1,
                to_seq=None,
                created_at="2026-11-23T00:00:00.000000Z",
            )
        )
    for start in range(1, records + 1, batch):
        actions, payloads, cps, keys = [], [], [], []
        for seq in range(start, min(start + batch, records + 1)):
            action_id = new_id("action")
            result = {"id": f"ct_{seq:026d}", "display_name": f"Bench {seq}"}
            # Sealed as the write path seals it: under the contact's own data key.
            data_key = os.urandom(32)
            sealed = sealing.seal(
                acct, [result["id"]], [data_key], {"display_name": f"Bench {seq}"}, result, []
            )
            pd = sealed.digest
            keys.append(
                {
                    "account_id": acct,
                    "subject_id": result["id"],
                    "key": b64(data_key),
                    "created_at": "2026-11-23T00:00:00.000000Z",
                }
            )
            record = canonical(
                {
                    "v": RECORD_VERSION,
                    "seq": seq,
                    "id": action_id,
                    "ts": "2026-11-23T00:00:00.000000Z",
                    "account": acct,
                    "actor": {"key": account.key_id, "agent": "bench"},
                    "run": None,
                    "op": "contact.create",
                    "targets": [result["id"]],
                    "result_digest": sealed.result_digest,
                    "payload_digest": pd,
                    "undo_of": None,
                    "prev_hash": prev,
                }
            )
            own = sha256_hex(record)
            leaf = merkle.leaf_hash(record)
            frontier.append(leaf)
            actions.append(
                {
                    "id": action_id,
                    "account_id": acct,
                    "seq": seq,
                    "created_at": "2026-11-23T00:00:00.000000Z",
                    "op": "contact.create",
                    "run_id": None,
                    "key_id": account.key_id,
                    "agent_id": "bench",
                    "record": record.decode(),
                    "hash": own,
                    "prev_hash": prev,
                    "payload_digest": pd,
                    "undo_token_hash": None,
                    "undo_expires_at": None,
                    "undo_of": None,
                    "signature": b64(key.sign(leaf)),
                    "signing_key": key.name,
                }
            )
            payloads.append(
                {
                    "account_id": acct,
                    "digest": pd,
                    "body": sealed.body,
                    "subjects": sealed.subjects,
                    "undo": sealed.undo,
                    "images_at": None,
                }
            )
            if seq % 1000 == 0 or seq == records:
                root_hash = frontier.root()
                cps.append(
                    {
                        "account_id": acct,
                        "size": seq,
                        "root": root_hash.hex(),
                        "frontier": ",".join(h.hex() for h in frontier.hashes),
                        "note": sign_note(note_body(acct, seq, root_hash), [key]),
                        "reason": "auto",
                        "created_at": "2026-11-23T00:00:00.000000Z",
                    }
                )
            prev = own
        with engine.store.transaction() as conn:
            conn.execute(audit_actions.insert(), actions)
            conn.execute(audit_payloads.insert(), payloads)
            conn.execute(audit_data_keys.insert(), keys)
            if cps:
                conn.execute(audit_checkpoints.insert(), cps)
            conn.execute(
                audit_heads.update()
                .where(audit_heads.c.account_id == acct)
                .values(seq=actions[-1]["seq"], hash=prev)
            )
        print(f"\r  generated {actions[-1]['seq']:,} records", end="", file=sys.stderr)
    print(file=sys.stderr)
    return engine, acct


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the verifier's worker processes):
    what a loaded machine does not inflate, unlike the wall time."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def reuse_or_generate(root: Path, records: int, keep: Path | None) -> tuple[Engine, str]:
    """The generated log: from ``keep`` when a run before left one of this size there, else made
    anew (and, with ``keep``, left there for the next run: generating a million signed records
    takes minutes, verifying them is what is measured)."""
    if keep is None:
        return generate(root, records)
    marker = keep / "verify.account"
    if marker.exists():
        acct, size = marker.read_text().split()
        if int(size) == records:
            settings = Settings(data_dir=keep / "verify", rate_limit_per_second=0)
            return Engine(open_store(settings), settings), acct
        raise SystemExit(f"{keep} holds a log of {size} records, not {records}")
    engine, acct = generate(keep, records)
    marker.write_text(f"{acct} {records}\n")
    return engine, acct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--writes", type=int, default=2000, help="writes per round and mode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--export", action="store_true", help="also verify the export zip")
    parser.add_argument("--skip-writes", action="store_true")
    parser.add_argument("--skip-verify", action="store_true")
    parser.add_argument(
        "--keep", type=Path, help="generate the verify log into this directory once, reuse it after"
    )
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="krabs-bench-audit-") as tmp:
        root = Path(tmp)
        if not opts.skip_writes:
            w = write_throughput(root, opts.writes, opts.rounds)
            verdict = "PASS" if w["cpu_cost"] <= SIGNING_TARGET else "FAIL"
            print(
                f"writes per CPU second: signing on {w['on_cpu']:.0f}, off {w['off_cpu']:.0f} "
                f"(median of {opts.rounds} x {opts.writes}); signing costs {w['cpu_cost']:.1%} "
                f"(target <= {SIGNING_TARGET:.0%}): {verdict}"
            )
            print(
                f"wall clock (also measures other load, {os.getloadavg()[0]:.1f} load average): "
                f"on {w['on']:.0f}/s, off {w['off']:.0f}/s, signing costs {w['cost']:.1%}"
            )
        if not opts.skip_verify:
            started = time.perf_counter()
            engine, acct = reuse_or_generate(root, opts.records, opts.keep)
            print(f"log of {opts.records:,} records ready in {time.perf_counter() - started:.0f}s")
            started, cpu = time.perf_counter(), _cpu()
            with engine.store.connect(write=False) as conn:
                report = verify_log(from_database(conn, acct))
            seconds, cpu = time.perf_counter() - started, _cpu() - cpu
            verdict = "PASS" if seconds <= VERIFY_TARGET_S else "FAIL"
            print(
                f"audit verify (database) over {report.records:,} records, {report.signed:,} "
                f"signatures, {report.checkpoints:,} checkpoints: {seconds:.1f}s "
                f"(target <= {VERIFY_TARGET_S:.0f}s, {os.cpu_count()} cores): {verdict}; "
                f"{cpu:.1f}s CPU in all processes ({cpu / (os.cpu_count() or 1):.1f}s per core, "
                f"load average {os.getloadavg()[0]:.1f})"
            )
            if opts.export:
                from krabs.bulk.archive import write_archive

                with engine.store.connect(write=False) as conn:
                    path = write_archive(conn, acct, root / "exports", "20261123T000000Z")["path"]
                started, cpu = time.perf_counter(), _cpu()
                report = verify_log(from_export(path))
                seconds, cpu = time.perf_counter() - started, _cpu() - cpu
                print(
                    f"audit verify (export zip) over {report.records:,} records: {seconds:.1f}s "
                    f"(target <= {VERIFY_TARGET_S:.0f}s); {cpu:.1f}s CPU in all processes "
                    f"(load average {os.getloadavg()[0]:.1f})"
                )
            engine.store.dispose()


if __name__ == "__main__":
    main()
