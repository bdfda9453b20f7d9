"""Benchmark: run streams over SSE (``GET /v1/runs/{id}/stream``) under load.

    .venv/bin/python bench/sse.py            # both scenarios, embedded SQLite
    .venv/bin/python bench/sse.py --json     # one JSON object with every figure
    .venv/bin/python bench/sse.py --database-url postgresql://postgres@127.0.0.1:5432/test

(a) fan-out: 100 subscribers on one run while 8 writers post batches of 20 span events into it
    (``run.add_spans``) as fast as the server takes them; deliveries/s and write→receive p50/p99,
    beside a bare ``sse-starlette`` in-process broadcaster (``bare_app`` below: ``POST /write``
    puts each event of the batch on every subscriber's queue) measured the same way in the same
    run. Target: krabs ≥ 0.5 × bare deliveries/s.
(b) breadth: 1,000 concurrent subscribers over 100 runs (10 each), 200 writes/s in total spread
    over the runs (each a span upload; ``--write contact`` makes each a ``contact.create`` tool
    call instead, which measures the CRM write path as much as the streams); write→receive p99 and
    drops (every subscriber must get every event of its run, in order). Targets: p99 ≤ 50 ms,
    none dropped.

Servers and subscribers are separate processes (``--subscriber`` mode of this script); the
writers run in the main process. Write→receive is measured from the moment the writer sends the
call (a timestamp carried in the call's arguments) to the moment a subscriber has parsed the event.
(b)'s writer sends each call from one of 32 keep-alive connections at its due time and reports how
late calls went out (``send lag``) and the rate it achieved: a server that cannot take 200 writes/s
shows there, and fails the target, instead of hiding in a client-side queue.
Subscribers are minimal asyncio HTTP/1.1 clients, so the client side costs as little as possible.
The script exits 0 whether or not the targets are met (it says which).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

KEY = "krabs_sk_ssebench00000000000000000000000"
ROOT = Path(__file__).resolve().parent.parent


# -- the bare broadcaster ---------------------------------------------------------------------------


def bare_app() -> Any:
    """A bare sse-starlette broadcaster: what uvicorn + Starlette + SSE can do on this machine."""
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    queues: set[asyncio.Queue[tuple[int, str]]] = set()
    counter = {"seq": 0}

    async def stream(request: Request) -> Any:
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        queues.add(queue)

        async def events() -> Any:
            try:
                while True:
                    seq, data = await queue.get()
                    yield {"id": str(seq), "event": "tool_call", "data": data}
            finally:
                queues.discard(queue)

        return EventSourceResponse(events())

    async def write(request: Request) -> Any:
        """A batch ``{"events": [...]}``: each event broadcast on its own, as krabs does."""
        body = await request.json()
        for event in body["events"]:
            counter["seq"] += 1
            data = json.dumps(event)
            for queue in queues:
                queue.put_nowait((counter["seq"], data))
        return JSONResponse({"ok": True, "seq": counter["seq"]})

    async def health(request: Request) -> Any:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/stream", stream),
            Route("/write", write, methods=["POST"]),
            Route("/healthz", health),
        ]
    )


# -- subscribers (their own process) -----------------------------------------------------------------


async def _subscribe(
    host: str,
    port: int,
    path: str,
    auth: str | None,
    stats: dict[str, Any],
    stop: asyncio.Event,
    ready_on: bytes | None = None,
) -> None:
    """One SSE client; on a dropped stream it resumes from its last id, as a browser does."""
    last: str | None = None
    seqs: list[int] = stats["seqs"]
    latencies: list[float] = stats["latencies"]
    while not stop.is_set():
        reader, writer = await asyncio.open_connection(host, port)
        head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
        if auth:
            head += f"Authorization: Bearer {auth}\r\n"
        if last:
            head += f"Last-Event-ID: {last}\r\n"
        writer.write((head + "\r\n").encode())
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"{path}: {status!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        buf = b""
        try:
            while not stop.is_set():
                size_line = await reader.readline()
                if not size_line:
                    break
                size = int(size_line.strip() or b"0", 16)
                if size == 0:
                    break
                buf += (await reader.readexactly(size + 2))[:-2]
                buf = buf.replace(b"\r\n", b"\n")
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    # Ready once the stream's opening comment came (the server sends it after it
                    # has subscribed), or with ``ready_on`` once that comment came (krabs's
                    # ": live": its history is read and it waits for new events).
                    if ready_on is None or block.strip() == ready_on:
                        stats["connected"].set()
                    ident = data = None
                    for line in block.split(b"\n"):
                        if line.startswith(b"id: "):
                            ident = line[4:].decode()
                        elif line.startswith(b"data: "):
                            data = line[6:]
                    if data is None or ident is None:
                        continue
                    last = ident
                    now = time.time()
                    event = json.loads(data)
                    sent = event.get("t")
                    if sent is None and str(event.get("input_text", "")).startswith("t="):
                        sent = float(event["input_text"][2:])  # a span's
                    if sent is None:
                        sent = ((event.get("args") or {}).get("attributes") or {}).get("t")
                    if sent is None:
                        continue  # run.started and other non-bench events
                    seqs.append(int(ident))
                    latencies.append(now - sent)
                    stats["sent"].append(sent)
                    stats["count"] += 1
                    stats["first"] = stats["first"] or now
                    stats["last"] = now
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
        if not stop.is_set():
            stats["reconnects"] += 1


async def subscriber_main(config: dict[str, Any]) -> None:
    stop = asyncio.Event()
    all_stats = []
    tasks = []
    for path in config["paths"]:
        stats = {
            "path": path,
            "seqs": [],
            "latencies": [],
            "count": 0,
            "first": 0.0,
            "last": 0.0,
            "reconnects": 0,
            "sent": [],
            "connected": asyncio.Event(),
        }
        all_stats.append(stats)
        tasks.append(
            asyncio.create_task(
                _subscribe(
                    config["host"],
                    config["port"],
                    path,
                    config.get("key"),
                    stats,
                    stop,
                    config["ready_on"].encode() if config.get("ready_on") else None,
                )
            )
        )
    await asyncio.gather(*(s["connected"].wait() for s in all_stats))
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    # The main process says stop, and from when (epoch seconds) latencies count: events sent during
    # its warm-up are still counted and checked for order, not timed.
    said = await loop.run_in_executor(None, sys.stdin.readline)
    timed_from = float(said.split()[1]) if len(said.split()) > 1 else 0.0
    await asyncio.sleep(config.get("grace", 1.0))
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = sorted(
        x
        for s in all_stats
        for t, x in zip(s["sent"], s["latencies"], strict=True)
        if t >= timed_from
    )
    firsts = [s["first"] for s in all_stats if s["first"]]
    lasts = [s["last"] for s in all_stats if s["last"]]
    print(
        json.dumps(
            {
                "deliveries": sum(s["count"] for s in all_stats),
                "window_s": (max(lasts) - min(firsts)) if firsts else 0.0,
                "p50_ms": _pct(latencies, 50) * 1000,
                "p99_ms": _pct(latencies, 99) * 1000,
                "timeline": _timeline(all_stats),
                "reconnects": sum(s["reconnects"] for s in all_stats),
                "per_path": [
                    {"path": s["path"], "count": s["count"], "in_order": _in_order(s["seqs"])}
                    for s in all_stats
                ],
            }
        ),
        flush=True,
    )


def _timeline(all_stats: list[dict[str, Any]]) -> list[list[float]]:
    """Per second of the write phase (by send time): deliveries, p50 and max write→receive, ms."""
    pairs = [(t, x) for s in all_stats for t, x in zip(s["sent"], s["latencies"], strict=True)]
    if not pairs:
        return []
    start = min(t for t, _ in pairs)
    buckets: dict[int, list[float]] = {}
    for t, x in pairs:
        buckets.setdefault(int(t - start), []).append(x)
    out = []
    for second in sorted(buckets):
        xs = sorted(buckets[second])
        out.append([second, len(xs), round(_pct(xs, 50) * 1000, 1), round(xs[-1] * 1000, 1)])
    return out


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(len(values) * q / 100) - 1))]


def _in_order(seqs: list[int]) -> bool:
    return all(b == a + 1 for a, b in itertools.pairwise(seqs))


class Subscribers:
    """The subscriber process: started, waited for until every stream is connected, stopped."""

    def __init__(
        self, host: str, port: int, paths: list[str], key: str | None, ready_on: str | None = None
    ) -> None:
        config = {"host": host, "port": port, "paths": paths, "key": key, "ready_on": ready_on}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--subscriber", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"subscribers did not start: {line!r}")

    def finish(self, timed_from: float = 0.0) -> dict[str, Any]:
        out, _ = self.proc.communicate(f"stop {timed_from}\n", timeout=120)
        return dict(json.loads(out.strip().splitlines()[-1]))


# -- servers -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(argv: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    log = tempfile.NamedTemporaryFile(prefix="krabs-sse-bench-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(  # stderr to a file: a full pipe would stall the server
        argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    err = Path(log.name).read_text(errors="replace")
    raise SystemExit(f"server did not start: {' '.join(argv)}\n{err[-3000:]}")


def start_krabs(data_dir: str, database_url: str | None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        "KRABS_DATA_DIR": data_dir,
        "KRABS_BOOTSTRAP_KEY": KEY,
        "KRABS_RATE_LIMIT_PER_SECOND": "0",
        "KRABS_SSE_QUEUE": "100000",
        "KRABS_SPANS_PER_MINUTE": "1000000000",
    }
    if database_url:
        env["KRABS_DATABASE_URL"] = database_url
    argv = [sys.executable, "-m", "krabs", "serve", "--port", str(port)]
    return start(argv, env, port), port


def start_bare() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "bench.sse:bare_app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return start(argv, {"PYTHONPATH": str(ROOT)}, port), port


# -- writers -----------------------------------------------------------------------------------------


async def write_flat_out(
    url: str, path: str, body: Any, headers: dict[str, str], seconds: float, concurrency: int
) -> int:
    """Post as fast as the server answers, ``concurrency`` at a time, for ``seconds``."""
    done = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as c:

        async def worker(n: int) -> None:
            nonlocal done
            i = 0
            while time.monotonic() < deadline:
                i += 1
                response = await c.post(path, json=body(n, i))
                if response.status_code == 200:
                    done += 1

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return done


class Poster:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the answer (status only).

    The paced writer uses a few of these rather than ``httpx``: with hundreds of calls waiting for
    a pooled connection, httpx's pool spends O(waiting) work per request and, at 200 calls/s, the
    writer itself saturates a core and sends its calls seconds late (which measured the writer, not
    the server)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any], headers: str = "") -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(body).encode()
        self.writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}{headers}"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data
        )
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def write_paced(
    url: str, runs: list[str], rate: float, seconds: float, headers: dict[str, str], kind: str
) -> dict[str, Any]:
    """``rate`` calls/s in total, round-robin over ``runs``, from ``connections`` keep-alive
    connections. Each call carries the time it is actually sent (not the time it was due), so
    write→receive never counts the writer's own queueing; how late calls went out is reported as
    ``lag`` (a server that cannot keep up shows there and in the achieved rate)."""
    host, port = httpx.URL(url).host, httpx.URL(url).port or 80
    ok = dict.fromkeys(runs, 0)
    lags: list[float] = []
    connections = 32
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    posters = [Poster(host, port, headers) for _ in range(connections)]

    async def worker(poster: Poster) -> None:
        while (item := await due.get()) is not None:
            i, when = item
            run = runs[i % len(runs)]
            now = time.time()
            lags.append(time.monotonic() - when)
            if kind == "contact":  # a tool call: the write's own event
                body: dict[str, Any] = {"display_name": f"b{i}", "attributes": {"t": now}}
                status = await poster.post("/v1/contact.create", body, f"X-Krabs-Run: {run}\r\n")
            else:  # one span event
                span = {"node_name": f"b{i}", "input_text": f"t={now}"}
                status = await poster.post("/v1/run.add_spans", {"run_id": run, "spans": [span]})
            if status == 200:
                ok[run] += 1

    workers = [asyncio.create_task(worker(p)) for p in posters]
    start, start_epoch = time.monotonic(), time.time()
    for i in range(int(rate * seconds)):
        when = start + i / rate
        delay = when - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait((i, when))
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.monotonic() - start
    for poster in posters:
        poster.close()
    lags.sort()
    return {
        "ok": ok,
        "elapsed_s": elapsed,
        "lag_p99_ms": _pct(lags, 99) * 1000,
        "start_epoch": start_epoch,
    }


# -- scenarios ---------------------------------------------------------------------------------------


def new_run(url: str, name: str) -> str:
    r = httpx.post(
        url + "/v1/run.create", json={"name": name}, headers={"Authorization": f"Bearer {KEY}"}
    )
    r.raise_for_status()
    return str(r.json()["id"])


def fan_out(args: argparse.Namespace, krabs_port: int, bare_port: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    auth = {"Authorization": f"Bearer {KEY}"}
    # krabs: 100 subscribers on one run, writers posting contact.create into it.
    url = f"http://127.0.0.1:{krabs_port}"
    run = new_run(url, "bench fan-out")
    path = f"/v1/runs/{run}/stream?after_seq=1"
    subs = Subscribers("127.0.0.1", krabs_port, [path] * args.subscribers, KEY)

    def krabs_body(n: int, i: int) -> Any:
        span = {"node_name": f"w{n}", "input_text": f"t={time.time()}"}
        return {"run_id": run, "spans": [span] * args.batch}

    writes = asyncio.run(
        write_flat_out(url, "/v1/run.add_spans", krabs_body, auth, args.seconds, args.writers)
    )
    got = subs.finish()
    out["krabs"] = {
        "writes": writes * args.batch,
        **_rates(got, writes * args.batch, args.subscribers),
    }
    # The bare broadcaster, measured the same way.
    subs = Subscribers("127.0.0.1", bare_port, ["/stream"] * args.subscribers, None)
    bare_url = f"http://127.0.0.1:{bare_port}"

    def bare_body(n: int, i: int) -> Any:
        return {"events": [{"node_name": f"w{n}", "t": time.time()}] * args.batch}

    writes = asyncio.run(
        write_flat_out(bare_url, "/write", bare_body, {}, args.seconds, args.writers)
    )
    got = subs.finish()
    out["bare"] = {
        "writes": writes * args.batch,
        **_rates(got, writes * args.batch, args.subscribers),
    }
    out["ratio"] = out["krabs"]["deliveries_per_s"] / max(1e-9, out["bare"]["deliveries_per_s"])
    out["target_ratio"] = 0.5
    out["pass"] = out["ratio"] >= 0.5
    return out


def _rates(got: dict[str, Any], writes: int, subscribers: int) -> dict[str, Any]:
    return {
        "deliveries": got["deliveries"],
        "expected_deliveries": writes * subscribers,
        "deliveries_per_s": got["deliveries"] / max(1e-9, got["window_s"]),
        "p50_ms": got["p50_ms"],
        "p99_ms": got["p99_ms"],
        "reconnects": got["reconnects"],
    }


def breadth(args: argparse.Namespace, krabs_port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{krabs_port}"
    runs = [new_run(url, f"bench breadth {i}") for i in range(args.runs)]
    per_run = args.breadth_subscribers // args.runs
    paths = [f"/v1/runs/{run}/stream?after_seq=1" for run in runs for _ in range(per_run)]
    subs = Subscribers("127.0.0.1", krabs_port, paths, KEY, ready_on=": live")
    total = args.warmup + args.seconds
    wrote = asyncio.run(
        write_paced(url, runs, args.rate, total, {"Authorization": f"Bearer {KEY}"}, args.write)
    )
    ok: dict[str, int] = wrote["ok"]
    got = subs.finish(timed_from=wrote["start_epoch"] + args.warmup)
    by_run = {f"/v1/runs/{run}/stream?after_seq=1": n for run, n in ok.items()}
    dropped = sum(
        max(0, by_run[p["path"]] - p["count"]) + (0 if p["in_order"] else 1)
        for p in got["per_path"]
    )
    return {
        "subscribers": len(paths),
        "runs": len(runs),
        "writes": sum(ok.values()),
        "writes_per_s": sum(ok.values()) / wrote["elapsed_s"],
        "send_lag_p99_ms": wrote["lag_p99_ms"],
        "deliveries": got["deliveries"],
        "expected_deliveries": sum(ok.values()) * per_run,
        "p50_ms": got["p50_ms"],
        "p99_ms": got["p99_ms"],
        "dropped": dropped,
        "reconnects": got["reconnects"],
        "timeline": got["timeline"],
        "write": args.write,
        "warmup_s": args.warmup,
        "target_p99_ms": 50,
        "pass": got["p99_ms"] <= 50 and dropped == 0 and sum(ok.values()) == int(args.rate * total),
    }


@contextlib.contextmanager
def servers(database_url: str | None, *, bare: bool) -> Iterator[tuple[int, int]]:
    """A fresh krabs server (its own data directory), and the bare broadcaster if asked."""
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as data_dir:
        try:
            krabs, krabs_port = start_krabs(data_dir, database_url)
            procs.append(krabs)
            bare_port = 0
            if bare:
                proc, bare_port = start_bare()
                procs.append(proc)
            yield krabs_port, bare_port
        finally:
            for proc in procs:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscriber", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--database-url", default=None, help="PostgreSQL instead of SQLite")
    parser.add_argument("--seconds", type=float, default=8.0, help="write phase of each part")
    parser.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        help="(b) seconds written at the same rate before latencies count (deliveries still do)",
    )
    parser.add_argument("--subscribers", type=int, default=100, help="(a) subscribers")
    parser.add_argument("--writers", type=int, default=8, help="(a) concurrent writers")
    parser.add_argument("--batch", type=int, default=20, help="(a) events per write request")
    parser.add_argument("--breadth-subscribers", type=int, default=1000, help="(b) subscribers")
    parser.add_argument("--runs", type=int, default=100, help="(b) runs")
    parser.add_argument("--rate", type=float, default=200.0, help="(b) writes/s in total")
    parser.add_argument(
        "--write",
        choices=("span", "contact"),
        default="span",
        help="(b) each write: one span (run.add_spans) or a tool call (contact.create)",
    )
    parser.add_argument("--only", choices=("fanout", "breadth"), default=None)
    args = parser.parse_args()
    if args.subscriber:
        asyncio.run(subscriber_main(json.loads(args.subscriber)))
        return
    results: dict[str, Any] = {"database": "postgresql" if args.database_url else "sqlite"}
    # Each scenario gets a server of its own: (a) leaves the server flushing a backlog to streams
    # whose clients have gone, which (b) would otherwise measure.
    if args.only in (None, "fanout"):
        with servers(args.database_url, bare=True) as (krabs_port, bare_port):
            results["fanout"] = fan_out(args, krabs_port, bare_port)
    if args.only in (None, "breadth"):
        with servers(args.database_url, bare=False) as (krabs_port, _):
            results["breadth"] = breadth(args, krabs_port)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    report(results)


def report(r: dict[str, Any]) -> None:
    print(f"bench/sse.py on {r['database']}")
    if "fanout" in r:
        f = r["fanout"]
        print(
            f"(a) {f['krabs']['expected_deliveries'] // max(1, f['krabs']['writes'])} subscribers "
            "on one run, writes as fast as the server takes them"
        )
        for name in ("krabs", "bare"):
            x = f[name]
            print(
                f"    {name:5} writes {x['writes']:6}  deliveries {x['deliveries']:8} / "
                f"{x['expected_deliveries']:8}  {x['deliveries_per_s']:9.0f}/s  "
                f"p50 {x['p50_ms']:7.1f} ms  p99 {x['p99_ms']:7.1f} ms  reconnects {x['reconnects']}"
            )
        verdict = "PASS" if f["pass"] else "FAIL"
        print(f"    krabs/bare deliveries/s = {f['ratio']:.2f} (target >= 0.5): {verdict}")
    if "breadth" in r:
        b = r["breadth"]
        print(
            f"(b) {b['subscribers']} subscribers over {b['runs']} runs, "
            f"{b['writes_per_s']:.0f} writes/s ({b['write']}): deliveries {b['deliveries']} / "
            f"{b['expected_deliveries']}, p50 {b['p50_ms']:.1f} ms, p99 {b['p99_ms']:.1f} ms, "
            f"dropped {b['dropped']}, reconnects {b['reconnects']}, "
            f"writer's send lag p99 {b['send_lag_p99_ms']:.1f} ms; latencies timed after a "
            f"{b['warmup_s']:g} s warm-up at the same rate"
        )
        for second, n, p50, worst in b["timeline"]:
            print(
                f"    second {second:>2}: {n:>5} deliveries, p50 {p50:6.1f} ms, max {worst:7.1f} ms"
            )
        verdict = "PASS" if b["pass"] else "FAIL"
        print(f"    target p99 <= 50 ms and none dropped: {verdict}")


if __name__ == "__main__":
    main()
