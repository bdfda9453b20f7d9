"""The CLI transport: ``krabs <noun> <verb>`` for every operation, generated from the schema (the
local registry in embedded mode, the server's ``/v1/schema`` in remote mode). Each field of the
operation's input becomes a flag (``--display-name Ada``); nested values take JSON
(``--identity '{"kind":"email","value":"ada@lovelace.dev"}'``), and operations with an ``identity``
or ``identities`` field also take shorthands such as ``--email ada@lovelace.dev``. ``--json`` takes
the whole argument object (inline, ``@file.json`` or ``-`` for stdin); flags override it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from krabs.client_errors import InvalidArgument, KrabsAPIError
from krabs.transports.cli_backend import Backend, backend_from_env, local_schema
from krabs.transports.cli_fields import (
    FieldSpec,
    convert,
    field_specs,
    identity_kinds,
    option_for,
    read_json,
)
from krabs.transports.cli_files import STREAMED_EXPORTS, call_with_file, export_to_file
from krabs.transports.cli_render import render_error, render_result

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "success (a dry-run included)"),
    (1, "internal"),
    (
        2,
        "usage error, invalid_argument, invalid_json, payload_too_large, unsupported_media_type, "
        "method_not_allowed",
    ),
    (3, "not_found, unknown_operation"),
    (
        4,
        "conflict, undo_conflict, undo_expired, undo_used, idempotency_key_in_use, idempotency_key_reused",
    ),
    (5, "unauthenticated, forbidden"),
    (6, "rate_limited, busy"),
    (7, "run_closed, run_cancelled"),
    (8, "approval_required, approval_rejected"),
    (9, "the server could not be reached (remote mode)"),
)

EPILOG = (
    "\b\nModes: with KRABS_URL set, calls go to that server with KRABS_API_KEY (remote); without it,"
    "\nthey run on the local database (KRABS_DATA_DIR, default ./krabs-data) as the demo account's"
    "\nadmin, or as KRABS_API_KEY when set (embedded). KRABS_RUN_ID (or --run) attaches calls to a run."
    "\n\n\b\nArguments: one flag per field (--display-name Ada); JSON for nested ones; --json '{…}',"
    "\n--json @args.json or --json - for all of them. Output: a table, or JSON with --json alone"
    "\nor -o json (KRABS_OUTPUT=json). Errors go to stderr with their code, message and param."
    "\n\n\b\nExit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES)
)

#: The value ``--json`` takes when given alone: print JSON instead of reading arguments.
JSON_OUTPUT = "\x00json-output"
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class CliState:
    """Per invocation: the backend (opened on first use) and the schema its commands come from."""

    def __init__(self, backend: Backend | None = None) -> None:
        self._backend = backend
        self._schema: dict[str, Any] | None = None

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = backend_from_env()
        return self._backend

    def schema(self, *, strict: bool = False) -> dict[str, Any]:
        """The backend's schema. Unless ``strict``, an unreachable server falls back to this
        installation's registry, so help and usage errors work offline."""
        if strict:
            return self.backend.schema()
        if self._schema is None:
            try:
                self._schema = self.backend.schema()
            except KrabsAPIError:
                self._schema = local_schema()
        return self._schema

    def operations(self) -> dict[str, Any]:
        return dict(self.schema().get("operations", {}))


def state(ctx: click.Context) -> CliState:
    return ctx.find_root().ensure_object(CliState)


