"""Bulk import benchmark: ``contact.import_csv`` of a generated 1,000,000-row CSV through the real
engine (``Engine.call``: auth, validation, idempotency, one transaction, audit chain, undo token).

The CSV is realistic: names, companies, titles, a primary and a secondary email, mixed phone
formats, tags; about 10% of rows repeat an earlier person's email in another letter case (they
merge), and about 1% are bad (invalid email, unknown stage, a control character). Each import runs
in a child process that reports wall time and peak RSS (``getrusage``) against the targets:
<= 60 s and <= 300 MB for a million rows on SQLite. On SQLite each round also runs the baseline,
in the same run: the same rows' SQL alone (lookups, inserts, one commit) without krabs, so the
figure is also given as a ratio to what SQLite itself costs on this machine.

    python bench/import.py                       # 1,000,000 rows, SQLite, 3 rounds
    python bench/import.py --rounds 1            # one round
    python bench/import.py --rows 50000 --backend sqlite postgresql
    python bench/import.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 300.0
FIRST = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Edsger",
    "Barbara",
    "Ken",
    "Frances",
    "Tim",
    "Radia",
    "Donald",
    "Leslie",
    "Katherine",
    "John",
    "Sophie",
    "Hedy",
    "Claude",
    "Anita",
]
LAST = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Dijkstra",
    "Liskov",
    "Thompson",
    "Allen",
    "Berners-Lee",
    "Perlman",
    "Knuth",
    "Lamport",
    "Johnson",
    "McCarthy",
    "Wilson",
]
COMPANIES = [
    "Analytical Engines",
    "Bletchley",
    "Univac",
    "Kernel Org",
    "Apollo",
    "Mathematisch",
    "CLU Labs",
    "Bell Labs",
    "IBM Research",
    "CERN",
    "DEC",
    "Stanford",
    "Xerox PARC",
]
TITLES = ["CTO", "Engineer", "VP Sales", "Founder", "Researcher", "Head of Ops", "", ""]
TAGS = ["vip", "newsletter", "conference 2026", "partner", "lead;warm", "", "", ""]
STAGES = ["lead", "prospect", "customer", "", ""]


AREAS = ["415", "212", "646", "312", "617", "206", "303", "512"]


def phone(rng: random.Random, n: int) -> str:
    """A valid number in one of several spellings (national ones need the US default region)."""
    # One number per person (unique up to 8 million people), so only true duplicates merge.
    area, exchange, line = AREAS[n % len(AREAS)], 200 + (n // 10_000) % 800, n % 10_000
    style = rng.randrange(5)
    if style == 0:
        return f"+1 ({area}) {exchange}-{line:04d}"
    if style == 1:
        return f"+1{area}{exchange}{line:04d}"
    if style == 2:
        return f"{area}.{exchange}.{line:04d}"
    if style == 3:
        return f"+44 20 7{exchange} {line:04d}"
    return ""


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write the CSV: header plus ``rows`` data rows."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("First Name,Last Name,Email,Secondary Email,Phone,Company,Title,Stage,Tags\n")
        for n in range(rows):
            roll = rng.random()
            person = n
            if roll < 0.10 and n > 10:
                person = rng.randrange(n)  # a duplicate of an earlier person, other letter case
            first, last = FIRST[person % len(FIRST)], LAST[(person // 7) % len(LAST)]
            email = f"{first}.{last}.{person}@example{person % 97}.com"
            if person != n:
                email = email.upper() if rng.random() < 0.5 else email.title()
            second = f"{first[0]}{last}{person}@mail{person % 13}.org" if n % 3 == 0 else ""
            stage = STAGES[n % len(STAGES)]
            if 0.10 <= roll < 0.104:
                email = f"not-an-email-{n}"
            elif 0.104 <= roll < 0.107:
                stage = "maybe"
            elif 0.107 <= roll < 0.11:
                first = "Bad\x07Name"
            tags = TAGS[n % len(TAGS)]
            company = COMPANIES[person % len(COMPANIES)]
            cells = [
                first,
                last,
                email,
                second,
                phone(rng, person),
                company,
                TITLES[n % len(TITLES)],
                stage,
                tags,
            ]
            f.write(",".join(f'"{c}"' if ("," in c or ";" in c) else c for c in cells) + "\n")


def child(args: argparse.Namespace) -> None:
    """One import in this process; prints a JSON line with the figures."""
    from krabs.store.db import Store

    data = Path(args.data_dir)
    backend = args.backend[0]
    with contextlib.ExitStack() as cleanup:
        if backend == "sqlite":
            store = Store(f"sqlite:///{data}/krabs.db")
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
            from bench.pg_schema import fresh_schema

            store = Store(cleanup.enter_context(fresh_schema(args.pg_url)))
        cleanup.callback(store.dispose)
        _import_once(args, store, data, backend)


def _import_once(args: argparse.Namespace, store: Any, data: Path, backend: str) -> None:
    from krabs.accounts import create_account
    from krabs.bulk.uploads import spool_file
    from krabs.config import Settings
    from krabs.engine import CallRequest, Engine
    from krabs.store.migrate import migrate

    migrate(store)
    engine = Engine(store, Settings(data_dir=data, rate_limit_per_second=0, default_region="US"))
    account = create_account(store, "bench")
    base_rss = peak_rss_mb()
    cpu0 = cpu_seconds()
    started = time.perf_counter()
    ref = spool_file(data, account.account_id, Path(args.csv), 1 << 40)
    outcome = engine.call(
        CallRequest(
            op="contact.import_csv",
            args={"upload": ref},
            api_key=account.secret,
            transport="bench",
        )
    )
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu0
    if outcome.error is not None:
        raise SystemExit(f"import failed: {outcome.error.code}: {outcome.error.message}")
    result = outcome.result or {}
    print(
        json.dumps(
            {
                "backend": backend,
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
                # The importing process plus its CSV parser process (a large upload is parsed
                # in a second process): the sum of both peaks, an upper bound.
                "peak_rss_mb": round(peak_rss_mb() + parser_peak_rss_mb(), 1),
                "parser_peak_rss_mb": round(parser_peak_rss_mb(), 1),
                "rss_before_mb": round(base_rss, 1),
                **{
                    k: result.get(k)
                    for k in ("rows", "created", "merged", "failed", "report_total")
                },
            }
        )
    )


def baseline(args: argparse.Namespace) -> None:
    """The floor, measured in the same run: the SQL any correct import of this file must run, with
    none of krabs. The CSV read by the ``csv`` module, emails lower-cased, phones reduced to their
    digits, a SHA-256 per identity (the identity key); per 500 rows one indexed lookup of their
    identity keys (the dedupe probe) and one ``executemany`` per table into the same migrated
    schema, on the same pragmas, in one transaction. No validation, no merging, no audit: the time is SQLite's and the
    driver's. Prints a JSON line like ``child``."""
    import csv
    import hashlib

    from krabs.accounts import create_account
    from krabs.store.db import Store
    from krabs.store.migrate import migrate

    store = Store(f"sqlite:///{Path(args.data_dir)}/krabs.db")
    migrate(store)
    acct = create_account(store, "bench").account_id
    now = "2026-01-01T00:00:00.000000Z"
    raw = store.engine.raw_connection()
    cur = raw.cursor()
    cpu0, started = cpu_seconds(), time.perf_counter()
    cur.execute("PRAGMA cache_size=-131072")  # the import's own page cache
    cur.execute("BEGIN IMMEDIATE")
    tag_ids = {}
    for n, name in enumerate(sorted({t for tags in TAGS for t in tags.split(";") if t})):
        tag_ids[name] = f"tg_{n:026d}"
        cur.execute(
            "INSERT INTO tags (id, account_id, name, name_key, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (tag_ids[name], acct, name, name, now, now),
        )
    contact_sql = (
        "INSERT INTO contacts (id, account_id, display_name, given_name, family_name, company, "
        "title, stage, owner, attributes, created_at, updated_at, deleted_at, merged_into) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, '{}', ?, ?, NULL, NULL)"
    )
    ident_sql = (
        "INSERT OR IGNORE INTO identities (id, account_id, contact_id, kind, value, normalized, "
        "norm_hash, is_primary, source, created_at, deleted_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'csv_import', ?, NULL)"
    )
    link_sql = (
        "INSERT INTO tag_links (id, account_id, tag_id, target_type, target_id, created_at) "
        "VALUES (?, ?, ?, 'contact', ?, ?)"
    )

    def flush(cs: list[Any], ids: list[Any], links: list[Any]) -> None:
        hashes = [i[6] for i in ids]
        for start in range(0, len(hashes), 500):
            part = hashes[start : start + 500]
            cur.execute(
                "SELECT contact_id, normalized FROM identities WHERE "
                f"norm_hash IN ({','.join('?' * len(part))}) AND deleted_at IS NULL "
                "AND account_id = ? AND kind IN ('email', 'phone')",
                (*part, acct),
            ).fetchall()
        cur.executemany(contact_sql, cs)
        cur.executemany(ident_sql, ids)
        cur.executemany(link_sql, links)

    rows = n_ident = n_link = 0
    cs: list[Any] = []
    ids: list[Any] = []
    links: list[Any] = []
    with open(args.csv, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for first, last, email, second, phone, company, title, stage, tags in reader:
            rows += 1
            cid = f"ct_{rows:026d}"
            cs.append(
                (cid, acct, f"{first} {last}", first, last, company, title, stage or None, now, now)
            )
            for kind, value, norm in (
                ("email", email, email.lower()),
                ("email", second, second.lower()),
                ("phone", phone, "+" + "".join(c for c in phone if c.isdigit())),
            ):
                if value:
                    n_ident += 1
                    key = f"{acct}\x00{kind}\x00{norm}".encode()
                    digest = hashlib.sha256(key).hexdigest()[:32]  # krabs.normalize.norm_hash
                    ids.append((f"id_{n_ident:026d}", acct, cid, kind, value, norm, digest, 1, now))
            for tag in tags.split(";"):
                if tag:
                    n_link += 1
                    links.append((f"tl_{n_link:026d}", acct, tag_ids[tag], cid, now))
            if len(cs) == 500:
                flush(cs, ids, links)
                cs, ids, links = [], [], []
    flush(cs, ids, links)
    cur.execute("COMMIT")
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "backend": "sqlite-baseline",
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu_seconds() - cpu0, 2),
                "rows": rows,
            }
        )
    )
    raw.close()
    store.dispose()


