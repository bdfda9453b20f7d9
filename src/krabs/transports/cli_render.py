"""How the CLI prints: a result as a readable rich table, or as JSON (``--output json``) for scripts;
errors on stderr with their code, message and parameter."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from krabs.client_errors import KrabsAPIError

MAX_COLUMNS = 6
CELL_WIDTH = 60


def cell(value: Any) -> Text:
    if value is None:
        return Text("—", style="dim")
    if isinstance(value, bool):
        return Text("true" if value else "false")
    if isinstance(value, str | int | float):
        return Text(str(value))
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        # Identities, tags…: their human part.
        labels = [str(v.get("value") or v.get("name") or v.get("id") or "…") for v in value]
        value = ", ".join(labels)
        return Text(value if len(value) <= CELL_WIDTH else value[: CELL_WIDTH - 1] + "…")
    raw = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Text(raw if len(raw) <= CELL_WIDTH else raw[: CELL_WIDTH - 1] + "…")


def list_table(result: dict[str, Any], title: str) -> Table:
    rows = [r for r in result.get("data", []) if isinstance(r, dict)]
    scalar: list[str] = []
    nested: list[str] = []
    for row in rows[:20]:
        for key, value in row.items():
            if key in scalar or key in nested or key == "object" or key.endswith("_at"):
                continue
            (nested if isinstance(value, dict | list) else scalar).append(key)
    columns = sorted(scalar, key=lambda k: k != "id") + nested
    columns = [c for c in columns if any(row.get(c) not in (None, [], {}) for row in rows)]
    columns = columns[:MAX_COLUMNS] or ["id"]
    more = "more: --starting-after " + str(result["next_cursor"]) if result.get("has_more") else ""
    caption = f"{len(rows)} shown" + (f"; {more}" if more else "")
    # At least as wide as its title and caption: an empty list's table is one narrow column, and
    # both would wrap inside it ("tag.li / st").
    width = max(len(title), len(caption)) + 4
    table = Table(title=title, title_justify="left", caption=caption, min_width=width)
    for name in columns:
        table.add_column(name, overflow="fold", no_wrap=name == "id")
    for row in rows:
        table.add_row(*(cell(row.get(c)) for c in columns))
    return table


def object_table(result: dict[str, Any], title: str) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in result.items():
        table.add_row(key, cell(value))
    return table


def render_result(console: Console, op: str, result: Any, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    if not isinstance(result, dict):
        console.print(cell(result))
    elif result.get("dry_run") is True:
        console.print(f"[bold]{op}[/bold] dry-run: nothing was written. The plan:")
        inner = result.get("result")
        if isinstance(inner, dict):
            console.print(object_table(inner, "would return"))
        console.print(object_table({k: v for k, v in result.items() if k != "result"}, "plan"))
    elif result.get("object") == "list":
        console.print(list_table(result, op))
    else:
        console.print(object_table(result, op))


def render_error(console: Console, error: KrabsAPIError, output: str) -> None:
    if output == "json":
        console.out(json.dumps({"error": error.to_dict()}, ensure_ascii=False), highlight=False)
        return
    text = Text()
    text.append("error", style="bold red")
    text.append(f": {error.code}: {error.message}")
    if error.param:
        text.append(f"\nparam: {error.param}", style="yellow")
    console.print(text)
