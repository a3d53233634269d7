"""Latency you would ship (issue "Latency you would ship"): every runtime adapter of
``compress_core.deploy.runtimes`` on dense, structured and int8 CIFAR ResNets.

For each model, batch size and thread count, one markdown table: runtime x {dense fp32, structured
50 % (layer scope), structured 50 % global scope with and without ``round_to`` aligned channels (``--aligned-scope``
layer: the aligned rows at layer scope instead),
int8, structured 50 % + int8}: latency p50 ± IQR, speed-up over the same runtime's dense fp32
(median ratio, with the range over rounds) and over eager PyTorch dense fp32 (the faster of NCHW and
channels_last), MAC reduction, deployable file bytes, top-1 accuracy and top-1 agreement with eager
PyTorch on the same float model. Then the issue's targets, met or missed, with the numbers.

Pairing: within one (runtime, batch, threads) group, eager PyTorch dense, the runtime's dense fp32 and
its compressed variants are timed in interleaved rounds in one process (the order rotating each
round); a speed-up is the median over rounds of the ratio of the two medians timed in that round, so
slow phases of a shared machine hit both sides. The latency column pools every round (p50 ± IQR).
The header prints the CPU, the command and the load average before and after; on a busy machine the
absolute numbers move, the paired ratios less.

Usage: COMPRESS_DATA_DIR=../shared/data python benchmarks/runtimes.py [--eval full]
       python benchmarks/runtimes.py --models resnet20-cifar10 --eval quick   (the reduced run)
"""

from __future__ import annotations

import argparse
import copy
import os
import shlex
import sys
import time
from pathlib import Path

import compress_core  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)

# isort: split
import torch
from torch import nn

from compress_core import models
from compress_core.base import machine
from compress_core.base.recipe import PruneSpec
from compress_core.data import sets as data
from compress_core.deploy.runtimes import RUNTIMES, Deployed, Runtime, RuntimeUnsupported, get_runtime
from compress_core.deploy.runtimes.base import latency_of
from compress_core.deploy.runtimes.torch_rt import TorchRuntime
from compress_core.engine import measure
from compress_core.engine.prune.structured import structured_prune_

INPUT = (3, 32, 32)


def configs(sparsity: float, round_to: int, aligned_scope: str = "global") -> list[tuple[str, str, bool]]:
    """(row label, float-model key, int8)."""
    s = f"{sparsity:.0%}"
    return [
        ("dense fp32", "dense", False),
        (f"structured {s} layer", "layer", False),
        (f"structured {s} global", "global", False),
        (f"structured {s} {aligned_scope} round_to={round_to}", "aligned", False),
        ("int8", "dense", True),
        (f"structured {s} layer + int8", "layer", True),
        (f"structured {s} {aligned_scope} round_to={round_to} + int8", "aligned", True),
    ]


def float_models(model_id: str, sparsity: float, round_to: int, aligned_scope: str = "global") -> dict[str, nn.Module]:
    dense = models.load(model_id).eval()
    out = {"dense": dense}
    for key, scope, rt in (("layer", "layer", 0), ("global", "global", 0), ("aligned", aligned_scope, round_to)):
        m = copy.deepcopy(dense)  # the recipe field PruneSpec.round_to, as the Workbench and the CLI pass it
        structured_prune_(m, PruneSpec(kind="structured", scope=scope, sparsity=sparsity, round_to=rt), INPUT)
        out[key] = m.eval()
    return out


class Pool:
    """Deployed models by (runtime, model key, int8, batch, threads); re-timed sessions are derived with
    ``reconfigure`` (no new export or quantization) where the runtime allows it."""

    def __init__(self, floats: dict[str, nn.Module], calib: list[torch.Tensor], torch_int8: str) -> None:
        self.floats, self.calib, self.torch_int8 = floats, calib, torch_int8
        self.items: dict[tuple, Deployed | str] = {}
        self.deploy_s: dict[tuple, float] = {}  # (runtime, model key, int8, batch): export + int8 + compile seconds

    def get(self, rt_key: str, model_key: str, int8: bool, batch: int, threads: int) -> Deployed | str:
        key = (rt_key, model_key, int8, batch, threads)
        if key in self.items:
            return self.items[key]
        base = next((v for k, v in self.items.items() if k[:3] == key[:3]), None)
        if isinstance(base, str):  # the runtime already refused this model
            self.items[key] = base
            return base
        derived = base.reconfigure(batch, threads) if base is not None else None
        if derived is None:
            t0 = time.perf_counter()
            try:
                derived = runtime(rt_key, self.torch_int8).deploy(
                    self.floats[model_key], INPUT, batch=batch, threads=threads, int8=int8, calib=self.calib
                )
            except (RuntimeUnsupported, ValueError) as exc:
                derived = str(exc)
            self.deploy_s[(rt_key, model_key, int8, batch)] = time.perf_counter() - t0
        self.items[key] = derived
        return derived


