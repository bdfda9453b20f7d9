"""The CLI transport: ``krabs <noun> <verb>`` for every operation, generated from the schema (the
local registry in embedded mode, the server's ``/v1/schema`` in remote mode). Each field of the
operation's input becomes a flag (``--display-name Ada``); nested values take JSON
(``--identity '{"kind":"email","value":"ada@lovelace.dev"}'``), and operations with an ``identity``
or ``identities`` field also take shorthands such as ``--email ada@lovelace.dev``. ``--json`` takes
the whole argument object (inline, ``@file.json`` or ``-`` for stdin); flags override it."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console

from krabs.client_errors import InvalidArgument, KrabsAPIError
from krabs.transports.cli_backend import Backend, backend_from_env, local_schema
from krabs.transports.cli_render import render_error, render_result

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "success (a dry-run included)"),
    (1, "internal"),
    (2, "usage error, invalid_argument, invalid_json, payload_too_large, unsupported_media_type"),
    (3, "not_found, unknown_operation"),
    (
        4,
        "conflict, undo_conflict, undo_expired, undo_used, idempotency_key_in_use, idempotency_key_reused",
    ),
    (5, "unauthenticated, forbidden"),
    (6, "rate_limited"),
    (7, "run_closed, run_cancelled"),
    (8, "approval_required"),
    (9, "the server could not be reached (remote mode)"),
)

EPILOG = (
    "\b\nModes: with KRABS_URL set, calls go to that server with KRABS_API_KEY (remote); without it,"
    "\nthey run on the local database (KRABS_DATA_DIR, default ./krabs-data) as the demo account's"
    "\nadmin, or as KRABS_API_KEY when set (embedded). KRABS_RUN_ID (or --run) attaches calls to a run."
    "\n\n\b\nExit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES)
)

#: The CLI's own options. An operation field of the same name keeps the plain flag (``krabs action
#: list --run R`` filters by run); the option then becomes ``--krabs-<name>``.
UTILITY = ("json", "dry-run", "idempotency-key", "run", "output")
RESERVED = {"help"}
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class FieldSpec:
    """One input field as a flag: how to read it from the command line."""

    name: str
    kind: str  # str, int, float, bool, choice, array, json
    help: str = ""
    choices: tuple[str, ...] = ()
    item_kind: str = "str"
    required: bool = False
    param: str = ""
    flags: list[str] = field(default_factory=list)


def unwrap(prop: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` → X (keeping the outer description); several real options → ``{}``."""
    options = [p for p in prop.get("anyOf", []) if p.get("type") != "null"]
    if "anyOf" not in prop:
        return prop
    if len(options) != 1:
        return {k: v for k, v in prop.items() if k != "anyOf"}
    return {**options[0], **{k: v for k, v in prop.items() if k not in ("anyOf", "default")}}


def kind_of(prop: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    prop = unwrap(prop)
    if "enum" in prop and all(isinstance(v, str) for v in prop["enum"]):
        return "choice", tuple(prop["enum"])
    return {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}.get(
        str(prop.get("type")), "array" if prop.get("type") == "array" else "json"
    ), ()


def field_specs(entry: dict[str, Any]) -> list[FieldSpec]:
    schema = entry.get("input", {})
    required = set(schema.get("required", []))
    specs = []
    for name, prop in schema.get("properties", {}).items():
        if name == "dry_run":
            continue
        kind, choices = kind_of(prop)
        item_kind = "str"
        if kind == "array":
            item_kind, choices = kind_of(unwrap(prop).get("items", {}))
        dashed = name.replace("_", "-")
        if name in RESERVED:
            dashed = f"arg-{dashed}"
        flags = [f"--{dashed}"] + ([f"--{name}"] if dashed != name else [])
        help_text = str(prop.get("description") or prop.get("title") or "")
        if kind == "json":
            help_text += " (JSON)"
        elif kind == "array" and item_kind in ("json", "array"):
            help_text += " (JSON list, or repeat the flag with one JSON object each)"
        elif kind == "array":
            help_text += " (repeat the flag, or give a JSON list)"
        if name in required:
            help_text += " [required]"
        specs.append(FieldSpec(name, kind, help_text.strip(), choices, item_kind, name in required))
        specs[-1].param, specs[-1].flags = f"f_{name}", flags
    return specs


def identity_kinds(entry: dict[str, Any], specs: list[FieldSpec]) -> tuple[str | None, list[str]]:
    """The identity field (``identity`` or ``identities``) and the kinds that get a shorthand flag."""
    props = entry.get("input", {}).get("properties", {})
    for target in ("identity", "identities"):
        if target not in props:
            continue
        prop = unwrap(props[target])
        shape = unwrap(prop.get("items", {})) if target == "identities" else prop
        kinds = unwrap(shape.get("properties", {}).get("kind", {})).get("enum", [])
        taken = {s.name for s in specs} | RESERVED | set(UTILITY)
        taken |= {f.lstrip("-") for s in specs for f in s.flags}
        return target, [k for k in kinds if isinstance(k, str) and k not in taken]
    return None, []


def read_json(raw: str, param: str) -> Any:
    """JSON text, ``@path`` to read a file, or ``-`` for stdin."""
    try:
        if raw == "-":
            raw = sys.stdin.read()
        elif raw.startswith("@"):
            with open(raw[1:], encoding="utf-8") as fh:
                raw = fh.read()
        return json.loads(raw)
    except OSError as exc:
        raise InvalidArgument(
            "invalid_argument", f"cannot read {raw[1:]!r}: {exc.strerror}", param=param
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            "invalid_argument",
            f"{param} is not valid JSON: {exc.msg} at column {exc.colno}",
            param=param,
        ) from None


def convert(spec: FieldSpec, value: Any) -> Any:
    if spec.kind == "json":
        return read_json(value, spec.name)
    if spec.kind != "array":
        return value
    items: list[Any] = []
    for raw in value:
        if raw.lstrip().startswith("[") or spec.item_kind in ("json", "array"):
            parsed = read_json(raw, spec.name)
            items.extend(parsed if isinstance(parsed, list) else [parsed])
        elif spec.item_kind == "int":
            items.append(_number(raw, int, spec.name))
        elif spec.item_kind == "float":
            items.append(_number(raw, float, spec.name))
        else:
            items.append(raw)
    return items


def _number(raw: str, kind: type, param: str) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise InvalidArgument(
            "invalid_argument", f"{param} items must be numbers, not {raw!r}", param=param
        ) from None


def option_for(spec: FieldSpec) -> click.Option:
    if spec.kind == "bool":
        negatives = [f"--no-{f[2:]}" for f in spec.flags]
        decls = [f"{f}/{n}" for f, n in zip(spec.flags, negatives, strict=True)]
        return click.Option([*decls, spec.param], default=None, help=spec.help)
    click_type: Any = {
        "int": click.INT,
        "float": click.FLOAT,
        "choice": click.Choice(spec.choices),
    }.get(spec.kind, click.STRING)
    if spec.kind == "array" and spec.choices:
        click_type = click.STRING
    multiple = spec.kind == "array"
    return click.Option(
        [*spec.flags, spec.param], type=click_type, multiple=multiple, help=spec.help
    )


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
            help="All arguments as a JSON object, @file.json, or - for stdin; flags override it.",
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
        try:
            args = collect(values, specs, target, kinds)
            result = state(ctx).backend.call(
                name,
                args,
                dry_run=bool(values.get("dry_run")),
                idempotency_key=values.get("idempotency_key"),
                run=values.get("run"),
            )
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
