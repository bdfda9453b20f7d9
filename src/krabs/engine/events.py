"""In-process fan-out of call events to live subscribers (SSE streams, tails). Publishing never blocks
a writer: a subscriber is a callback that must enqueue and return."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

Subscriber = Callable[[dict[str, Any]], None]
log = logging.getLogger("krabs.events")


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers = [*self._subscribers, fn]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not fn]

        return unsubscribe

    def publish(self, event: dict[str, Any]) -> None:
        for fn in self._subscribers:
            try:
                fn(event)
            except Exception:  # a broken subscriber must not fail the call that published
                log.exception("event subscriber failed")