def runtime(key: str, torch_int8: str = "fx") -> Runtime:
    if key == "torch-cl":
        return TorchRuntime(channels_last=True)
    return TorchRuntime(int8_backend=torch_int8) if key == "torch" else get_runtime(key)


def paired_times(entries: dict[str, Deployed], rounds: int, budget: float) -> dict[str, list[list[float]]]:
    """Per entry, the per-call seconds of each round; the entries take turns within every round."""
    out: dict[str, list[list[float]]] = {name: [] for name in entries}
    names = list(entries)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order: no entry always first
            out[name].append(entries[name].timings(budget))
    return out


def flat(rounds: list[list[float]]) -> list[float]:
    return [t for r in rounds for t in r]


def median(xs: list[float]) -> float:
    return float(torch.tensor(xs, dtype=torch.float64).median())


def accuracy_rows(
    pool: Pool,
    rt_keys: list[str],
    cfgs: list,
    evalset: data.TensorSet,
    eager: dict[str, torch.Tensor],
    batch: int,
    threads: int,
) -> dict[tuple, tuple[float, float]]:
    """(runtime, model key, int8) -> (top-1 accuracy, top-1 agreement with eager PyTorch on the same
    float model), predicted by the ``batch`` deployment."""
    out = {}
    for rt_key in rt_keys:
        for _, model_key, int8 in cfgs:
            dep = pool.get(rt_key, model_key, int8, batch, threads)
            if isinstance(dep, str):
                continue
            preds = dep.predict(evalset.x).argmax(1)
            out[(rt_key, model_key, int8)] = (
                float((preds == evalset.y).float().mean()),
                float((preds == eager[model_key]).float().mean()),
            )
    return out


def time_group(
    pool: Pool, rt_key: str, cfgs: list, batch: int, threads: int, args: argparse.Namespace
) -> dict[str, object]:
    """Interleaved timings of eager PyTorch dense (NCHW, and channels_last at batch >= 32) and every
    config of ``rt_key``; returns label -> per-round times, or the one-line reason it did not deploy."""
    refs = {"eager": pool.get("torch", "dense", False, batch, threads)}
    if batch >= 32:
        refs["eager-cl"] = pool.get("torch-cl", "dense", False, batch, threads)
    deps = {label: pool.get(rt_key, mk, i8, batch, threads) for label, mk, i8 in cfgs}
    runnable = {**refs, **{k: v for k, v in deps.items() if not isinstance(v, str)}}
    times: dict[str, object] = dict(paired_times(runnable, args.rounds, args.budget))
    times.update({k: v for k, v in deps.items() if isinstance(v, str)})
    return times


def fmt_speedup(num: list[list[float]], den: list[list[float]]) -> tuple[float, str]:
    """Speed-up of ``num`` over ``den``: the median over rounds of the ratio of the two medians timed in
    that round (paired: both saw the same phase of a shared machine), and the range over rounds."""
    per_round = [median(d) / median(n) for n, d in zip(num, den, strict=True)]
    mid = median(per_round)
    return mid, f"{mid:.2f}× [{min(per_round):.2f}–{max(per_round):.2f}]"


