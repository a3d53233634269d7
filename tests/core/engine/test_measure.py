"""Measurement: Wilson intervals, counts, MACs, latency fields."""

import pytest
import torch
from torch import nn

from compress_core.engine import measure
from compress_core.models.lenet import LeNet5, LeNet300


@pytest.mark.parametrize(
    "correct, n, low, high",
    [
        (50, 100, 0.4038, 0.5962),  # textbook value
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_interval_matches_reference_values(correct, n, low, high):
    lo, hi = measure.wilson_interval(correct, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_accuracy_and_agreement():
    preds = torch.tensor([0, 1, 2, 3])
    labels = torch.tensor([0, 1, 0, 0])
    ref = torch.tensor([0, 1, 2, 0])
    acc = measure.accuracy(preds, labels, ref)
    assert acc.accuracy == 0.5 and acc.correct == 2 and acc.n == 4
    assert acc.agreement == 0.75
    assert acc.ci_low < 0.5 < acc.ci_high


def test_param_counts_include_zeros_and_shared_once():
    lin = nn.Linear(4, 4)
    model = nn.Sequential(lin, nn.ReLU(), lin)  # shared module
    with torch.no_grad():
        lin.weight[:2] = 0
    total, nonzero = measure.count_params(model)
    assert total == 20 and nonzero == 20 - 8 - int((lin.bias == 0).sum())


def test_macs_of_known_architectures():
    # LeNet-300-100: 784*300 + 300*100 + 100*10
    assert measure.count_macs(LeNet300(), (1, 28, 28)) == 784 * 300 + 300 * 100 + 100 * 10
    # LeNet-5: conv1 28x28x6 outputs * 25, conv2 10x10x16 * 150, fc 400*120 + 120*84 + 84*10
    expected = 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    assert measure.count_macs(LeNet5(), (1, 28, 28)) == expected


def test_latency_records_batch_threads_and_positive_times():
    lat = measure.latency(LeNet5(), (1, 28, 28), batch=4, threads=1, min_run_time=0.05)
    assert lat.batch == 4 and lat.threads == 1 and lat.runs >= 1
    assert lat.ms_p50 > 0 and lat.ms_iqr >= 0
