"""Where a ``contact.create`` over HTTP spends its time: the engine alone, the HTTP layer alone.

``http_write.py`` measures the whole write against a bare echo. This script takes the write
apart, so the gap to its target can be read off:

1. **engine**: ``contact.create`` through the whole in-process engine (auth, validation,
   idempotency, audit with sealing and signing, the run event), in group commits of 50 as the
   writer thread makes them, on a fresh SQLite file. No HTTP, no other thread.
2. **http**: ``krabs serve``'s own ASGI app on uvicorn with the engine's ``acall`` replaced by a
   stored ``contact.create`` outcome: routing, body parsing, the response, nothing else.
3. **echo**: ``http_write``'s bare Starlette echo, the same load generator.

From these it prints what one process could reach at best: the engine's writes per second with
a free HTTP layer, and both in sequence (one process, one GIL), as a ratio to the echo.

Run from the repo root: ``python bench/write_breakdown.py`` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT / "src"), str(REPO_ROOT)]

from bench.http_write import (  # noqa: E402
    BENCH_KEY,
    ECHO_PATH,
    KRABS_PATH,
    BenchError,
    Server,
    Target,
    free_port,
    run_load,
    smoke_check,
)
from bench.pg_schema import fresh_schema  # noqa: E402

BATCH = 50
STUB_DIR_ENV = "KRABS_BENCH_STUB_DIR"


def _engine(data_dir: Path, database_url: str | None = None) -> Any:
    """A real engine on a fresh SQLite file in ``data_dir`` (or on ``database_url``), with the
    bench key's account."""
    from krabs.accounts import ensure_demo_account
    from krabs.app import open_engine
    from krabs.config import Settings

    os.environ.update(KRABS_DATA_DIR=str(data_dir), KRABS_RATE_LIMIT_PER_SECOND="1000000")
    if database_url:
        os.environ["KRABS_DATABASE_URL"] = database_url
    else:
        os.environ.pop("KRABS_DATABASE_URL", None)
    engine = open_engine(Settings.from_env())
    ensure_demo_account(engine.store, BENCH_KEY)
    return engine


def _request(i: int, tag: str) -> Any:
    from krabs.engine.context import CallRequest

    return CallRequest(
        op="contact.create",
        args={
            "display_name": f"Ada {i}",
            "identities": [{"kind": "email", "value": f"ada{i}-{tag}@bench.krabs.dev"}],
        },
        api_key=BENCH_KEY,
        idempotency_key=f"bench-{tag}-{i}",
    )


def engine_us_per_write(rounds: int, batches: int, database_url: str | None = None) -> list[float]:
    """Microseconds per ``contact.create`` in group commits of ``BATCH`` (on PostgreSQL, which has
    no group commit, a transaction each), one figure per round."""
    schema = fresh_schema(database_url, "krabs_breakdown") if database_url else nullcontext(None)
    with tempfile.TemporaryDirectory(prefix="krabs-breakdown-") as tmp, schema as url:
        engine = _engine(Path(tmp), url)
        counter = itertools.count()

        def batch() -> float:
            requests = [_request(next(counter), "engine") for _ in range(BATCH)]
            started = time.perf_counter()
            grouped = engine.store.batch() if engine.store.is_sqlite else nullcontext()
            with grouped:
                for request in requests:
                    outcome = engine.call(request)
                    if outcome.error is not None:
                        raise BenchError(f"contact.create failed: {outcome.error}")
            return (time.perf_counter() - started) / BATCH * 1e6

        for _ in range(batches):  # warm-up: caches, the day's run, the first checkpoint
            batch()
        figures = [statistics.median(batch() for _ in range(batches)) for _ in range(rounds)]
        engine.store.dispose()
    return figures


def stub_app() -> Any:
    """``krabs serve``'s app whose engine answers every call with one stored ``contact.create``
    outcome (``uvicorn --factory``): the HTTP layer's own cost."""
    from krabs.transports.http import create_app

    engine = _engine(Path(os.environ[STUB_DIR_ENV]))
    stored = engine.call(_request(0, "stub"))
    if stored.error is not None:
        raise BenchError(f"contact.create failed: {stored.error}")

    async def acall(request: Any) -> Any:
        return stored

    engine.acall = acall
    return create_app(engine)


def http_rps(name: str, app: str, path: str, expect_id: bool, args: argparse.Namespace) -> float:
    """Median req/s of a uvicorn app under the same load ``http_write`` uses."""
    with tempfile.TemporaryDirectory(prefix="krabs-breakdown-") as tmp:
        port = free_port()
        cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--no-access-log", "--log-level", "warning"]
        if app.endswith("stub_app"):
            cmd.append("--factory")
        env = {**os.environ, STUB_DIR_ENV: tmp, "PYTHONPATH": os.pathsep.join(sys.path[:2])}
        server = Server(name, cmd, env, Path(tmp))
        target = Target(name, port, path, expect_id)
        try:
            server.start()
            server.wait_ready(port)
            smoke_check(target)
            threads = max(1, (os.cpu_count() or 2) // 2)
            figures = []
            for _ in range(args.rounds):
                run_load(target, args.generator, args.warmup, args.connections, threads)
                figures.append(
                    run_load(target, args.generator, args.duration, args.connections, threads).rps
                )
        finally:
            server.stop()
    return statistics.median(figures)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=20, help="group commits per engine round")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per HTTP run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--target-ratio", type=float, default=0.20)
    parser.add_argument(
        "--database-url",
        help="also time the engine alone on this PostgreSQL (a fresh schema), against SQLite's",
    )
    args = parser.parse_args(argv)
    args.generator = "wrk" if shutil.which("wrk") else "python"

    try:
        engine_rounds = engine_us_per_write(args.rounds, args.batches)
        pg_rounds = (
            engine_us_per_write(args.rounds, args.batches, args.database_url)
            if args.database_url
            else []
        )
        stub = http_rps("http", "bench.write_breakdown:stub_app", KRABS_PATH, True, args)
        echo = http_rps("echo", "bench.http_write:echo_app", ECHO_PATH, False, args)
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    engine_us = statistics.median(engine_rounds)
    http_us = 1e6 / stub
    serial_rps = 1e6 / (engine_us + http_us)
    rounds = ", ".join(f"{x:.0f}" for x in engine_rounds)
    print(f"generator: {args.generator}, {args.connections} connections, {args.rounds} rounds")
    print(
        f"engine alone:  {engine_us:6.0f} us per contact.create (rounds: {rounds}; group commits"
        f" of {BATCH}) -> at most {1e6 / engine_us:,.0f} writes/s with a free HTTP layer"
    )
    if pg_rounds:
        pg_us = statistics.median(pg_rounds)
        print(
            f"engine alone on PostgreSQL: {pg_us:6.0f} us per contact.create (rounds: "
            f"{', '.join(f'{x:.0f}' for x in pg_rounds)}; a transaction each) -> "
            f"{1e6 / pg_us:,.0f} writes/s on one thread, {pg_us / engine_us:.1f}x SQLite's"
        )
    print(f"HTTP alone:    {stub:8,.0f} req/s with the engine stubbed ({http_us:.0f} us/request)")
    print(f"echo:          {echo:8,.0f} req/s")
    print(
        f"one process, both in sequence: {engine_us + http_us:.0f} us -> {serial_rps:,.0f} writes/s"
        f", ratio {serial_rps / echo:.2f} to the echo (target >= {args.target_ratio:.2f} needs"
        f" {1e6 / (args.target_ratio * echo):.0f} us per write in all)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
