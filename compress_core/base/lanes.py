"""Lanes: independent batches of a forward pass run on several Python threads, one torch thread each.

Why. ``OMP_WAIT_POLICY=PASSIVE`` (set in ``compress_core/__init__``, so that torch's idle OpenMP
threads never spin against other sessions' work) puts the second OpenMP thread to sleep after every
op, and waking it again costs a large share of a small op: ResNet-56 has ~170 ops per batch of 100
CIFAR images, well under a millisecond each on 2 cores. Run instead as two lanes of one thread, each
taking whole batches, the same work has no OpenMP team and no barrier at all; torch releases the GIL
inside its kernels, so both cores stay busy. Measured here (Intel Xeon, 2 cores, torch 2.14.1,
2026-12-02, in one process): ResNet-56 evaluated on 1,000 test images in 1.36-1.38 s at 2 threads,
1.15-1.20 s in 2 lanes; its BatchNorm re-estimation pass on 1,024 images in 1.93-1.97 s, 1.28-1.39 s
in 2 lanes. The predictions are identical; merged BatchNorm statistics agree to float rounding (1e-7).

How. ``count()`` is the caller's torch thread count. A lane sets its own thread's OpenMP thread count
(``omp_set_num_threads`` writes the calling thread's ICV only; ``torch.set_num_threads`` would also move
the process-wide default that every new thread, a new Streamlit script run included, starts from).
Where that symbol is missing, or inside a lane, ``run`` works in order on the calling thread. Lanes
take the next item when they finish one, so a lane slowed by another process does not hold the
other back. ``progress`` is called on the *calling* thread after every finished item (the dashboard
raises from it to abandon a measurement for the user's next move): then the lanes stop taking items,
finish the ones they hold, and the exception goes on. A lane's exception is raised on the calling
thread the same way.

What a lane's ``fn`` may do: run a model's forward pass (eval-mode forwards only read the model, so
lanes may share one), or train-mode BatchNorm passes on a model of their own (``lane`` is the index).
Grad mode is per thread in torch: a lane runs with the caller's.
"""

from __future__ import annotations

import ctypes
import queue
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")
_LOCAL = threading.local()


def _omp_setter() -> Callable[[int], None] | None:
    try:  # the OpenMP runtime torch loaded (libgomp here, libomp on macOS); Windows has no CDLL(None)
        fn = ctypes.CDLL(None).omp_set_num_threads
    except (AttributeError, OSError, TypeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], None
    return fn


_SET_OMP = _omp_setter()


def count() -> int:
    """How many lanes ``run`` uses on this thread: its torch thread count, 1 where lanes cannot be set up."""
    if _SET_OMP is None or getattr(_LOCAL, "inside", False):
        return 1
    return max(1, torch.get_num_threads())


def run(
    fn: Callable[[int, T], R],
    items: Sequence[T],
    progress: Callable[[int, int], None] | None = None,
    lanes: int | None = None,
) -> list[R]:
    """``[fn(lane, item) for item in items]`` with the items spread over ``lanes`` (default ``count()``)
    threads of one torch thread each; results in the order of ``items``. ``progress(done, total)`` is
    called on this thread after every finished item (module docstring)."""
    n = min(count() if lanes is None else lanes, len(items))
    if n <= 1 or _SET_OMP is None or getattr(_LOCAL, "inside", False):
        out = []
        for i, item in enumerate(items):
            out.append(fn(0, item))
            if progress is not None:
                progress(i + 1, len(items))
        return out
    results: dict[int, R] = {}
    done: queue.Queue = queue.Queue()
    stop = threading.Event()
    order = iter(range(len(items)))
    take = threading.Lock()
    grad = torch.is_grad_enabled()

    def lane(index: int) -> None:
        torch.get_num_threads()  # torch's per-thread set-up first, which would undo the next line
        assert _SET_OMP is not None  # run() uses one lane without it
        _SET_OMP(1)
        _LOCAL.inside = True
        try:
            with torch.set_grad_enabled(grad):
                while not stop.is_set():
                    with take:
                        i = next(order, None)
                    if i is None:
                        return
                    results[i] = fn(index, items[i])
                    done.put(None)
        except BaseException as exc:  # handed to the calling thread
            done.put(exc)

    threads = [threading.Thread(target=lane, args=(k,), name=f"lane-{k}", daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    try:
        for finished in range(1, len(items) + 1):
            got = done.get()
            if isinstance(got, BaseException):
                raise got
            if progress is not None:
                progress(finished, len(items))
    finally:
        stop.set()
        for t in threads:
            t.join()
    return [results[i] for i in range(len(items))]