def print_group(
    model_id: str,
    rt_key: str,
    cfgs: list,
    batch: int,
    threads: int,
    times: dict,
    pool: Pool,
    acc: dict,
    macs: dict,
    results: dict,
) -> None:
    eager_key = min((k for k in ("eager", "eager-cl") if k in times), key=lambda k: median(flat(times[k])))
    eager = times[eager_key]
    dense = times.get(cfgs[0][0])
    for label, mk, i8 in cfgs:
        t = times[label]
        if isinstance(t, str):
            print(f"| {rt_key} | {label} | unsupported: {t} | | | | | | | |")
            continue
        dep = pool.get(rt_key, mk, i8, batch, threads)
        lat = latency_of(flat(t), batch, threads)
        vs_dense, vs_dense_s = fmt_speedup(t, dense) if not isinstance(dense, str) else (float("nan"), "–")
        vs_eager, vs_eager_s = fmt_speedup(t, eager)
        top1, agree = acc.get((rt_key, mk, i8), (float("nan"), float("nan")))
        results[(model_id, rt_key, label, batch, threads)] = {
            "vs_dense": vs_dense,
            "vs_eager": vs_eager,
            "mac_red": macs["dense"] / macs[mk],
        }
        print(
            f"| {rt_key} | {label} | {dep.kernels} | {lat.ms_p50:.3f} ± {lat.ms_iqr:.3f} | {vs_dense_s} | "
            f"{vs_eager_s} | {macs['dense'] / macs[mk]:.2f}× | {dep.file_bytes:,} | {top1:.2%} | {agree:.2%} |"
        )
    ref = (
        pool.get("torch", "dense", False, batch, threads)
        if eager_key == "eager"
        else pool.get("torch-cl", "dense", False, batch, threads)
    )
    print(
        f"| (reference) | eager PyTorch dense fp32 | {ref.kernels} | "
        f"{latency_of(flat(eager), batch, threads).ms_p50:.3f} | | 1.00× | 1.00× | | | |"
    )


def targets(results: dict, acc: dict, cfgs: list, rt_keys: list[str], eval_mode: str, model_id: str) -> None:
    print(f"\n### Targets ({model_id})\n")
    aligned_label, combo_labels = cfgs[3][0], (cfgs[5][0], cfgs[6][0])
    rows = {k: v for k, v in results.items() if k[0] == model_id and k[3] == 128 and k[4] == 1}
    aligned = {k[1]: v for k, v in rows.items() if k[2] == aligned_label}
    if aligned:
        best = max(aligned, key=lambda r: aligned[r]["vs_dense"] / aligned[r]["mac_red"])
        v = aligned[best]
        ratio = v["vs_dense"] / v["mac_red"]
        print(
            f"- {aligned_label} at batch 128, 1 thread, best runtime ({best}): {v['vs_dense']:.2f}× speed-up for "
            f"{v['mac_red']:.2f}× fewer MACs = {ratio:.2f} of the MAC reduction (target ≥ 0.85): "
            f"{'met' if ratio >= 0.85 else 'missed'}"
        )
    combo = {(k[1], k[2]): v for k, v in rows.items() if k[2] in combo_labels}
    if combo:
        best = max(combo, key=lambda r: combo[r]["vs_eager"])
        x = combo[best]["vs_eager"]
        print(
            f"- structured 50 % + int8 vs eager PyTorch dense fp32, batch 128, 1 thread, best ({best[0]}, {best[1]}): "
            f"{x:.2f}× (target ≥ 12×): {'met' if x >= 12 else 'missed'}"
        )
    scope = "full test set" if eval_mode == "full" else "quick eval (1,000 images), not the full test set"
    for rt_key in rt_keys:
        pairs = [((rt_key, mk, True), (rt_key, mk, False)) for mk in ("dense", "layer", "aligned")]
        gaps = [(acc[a][0] - acc[b][0]) * 100 for a, b in pairs if a in acc and b in acc]
        agree = [acc[(rt_key, mk, False)][1] for _, mk, i8 in cfgs if not i8 and (rt_key, mk, False) in acc]
        if gaps:
            worst = min(gaps)
            print(
                f"- {rt_key}: int8 − fp32 top-1 {', '.join(f'{g:+.2f}' for g in gaps)} pp on the {scope} "
                f"(target within 0.5 pp): {'met' if worst >= -0.5 else 'missed'}"
            )
        if agree:
            print(
                f"- {rt_key}: fp32 top-1 equal to eager PyTorch on {min(agree):.2%} of images at worst "
                f"(target ≥ 99.9 %): {'met' if min(agree) >= 0.999 else 'missed'}"
            )


