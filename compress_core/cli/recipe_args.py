"""The recipe flags ``evaluate`` and ``sweep`` share, and the Recipe / FinetuneSpec they describe. Their
choices are the registries' keys (criteria, prune kinds, recovery levels) and the recipe's own value sets."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from compress_core.base.recipe import (
    BITS,
    GRANULARITIES,
    PRUNE_KINDS,
    ROUND_TO,
    SCHEDULES,
    SCHEMES,
    SCOPES,
    FinetuneSpec,
    Recipe,
)
from compress_core.cli.common import fraction, keys
from compress_core.cli.models import CliError
from compress_core.engine.prune.criteria import CRITERIA
from compress_core.engine.recover import LEVELS

Group = argparse._ArgumentGroup | argparse.ArgumentParser


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("recipe")
    g.add_argument("--recipe", help="a recipe as JSON text or @file.json (other recipe flags then refine it)")
    g.add_argument("--kind", choices=keys(PRUNE_KINDS), help="pruning kind (default none)")
    g.add_argument("--criterion", choices=keys(CRITERIA), help="importance criterion (default l1)")
    g.add_argument("--scope", choices=SCOPES, help="layer: same fraction per layer; global: one threshold")
    g.add_argument("--sparsity", type=fraction, help="fraction to remove, 0..0.99")
    g.add_argument(
        "--inner-only",
        action="store_true",
        help="structured: keep residual streams, prune only channels inside blocks (Li et al. 2017)",
    )
    g.add_argument("--round-to", type=int, choices=ROUND_TO, help="structured: keep a multiple of N channels per group")
    g.add_argument("--bits", type=int, choices=BITS, help="weight bits: 1,2,3,4,6,8 fixed point, 16 fp16, 32 fp32")
    g.add_argument("--scheme", choices=SCHEMES, help="symmetric, asymmetric (min/max) or kmeans (weight sharing)")
    g.add_argument("--granularity", choices=GRANULARITIES)
    g.add_argument("--int8", action="store_true", help="run on real int8 CPU kernels (implies --bits 8)")
    add_recovery_arg(g)
    add_finetune_args(g)


def add_recovery_arg(g: Group) -> None:
    g.add_argument(
        "--recovery",
        choices=keys(LEVELS),
        help="post-training recovery on training images: bn "
        "(re-estimate BatchNorm statistics) or reconstruct (layer-wise, against the dense model)",
    )


def add_finetune_args(g: Group) -> None:
    g.add_argument("--finetune-epochs", type=float, help="fine-tune after pruning for this many epochs")
    g.add_argument("--finetune-lr", type=float)
    g.add_argument("--distill", action="store_true", help="fine-tune with knowledge distillation from the dense model")
    g.add_argument("--schedule", choices=SCHEDULES, help="pruning schedule when fine-tuning")
    g.add_argument("--finetune-samples", type=int, help="cap training images per epoch (0 = all)")


def finetune_from_args(args: argparse.Namespace, base: FinetuneSpec | None = None) -> FinetuneSpec | None:
    """The fine-tune flags as a spec refining ``base``; None when no flag is given and there is no base."""
    flags = (
        ("epochs", args.finetune_epochs),
        ("lr", args.finetune_lr),
        ("schedule", args.schedule),
        ("max_samples", args.finetune_samples),
    )
    ft: dict[str, Any] = {k: v for k, v in flags if v is not None}
    if args.distill:
        ft["distill"] = True
    if not ft:
        return base
    return FinetuneSpec(**{**(base.__dict__ if base else {}), **ft})


def _base_recipe(text: str | None) -> Recipe:
    """``--recipe``: JSON text or @file.json; the default Recipe without it."""
    if not text:
        return Recipe()
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read recipe file {text[1:]}: {exc.strerror}") from None
    return Recipe.from_json(text)


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    base = _base_recipe(args.recipe)
    flags = (
        ("kind", args.kind),
        ("criterion", args.criterion),
        ("scope", args.scope),
        ("sparsity", args.sparsity),
        ("round_to", args.round_to),
    )
    prune: dict[str, Any] = {k: v for k, v in flags if v is not None}
    if args.inner_only:
        prune["residual"] = False
    if args.sparsity and args.kind is None and base.prune.kind == "none":
        prune["kind"] = "unstructured"  # a sparsity alone means the common case
    quant_flags = (("bits", args.bits), ("scheme", args.scheme), ("granularity", args.granularity))
    quant: dict[str, Any] = {k: v for k, v in quant_flags if v is not None}
    if args.int8:
        quant["int8"] = True
        if args.bits not in (None, 8):
            raise CliError(f"--int8 runs 8-bit kernels; it cannot be combined with --bits {args.bits}")
        quant["bits"] = 8
    recipe = base.with_prune(**prune).with_quant(**quant)
    if args.recovery is not None:
        recipe = recipe.with_recovery(args.recovery)
    return replace(recipe, finetune=finetune_from_args(args, base.finetune))
