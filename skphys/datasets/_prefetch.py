"""Read ahead in a background thread: :func:`prefetch`."""

from __future__ import annotations

import numbers
import queue
import sys
import threading

__all__ = ["prefetch"]

_DONE = object()


class _Failure:
    def __init__(self, exc):
        self.exc = exc


def _put(q, stop, item):
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _produce(source, q, stop):
    try:
        for item in source:
            if not _put(q, stop, item):
                return
        _put(q, stop, _DONE)
    except BaseException as exc:  # handed to the consumer
        _put(q, stop, _Failure(exc))
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # the consumer is gone or has its own error; nothing to report to
                pass


class prefetch:  # noqa: N801 - used like a function: ``for batch in prefetch(batches): ...``
    """Iterate over ``iterable`` while a background thread produces the next ``depth`` items.

    Overlaps slow item production (reading batches from disk with :meth:`LazyWindows.read`,
    decoding, host-to-device copies) with the consumer's work (a training step). Items come in
    the same order as from ``iterable``.

    - An exception raised by ``iterable`` is raised in the consumer, at the position where the
      item would have come, with its original traceback.
    - When the consumer stops early (``break``, an exception, :meth:`close`, leaving a ``with``
      block, or dropping the iterator), the thread is told to stop, the queue is drained so the
      thread is not blocked, the source iterator is closed in the thread (running its
      ``finally`` blocks), and the thread is joined. At most the item being produced at that
      moment is still computed.
    - The thread is a daemon and is named ``skphys-prefetch``.

    Parameters
    ----------
    iterable : iterable
        Produces the items. It is iterated in the background thread only.
    depth : int, default=2
        How many items may wait, produced but not yet consumed (>= 1).

    Examples
    --------
    >>> from skphys.datasets import prefetch
    >>> [x * x for x in prefetch(range(5))]
    [0, 1, 4, 9, 16]
    >>> with prefetch(iter(range(10**9)), depth=4) as batches:   # stops cleanly after a break
    ...     for b in batches:
    ...         if b == 3:
    ...             break
    """

    def __init__(self, iterable, depth=2):
        if not isinstance(depth, numbers.Integral) or isinstance(depth, bool):
            raise TypeError(f"prefetch: depth must be an int, got {depth!r}")
        if depth < 1:
            raise ValueError(f"prefetch: depth must be >= 1, got {depth}")
        try:
            self._source = iter(iterable)
        except TypeError as exc:
            raise TypeError(f"prefetch: expected an iterable, got {type(iterable).__name__}") from exc
        self._queue = queue.Queue(maxsize=int(depth))
        self._stop = threading.Event()
        self._finished = False
        # the thread holds no reference to self, so dropping the iterator runs __del__ -> close()
        self._thread = threading.Thread(
            target=_produce, args=(self._source, self._queue, self._stop), name="skphys-prefetch", daemon=True
        )
        self._thread.start()

    def __iter__(self):
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        while True:
            try:
                item = self._queue.get(timeout=0.1)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._finished = True
                    raise StopIteration from None
        if item is _DONE:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.exc.with_traceback(item.exc.__traceback__)
        return item

    def close(self):
        """Stop the background thread and wait for it (idempotent)."""
        self._finished = True
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)
        self._source = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if not sys.is_finalizing() and getattr(self, "_thread", None) is not None:
            self.close()
