"""The shared training loop: it learns, clips, augments without changing shapes, and refuses empty work."""

import pytest
import torch
from torch import nn

from compress_core.engine.train import _crop_flip, fit


def _toy(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] > 0).long()
    return x, y


def test_fit_learns_a_separable_task():
    x, y = _toy()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 2))
    log = fit(model, x, y, epochs=5, lr=0.1, batch_size=32)
    assert log[-1]["loss"] < log[0]["loss"]
    assert (model(x).argmax(1) == y).float().mean() > 0.95
    assert not model.training, "fit leaves the model in eval mode"


def test_fit_refuses_fewer_samples_than_one_batch():
    x, y = _toy()
    with pytest.raises(ValueError, match="at least one batch: 10 samples < batch_size 32"):
        fit(nn.Linear(8, 2), x, y, epochs=1, lr=0.1, batch_size=32, max_samples=10)


def test_fit_rejects_unknown_augmentation():
    x, y = _toy()
    with pytest.raises(ValueError, match="augment must be"):
        fit(nn.Linear(8, 2), x, y, epochs=1, lr=0.1, augment="mixup")


def test_gradient_clipping_bounds_the_update():
    x, y = _toy()
    x = x * 1e4  # huge gradients
    a, b = nn.Linear(8, 2), nn.Linear(8, 2)
    b.load_state_dict(a.state_dict())
    w0 = a.weight.detach().clone()
    fit(a, x, y, epochs=0.01, lr=0.1, batch_size=256, weight_decay=0)
    fit(b, x, y, epochs=0.01, lr=0.1, batch_size=256, weight_decay=0, max_grad_norm=1.0)
    # one Nesterov SGD step moves by lr * (1 + momentum) * gradient: at most 0.1 * 1.9 * clipped norm
    assert (b.weight - w0).norm() <= 0.1 * 1.9 * 1.0 + 1e-5
    assert (a.weight - w0).norm() > 10 * (b.weight - w0).norm()


def test_crop_flip_keeps_shape_and_content_range():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 8, 8, generator=g)
    out = _crop_flip(x, g, 2)
    assert out.shape == x.shape
    assert out.min() >= x.min() and out.max() <= x.max()
    assert not torch.equal(out, x)
