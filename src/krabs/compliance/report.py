"""The compliance report: a rich table (operation × transport × property) and a JSON document."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from krabs.compliance.checks import PROPERTIES, Row

MARKS = {"pass": "[green]✓[/green]", "fail": "[bold red]✗[/bold red]", "n/a": "[dim]–[/dim]"}


def render_report(console: Console, rows: list[Row], problems: list[str]) -> None:
    table = Table(title="krabs compliance", title_justify="left")
    table.add_column("operation", no_wrap=True)
    table.add_column("transport")
    for prop in PROPERTIES:
        table.add_column(prop.replace("_", "-"), justify="center")
    for row in rows:
        table.add_row(
            row.op,
            row.transport,
            *(MARKS[row.cells[p].status] if p in row.cells else MARKS["n/a"] for p in PROPERTIES),
        )
    console.print(table)
    failures = 0
    for row in rows:
        notes: dict[str, list[str]] = {}
        for prop in PROPERTIES:
            cell = row.cells.get(prop)
            if cell is not None and cell.status == "fail":
                failures += 1
                notes.setdefault(cell.note, []).append(prop)
        for note, props in notes.items():
            console.print(
                f"[red]FAIL[/red] {row.op} \\[{row.transport}] {', '.join(props)}: {note}",
                highlight=False,
            )
    for problem in problems:
        console.print(f"[red]FAIL[/red] {problem}", highlight=False)
    ops = len({row.op for row in rows})
    bad = len({row.op for row in rows if row.failed})
    verdict = (
        "[green]compliant[/green]" if not failures and not problems else "[red]not compliant[/red]"
    )
    console.print(f"{ops} operations, {bad} with failures, {failures} failed checks: {verdict}")


def report_document(rows: list[Row], problems: list[str]) -> dict[str, Any]:
    return {
        "ok": not problems and not any(row.failed for row in rows),
        "problems": problems,
        "rows": [
            {
                "op": row.op,
                "transport": row.transport,
                "properties": {
                    p: {"status": c.status, "note": c.note} for p, c in row.cells.items()
                },
            }
            for row in rows
        ],
    }