def cpu_seconds() -> float:
    """User + system CPU time of this process and its ended children (the import's CSV parser):
    the figure a loaded machine does not inflate."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def parser_peak_rss_mb() -> float:
    """The import's CSV parser process's own peak RSS (its ``VmHWM``; ``RUSAGE_CHILDREN`` would
    report this process's size at the fork instead)."""
    from krabs.bulk.csv_worker import LAST_PARSER_PEAK_KIB

    return LAST_PARSER_PEAK_KIB[0] / 1024


def run_child(mode: str, backend: str, csv_path: Path, data: Path, pg_url: str) -> dict[str, Any]:
    """One import (``--child``) or baseline (``--baseline``) in a fresh process and data dir."""
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    cmd = [sys.executable, __file__, mode, "--backend", backend, "--csv", str(csv_path)]
    cmd += ["--data-dir", str(data), "--pg-url", pg_url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    shutil.rmtree(data, ignore_errors=True)
    if out.returncode != 0:
        raise SystemExit(f"{backend} {mode} failed\n{out.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--backend", nargs="+", default=["sqlite"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rounds", type=int, default=3, help="imports per backend (median)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.baseline:
        baseline(args)
        return
    with tempfile.TemporaryDirectory(prefix="krabs-bench-") as tmp:
        csv_path = Path(tmp) / "contacts.csv"
        t0 = time.perf_counter()
        generate(csv_path, args.rows)
        size = csv_path.stat().st_size / 1e6
        print(f"generated {args.rows} rows ({size:.0f} MB) in {time.perf_counter() - t0:.1f}s")
        full = args.rows == 1_000_000
        for backend in args.backend:
            runs, floors = [], []
            for n in range(args.rounds):
                fig = run_child("--child", backend, csv_path, Path(tmp) / "data", args.pg_url)
                runs.append(fig)
                line = (
                    f"{backend} round {n + 1}: {fig['seconds']} s wall, {fig['cpu_seconds']} s CPU, "
                    f"peak RSS {fig['peak_rss_mb']} MB (CSV parser process "
                    f"{fig.get('parser_peak_rss_mb', 0)} MB of it)"
                )
                if backend == "sqlite":
                    floor = run_child("--baseline", backend, csv_path, Path(tmp) / "data", "")
                    floors.append(floor)
                    line += f"; baseline {floor['seconds']} s"
                print(line, flush=True)
            fig = runs[0]
            seconds = statistics.median(r["seconds"] for r in runs)
            rss = max(r["peak_rss_mb"] for r in runs)
            verdict = (
                f"  [{'ok' if seconds <= TARGET_SECONDS else 'OVER'} time, "
                f"{'ok' if rss <= TARGET_RSS_MB else 'OVER'} memory]"
                if full
                else ""
            )
            print(
                f"{backend}: median {seconds} s wall over {len(runs)} run(s), "
                f"{statistics.median(r['cpu_seconds'] for r in runs)} s CPU, peak RSS {rss} MB "
                f"(before import {fig['rss_before_mb']} MB); targets <= {TARGET_SECONDS:.0f} s, "
                f"<= {TARGET_RSS_MB:.0f} MB per 1M rows{verdict}"
            )
            if floors:
                floor_s = statistics.median(f["seconds"] for f in floors)
                print(
                    f"  baseline (the same rows' SQL alone, no krabs): median {floor_s} s; "
                    f"krabs / baseline = {seconds / floor_s:.2f}"
                )
            print(
                f"  rows {fig['rows']}, created {fig['created']}, merged {fig['merged']}, "
                f"failed {fig['failed']}, report entries {fig['report_total']}"
            )


if __name__ == "__main__":
    main()
