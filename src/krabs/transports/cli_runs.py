"""``krabs runs create|tail|replay``: the terminal side of runs. Every command is a client of the
contract (``run.create``, ``run.list_events``, ``run.replay``, the SSE streams), so it works the same
embedded and against a server (``KRABS_URL``)."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import click

from krabs.cli import cli
from krabs.client_errors import KrabsAPIError
from krabs.transports.cli import err_console, state
from krabs.transports.cli_backend import Backend, RemoteBackend
from krabs.transports.cli_render import render_error

_SINCE = re.compile(r"^(\d{1,9})(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
POLL_SECONDS = 0.5


def since_to_ts(value: str) -> str:
    """``5m``, ``30s``, ``2h``, ``1d`` (before now) or an ISO timestamp."""
    m = _SINCE.match(value.strip())
    if m:
        moment = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(m[1]) * _UNITS[m[2]])
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            "use 30s, 5m, 2h, 1d or an ISO timestamp", param_hint="--since"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_line(event: dict[str, Any], *, show_run: bool = False) -> str:
    """One event as the seed's terminal line: ``14:22:31.418 contact.upsert 42ms ✓``."""
    ts = str(event.get("ts", ""))[11:23]
    data = event.get("data") if isinstance(event.get("data"), dict) else event
    assert isinstance(data, dict)
    head = click.style(ts, dim=True)
    if show_run:
        head += " " + click.style(str(event.get("run_id", "")), dim=True)
    kind = event.get("type")
    if kind == "tool_call":
        op = click.style(str(data.get("op") or event.get("op")), bold=True)
        latency = data.get("latency_ms")
        ms = f"{round(latency)}ms" if isinstance(latency, int | float) else "?ms"
        error = data.get("error")
        if isinstance(error, dict):
            mark = click.style(f"✕ {error.get('code')}", fg="red")
        else:
            mark = click.style("✓", fg="green")
        extra = click.style(" (dry-run)", dim=True) if data.get("dry_run") else ""
        return f"{head} {op} {ms} {mark}{extra}"
    detail = ""
    if kind == "span":
        detail = f" {data.get('node') or data.get('name') or ''}".rstrip()
    elif data.get("approval_id"):
        detail = f" {data.get('approval_id')}"
        if data.get("decision"):
            detail += f" {data['decision']}"
    elif data.get("status"):
        detail = f" {data['status']}"
    return f"{head} {click.style(str(kind), fg='cyan')}{detail}"


def _fail(ctx: click.Context, exc: KrabsAPIError, code: int | None = None) -> None:
    render_error(err_console, exc, "table")
    ctx.exit(exc.exit_code if code is None else code)


@cli.group("runs")
def runs() -> None:
    """Runs: create one, tail calls as they land, replay a run against today's state."""


@runs.command("create")
@click.option("--name", required=True, help='What the run is, e.g. "Q3 outreach pass".')
@click.option("--agent", default=None, help="The agent the run belongs to (default: the key's).")
@click.option("--json", "as_json", is_flag=True, help="Print the run object as JSON.")
@click.pass_context
def create(ctx: click.Context, name: str, agent: str | None, as_json: bool) -> None:
    """Create a run; attach calls with KRABS_RUN_ID=<run_id> or the X-Krabs-Run header."""
    args: dict[str, Any] = {"name": name}
    if agent:
        args["agent"] = agent
    try:
        run = state(ctx).backend.call("run.create", args)
    except KrabsAPIError as exc:
        _fail(ctx, exc)
        return
    if as_json:
        click.echo(json.dumps(run, indent=2, ensure_ascii=False))
        return
    for field, value in (
        ("run_id", run.get("run_id") or run.get("id")),
        ("agent", run.get("agent")),
        ("name", run.get("name")),
        ("created", run.get("created")),
        ("status", run.get("status")),
    ):
        click.echo(f"{field}: {value}")