def run_model(model_id: str, args: argparse.Namespace, rt_keys: list[str], results: dict) -> None:
    cfgs = configs(args.sparsity, args.round_to, args.aligned_scope)
    floats = float_models(model_id, args.sparsity, args.round_to, args.aligned_scope)
    macs = {k: measure.count_macs(m, INPUT) for k, m in floats.items()}
    pool = Pool(floats, data.calibration_batches("cifar10", args.calib), args.torch_int8)
    evalset = data.eval_set("cifar10", args.eval)
    eager = {k: measure.predictions(m, evalset) for k, m in floats.items()}
    acc = accuracy_rows(pool, rt_keys, cfgs, evalset, eager, args.batches[-1], args.threads[0])
    for batch in args.batches:
        for threads in args.threads:
            print(f"\n### {model_id}, batch {batch}, {threads} thread(s), eval {args.eval} ({len(evalset):,} images)\n")
            print(
                "| runtime | config | kernels | latency p50 ± IQR (ms) | vs same runtime dense [rounds] | "
                "vs eager PyTorch dense [rounds] | MAC reduction | file bytes | top-1 | = eager |"
            )
            print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
            for rt_key in rt_keys:
                times = time_group(pool, rt_key, cfgs, batch, threads, args)
                print_group(model_id, rt_key, cfgs, batch, threads, times, pool, acc, macs, results)
                sys.stdout.flush()
    targets(results, acc, cfgs, rt_keys, args.eval, model_id)
    deploy_table(pool, cfgs, rt_keys, model_id)


def deploy_table(pool: Pool, cfgs: list, rt_keys: list[str], model_id: str) -> None:
    """Seconds to export, quantize (int8) and compile each config once per runtime (the first deployment;
    other batch sizes and thread counts reuse it where the runtime can, ExecuTorch exports per batch)."""
    print(f"\n### Export + int8 + compile seconds ({model_id}, first deployment per runtime)\n")
    print("| runtime | " + " | ".join(label for label, _, _ in cfgs) + " |")
    print("|---|" + "---:|" * len(cfgs))
    for rt_key in rt_keys:
        cells = []
        for _, mk, i8 in cfgs:
            secs = [v for k, v in pool.deploy_s.items() if k[:3] == (rt_key, mk, i8)]
            cells.append(f"{secs[0]:.1f}" if secs else "–")
        print(f"| {rt_key} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="resnet20-cifar10,resnet56-cifar10")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES))
    ap.add_argument("--batches", default="1,128")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--eval", choices=("quick", "full"), default="full")
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--round-to", type=int, default=8)
    ap.add_argument(
        "--aligned-scope",
        choices=("layer", "global"),
        default="global",
        help="scope of the aligned (round_to) structured rows",
    )
    ap.add_argument("--calib", type=int, default=256, help="training images for int8 calibration")
    ap.add_argument(
        "--torch-int8",
        choices=("fx", "pt2e", "auto"),
        default="fx",
        help="the torch runtime's int8: torch.ao FX, torchao PT2E + torch.compile, or the faster",
    )
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--budget", type=float, default=0.15, help="seconds of timing per entry and round")
    args = ap.parse_args()
    args.batches = sorted(int(b) for b in args.batches.split(","))
    args.threads = [int(t) for t in args.threads.split(",")]
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"  # like tests/conftest.py
    if "COMPRESS_DATA_DIR" not in os.environ and shared.is_dir():
        os.environ["COMPRESS_DATA_DIR"] = str(shared)
    print(machine.machine_line())
    print(f"\nCommand: `python benchmarks/{os.path.basename(__file__)} {shlex.join(sys.argv[1:])}`  ")
    print(f"torch {torch.__version__}; load average before: {os.getloadavg()[0]:.2f}  ")
    rt_keys = []
    for key in args.runtimes.split(","):
        reason = get_runtime(key).available()
        if reason:
            print(f"- {key} skipped: {reason}  ")
        else:
            rt_keys.append(key)
    t0, results = time.time(), {}
    for model_id in args.models.split(","):
        run_model(model_id, args, rt_keys, results)
    print(
        f"\nLoad average after: {os.getloadavg()[0]:.2f}; {time.time() - t0:.0f} s in all. The machine is shared: "
        "absolute latencies move with the load, the paired ratios much less."
    )


if __name__ == "__main__":
    main()
