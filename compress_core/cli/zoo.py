"""``models`` (the model zoo, as a table or JSON) and ``train`` (a bundled LeNet retrained, its weights and card
rewritten in assets/)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_models_parser(sub: Any) -> None:
    m = sub.add_parser("models", help="list the model zoo")
    m.add_argument("--json", action="store_true")


def add_train_parser(sub: Any) -> None:
    t = sub.add_parser("train", help="train a bundled model and rewrite its weights and card in assets/")
    t.add_argument("model", help="lenet5-mnist or lenet300-mnist")
    t.add_argument("--seed", type=int, default=0)


def cmd_models(args: argparse.Namespace) -> int:
    from compress_core.models import REGISTRY, available

    rows = []
    for spec in REGISTRY.values():
        rows.append(
            {
                "id": spec.id,
                "name": spec.name,
                "dataset": spec.dataset,
                "params": spec.params,
                "reference_accuracy": spec.reference_accuracy,
                "available": available(spec.id),
                "license": spec.license,
            }
        )
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'id':28} {'dataset':11} {'params':>11} {'ref acc':>8}  weights")
    for r in rows:
        acc = f"{r['reference_accuracy']:.2%}" if r["reference_accuracy"] else "-"
        where = "ready" if r["available"] else "download on first use (or set COMPRESS_DATA_DIR)"
        print(f"{r['id']:28} {r['dataset']:11} {r['params']:>11,} {acc:>8}  {where}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from compress_core.cli.common import progress_bar
    from compress_core.engine.train import train_bundled

    bar, update = progress_bar(f"training {args.model}")
    card = train_bundled(args.model, seed=args.seed, progress=update)
    bar.close()
    print(json.dumps(card, indent=2))
    return 0
