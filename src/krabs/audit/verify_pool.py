"""Work for ``krabs audit verify`` spread over worker processes, results in order, a bounded
number of tasks in flight (memory stays flat however long the log)."""

from __future__ import annotations

import functools
import itertools
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

#: Rows per task handed to a worker process.
BATCH = 10_000
T = TypeVar("T")


def in_order(tasks: Iterable[Callable[[], T]], workers: int) -> Iterator[T]:
    """Each task's result, in order: here with one worker, else on a pool of ``workers`` processes
    with at most two tasks a worker in flight (tasks must pickle)."""
    if workers <= 1:
        for task in tasks:
            yield task()
        return
    # Spawned, not forked: this process has threads (the WAL checkpointer, the group writer) and a
    # fork taken while one of them held a lock inside SQLite's or the driver's C code left a
    # worker waiting on it forever (seen once in a full test run).
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        pending: deque[Future[T]] = deque()
        for task in tasks:
            pending.append(pool.submit(task))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def map_batches(fn: Callable[[list[Any]], T], rows: Iterable[Any], workers: int) -> Iterator[T]:
    """``fn`` over batches of ``rows``; a single short batch stays in this process."""
    it = iter(rows)
    size = BATCH  # read when called: tests shrink it
    batches = iter(lambda: list(itertools.islice(it, size)), [])
    first = next(batches, None)
    if first is None:
        return
    if len(first) < size:
        workers = 1
    tasks = (functools.partial(fn, b) for b in itertools.chain([first], batches))
    yield from in_order(tasks, workers)
