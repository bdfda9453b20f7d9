"""HTTP write-path benchmark: krabs ``POST /v1/contact.create`` vs a bare Starlette echo.

The echo app is the ceiling for "uvicorn + Starlette + JSON on this box", so the ratio
krabs/echo isolates what krabs itself costs per write (auth, rate limiter, validation,
idempotency, SQLite commit) from the machine and the ASGI stack.

Run from the repo root: ``python bench/http_write.py`` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

REPO_ROOT = Path(__file__).resolve().parent.parent
WRK_LUA = Path(__file__).resolve().parent / "wrk_contact_create.lua"
BENCH_KEY = "krabs_sk_bench000000000000000000000000"
KRABS_PATH = "/v1/contact.create"
ECHO_PATH = "/echo"
READY_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- echo baseline


async def _echo(request: Request) -> Response:
    """Parse and re-serialise the body: the minimum any JSON write endpoint must do."""
    return JSONResponse(await request.json())


async def _healthz(request: Request) -> Response:
    """Same readiness probe as krabs, so one start-up routine serves both."""
    return PlainTextResponse("ok")


echo_app = Starlette(
    routes=[Route(ECHO_PATH, _echo, methods=["POST"]), Route("/healthz", _healthz)]
)


# --------------------------------------------------------------------------- results


@dataclass
class RunResult:
    """One measured (or warm-up) load run against one server."""

    target: str
    generator: str
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_detail: dict[str, Any] = field(default_factory=dict)
    #: The server process's CPU time (user + system) per response, in microseconds: unlike req/s,
    #: other load on a shared machine barely moves it. None where /proc is unavailable.
    cpu_us_per_request: float | None = None

    @property
    def error_rate(self) -> float:
        """Errors over all attempts; socket errors have no response, so add them in."""
        total = self.requests + self.error_detail.get("socket_errors_total", 0)
        return self.errors / total if total else 1.0


class BenchError(RuntimeError):
    """Something broke (server, generator): the figures would be meaningless."""


def log(msg: str) -> None:
    """Progress goes to stderr so stdout stays the report (or the --json object)."""
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- python generator


def _percentile(sorted_vals: list[float], pct: float) -> float:
    """Nearest-rank percentile; good enough at 10^4-10^6 samples."""
    if not sorted_vals:
        return 0.0
    idx = min(len(sorted_vals) - 1, max(0, round(pct / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[idx]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Minimal HTTP/1.1 response reader (status, body, server-wants-close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length: int | None = None
    chunked = False
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    if chunked:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return status, b"".join(parts), close
    if length is None:
        return status, await reader.read(), True
    return status, await reader.readexactly(length), close


async def _client_conn(
    cfg: dict[str, Any], conn_id: int, start: asyncio.Event, stats: dict[str, Any]
) -> None:
    """Keep one keep-alive connection busy until the deadline, one request at a time."""
    loop = asyncio.get_running_loop()
    host, port, path = cfg["host"], cfg["port"], cfg["path"]
    prefix, expect_id = cfg["prefix"], cfg["expect_id"]
    head_tmpl = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {cfg['key']}\r\nContent-Type: application/json\r\n"
    )
    lat: list[float] = stats["latencies"]
    reader, writer = await asyncio.open_connection(host, port)
    await start.wait()
    deadline = stats["deadline"]
    n = 0
    try:
        while loop.time() < deadline:
            n += 1
            uniq = f"{prefix}-{conn_id}-{n}"
            body = (
                f'{{"display_name": "Ada {n}", "identities": [{{"kind": "email", '
                f'"value": "ada{n}-{uniq}@bench.krabs.dev"}}]}}'
            ).encode()
            req = (
                f"{head_tmpl}Idempotency-Key: bench-{uniq}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            t0 = time.perf_counter()
            try:
                writer.write(req)
                async with asyncio.timeout(cfg["timeout"]):
                    status, rbody, close = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                stats["socket_errors"] += 1
                close = True
                status, rbody = 0, b""
            except TimeoutError:
                stats["timeouts"] += 1
                close = True
                status, rbody = 0, b""
            else:
                lat.append(time.perf_counter() - t0)
                stats["last_done"] = loop.time()
                if status != 200:
                    stats["non200"] += 1
                    stats["statuses"][str(status)] = stats["statuses"].get(str(status), 0) + 1
                    if not stats["first_error"]:
                        stats["first_error"] = f"{status} {rbody[:200].decode('utf-8', 'replace')}"
                elif expect_id and b'"id"' not in rbody:
                    stats["bad_body"] += 1
            if close:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
                if loop.time() >= deadline:
                    return
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _client_main(cfg: dict[str, Any]) -> dict[str, Any]:
    """Open every connection first, then start the clock, so connect cost isn't measured."""
    loop = asyncio.get_running_loop()
    stats: dict[str, Any] = {
        "latencies": [],
        "socket_errors": 0,
        "timeouts": 0,
        "non200": 0,
        "bad_body": 0,
        "statuses": {},
        "first_error": "",
        "deadline": 0.0,
        "last_done": 0.0,
    }
    start = asyncio.Event()
    tasks = [
        asyncio.create_task(_client_conn(cfg, i, start, stats)) for i in range(cfg["connections"])
    ]
    await asyncio.sleep(0)
    # Let the connects finish (bounded) before the clock starts.
    await asyncio.sleep(0.2)
    t_start = loop.time()
    stats["deadline"] = t_start + cfg["duration"]
    start.set()
    done, pending = await asyncio.wait(tasks, timeout=cfg["duration"] + cfg["timeout"] + 5)
    for t in pending:
        t.cancel()
    connect_errors = sum(1 for t in done if not t.cancelled() and t.exception() is not None)
    elapsed = max(stats["last_done"], stats["deadline"]) - t_start
    lat = sorted(stats["latencies"])
    return {
        "requests": len(lat),
        "duration_s": elapsed,
        "p50_us": _percentile(lat, 50) * 1e6,
        "p90_us": _percentile(lat, 90) * 1e6,
        "p99_us": _percentile(lat, 99) * 1e6,
        "max_us": (lat[-1] if lat else 0.0) * 1e6,
        "non200": stats["non200"],
        "bad_body": stats["bad_body"],
        "statuses": stats["statuses"],
        "socket_errors": {
            "connect": connect_errors,
            "io": stats["socket_errors"],
            "timeout": stats["timeouts"],
        },
        "first_error": stats["first_error"],
    }


