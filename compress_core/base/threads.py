"""Process-wide runtime settings: torch threads, chosen once at start-up and recorded in results."""

from __future__ import annotations

import os

import torch


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads once: ``threads``, else ``PRUNESCOPE_THREADS``, else min(2, cores).

    ``OMP_WAIT_POLICY=PASSIVE`` is set in ``compress_core/__init__`` before torch loads, so idle
    worker threads sleep instead of spinning against other sessions' work.
    """
    if threads is None:
        env = os.environ.get("PRUNESCOPE_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else min(2, os.cpu_count() or 1)
    if threads < 1:
        raise ValueError(f"threads must be >= 1; got {threads}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
