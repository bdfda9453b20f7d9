"""Bulk bodies on the HTTP transport, kept thin: an operation with a bulk text argument (its
``digest_args``: contact.import_csv's ``csv``, contact.ingest_vcard's ``vcard``,
interaction.ingest_email's ``raw``) also takes that text as a ``multipart/form-data`` field named
``file`` (other arguments as form fields) or as the raw body (``text/csv``, ``text/vcard``,
``message/rfc822`` …, other arguments in the query string). Where the operation has an ``upload``
argument the body is streamed to a file (krabs.bulk.uploads) and never held; otherwise it becomes
the text argument. Bodies are capped by ``KRABS_MAX_UPLOAD_BYTES`` (default 512 MiB), apart from
the JSON body limit. ``contact.export_csv`` with ``Accept: text/csv`` (or ``GET``) streams the CSV."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message

from krabs.auth import authenticate
from krabs.bulk.uploads import Spool, max_upload_bytes, too_large, uploads_dir
from krabs.contract.errors import KrabsError
from krabs.contract.registry import Operation
from krabs.engine import CallRequest, Engine
from krabs.engine.context import Principal

MULTIPART = "multipart/form-data"


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_bulk_body(request: Request) -> bool:
    """Anything but JSON (or no body type at all) is taken as a bulk body."""
    ctype = media_type(request)
    return bool(ctype) and ctype not in (
        "application/json",
        "application/problem+json",
        "text/json",
    )


def accepts_text(annotation: Any) -> bool:
    """Whether a field takes text as is (so a form value like ``42`` is not parsed as JSON)."""
    origin = typing.get_origin(annotation)
    if annotation is str or origin is typing.Literal:
        return True
    if origin is typing.Annotated:
        return accepts_text(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(accepts_text(a) for a in typing.get_args(annotation))
    return False


def coerce(model: type[BaseModel], fields: Mapping[str, str]) -> dict[str, Any]:
    """Form or query values as arguments: JSON for fields that do not take plain text
    (``mapping={"Mail":"email"}``, ``dry_run=true``), the text itself otherwise."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        field = model.model_fields.get(name)
        if field is not None and accepts_text(field.annotation):
            out[name] = value
            continue
        try:
            out[name] = json.loads(value)
        except ValueError:
            out[name] = value
    return out


def query_args(request: Request, engine: Engine, op_name: str) -> dict[str, Any]:
    """A GET's arguments, from its query string."""
    op = engine.registry.get(op_name)
    fields = dict(request.query_params)
    return coerce(op.input, fields) if op is not None else dict(fields)


def bulk_operation(engine: Engine, op_name: str) -> Operation:
    op = engine.registry.get(op_name)
    if op is None or not op.digest_args:
        takers = sorted(o.name for o in engine.registry if o.digest_args)
        raise KrabsError(
            "unsupported_media_type",
            f"{op_name[:100]} takes application/json; file bodies go to {', '.join(takers)}",
        )
    return op


def text_limit(model: type[BaseModel], field: str, cap: int) -> int:
    """Bytes a body held in memory may take: the argument's own length cap (4 bytes a character at
    most in UTF-8), never more than ``cap``."""
    info = model.model_fields.get(field)
    most = [m.max_length for m in (info.metadata if info else []) if hasattr(m, "max_length")]
    return min([cap, *(4 * n for n in most if isinstance(n, int))])


