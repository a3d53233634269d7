"""RuntimeJobs, the dashboard's runtime worker: jobs run in another (niced) process, once per key, and the
worker can be paused while the user's own measurement runs."""

from __future__ import annotations

import os
import signal
import time

import pytest

from compress_core.deploy.worker import WORKER_NICE, RuntimeJobs


def test_a_job_runs_once_per_key_in_a_niced_worker_process():
    jobs = RuntimeJobs()
    try:
        first = jobs.submit(("pid",), os.getpid)
        assert jobs.submit(("pid",), os.getpid) is first, "the same key gets the same future"
        assert first.result(timeout=120) != os.getpid()
        assert jobs.submit(("nice",), os.nice, 0).result(timeout=60) >= min(os.nice(0) + WORKER_NICE, 19)
    finally:
        jobs._pool.shutdown(cancel_futures=True)


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP") or not os.path.exists("/proc/self/stat"), reason="Linux only")
def test_paused_stops_the_worker_and_lets_it_go_on_afterwards():
    jobs = RuntimeJobs()
    try:
        pid = jobs.submit(("pid",), os.getpid).result(timeout=120)
        with jobs.paused():
            time.sleep(0.2)
            with open(f"/proc/{pid}/stat") as f:
                assert f.read().split(") ", 1)[1][0] == "T", "stopped while the user's measurement runs"
            late = jobs.submit(("later",), os.getpid)
            time.sleep(0.5)
            assert not late.done()
        assert late.result(timeout=60) == pid
    finally:
        jobs._pool.shutdown(cancel_futures=True)