def client_entry(argv: list[str]) -> int:
    """Subprocess entry point: the generator must not share a process (or GIL) with a server."""
    cfg = json.loads(argv[0])
    runner: Any = asyncio.run
    try:  # the same loop uvicorn's "--loop auto" picks; keeps the generator from being the cap
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    print(json.dumps(runner(_client_main(cfg))), flush=True)
    return 0


# --------------------------------------------------------------------------- process handling


def free_port() -> int:
    """Ask the kernel for an unused loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server subprocess whose stderr is kept in a file for post-mortems."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.env = env
        self.stderr_path = workdir / f"{name}.stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Own session, so a terminal Ctrl-C reaches only us and we shut servers down in order."""
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # uvicorn's access log; same sink for both servers
                stderr=err,
                start_new_session=True,
            )

    def stderr_tail(self, limit: int = 4000) -> str:
        """Last part of the server's stderr, for error messages."""
        try:
            return self.stderr_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "<no stderr captured>"

    def wait_ready(self, port: int, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll /healthz (bounded) so load never hits a half-started server."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{port}/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with code {self.proc.returncode} before becoming ready."
                    f"\n--- {self.name} stderr ---\n{self.stderr_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise BenchError(
            f"{self.name} not ready after {timeout:.0f}s (GET /healthz)."
            f"\n--- {self.name} stderr ---\n{self.stderr_tail()}"
        )

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system, all threads) the server has used so far (Linux /proc)."""
        if self.proc is None:
            return None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; only ever our own child."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(timeout=10)


def run_bounded(cmd: list[str], timeout: float) -> str:
    """Run a generator to completion, killing it on timeout or Ctrl-C."""
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.communicate(timeout=10)
        raise
    if proc.returncode != 0:
        raise BenchError(
            f"load generator failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{err.decode(errors='replace')[-4000:]}"
        )
    return out.decode(errors="replace")


# --------------------------------------------------------------------------- load runs


@dataclass
class Target:
    """Where and how to send the write request."""

    name: str
    port: int
    path: str
    expect_id: bool


def _to_result(target: Target, generator: str, raw: dict[str, Any]) -> RunResult:
    """Normalise wrk / python generator output into one shape."""
    socket_total = sum(int(v) for v in raw["socket_errors"].values())
    errors = int(raw["non200"]) + int(raw["bad_body"]) + socket_total
    duration = max(float(raw["duration_s"]), 1e-9)
    detail = {
        "non200": raw["non200"],
        "bad_body": raw["bad_body"],
        "socket_errors": raw["socket_errors"],
        "socket_errors_total": socket_total,
    }
    if raw.get("statuses"):
        detail["statuses"] = raw["statuses"]
    if raw.get("first_error"):
        detail["first_error"] = raw["first_error"]
    return RunResult(
        target=target.name,
        generator=generator,
        requests=int(raw["requests"]),
        duration_s=round(duration, 3),
        rps=raw["requests"] / duration,
        p50_ms=raw["p50_us"] / 1000.0,
        p90_ms=raw["p90_us"] / 1000.0,
        p99_ms=raw["p99_us"] / 1000.0,
        max_ms=raw["max_us"] / 1000.0,
        errors=errors,
        error_detail=detail,
    )


def run_load(
    target: Target, generator: str, duration: float, connections: int, threads: int
) -> RunResult:
    """One load run; a fresh random prefix keeps every email and idempotency key unique."""
    prefix = secrets.token_hex(6)
    timeout = duration + REQUEST_TIMEOUT_S + 60
    if generator == "wrk":
        cmd = [
            "wrk",
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            f"--timeout={int(REQUEST_TIMEOUT_S)}s",
            "-s",
            str(WRK_LUA),
            f"http://127.0.0.1:{target.port}",
            "--",
            target.path,
            prefix,
            BENCH_KEY,
            "1" if target.expect_id else "0",
        ]
        out = run_bounded(cmd, timeout)
        line = next((ln for ln in out.splitlines() if ln.startswith("WRK_JSON ")), None)
        if line is None:
            raise BenchError(f"wrk printed no WRK_JSON line:\n{out[-4000:]}")
        raw = json.loads(line[len("WRK_JSON ") :])
        raw["duration_s"] = raw["duration_us"] / 1e6
    else:
        cfg = {
            "host": "127.0.0.1",
            "port": target.port,
            "path": target.path,
            "key": BENCH_KEY,
            "prefix": prefix,
            "expect_id": target.expect_id,
            "connections": connections,
            "duration": duration,
            "timeout": REQUEST_TIMEOUT_S,
        }
        cmd = [sys.executable, str(Path(__file__).resolve()), "_loadgen", json.dumps(cfg)]
        raw = json.loads(run_bounded(cmd, timeout).strip().splitlines()[-1])
    return _to_result(target, generator, raw)


def smoke_check(target: Target) -> None:
    """One request up front, so a 401/422 says why instead of 100% errors after a minute."""
    body = json.dumps(
        {
            "display_name": "Smoke",
            "identities": [
                {"kind": "email", "value": f"smoke-{secrets.token_hex(6)}@bench.krabs.dev"}
            ],
        }
    ).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{target.port}{target.path}",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {BENCH_KEY}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"bench-smoke-{secrets.token_hex(8)}",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as resp:
            status, payload = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise BenchError(f"{target.name}: smoke request failed: {e}") from e
    ok = status == 200
    if ok and target.expect_id:
        try:
            ok = "id" in json.loads(payload)
        except ValueError:
            ok = False
    if not ok:
        raise BenchError(
            f"{target.name}: smoke POST {target.path} -> {status}: "
            f"{payload[:500].decode(errors='replace')}"
        )


# --------------------------------------------------------------------------- reporting


def fmt_run(r: RunResult) -> str:
    """One human line per run."""
    err = f"  errors {r.errors:,}" if r.errors else ""
    cpu = f"  cpu {r.cpu_us_per_request:,.0f} us/req" if r.cpu_us_per_request else ""
    return (
        f"{r.target:>14}: {r.rps:>9,.0f} req/s  p50 {r.p50_ms:6.1f} ms  p99 {r.p99_ms:6.1f} ms"
        f"  ({r.requests:,} req in {r.duration_s:.1f} s){cpu}{err}"
    )


def summarise(runs: list[RunResult]) -> dict[str, Any]:
    """Medians over rounds: robust to one noisy round on a shared box."""
    cpu = [r.cpu_us_per_request for r in runs if r.cpu_us_per_request]
    return {
        "rps": statistics.median(r.rps for r in runs),
        "cpu_us_per_request": statistics.median(cpu) if cpu else None,
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "errors": sum(r.errors for r in runs),
        "requests": sum(r.requests for r in runs),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    """CLI; defaults are the numbers the write-path target is stated against."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=float, default=2.0, help="seconds before each measured run")
    p.add_argument("--target-ratio", type=float, default=0.20, help="krabs/echo req/s floor")
    p.add_argument("--target-p99-ms", type=float, default=25.0, help="contact.create p99 ceiling")
    p.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument("--threads", type=int, default=0, help="wrk threads (0: half the CPUs)")
    p.add_argument("--only", choices=["echo", "krabs"], help="run a single target")
    p.add_argument(
        "--echo-access-log",
        choices=["on", "off"],
        default="off",
        help="uvicorn access log for the echo app (krabs serve runs without one)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.rounds < 1 or args.connections < 1 or args.warmup < 0:
        p.error("--duration/--rounds/--connections must be positive, --warmup >= 0")
    return args


def _sigterm(signum: int, frame: object) -> None:
    """Turn SIGTERM into KeyboardInterrupt so the finally-block still kills the servers."""
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    """Start the servers, alternate echo/krabs per round, report medians."""
    args = parse_args(argv)
    if args.generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    else:
        generator = args.generator
    if generator == "wrk" and not shutil.which("wrk"):
        log("wrk not found on PATH (apt-get install wrk), or use --generator python")
        return 1
    threads = args.threads or max(1, (os.cpu_count() or 2) // 2)
    names = [args.only] if args.only else ["echo", "krabs"]
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored

    servers: list[Server] = []
    results: dict[str, list[RunResult]] = {n: [] for n in names}
    broke = False
    with tempfile.TemporaryDirectory(prefix="krabs-bench-") as tmp:
        workdir = Path(tmp)
        data_dir = workdir / "data"
        data_dir.mkdir()
        base_env = dict(os.environ)
        extra_path = [str(REPO_ROOT / "src"), str(REPO_ROOT)]
        if base_env.get("PYTHONPATH"):
            extra_path.append(base_env["PYTHONPATH"])
        base_env["PYTHONPATH"] = os.pathsep.join(extra_path)
        targets: dict[str, Target] = {}
        try:
            for name in names:
                port = free_port()
                if name == "echo":
                    cmd = [sys.executable, "-m", "uvicorn", "bench.http_write:echo_app"]
                    cmd += ["--host", "127.0.0.1", "--port", str(port)]
                    cmd += ["--loop", "auto", "--http", "auto"]
                    if args.echo_access_log == "off":
                        cmd.append("--no-access-log")
                    env = base_env
                    targets[name] = Target("echo", port, ECHO_PATH, expect_id=False)
                else:
                    cmd = [sys.executable, "-m", "krabs", "serve"]
                    cmd += ["--host", "127.0.0.1", "--port", str(port)]
                    env = {
                        **base_env,
                        "KRABS_DATA_DIR": str(data_dir),
                        "KRABS_BOOTSTRAP_KEY": BENCH_KEY,
                        "KRABS_RATE_LIMIT_PER_SECOND": "1000000",
                    }
                    targets[name] = Target("contact.create", port, KRABS_PATH, expect_id=True)
                server = Server(name, cmd, env, workdir)
                servers.append(server)
                server.start()
            for server in servers:
                server.wait_ready(targets[server.name].port)
                smoke_check(targets[server.name])
            log(
                f"generator={generator} connections={args.connections} duration={args.duration}s"
                f" rounds={args.rounds} warmup={args.warmup}s cpus={os.cpu_count()}"
            )
            for rnd in range(args.rounds):
                order = names if rnd % 2 == 0 else list(reversed(names))
                for name in order:
                    target = targets[name]
                    if args.warmup > 0:
                        run_load(target, generator, args.warmup, args.connections, threads)
                    server = next(s for s in servers if s.name == name)
                    cpu_before = server.cpu_seconds()
                    r = run_load(target, generator, args.duration, args.connections, threads)
                    cpu_after = server.cpu_seconds()
                    if cpu_before is not None and cpu_after is not None and r.requests:
                        r.cpu_us_per_request = (cpu_after - cpu_before) / r.requests * 1e6
                    results[name].append(r)
                    log(f"round {rnd + 1}/{args.rounds} {fmt_run(r)}")
                    if r.error_rate > 0.01:
                        broke = True
                        log(f"  >1% errors: {json.dumps(r.error_detail)}")
        except BenchError as e:
            log(f"ERROR: {e}")
            return 1
        except KeyboardInterrupt:
            log("interrupted; stopping servers")
            return 130
        finally:
            for server in servers:
                server.stop()

    report = build_report(args, generator, results)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(args, report, results)
    return 1 if broke else 0


def build_report(
    args: argparse.Namespace, generator: str, results: dict[str, list[RunResult]]
) -> dict[str, Any]:
    """Everything the README needs, in one object."""
    report: dict[str, Any] = {
        "generator": generator,
        "connections": args.connections,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "runs": {n: [asdict(r) for r in rs] for n, rs in results.items()},
        "median": {n: summarise(rs) for n, rs in results.items()},
    }
    if "echo" in results and "krabs" in results:
        ratios = [k.rps / e.rps for k, e in zip(results["krabs"], results["echo"], strict=True)]
        ratio = statistics.median(ratios)
        p99 = report["median"]["krabs"]["p99_ms"]
        report["ratio"] = {"per_round": ratios, "median": ratio}
        cpu = [
            e.cpu_us_per_request / k.cpu_us_per_request
            for k, e in zip(results["krabs"], results["echo"], strict=True)
            if k.cpu_us_per_request and e.cpu_us_per_request
        ]
        if cpu:
            # The same ratio from the servers' CPU time per response: what req/s would give if
            # each server had a core to itself (load from other jobs skews req/s, not this).
            report["cpu_ratio"] = {"per_round": cpu, "median": statistics.median(cpu)}
        report["target"] = {"ratio": args.target_ratio, "p99_ms": args.target_p99_ms}
        report["pass"] = ratio >= args.target_ratio and p99 <= args.target_p99_ms
    return report


def print_report(
    args: argparse.Namespace, report: dict[str, Any], results: dict[str, list[RunResult]]
) -> None:
    """Per-round lines, medians, then the one-line verdict."""
    print(f"generator: {report['generator']}, {args.connections} connections, {args.duration:g} s")
    for i in range(args.rounds):
        parts = [fmt_run(results[n][i]) for n in results]
        ratio = ""
        if "ratio" in report:
            ratio = f"  ratio {report['ratio']['per_round'][i]:.2f}"
        print(f"round {i + 1}:{ratio}")
        for p in parts:
            print(f"  {p}")
    med = report["median"]
    print("median over rounds:")
    for n in results:
        label = "contact.create" if n == "krabs" else "echo"
        m = med[n]
        print(
            f"  {label:>14}: {m['rps']:>9,.0f} req/s  p50 {m['p50_ms']:6.1f} ms"
            f"  p99 {m['p99_ms']:6.1f} ms  errors {m['errors']:,}/{m['requests']:,}"
        )
    if "pass" in report:
        k, e = med["krabs"], med["echo"]
        verdict = "PASS" if report["pass"] else "FAIL"
        print(
            f"contact.create: {k['rps']:,.0f} req/s p50 {k['p50_ms']:.1f} ms "
            f"p99 {k['p99_ms']:.1f} ms | echo: {e['rps']:,.0f} req/s | "
            f"ratio {report['ratio']['median']:.2f} (target >= {args.target_ratio:.2f}) "
            f"p99 target <= {args.target_p99_ms:g} ms: {verdict}"
        )
        if "cpu_ratio" in report:
            print(
                f"CPU per response: contact.create {k['cpu_us_per_request']:,.0f} us, echo "
                f"{e['cpu_us_per_request']:,.0f} us; CPU ratio {report['cpu_ratio']['median']:.2f}"
                f" (load average {os.getloadavg()[0]:.1f})"
            )
    else:
        (n,) = results
        m = med[n]
        label = "contact.create" if n == "krabs" else "echo"
        print(
            f"{label}: {m['rps']:,.0f} req/s p50 {m['p50_ms']:.1f} ms p99 {m['p99_ms']:.1f} ms"
            " (single target, no ratio)"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_loadgen":
        sys.exit(client_entry(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
