"""Host work done ahead: a background thread that runs an iterator a few items ahead of its consumer.

The device path of GAN training (``core/train/gan.py``, ``--data device``) uses it to sample the next batches'
face parameters and noise grids (:func:`render.prepare_batch`, numpy, in Python) while the device draws and trains
on the current one, so that the loop does not wait for the host (docs/results_train.md). The items come out in the
iterator's order whatever the thread's timing, so the stream is the same with or without it. The thread is a
daemon and :meth:`Prefetcher.close` ends it (also called when the prefetcher is garbage-collected or used as a
context manager); an error raised in the thread is raised again by ``next`` in the consumer's thread.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")
THREAD_NAME = "host-prefetch"
_DONE = object()


def _produce(source: Iterator, out: queue.Queue, stop: threading.Event) -> None:
    """The thread's body. It holds no reference to its Prefetcher, so a dropped one is collected (and stops it)."""

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                out.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in source:
            if not put((True, item)):
                return
    except BaseException as e:  # noqa: BLE001  (handed to the consumer, raised there)
        put((False, e))
        return
    put((True, _DONE))


class Prefetcher(Iterator[T]):
    """Items of ``source`` produced by a background thread, at most ``depth`` ahead of ``next``."""

    def __init__(self, source: Iterator[T], depth: int = 2):
        self._stop = threading.Event()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=_produce, args=(source, self._queue, self._stop), name=THREAD_NAME,
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def __next__(self) -> T:
        if self._stop.is_set():
            raise StopIteration
        ok, item = self._queue.get()
        if not ok:
            self.close()
            raise item
        if item is _DONE:
            self.close()
            raise StopIteration
        return item

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it (it finishes the item in hand first, then sees the stop)."""
        self._stop.set()
        while True:  # drop what was made ahead
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> "Prefetcher[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self._stop.set()