def limited(request: Request, limit: int) -> Request:
    """The same request, its body cut off with ``payload_too_large`` past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large(limit)
    size = 0

    async def receive() -> Message:
        nonlocal size
        message = await request.receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise too_large(limit)
        return message

    return Request(request.scope, receive)


async def read_bulk(
    request: Request, engine: Engine, op_name: str, api_key: str | None, who: Principal | None
) -> tuple[dict[str, Any], Principal | None]:
    """The arguments of a bulk body (and the principal, resolved when a file had to be stored)."""
    op = bulk_operation(engine, op_name)
    field = op.digest_args[0]
    to_file = "upload" in op.input.model_fields
    limit = max_upload_bytes() if to_file else text_limit(op.input, field, max_upload_bytes())
    req = limited(request, limit)
    if to_file and who is None:
        who = await run_in_threadpool(authenticate, engine.store, engine.keys, api_key)
    spool = (
        Spool(uploads_dir(engine.settings.data_dir, who.account_id), limit)
        if to_file and who is not None
        else None
    )
    try:
        if media_type(request) == MULTIPART:
            args, body = await _multipart(req, op, spool)
        else:
            args = coerce(op.input, dict(request.query_params))
            body = await _raw(req, spool)
    except BaseException:
        if spool is not None:
            spool.discard()
        raise
    if spool is not None:
        args["upload"] = spool.finish()
    else:
        args[field] = _text(body, field)
    return args, who


async def _raw(request: Request, spool: Spool | None) -> bytes:
    chunks: list[bytes] = []
    async for chunk in request.stream():
        if spool is not None:
            spool.write(chunk)
        else:
            chunks.append(chunk)
    return b"".join(chunks)


async def _multipart(
    request: Request, op: Operation, spool: Spool | None
) -> tuple[dict[str, Any], bytes]:
    try:
        form = await request.form(max_files=1, max_fields=100)
    except KrabsError:
        raise
    except Exception as exc:  # starlette's MultiPartException, python-multipart's errors
        raise KrabsError("invalid_argument", f"multipart body cannot be read: {exc}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise KrabsError(
                "invalid_argument",
                "multipart body needs a file field named file (the text to import)",
                param="file",
            )
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        args = coerce(op.input, fields)
        if spool is not None:
            await run_in_threadpool(spool.copy, upload.file)
            return args, b""
        return args, await upload.read()
    finally:
        await form.close()


def _text(body: bytes, field: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KrabsError(
            "invalid_argument",
            f"{field} is not UTF-8 text (bad byte at offset {exc.start}); send UTF-8",
            param=field,
        ) from None


def buffered(chunks: Iterable[str], size: int = 64 * 1024) -> Iterator[str]:
    """Row-sized chunks gathered into ~64 KiB writes."""
    parts: list[str] = []
    held = 0
    for chunk in chunks:
        parts.append(chunk)
        held += len(chunk)
        if held >= size:
            yield "".join(parts)
            parts, held = [], 0
    if parts:
        yield "".join(parts)


def wants_csv_export(request: Request, op_name: str) -> bool:
    accept = request.headers.get("accept", "")
    return op_name == "contact.export_csv" and (
        request.method == "GET" or "text/csv" in accept.lower()
    )


async def export_response(
    engine: Engine,
    args: dict[str, Any],
    api_key: str | None,
    who: Principal | None,
    request_id: str,
    run_id: str | None,
) -> Response | KrabsError:
    """``contact.export_csv`` streamed as ``text/csv``: the call is checked through the engine
    first (key, scope, rate limit, arguments) with a one-row limit, then every row is streamed by
    the export's own generator over one read connection, without the 100000-row cap unless
    ``limit`` is given."""
    from krabs.ops.contact_export import stream_all

    probe = await engine.acall(
        CallRequest(
            op="contact.export_csv",
            args={**args, "limit": 1},
            api_key=api_key,
            principal=who,
            run_id=run_id,
            transport="http",
            request_id=request_id,
        )
    )
    if probe.error is not None:
        return probe.error
    if who is None:
        who = await run_in_threadpool(authenticate, engine.store, engine.keys, api_key)
    principal = who

    def rows() -> Iterator[str]:
        yield from buffered(stream_all(engine.store, engine.settings, principal, args))

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="contacts.csv"',
            "X-Request-Id": request_id,
        },
    )


def export_route(call_operation: Callable[[Request], Awaitable[Response]]) -> Route:
    """``GET /v1/contact.export_csv?stage=…``: the streamed export (a read, so no CSRF token)."""

    async def export_get(request: Request) -> Response:
        request.scope.setdefault("path_params", {})["op"] = "contact.export_csv"
        return await call_operation(request)

    return Route("/v1/contact.export_csv", export_get, methods=["GET"])
