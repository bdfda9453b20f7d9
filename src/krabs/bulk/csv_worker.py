"""A large uploaded CSV parsed in a second process while this one writes.

Reading, checking and normalizing a row (the ``csv`` module, the email and phone checks, the
record) is about a fifth of a large import's time, and none of it needs the database. For an
upload of ``PARALLEL_MIN_BYTES`` or more, a child process runs the very same ``CsvReader`` over the
file and sends its rows in batches through a pipe, as plain tuples, while this process looks them
up and writes them: on a machine with two cores the two halves overlap. The child is started with
``spawn`` (a fresh interpreter: the server's threads are not forked), reads the file itself, and is
stopped when the import ends, whatever ends it. What it raises reaches the importing call as the
same error (a bad header, a line over the size cap, a file that is not UTF-8)."""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from krabs.bulk.csv_in import Column, CsvError, CsvReader
from krabs.bulk.records import Ident, Issue, Record
from krabs.bulk.uploads import file_lines
from krabs.contract.errors import KrabsError

#: Uploads this large (bytes) are parsed in a second process; smaller ones are not worth its start.
PARALLEL_MIN_BYTES = 8 * 1024 * 1024
#: Rows per message through the pipe.
CHUNK = 500
#: The last parser process's peak resident memory, in KiB (for benchmarks: ``getrusage`` cannot
#: tell it, since a forked child inherits its parent's peak until it execs).
LAST_PARSER_PEAK_KIB = [0]

_Row = tuple[int, tuple[Any, ...] | None, list[tuple[Any, ...]]]


def _pack(row: int, record: Record | None, issues: list[Issue]) -> _Row:
    packed = None
    if record is not None:
        idents = [(i.kind, i.value, i.norm, i.column) for i in record.identities]
        packed = (record.row, record.fields, idents, record.tags, record.attributes)
    return row, packed, [(i.row, i.column, i.code, i.message, i.severity) for i in issues]


def _unpack(item: _Row) -> tuple[int, Record | None, list[Issue]]:
    row, packed, issues = item
    record = None
    if packed is not None:
        number, fields, idents, tags, attributes = packed
        record = Record(number, fields, [Ident(*i) for i in idents], tags, attributes)
    return row, record, [Issue(*i) for i in issues]


def _parse(
    out: Connection, path: str, mapping: dict[str, str], region: str | None, max_line: int
) -> None:
    """The child: header first, then the rows in chunks, then ``end`` (or the error)."""
    try:
        try:
            reader = CsvReader(file_lines(Path(path), max_line), mapping=mapping, region=region)
        except CsvError as exc:
            out.send(("csv_error", str(exc), exc.param))
            return
        out.send(("header", reader.delimiter, reader.columns))
        chunk: list[_Row] = []
        for record, issues in reader:
            chunk.append(_pack(reader.row, record, issues))
            if len(chunk) >= CHUNK:
                out.send(("rows", chunk))
                chunk = []
        out.send(("rows", chunk))
        out.send(("end", _peak_kib()))
    except KrabsError as exc:
        out.send(("krabs_error", exc.code, exc.message, exc.param))
    except BaseException:
        out.send(("crash", traceback.format_exc()))
    finally:
        out.close()


def _peak_kib() -> int:
    """This process's own peak RSS (``VmHWM``: per address space, so not the forked parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class ParallelCsvReader:
    """``CsvReader``'s interface (``delimiter``, ``columns``, ``row``, iteration) over a file that a
    child process parses. Use as a context manager: leaving it stops the child."""

    def __init__(
        self, path: Path, *, mapping: dict[str, str] | None, region: str | None, max_line: int
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._in, child_end = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=_parse,
            args=(child_end, str(path), dict(mapping or {}), region, max_line),
            name="krabs-csv-parse",
            daemon=True,
        )
        self._process.start()
        child_end.close()
        self.row = 1
        self.delimiter = ","
        self.columns: list[Column] = []
        try:
            first = self._receive()
            if first[0] != "header":
                raise RuntimeError(f"the CSV parser sent {first[0]!r} before the header")
            _, self.delimiter, self.columns = first
        except BaseException:
            self.close()
            raise

    def _receive(self) -> tuple[Any, ...]:
        try:
            message: tuple[Any, ...] = self._in.recv()
        except EOFError:
            raise RuntimeError("the CSV parser process ended without a word") from None
        kind = message[0]
        if kind == "csv_error":
            raise CsvError(message[1], message[2])
        if kind == "krabs_error":
            raise KrabsError(message[1], message[2], param=message[3])
        if kind == "crash":
            raise RuntimeError(f"the CSV parser process failed:\n{message[1]}")
        return message

    def __iter__(self) -> Iterator[tuple[Record | None, list[Issue]]]:
        while True:
            message = self._receive()
            if message[0] == "end":
                LAST_PARSER_PEAK_KIB[0] = int(message[1])
                return
            for item in message[1]:
                self.row, record, issues = _unpack(item)
                yield record, issues

    def close(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(10)
        self._in.close()

    def __enter__(self) -> ParallelCsvReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
