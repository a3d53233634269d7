"""The solver's own predictions of what a recipe measures, from its per-layer profile.

- ``NoiseMap``: accuracy drop as a non-decreasing function of the predicted output noise (KL, see
  ``profile``): an isotonic regression (pool-adjacent-violators) over every measured point, the one-layer
  profile points and the uniform grid's recipes, read by linear interpolation between the pooled points
  (flat beyond the last one).
- ``LatencyModel``: latency ~ dense_ms * (c0 + (1 - c0) * MACs / dense MACs), c0 fitted by least squares
  on the uniform grid's measured latencies (structured points are the ones that move MACs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def isotonic(x: list[float], y: list[float]) -> tuple[list[float], list[float]]:
    """Pool adjacent violators: the non-decreasing least-squares fit of y on x, as (x means, y means)."""
    order = sorted(range(len(x)), key=lambda i: (x[i], y[i]))
    blocks: list[list[float]] = []  # [sum_x, sum_y, count]
    for i in order:
        blocks.append([x[i], y[i], 1.0])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            sx, sy, n = blocks.pop()
            blocks[-1][0] += sx
            blocks[-1][1] += sy
            blocks[-1][2] += n
    return [b[0] / b[2] for b in blocks], [b[1] / b[2] for b in blocks]


@dataclass
class NoiseMap:
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, points: list[tuple[float, float]]) -> NoiseMap:
        """From (noise, accuracy drop) points; the origin (the dense model) is always one."""
        pts = [(0.0, 0.0), *((float(n), float(d)) for n, d in points if np.isfinite(n) and np.isfinite(d))]
        xs, ys = isotonic([p[0] for p in pts], [p[1] for p in pts])
        return cls(xs, [max(0.0, y) for y in ys])

    def drop(self, noise: float) -> float:
        return float(np.interp(noise, self.xs, self.ys)) if self.xs else 0.0

    def noise_for(self, max_drop: float) -> float:
        """The largest noise predicted to cost at most ``max_drop`` (0 if only the dense model does)."""
        ok = [x for x, y in zip(self.xs, self.ys, strict=True) if y <= max_drop + 1e-12]
        if not ok:
            return 0.0
        i = self.xs.index(max(ok))
        if i + 1 < len(self.xs) and self.ys[i + 1] > self.ys[i]:  # interpolate up to the next point
            x0, x1, y0, y1 = self.xs[i], self.xs[i + 1], self.ys[i], self.ys[i + 1]
            return x0 + (x1 - x0) * (max_drop - y0) / (y1 - y0)
        return self.xs[i] if i + 1 < len(self.xs) else float("inf")


@dataclass
class LatencyModel:
    dense_ms: float | None
    c0: float = 1.0
    points: int = 0

    def predict(self, macs: float, dense_macs: float) -> float | None:
        if self.dense_ms is None:
            return None
        return self.dense_ms * (self.c0 + (1.0 - self.c0) * macs / dense_macs)

    def macs_limit(self, max_ms: float, dense_macs: float) -> float | None:
        """The MACs that predict ``max_ms``; None when latency does not depend on MACs (c0 = 1)."""
        if self.dense_ms is None or self.c0 >= 0.999:
            return None
        return dense_macs * (max_ms / self.dense_ms - self.c0) / (1.0 - self.c0)


def fit_latency(dense_ms: float | None, rows: list[dict], dense_macs: float) -> LatencyModel:
    """Least squares of latency / dense latency on MACs / dense MACs, through (1, 1)."""
    if not dense_ms:
        return LatencyModel(None)
    pts = [
        (r["macs"] / dense_macs, r["latency_ms_p50"] / dense_ms)
        for r in rows
        if r.get("latency_ms_p50") and r.get("macs") and r["macs"] < dense_macs * 0.98
    ]
    num = sum((x - 1) * (y - 1) for x, y in pts)
    den = sum((x - 1) ** 2 for x, _ in pts)
    slope = min(1.0, max(0.0, num / den)) if den > 0 else 0.0
    return LatencyModel(float(dense_ms), 1.0 - slope, len(pts))
