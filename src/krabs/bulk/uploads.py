"""Bulk inputs as files. An upload (a multipart ``file`` field, a raw ``text/csv`` body, the CLI's
FILE) is written to ``<data dir>/uploads/<account>/<sha256>`` while it is hashed, never held whole in
memory, and the operation receives ``upload: "sha256:<hex>"``. Content addressing makes a re-sent
file the same argument (idempotent replay, dry-run then the real call), and the per-account folder
keeps one account from reading another's files. Reading streams lines with a size cap, so one
200 MB line is refused without being held."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from krabs.contract.errors import KrabsError

UPLOAD_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
#: The default caps (``KRABS_MAX_UPLOAD_BYTES``, ``KRABS_MAX_LINE_BYTES``).
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024
#: Uploads older than this are removed when a new one arrives.
KEEP_SECONDS = 24 * 3600
CHUNK = 1 << 20


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip().isdigit() else default


def max_upload_bytes() -> int:
    return env_int("KRABS_MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES)


def max_line_bytes() -> int:
    return env_int("KRABS_MAX_LINE_BYTES", MAX_LINE_BYTES)


def uploads_dir(data_dir: Path | None, account_id: str) -> Path:
    base = data_dir if data_dir is not None else Path(tempfile.gettempdir()) / "krabs"
    return base / "uploads" / account_id


def too_large(limit: int, what: str = "upload") -> KrabsError:
    return KrabsError(
        "payload_too_large",
        f"{what} exceeds {limit} bytes (the server's KRABS_MAX_UPLOAD_BYTES); split the file",
        param=None,
    )


class Spool:
    """Write an upload chunk by chunk into the account's folder, hashing as it goes; ``finish``
    names the file by its digest and returns the ``upload`` reference."""

    def __init__(self, directory: Path, limit: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.limit, self.size = directory, limit, 0
        fd, name = tempfile.mkstemp(dir=directory, prefix=".part-")
        self._path = Path(name)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            self.discard()
            raise too_large(self.limit)
        self._hash.update(chunk)
        self._file.write(chunk)

    def copy(self, source: IO[bytes]) -> None:
        while chunk := source.read(CHUNK):
            self.write(chunk)

    def finish(self) -> str:
        self._file.close()
        digest = self._hash.hexdigest()
        os.replace(self._path, self.directory / digest)
        prune(self.directory)
        return f"sha256:{digest}"

    def discard(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


def prune(directory: Path, keep_seconds: int = KEEP_SECONDS) -> None:
    cutoff = time.time() - keep_seconds
    for path in directory.iterdir():
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def spool_file(data_dir: Path | None, account_id: str, path: Path, limit: int) -> str:
    """The CLI's FILE in embedded mode: copied (streamed) into the account's uploads."""
    spool = Spool(uploads_dir(data_dir, account_id), limit)
    try:
        with path.open("rb") as source:
            spool.copy(source)
    except BaseException:
        spool.discard()
        raise
    return spool.finish()


def upload_path(data_dir: Path | None, account_id: str, ref: str) -> Path:
    if not UPLOAD_RE.match(ref):
        raise KrabsError(
            "invalid_argument", 'upload must look like "sha256:<64 hex digits>"', param="upload"
        )
    path = uploads_dir(data_dir, account_id) / ref.removeprefix("sha256:")
    if not path.is_file():
        raise KrabsError(
            "invalid_argument",
            f"no upload {ref} in this account; send the file first (a multipart field named file, "
            "a text/csv body, or the CLI's FILE argument)",
            param="upload",
        )
    return path


def file_lines(path: Path, max_line: int, param: str = "upload") -> Iterator[str]:
    """The file's lines (UTF-8, endings kept), refusing any line longer than ``max_line``
    characters after reading at most that much of it."""
    with path.open(encoding="utf-8", newline="") as text:
        number = 0
        while True:
            try:
                line = text.readline(max_line + 1)
            except UnicodeDecodeError as exc:
                raise KrabsError(
                    "invalid_argument",
                    f"the file is not UTF-8 text (byte {exc.start} of a read block near line "
                    f"{number + 1}); save it as UTF-8 CSV; nothing was imported",
                    param=param,
                ) from None
            if not line:
                return
            number += 1
            if len(line) > max_line:
                raise line_too_long(number, max_line, param)
            yield line


def bounded(lines: Iterable[str], max_line: int, param: str) -> Iterator[str]:
    """``lines`` with the same line cap as files (for text sent as an argument)."""
    for number, line in enumerate(lines, 1):
        if len(line) > max_line:
            raise line_too_long(number, max_line, param)
        yield line


def line_too_long(number: int, max_line: int, param: str) -> KrabsError:
    return KrabsError(
        "invalid_argument",
        f"line {number} is longer than {max_line} characters (KRABS_MAX_LINE_BYTES); "
        "nothing was imported — check the file's line endings and quoting",
        param=param,
    )


def count_lines(path: Path) -> int:
    """Physical lines, for progress totals (one fast binary pass)."""
    n, last = 0, b"\n"
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")
