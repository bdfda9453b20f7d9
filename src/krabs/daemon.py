"""A background thread started by its first use: the group writer, the run-event spool and the WAL
checkpointer each run one, started from whichever thread first needs it, exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable


class LazyDaemon:
    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._target, self._name = target, name
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def ensure(self) -> None:
        """Start the thread unless it runs already (cheap once started: no lock taken)."""
        if self.thread is not None:
            return
        with self._lock:
            if self.thread is None:
                thread = threading.Thread(target=self._target, name=self._name, daemon=True)
                thread.start()
                self.thread = thread
