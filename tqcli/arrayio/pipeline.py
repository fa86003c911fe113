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


def run_ordered(take, work, emit, workers: int, name: str = "tq-pipeline") -> None:
    """Items taken in order, worked on `workers` at a time, emitted in order.

    Each of `workers` threads (the calling thread is one of them) loops: take(state) --
    the next item, or None at the end -- one thread at a time, in order; then
    result = work(item, state), in parallel with the others (the kernels and the system
    calls release the GIL); then emit(result), one thread at a time, in the order of the
    items.  `state` is a dict of the thread's own (its buffers: a result may be a view of
    them, since the thread takes nothing new before its emit has returned).  So with two
    workers one chunk is decoded while the other is written, and every core is busy
    without a hand-over between a decoder and a writer.

    A failure (in take, work or emit) ends the run as it would have ended one item at a
    time: every item before the failed one is still emitted, none after it, and the
    exception of the earliest failed item is raised here once every thread has stopped.
    """
    cond = threading.Condition()
    take_lock = threading.Lock()
    run = {"taken": 0, "emitted": 0, "end": None, "fail": None}  # fail: (item, exception)

    def failed(seq: int, e: BaseException) -> None:
        with cond:
            if run["fail"] is None or seq < run["fail"][0]:
                run["fail"] = (seq, e)
            cond.notify_all()

    def loop(state: dict) -> None:
        while True:
            with take_lock:
                if run["end"] is not None or run["fail"] is not None:
                    return
                seq = run["taken"]
                try:
                    item = take(state)
                except BaseException as e:
                    run["end"] = seq
                    failed(seq, e)
                    return
                if item is None:
                    run["end"] = seq
                    return
                run["taken"] = seq + 1
            try:
                result, error = work(item, state), None
            except BaseException as e:
                result, error = None, e
            del item
            with cond:
                while run["emitted"] != seq and (run["fail"] is None or run["fail"][0] > seq):
                    cond.wait()
                if run["emitted"] != seq:  # an earlier item failed: this one is not emitted
                    return
            if error is not None:
                failed(seq, error)
                return
            try:
                emit(result)
            except BaseException as e:
                failed(seq, e)
                return
            del result
            with cond:
                run["emitted"] = seq + 1
                cond.notify_all()

    def guarded(state: dict) -> None:
        try:
            loop(state)
        except BaseException as e:  # an interrupt in the calling thread: stop the others
            failed(-1, e)

    threads = [threading.Thread(target=guarded, args=({},), name=f"{name}-{k}", daemon=True)
               for k in range(1, max(1, workers))]
    for t in threads:
        t.start()
    guarded({})
    for t in threads:
        while t.is_alive():  # each stops after the item in hand
            try:
                t.join()
            except BaseException as e:  # an interrupt while waiting: still wait
                failed(-1, e)
    if run["fail"] is not None:
        raise run["fail"][1]
