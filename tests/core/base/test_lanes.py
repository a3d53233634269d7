"""Lanes: batches of a forward pass on several threads, one torch thread each (compress_core.base.lanes)."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from torch import nn

from compress_core.base import lanes
from compress_core.data.sets import TensorSet
from compress_core.engine import measure

needs_lanes = pytest.mark.skipif(lanes.count() < 2, reason="needs 2 torch threads and OpenMP's thread setter")


class Abandon(Exception):
    pass


@pytest.fixture(autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    ).eval()  # fmt: skip


@needs_lanes
def test_results_come_back_in_the_order_of_the_items_from_several_threads():
    names: set[str] = set()

    def fn(lane: int, item: int) -> int:
        names.add(threading.current_thread().name)
        torch.ones(64, 64) @ torch.ones(64, 64)  # real work, so both lanes get items
        return item * item

    assert lanes.run(fn, list(range(40)), lanes=2) == [i * i for i in range(40)]
    assert names <= {"lane-0", "lane-1"} and names  # never the calling thread
    assert lanes.run(fn, [], lanes=2) == []


@needs_lanes
def test_a_lane_runs_on_one_torch_thread_while_the_caller_and_new_threads_keep_theirs():
    seen = lanes.run(lambda _lane, _item: torch.get_num_threads(), list(range(4)))
    assert seen == [1, 1, 1, 1]
    assert torch.get_num_threads() == 2
    fresh: list[int] = []
    t = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert fresh == [2], "a thread started afterwards (a new script run) starts from the process default"


@needs_lanes
def test_a_lane_runs_with_the_callers_grad_mode():
    with torch.no_grad():
        modes = lanes.run(lambda _lane, _item: torch.is_grad_enabled(), [0, 1])
    assert modes == [False, False]
    assert lanes.run(lambda _lane, _item: torch.is_grad_enabled(), [0, 1]) == [True, True]


def test_progress_on_the_calling_thread_can_abandon_the_rest():
    caller = threading.current_thread()
    started: list[int] = []

    def fn(lane: int, item: int) -> int:
        started.append(item)
        time.sleep(0.01)  # a batch's worth of work (the kernels release the GIL)
        return item

    def progress(done: int, total: int) -> None:
        assert threading.current_thread() is caller
        if done == 3:
            raise Abandon

    with pytest.raises(Abandon):
        lanes.run(fn, list(range(200)), progress=progress, lanes=2)
    assert len(started) < 200, "after the abandon no lane takes another item"
    assert not [t for t in threading.enumerate() if t.name.startswith("lane-")], "every lane has stopped"


def test_a_lanes_error_reaches_the_caller():
    def fn(lane: int, item: int) -> int:
        if item == 5:
            raise ValueError("batch 5 is broken")
        return item

    with pytest.raises(ValueError, match="batch 5 is broken"):
        lanes.run(fn, list(range(10)), lanes=2)


def test_one_lane_runs_in_order_on_the_calling_thread():
    caller = threading.current_thread()
    where = lanes.run(lambda _lane, item: (threading.current_thread() is caller, item), [3, 1, 2], lanes=1)
    assert where == [(True, 3), (True, 1), (True, 2)]


def test_predictions_in_lanes_equal_predictions_on_one_thread():
    model, x = _net(), torch.randn(730, 3, 16, 16)
    data = TensorSet("t", x, torch.zeros(730, dtype=torch.long))
    with torch.no_grad():
        want = model(x).argmax(1)
    got = measure.predictions(model, data, batch_size=100)
    assert torch.equal(got, want)


def test_without_openmps_thread_setter_everything_runs_on_the_calling_thread(monkeypatch):
    monkeypatch.setattr(lanes, "_SET_OMP", None)  # e.g. a platform whose OpenMP symbol cannot be found
    caller = threading.current_thread()
    assert lanes.count() == 1
    where = lanes.run(lambda _lane, item: (threading.current_thread() is caller, item), [1, 2, 3], lanes=2)
    assert where == [(True, 1), (True, 2), (True, 3)]
