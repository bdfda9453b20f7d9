"""Fewer cyclic garbage collections while a bulk job runs.

CPython runs a young-generation collection every 700 net container allocations. A million-row
import allocates tens of millions of short-lived tuples, dicts and lists, freed by reference
counting anyway, and the collector traversing them took about 7 of its 55 seconds. While at least
one bulk job runs, the first threshold is raised to ``GEN0``; the last one to finish puts back what
was there. Collections still happen, only less often."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Net container allocations between young collections while a bulk job runs (CPython: 700).
GEN0 = 50_000


class _Pause:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs = 0
        self._saved: tuple[int, int, int] = gc.get_threshold()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._jobs == 0:
                self._saved = gc.get_threshold()
                gen0, gen1, gen2 = self._saved
                # A threshold of 0 means collection is off: leave it off.
                gc.set_threshold(max(gen0, GEN0) if gen0 else 0, gen1, gen2)
            self._jobs += 1
        try:
            yield
        finally:
            with self._lock:
                self._jobs -= 1
                if self._jobs == 0:
                    gc.set_threshold(*self._saved)


#: Wrap a bulk job in ``with fewer_collections():`` (nests, and is safe across threads).
fewer_collections = _Pause()
