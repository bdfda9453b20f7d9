"""Benchmark: ``krabs runs replay RUN --dry-run`` of a 10,000-call run. Target: at most 10 s.

The run is recorded through the engine on a fresh SQLite database (or ``--database-url``): a mix of
writes and reads an outreach pass makes (contact.create, contact.update, contact.get, tag.list,
a failing contact.get). The replay is timed the way the CLI does it: ``run.replay`` pages of 1,000
calls through the engine, each call re-executed in a rolled-back savepoint and compared.

    .venv/bin/python bench/replay.py [--calls 10000] [--database-url postgresql+psycopg://…] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from krabs.accounts import create_account
from krabs.app import open_store
from krabs.config import Settings
from krabs.engine import CallRequest, Engine
from krabs.runs.attach import insert_run

TARGET_SECONDS = 10.0


def record(engine: Engine, secret: str, run_id: str, calls: int) -> None:
    def call(op: str, args: dict[str, Any]) -> dict[str, Any]:
        out = engine.call(CallRequest(op=op, args=args, api_key=secret, run_id=run_id))
        return out.result or {}

    made: list[str] = []
    i = 0
    while i < calls:
        step = i % 5
        if step == 0 or not made:
            made.append(
                call("contact.create", {"display_name": f"Lead {i}", "company": "Acme"})["id"]
            )
        elif step == 1:
            call("contact.update", {"id": made[-1], "title": f"Title {i}"})
        elif step == 2:
            call("contact.get", {"id": made[-1]})
        elif step == 3:
            call("tag.list", {"limit": 5})
        else:
            call("contact.get", {"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"})
        i += 1


def replay(engine: Engine, secret: str, run_id: str) -> dict[str, int]:
    totals = {"calls": 0, "same": 0, "differs": 0, "would_fail": 0, "skipped": 0}
    after = 0
    while True:
        out = engine.call(
            CallRequest(
                op="run.replay",
                args={"id": run_id, "after_seq": after, "limit": 1000},
                api_key=secret,
            )
        )
        if out.error is not None:
            raise SystemExit(f"run.replay failed: {out.error.to_dict()}")
        page = out.result or {}
        for key in totals:
            totals[key] += int(page["summary"][key])
        if not page["has_more"]:
            return totals
        after = int(page["next_after_seq"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp), database_url=opts.database_url, rate_limit_per_second=0
        )
        store = open_store(settings)
        engine = Engine(store, settings)
        account = create_account(store, "bench")
        with store.transaction() as conn:
            run_id = insert_run(
                conn, account_id=account.account_id, agent_id="agent_bench", name="bench"
            )
        t0 = time.perf_counter()
        record(engine, account.secret, run_id, opts.calls)
        recorded = time.perf_counter() - t0
        t1, c1 = time.perf_counter(), time.process_time()
        totals = replay(engine, account.secret, run_id)
        elapsed, cpu = time.perf_counter() - t1, time.process_time() - c1
        store.dispose()
    figure = {
        "calls": totals["calls"],
        "replay_seconds": round(elapsed, 3),
        "replay_cpu_seconds": round(cpu, 3),
        "calls_per_second": round(totals["calls"] / elapsed, 1) if elapsed else None,
        "target_seconds": TARGET_SECONDS,
        "pass": elapsed <= TARGET_SECONDS,
        "record_seconds": round(recorded, 3),
        "summary": totals,
        "database": store.dialect,
    }
    if opts.json:
        print(json.dumps(figure))
    else:
        print(f"recorded {opts.calls} calls in {recorded:.1f} s ({store.dialect})")
        print(
            f"replay --dry-run: {totals['calls']} calls in {elapsed:.2f} s "
            f"({figure['calls_per_second']} calls/s, {cpu:.2f} s CPU); summary {totals}"
        )
        verdict = "PASS" if figure["pass"] else "FAIL"
        print(f"target: <= {TARGET_SECONDS:.0f} s for 10,000 calls -> {verdict}")
    sys.exit(0)


if __name__ == "__main__":
    main()
