"""Overlap computing with writing: a background thread that consumes finished items.

The numba kernels release the GIL while they run, so checksumming and writing one chunk
can proceed while the next is being encoded or decoded.  Items are handed over through a
bounded queue (so memory stays bounded), in order; an error in the writer is raised in
the producer at its next hand-over or at the end.
"""

from __future__ import annotations

import queue
import threading

_DONE = object()


class BackgroundConsumer:
    def __init__(self, consume, depth: int = 2):
        self._consume = consume
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tq-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._consume(item)
                except BaseException as e:  # handed to the producer
                    self._error = e

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item) -> None:
        self._check()
        self._queue.put(item)

    def close(self) -> None:
        """Wait for every item to be consumed; raise the writer's error if it had one."""
        self._queue.put(_DONE)
        self._thread.join()
        self._check()

    def abandon(self) -> None:
        """Stop after the item in hand (used when the producer fails)."""
        self._error = self._error or RuntimeError("abandoned")
        self._queue.put(_DONE)
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abandon()
