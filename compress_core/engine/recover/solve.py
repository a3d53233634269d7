"""Least-squares solvers for one layer, given its statistics ``H = X^T X`` and ``G = Y^T X`` (``stats``).

The output error of weights ``W`` is ``||X W^T - Y||^2 = ||W - W*||_H^2 + const`` with ``W* = G H^-1``,
so every constrained fit below approximates ``W*`` in the metric of ``H``. All of it runs in float64
on a ridge-damped Hessian ``H + lambda * mean(diag H) * I`` (dead ReLU channels and zero padding make
``H`` singular; GPTQ uses the same relative damping).

- ``unconstrained``: ``W*`` itself, by Cholesky (a pruned layer's free weights, structured pruning's
  re-fit of the surviving channels: He et al. 2017, ThiNet, Luo et al. 2017).
- ``masked``: the exact optimum with a fixed sparsity mask: per output row, least squares on that
  row's kept inputs only, ``w_S = G_S H_SS^-1`` (the mask-fixed problem OBC solves exactly, Frantar &
  Alistarh 2022). SparseGPT (Frantar & Alistarh 2023) approximates this with one shared inverse
  because at LLM width (d ~ 10^4) per-row solves are too slow; at CNN widths (d <= ~1,000 here) the
  exact solve is cheap, so it is used up to ``EXACT_MAX_FEATURES`` features and ``sweep`` beyond.
- ``sweep``: the OBS column sweep of GPTQ (Frantar et al. 2023, Algorithm 1, with lazy block
  updates): each column in turn is projected (rounded to the grid, and/or zeroed by the mask: the
  joint sparsify-and-quantize of SparseGPT) and its error is pushed onto the columns not yet
  projected through the upper Cholesky factor of ``H^-1``. Free columns (the bias) are never
  projected, come last, and so end at their optimum given all projected ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

DAMP = 1e-3  # ridge damping for the least-squares re-fits, relative to mean(diag H)
SWEEP_DAMP = 1e-2  # damping of the inverse that carries GPTQ's error feedback (GPTQ's default)
EXACT_MAX_FEATURES = 2304  # above this many inputs per row, the mask-fixed fit uses the sweep
BLOCK = 128  # GPTQ's lazy-batch block width

# project(columns (rows, k) float64, column indices (k,)) -> projected columns
Projection = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def damped(H: torch.Tensor, rel: float) -> torch.Tensor:
    """``H + rel * mean(diag H) * I`` (one group's d x d Hessian, float64); dead features get weight 0."""
    diag = torch.diagonal(H)
    lam = rel * float(diag.mean().clamp(min=1e-12))
    return H + lam * torch.eye(H.shape[0], dtype=H.dtype)


def _cholesky(H: torch.Tensor, rel: float) -> torch.Tensor:
    """Cholesky factor of the damped ``H``, raising the damping tenfold until it is positive definite."""
    for _ in range(6):
        L, info = torch.linalg.cholesky_ex(damped(H, rel))
        if int(info) == 0:
            return L
        rel *= 10
    raise RuntimeError("the layer's input Hessian is not positive definite even with strong damping")


def unconstrained(H: torch.Tensor, G: torch.Tensor, rel: float = DAMP) -> torch.Tensor:
    """``W* = G H^-1`` for one group: H (d, d), G (out, d) -> (out, d)."""
    L = _cholesky(H, rel)
    return torch.cholesky_solve(G.T, L).T


def masked(H: torch.Tensor, G: torch.Tensor, keep: torch.Tensor, rel: float = DAMP) -> torch.Tensor:
    """Per-row least squares on the kept inputs (``keep`` (out, d) bool); zeros elsewhere exactly."""
    d = H.shape[0]
    if d > EXACT_MAX_FEATURES:
        W0 = unconstrained(H, G, rel)
        return sweep(W0, H, lambda cols, idx: cols * keep[:, idx].to(cols.dtype), free=None)
    Hd = damped(H, rel)
    W = torch.zeros_like(G)
    for r in range(G.shape[0]):
        S = torch.nonzero(keep[r]).flatten()
        if len(S) == 0:
            continue
        A = Hd.index_select(0, S).index_select(1, S)
        L, info = torch.linalg.cholesky_ex(A)
        if int(info) != 0:
            L = _cholesky(H.index_select(0, S).index_select(1, S), rel * 10)
        W[r, S] = torch.cholesky_solve(G[r, S].unsqueeze(1), L).squeeze(1)
    return W


def act_order(H: torch.Tensor, free: torch.Tensor | None) -> torch.Tensor:
    """Column order for the sweep: largest diag(H) first (GPTQ's act-order), free columns last; stable."""
    diag = torch.diagonal(H).clone()
    if free is not None:
        diag[free] = -torch.inf
    return torch.argsort(diag, descending=True, stable=True)


def sweep(
    W: torch.Tensor, H: torch.Tensor, project: Projection, free: torch.Tensor | None, rel: float = SWEEP_DAMP
) -> torch.Tensor:
    """GPTQ/SparseGPT column sweep of ``W`` (out, d) toward the constraint ``project`` encodes, minimising
    ``||W_new - W||_H``; ``free`` (bool (d,)) marks columns left unprojected (the bias)."""
    d = H.shape[0]
    order = act_order(H, free)
    inv = torch.argsort(order)
    W = W.index_select(1, order).clone()
    Hp = H.index_select(0, order).index_select(1, order)
    L = _cholesky(Hp, rel)
    U = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    is_free = free.index_select(0, order) if free is not None else torch.zeros(d, dtype=torch.bool)
    for i1 in range(0, d, BLOCK):
        i2 = min(i1 + BLOCK, d)
        W1, U1 = W[:, i1:i2].clone(), U[i1:i2, i1:i2]
        E1 = torch.zeros_like(W1)
        for j in range(i2 - i1):
            col = i1 + j
            w = W1[:, j]
            q = w if is_free[col] else project(w.unsqueeze(1), order[col : col + 1]).squeeze(1)
            err = (w - q) / U1[j, j]
            W1[:, j:] -= err.unsqueeze(1) * U1[j, j:].unsqueeze(0)
            W1[:, j] = q
            E1[:, j] = err
        W[:, i1:i2] = W1
        W[:, i2:] -= E1 @ U[i1:i2, i2:]
    return W.index_select(1, inv)
