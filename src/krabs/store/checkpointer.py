"""SQLite's WAL checkpoints, off the write path.

By default SQLite checkpoints inside the ``COMMIT`` that takes the write-ahead log past 1,000
pages: the write that happens to cross the line copies the log into the database file and waits
for the disk, and a million-row import's ``COMMIT`` copies its whole 1.7 GB log before the call can
answer (8 of its 9 seconds). Here ``wal_autocheckpoint`` is off on every connection and one thread
per store checkpoints instead: woken when a writer lets go of the database, it runs a ``PASSIVE``
checkpoint (which never blocks a writer or a reader) at most every ``INTERVAL`` seconds, in SQLite's
C code, so on another core. A log grown past ``LARGE_FRAMES`` frames is then truncated with a
``TRUNCATE`` checkpoint, so that the file does not stay at its largest size; that one blocks writers
while it syncs the database file (up to half a second on this machine's disk, the p99 of a write
load), so it waits for ``IDLE_SECONDS`` without a write. Under steady writes the log does not grow
meanwhile: once a checkpoint has copied all of it, SQLite writes the log again from its start."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from krabs.daemon import LazyDaemon

log = logging.getLogger("krabs.store")

#: Seconds between checkpoints at most (a checkpoint waits for the disk).
INTERVAL = 0.5
#: Frames (pages) of log after which the file is truncated once writes pause: 64 MiB of 4 KiB pages.
LARGE_FRAMES = 16_384
#: Seconds without a write before a large log is truncated.
IDLE_SECONDS = 2.0


class WalCheckpointer:
    def __init__(self, connect: Callable[[], Any]) -> None:
        """``connect``: a new DBAPI connection to the database (outside any transaction)."""
        self._connect = connect
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._daemon = LazyDaemon(self._run, "krabs-checkpoint")
        #: One checkpoint at a time in this process: SQLite answers a second one "busy".
        self._running = threading.Lock()
        #: Checkpoints run so far (for the tests).
        self.runs = 0
        #: The most frames the log held since it was last truncated.
        self._peak = 0

    def written(self) -> None:
        """A writer let go of the database: the log may have grown. Cheap: called on every write."""
        self._wake.set()
        if not self._stop.is_set():
            self._daemon.ensure()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._daemon.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                _busy, frames, done = self.checkpoint()
                # The file keeps its largest size after SQLite starts the log over, with fewer
                # frames in use: the largest log seen since the last truncate is what counts.
                self._peak = max(self._peak, frames)
                large = self._peak >= LARGE_FRAMES and frames == done
                # ``written`` and ``stop`` both set the event: the wait ends early for either.
                quiet = large and not self._wake.wait(IDLE_SECONDS)
                if quiet and self.checkpoint(truncate=True)[0] == 0:  # no write came: none waits
                    self._peak = 0
            except Exception:  # the next write wakes us again; SQLite's log stays valid meanwhile
                log.exception("WAL checkpoint failed")
            self._stop.wait(INTERVAL)

    def checkpoint(self, *, truncate: bool = False) -> tuple[int, int, int]:
        """One ``PASSIVE`` checkpoint, then a ``TRUNCATE`` one if asked (after a GDPR erasure the
        log must not keep erased pages; the thread asks when a large log sees no writes). SQLite's
        answer: (busy, frames in the log, frames checkpointed)."""
        with self._running:
            return self._checkpoint(truncate)

    def _checkpoint(self, truncate: bool) -> tuple[int, int, int]:
        conn = self._connect()
        try:
            cur = conn.cursor()
            busy, frames, done = cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if truncate:
                busy, frames, done = cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            self.runs += 1
            return int(busy), int(frames), int(done)
        finally:
            conn.close()
