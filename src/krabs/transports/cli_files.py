"""The CLI's positional FILE, for operations with a bulk text argument (``file_argument`` in the
schema: contact.import_csv's csv, contact.ingest_vcard's vcard, interaction.ingest_email's raw).
Embedded, a file for an operation with an ``upload`` argument is streamed into the account's
uploads and never held; remote, it is streamed as the request body with the other arguments in
the query string. A rich progress bar follows the bytes, then a spinner the call."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from krabs.client_errors import InvalidArgument, error_from_response
from krabs.transports.cli_backend import Backend, EmbeddedBackend, RemoteBackend

CHUNK = 1 << 20


def progress_bar(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def call_with_file(
    backend: Backend,
    name: str,
    entry: dict[str, Any],
    path: Path,
    args: dict[str, Any],
    console: Console,
    **options: Any,
) -> dict[str, Any]:
    """Call ``name`` with ``path`` as its file argument (``options``: dry_run, idempotency_key,
    run, wait, as ``Backend.call``)."""
    field = str(entry["file_argument"])
    to_upload = "upload" in entry.get("input", {}).get("properties", {})
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidArgument(
            "invalid_argument", f"cannot read {path}: {exc}", param="file"
        ) from None
    with progress_bar(console) as bar:
        task = bar.add_task(f"reading {path.name}", total=size)

        def advance(n: int) -> None:
            bar.update(task, advance=n)

        if isinstance(backend, RemoteBackend):
            bar.update(task, description=f"sending {path.name}")
            return _remote(backend, name, path, args, advance, **options)
        if to_upload and isinstance(backend, EmbeddedBackend):
            args = {**args, "upload": _spool(backend, path, advance)}
        else:
            args = {**args, field: _read_text(path, field)}
            advance(size)
        bar.update(task, description=f"{name} running")
        return backend.call(name, args, **options)


def _read_text(path: Path, field: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            "invalid_argument",
            f"{path} is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8",
            param=field,
        ) from None


def _chunks(path: Path, advance: Callable[[int], None]) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            advance(len(chunk))
            yield chunk


class _Counting:
    """A binary file that reports how much has been read."""

    def __init__(self, raw: IO[bytes], advance: Callable[[int], None]) -> None:
        self.raw, self.advance = raw, advance

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.advance(len(data))
        return data


def _spool(backend: EmbeddedBackend, path: Path, advance: Callable[[int], None]) -> str:
    from krabs.auth import authenticate
    from krabs.bulk.uploads import Spool, max_upload_bytes, uploads_dir

    engine = backend.engine
    who = backend.principal or authenticate(engine.store, engine.keys, backend.api_key)
    spool = Spool(uploads_dir(engine.settings.data_dir, who.account_id), max_upload_bytes())
    try:
        with path.open("rb") as raw:
            spool.copy(_Counting(raw, advance))  # type: ignore[arg-type]
    except BaseException:
        spool.discard()
        raise
    return spool.finish()


def _remote(
    backend: RemoteBackend,
    name: str,
    path: Path,
    args: dict[str, Any],
    advance: Callable[[int], None],
    *,
    dry_run: bool = False,
    idempotency_key: str | None = None,
    run: str | None = None,
    wait: float | None = None,
) -> dict[str, Any]:
    client = backend.client
    client.schema  # noqa: B018  (which operations mutate decides the idempotency key)
    body, headers, key = client._prepare(name, args, dry_run, idempotency_key, run or None, wait)
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
    headers["Content-Type"] = "text/plain; charset=utf-8"
    timeout = client._timeout_for(wait)
    response = client._send(
        name,
        lambda: client._http.post(
            f"/v1/{name}",
            content=_chunks(path, advance),
            params=params,
            headers=headers,
            timeout=timeout,
        ),
    )
    return client._finish(name, response, key).result


#: Operations whose result the CLI can stream into a file (``--to FILE``).
STREAMED_EXPORTS = ("contact.export_csv",)


def export_to_file(
    backend: Backend, name: str, args: dict[str, Any], path: Path, console: Console
) -> dict[str, Any]:
    """Write the whole export (every row, not one page) to ``path``: remote, the server's streamed
    ``text/csv`` download; embedded, the export's own generator over one read connection after the
    call is checked through the engine (key, scope, arguments) with a one-row probe."""
    written = 0
    with progress_bar(console) as bar, path.open("w", encoding="utf-8", newline="") as out:
        task = bar.add_task(f"writing {path.name}", total=None)
        for chunk in _export_chunks(backend, name, args):
            out.write(chunk)
            written += len(chunk.encode("utf-8"))
            bar.update(task, completed=written)
    return {"object": "file", "path": str(path), "bytes": written}


def _export_chunks(backend: Backend, name: str, args: dict[str, Any]) -> Iterator[str]:
    if isinstance(backend, RemoteBackend):
        client = backend.client
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in args.items()}
        headers = {**client._headers(), "Accept": "text/csv"}
        with client._http.stream("GET", f"/v1/{name}", params=params, headers=headers) as r:
            if r.status_code >= 400:
                r.read()
                raise error_from_response(name, r)
            yield from r.iter_text()
        return
    assert isinstance(backend, EmbeddedBackend)
    backend.call(name, {**args, "limit": 1})  # the engine's checks; raises typed errors
    yield from _embedded_export(backend, args)


def _embedded_export(backend: EmbeddedBackend, args: dict[str, Any]) -> Iterator[str]:
    from krabs.auth import authenticate
    from krabs.ops.contact_export import stream_all

    engine = backend.engine
    who = backend.principal or authenticate(engine.store, engine.keys, backend.api_key)
    yield from stream_all(engine.store, engine.settings, who, args)