def _pages(backend: Backend, args: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every stored event matching ``args``, paging ``run.list_events``; updates ``after_id``."""
    while True:
        page = backend.call("run.list_events", {**args, "limit": 1000})
        yield from page["data"]
        args["after_id"] = page["next_cursor"]
        if not page["has_more"]:
            return


def _sse(url: str, api_key: str | None, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Events from an SSE endpoint (httpx streaming), as dicts with ``id`` and ``type``."""
    import httpx

    headers = {"Accept": "text/event-stream"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    timeout = httpx.Timeout(10.0, read=60.0)
    with httpx.stream("GET", url, params=params, headers=headers, timeout=timeout) as r:
        if r.status_code >= 400:
            from krabs.client_errors import error_from_response

            r.read()
            raise error_from_response("runs.tail", r)
        fields: dict[str, str] = {}
        for line in r.iter_lines():
            if line == "":
                if "data" in fields:
                    event = json.loads(fields["data"])
                    event.setdefault("type", fields.get("event"))
                    yield event
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                fields[name] = fields.get(name, "") + value if name == "data" else value


def _emit(event: dict[str, Any], as_json: bool, show_run: bool) -> None:
    if as_json:
        click.echo(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
    else:
        click.echo(event_line(event, show_run=show_run), color=None)


def _flat(event: dict[str, Any]) -> dict[str, Any]:
    """A stream frame's payload in ``run.list_events``'s shape (its own fields under ``data``)."""
    head = {"id", "seq", "type", "ts", "run_id", "object", "agent", "op", "action_id", "data"}
    if isinstance(event.get("data"), dict):
        return event
    data = {k: v for k, v in event.items() if k not in head}
    if "op" in event:
        data["op"] = event["op"]
    return {**{k: v for k, v in event.items() if k in head}, "data": data}


@runs.command("tail")
@click.option("--agent", default=None, help="Only runs of this agent.")
@click.option("--run", "run_id", default=None, help="Only this run.")
@click.option("--follow", "-f", is_flag=True, help="Stay attached and print calls as they land.")
@click.option("--since", default=None, help="Backfill from 30s, 5m, 2h, 1d ago or a timestamp.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def tail(
    ctx: click.Context,
    agent: str | None,
    run_id: str | None,
    follow: bool,
    since: str | None,
    as_json: bool,
) -> None:
    """Print run events as terminal lines: 14:22:31.418 contact.upsert 42ms ✓ (✕ and the error code
    when a call failed). Without --follow it prints the backlog (--since, default 1h) and exits."""
    backend = state(ctx).backend
    start = since_to_ts(since) if since else None
    if start is None and not follow:
        start = since_to_ts("1h")
    query: dict[str, Any] = {}
    if agent:
        query["agent"] = agent
    if run_id:
        query["run_id"] = run_id
    show_run = False  # the seed's lines carry no run id; --json has it
    last: dict[str, Any] = {"id": 0, "seq": 0}
    try:
        if start is not None:
            for event in _pages(backend, {**query, "since": start}):
                last.update(id=event["id"], seq=event["seq"])
                _emit(event, as_json, show_run)
        if not follow:
            return
        if isinstance(backend, RemoteBackend):
            _follow_remote(backend, query, last, start is not None, as_json, show_run)
        else:
            _follow_embedded(backend, query, last, start, as_json, show_run)
    except KrabsAPIError as exc:
        _fail(ctx, exc)
    except KeyboardInterrupt:
        return


def _follow_remote(
    backend: RemoteBackend,
    query: dict[str, Any],
    last: dict[str, Any],
    backfilled: bool,
    as_json: bool,
    show_run: bool,
) -> None:
    """Live events over SSE; on a dropped connection, resume after the last one seen."""
    base = backend.url.rstrip("/")
    run_id = query.get("run_id")
    if run_id and not backfilled:
        last["seq"] = int(backend.call("run.get", {"id": run_id}).get("last_seq") or 0)
    while True:
        if run_id:
            url, params = f"{base}/v1/runs/{run_id}/stream", {"after_seq": last["seq"]}
        else:
            url = f"{base}/v1/runs/stream"
            params = {k: v for k, v in (("agent", query.get("agent")),) if v}
            if backfilled or last["id"]:
                params["after_id"] = last["id"]
        try:
            for event in _sse(url, backend.api_key, params):
                flat = _flat(event)
                last.update(id=flat.get("id", last["id"]), seq=flat.get("seq", last["seq"]))
                backfilled = True
                _emit(flat, as_json, show_run)
        except KrabsAPIError:
            raise
        except Exception as exc:  # the connection dropped: reconnect from the last event
            print(f"stream interrupted ({type(exc).__name__}); reconnecting", file=sys.stderr)
            time.sleep(1.0)
            continue
        if run_id:
            return  # a run's stream ends when the run has finished


def _follow_embedded(
    backend: Backend,
    query: dict[str, Any],
    last: dict[str, Any],
    start: str | None,
    as_json: bool,
    show_run: bool,
) -> None:
    """Poll the local database for events after the last one printed."""
    since = start or since_to_ts("0s")
    while True:
        args = {**query, "since": since, "after_id": last["id"]}
        for event in _pages(backend, args):
            last.update(id=event["id"], seq=event["seq"])
            _emit(event, as_json, show_run)
        time.sleep(POLL_SECONDS)


# Registered last: they add `krabs runs replay` and `krabs runs undo` to the group defined above.
from krabs.transports import cli_replay, cli_run_undo  # noqa: E402, F401
