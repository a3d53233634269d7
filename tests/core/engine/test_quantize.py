"""Quantization: level counts, error bounds, zeros preserved, per-channel vs per-tensor."""

import pytest
import torch

from compress_core.engine.quantize import fake_quantize, quantize_tensor


@pytest.fixture
def weight():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 8, 3, 3, generator=g)
    w[:, :, 0, 0] = 0.0  # some pruned weights
    return w


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
@pytest.mark.parametrize("per_channel", [True, False])
def test_symmetric_levels_and_error_bound(weight, bits, per_channel):
    q = quantize_tensor(weight, bits, "symmetric", per_channel)
    qmax = 2 ** (bits - 1) - 1
    assert q.codes.min() >= -qmax and q.codes.max() <= qmax
    deq = q.dequantize()
    if per_channel:
        for c in range(weight.shape[0]):
            assert deq[c].unique().numel() <= 2**bits - 1
            assert (deq[c] - weight[c]).abs().max() <= q.scale[c] / 2 + 1e-6
    else:
        assert deq.unique().numel() <= 2**bits - 1
        assert (deq - weight).abs().max() <= q.scale / 2 + 1e-6
    assert torch.all(deq[weight == 0] == 0), "pruned weights must stay exactly zero"


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_asymmetric_uses_the_full_range_and_keeps_zero(weight, bits):
    w = weight.abs()  # all non-negative: asymmetric should spend every level on [0, max]
    q = quantize_tensor(w, bits, "asymmetric", per_channel=False)
    assert q.codes.min() >= 0 and q.codes.max() <= 2**bits - 1
    assert int(q.zero_point) == 0
    deq = q.dequantize()
    assert deq.unique().numel() <= 2**bits
    assert (deq - w).abs().max() <= q.scale / 2 + 1e-6
    assert torch.all(deq[w == 0] == 0)
    sym = quantize_tensor(w, bits, "symmetric", per_channel=False).dequantize()
    assert (deq - w).abs().mean() < (sym - w).abs().mean(), "asymmetric should beat symmetric on one-sided data"


def test_one_bit_is_sign_times_mean_magnitude(weight):
    q = quantize_tensor(weight, 1, per_channel=True)
    deq = q.dequantize()
    for c in range(weight.shape[0]):
        nz = weight[c] != 0
        alpha = weight[c][nz].abs().mean()
        assert torch.allclose(deq[c][nz], torch.sign(weight[c][nz]) * alpha)
        assert set(deq[c].unique().tolist()) <= {-alpha.item(), 0.0, alpha.item()} or deq[c].unique().numel() <= 3
    assert torch.all(deq[weight == 0] == 0)


def test_per_channel_is_more_accurate_than_per_tensor():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(8, 32, generator=g) * torch.logspace(-2, 1, 8).unsqueeze(1)  # very different channel ranges
    err_c = (quantize_tensor(w, 4, per_channel=True).dequantize() - w).abs().mean()
    err_t = (quantize_tensor(w, 4, per_channel=False).dequantize() - w).abs().mean()
    assert err_c < err_t / 2


def test_fp16_and_fp32_paths(weight):
    assert torch.equal(fake_quantize(weight, 32), weight)
    h = fake_quantize(weight, 16)
    assert h.dtype == torch.float32 and torch.equal(h, weight.half().float())


def test_all_zero_tensor_does_not_divide_by_zero():
    z = torch.zeros(4, 4)
    for bits in (1, 2, 8):
        for scheme in ("symmetric", "asymmetric"):
            deq = quantize_tensor(z, bits, scheme).dequantize()
            assert torch.equal(deq, z)


def test_bits_out_of_range_is_a_clear_error(weight):
    with pytest.raises(ValueError, match="1..8 bits"):
        quantize_tensor(weight, 9)