def build_command(name: str, entry: dict[str, Any]) -> click.Command:
    """One ``krabs <noun> <verb>`` command for operation ``name``."""
    specs = field_specs(entry)
    target, kinds = identity_kinds(entry, specs)
    mutates = bool(entry.get("mutates"))
    params: list[click.Parameter] = [option_for(s) for s in specs]
    if name in STREAMED_EXPORTS:  # the whole export, streamed into a file
        params.append(
            click.Option(
                ["--to", "to_file"], type=click.Path(dir_okay=False), help="Write all rows here."
            )
        )
    if entry.get("file_argument"):  # a local file feeds the bulk text argument
        params.insert(
            0,
            click.Argument(["file"], required=False, type=click.Path(dir_okay=False, exists=True)),
        )
    for kind in kinds:
        params.append(
            click.Option(
                [f"--{kind}", f"id_{kind}"],
                multiple=True,
                help=f"Shorthand for {target} {{kind: {kind}, value: …}}.",
            )
        )
    taken = {f for s in specs for f in s.flags}

    def flag(name: str) -> str:
        return f"--krabs-{name}" if f"--{name}" in taken else f"--{name}"

    params.append(
        click.Option(
            [flag("json"), "json_input"],
            is_flag=False,
            flag_value=JSON_OUTPUT,
            help="Alone: print the result as JSON (like -o json). With a value: all arguments as "
            "a JSON object, @file.json, or - for stdin; flags override it.",
        )
    )
    if mutates:
        params.append(
            click.Option(
                [flag("dry-run"), "dry_run"], is_flag=True, help="Show the plan; write nothing."
            )
        )
        params.append(
            click.Option(
                [flag("idempotency-key"), "idempotency_key"],
                help="Replaying the same key returns the first result without a second write.",
            )
        )
        params.append(
            click.Option(
                [flag("wait"), "wait"],
                type=click.FloatRange(0, 1e6, max_open=True),
                metavar="SECONDS",
                help="Held at an approval gate, wait this long for a human's decision and print "
                "the outcome (HTTP's Prefer: wait).",
            )
        )
    params += [
        click.Option(
            [flag("run"), "run"], envvar="KRABS_RUN_ID", help="Attach to this run (KRABS_RUN_ID)."
        ),
        click.Option(
            ["-o", flag("output"), "output"],
            type=click.Choice(["table", "json"]),
            default="table",
            envvar="KRABS_OUTPUT",
            show_default=True,
            help="A readable table, or the result as JSON.",
        ),
    ]

    def run(**values: Any) -> None:
        ctx = click.get_current_context()
        output = values["output"]
        if values.get("json_input") == JSON_OUTPUT:
            output, values["json_input"] = "json", None
        try:
            args = collect(values, specs, target, kinds)
            options: dict[str, Any] = {
                "dry_run": bool(values.get("dry_run")),
                "idempotency_key": values.get("idempotency_key"),
                "run": values.get("run"),
                "wait": values.get("wait"),
            }
            if values.get("to_file"):
                result = export_to_file(
                    state(ctx).backend, name, args, Path(values["to_file"]), err_console
                )
            elif values.get("file"):
                result = call_with_file(
                    state(ctx).backend,
                    name,
                    entry,
                    Path(values["file"]),
                    args,
                    err_console,
                    **options,
                )
            else:
                result = state(ctx).backend.call(name, args, **options)
        except KrabsAPIError as exc:
            render_error(err_console, exc, output)
            ctx.exit(exc.exit_code)
        render_result(Console(highlight=False, soft_wrap=output == "json"), name, result, output)

    codes = ", ".join(e["code"] for e in entry.get("errors", []))
    examples = "\n".join(
        f"  krabs {name.replace('.', ' ')} --json '{json.dumps(e['args'])}'"
        for e in entry.get("examples", [])
    )
    epilog = f"\b\nErrors: {codes}" + (f"\n\n\b\nExamples:\n{examples}" if examples else "")
    return click.Command(
        name.split(".", 1)[1],
        callback=run,
        params=params,
        help=f"{entry.get('summary', '')}\n\n{entry.get('description', '')}".strip(),
        short_help=entry.get("summary"),
        epilog=epilog,
    )


def collect(
    values: dict[str, Any], specs: list[FieldSpec], target: str | None, kinds: list[str]
) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if values.get("json_input") is not None:
        given = read_json(values["json_input"], "--json")
        if not isinstance(given, dict):
            raise InvalidArgument(
                "invalid_argument", "--json must be a JSON object", param="--json"
            )
        args.update(given)
    for spec in specs:
        value = values.get(spec.param)
        if value is None or value == ():
            continue
        args[spec.name] = convert(spec, value)
    shorthand = [
        {"kind": kind, "value": v} for kind in kinds for v in values.get(f"id_{kind}") or ()
    ]
    if shorthand and target == "identity":
        if len(shorthand) > 1:
            raise InvalidArgument(
                "invalid_argument", "give exactly one identity shorthand", param="identity"
            )
        args["identity"] = shorthand[0]
    elif shorthand and target == "identities":
        args["identities"] = [*args.get("identities", []), *shorthand]
    return args


class NounGroup(click.Group):
    """``krabs contact``: one command per ``contact.*`` operation; ``find-by-identity`` works too."""

    def __init__(self, noun: str, **kwargs: Any) -> None:
        super().__init__(noun, **kwargs)
        self.noun = noun

    def _ops(self, ctx: click.Context) -> dict[str, Any]:
        prefix = self.noun + "."
        return {n: e for n, e in state(ctx).operations().items() if n.startswith(prefix)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name.split(".", 1)[1] for name in self._ops(ctx))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        ops = self._ops(ctx)
        name = f"{self.noun}.{cmd_name.replace('-', '_')}"
        return build_command(name, ops[name]) if name in ops else None


def _fold(name: str) -> str:
    return name.replace("-", "").replace("_", "").lower()


class KrabsGroup(click.Group):
    """The root command: its own commands (serve, migrate, …) plus one group per noun."""

    def _nouns(self, ctx: click.Context) -> list[str]:
        return sorted({name.split(".", 1)[0] for name in state(ctx).operations()})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._nouns(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        own = super().get_command(ctx, cmd_name)
        if own is not None:
            return own
        for noun in self._nouns(ctx):
            if _fold(noun) == _fold(cmd_name):
                return NounGroup(noun, help=f"Operations on {noun}: krabs {noun} VERB --help.")
        return None


def args_to_argv(entry: dict[str, Any], args: dict[str, Any]) -> list[str]:
    """The command line that passes ``args`` to the generated command (flags where a flag can say
    it, ``--json`` for the rest). The compliance suite's CLI leg uses it."""
    specs = {s.name: s for s in field_specs(entry)}
    argv: list[str] = []
    rest: dict[str, Any] = {}
    for name, value in args.items():
        spec = specs.get(name)
        if spec is None or value is None or spec.kind in ("json", "array"):
            rest[name] = value
        elif spec.kind == "bool":
            argv.append(spec.flags[0] if value else f"--no-{spec.flags[0][2:]}")
        elif isinstance(value, bool | dict | list):
            rest[name] = value
        else:
            argv += [spec.flags[0], str(value)]
    if rest:
        argv += ["--json", json.dumps(rest, ensure_ascii=False)]
    return argv
