"""Run an iterator in a background thread, so that reading the next item overlaps handling this one."""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from django.db import connections

T = TypeVar("T")

_DONE = object()
# How long the reading thread waits for room in the queue before it looks whether it should stop.
_PUT_INTERVAL = 0.5


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(
    items: Iterable[T], *, depth: int = 4, name: str = "read-ahead", on_read: Callable[[T], None] | None = None
) -> Iterator[T]:
    """Yield the items of ``items``, read by a daemon thread that keeps up to ``depth`` of them ready.

    ``on_read(item)`` runs in that thread as each item is read. Database queries there use the thread's
    own connection, committed at once and closed when the thread ends, so other sessions see them while
    the caller has a transaction open.

    An exception raised while reading is raised here, at the item where it happened. When the caller
    stops early (an exception of its own, or ``close()``), the thread stops after the item it is reading.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=_PUT_INTERVAL)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if on_read is not None:
                    on_read(item)
                if not offer(item):
                    return
        except BaseException as error:  # handed to the caller, who decides what it means
            offer(_Failure(error))
            return
        finally:
            connections.close_all()
        offer(_DONE)

    thread = threading.Thread(target=read, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
