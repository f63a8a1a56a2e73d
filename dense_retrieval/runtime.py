"""How inference uses the machine: threads per stage, the memory allocator, work done ahead in a thread,
worker pools.

Torch-free at import: the CLI calls :func:`tune_allocator` before it knows whether a command needs torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 1 << 30


def tune_allocator() -> bool:
    """Keep freed memory in the process instead of handing it back to the kernel at once (glibc only).

    Every layer of a network and every score buffer is a fresh allocation of megabytes. glibc serves
    those with ``mmap`` and unmaps them when they are freed, so the next one faults its pages in again:
    on the 2-core development machine the kernel spent as long zeroing pages as MobileNetV2 spent
    computing. Raising the mmap and trim thresholds to 1 GiB lets freed blocks be reused. Memory the
    process no longer needs stays mapped until it exits; nothing else changes.

    Returns:
        Whether the setting took (False off Linux or without glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def stage_threads(total: int) -> tuple[int, int]:
    """How a frame loop uses ``total`` cores: ``(feature threads, search workers)``.

    Features run in one background thread with ``max(1, total // 3)`` intra-op threads (about a third
    of a frame's work); the neighbour searches run in ``total`` single-threaded workers, one per core,
    each on its own frame. The threads outnumber the cores on purpose: a worker waiting for its frame's
    features leaves its core to the feature thread, so no core idles while work is ready.
    """
    return max(1, total // 3), max(1, total)


class InlineExecutor:
    """The part of :class:`concurrent.futures.Executor` a frame loop uses, run at once in the caller's
    thread: the loop on one core is the same code without a pool."""

    def submit(self, function: Callable[..., T], *args: object) -> Future:
        """Run ``function(*args)`` now; its result or error in a completed future."""
        future: Future = Future()
        try:
            future.set_result(function(*args))
        except BaseException as error:  # noqa: BLE001 - kept in the future, raised by result()
            future.set_exception(error)
        return future


def worker_pool(workers: int, threads: int | None = 1) -> ThreadPoolExecutor | InlineExecutor:
    """``workers`` threads that each run torch with ``threads`` intra-op threads (``None``: torch's
    default); no pool (:class:`InlineExecutor`) for ``workers <= 0``.

    A pool is made once per ``(workers, threads)`` and kept for the life of the process, shared by every
    frame loop: MKL and oneDNN keep buffers per thread, and a fresh pool per video left those of the
    previous pool's threads behind (peak memory grew by about 300 MB per DAVIS sequence). Callers wait for
    their own futures and never shut the pool down.
    """
    if workers <= 0:
        return InlineExecutor()
    return _shared_pool(workers, threads)


@functools.cache
def _shared_pool(workers: int, threads: int | None) -> ThreadPoolExecutor:
    def start() -> None:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)

    return ThreadPoolExecutor(workers, thread_name_prefix="dense-retrieval-search", initializer=start)


def ahead(items: Iterable[T], depth: int = 2, threads: int | None = None) -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the consumer.

    The producer's exceptions are raised in the consumer where they occurred. Closing the returned
    generator (or leaving its loop) stops the producer after the item it is working on, and waits for it.
    The background threads are kept and reused (as :func:`worker_pool`'s, for their per-thread buffers).

    Args:
        items: any iterable; it is consumed in the background thread only.
        depth: items produced and not yet consumed, at most (bounds memory).
        threads: torch intra-op threads of the producer (``None``: leave the thread's setting).
    """
    slots: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            if threads is not None:
                import torch

                torch.set_num_threads(threads)
            for item in items:
                if not _put(slots, (True, item), stop):
                    return
            _put(slots, (True, done), stop)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            _put(slots, (False, error), stop)

    worker = _reader_pool().submit(produce)
    _PRODUCING.add(worker)
    worker.add_done_callback(_PRODUCING.discard)
    try:
        while True:
            ok, item = slots.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while not worker.done():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                slots.get(timeout=0.05)


_PRODUCING: set[Future] = set()


def producing() -> int:
    """How many :func:`ahead` producers are running now (0 once every stream has ended or closed)."""
    return len(_PRODUCING)


@functools.cache
def _reader_pool() -> ThreadPoolExecutor:
    """Threads for :func:`ahead`'s producers, made as needed (one per stream alive at once) and reused."""
    return ThreadPoolExecutor(32, thread_name_prefix="dense-retrieval-ahead")


def _put(slots: queue.Queue, entry: tuple, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            slots.put(entry, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False
