"""``ctrobust train``: train a built-in or paper model and write its weights with how they were made."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

from ctrobust.datasets import DATASET_CHOICES
from ctrobust.plan.run_plan import Device

EPILOG = """examples:
  ctrobust train --model smallcnn --dataset fashion-mnist
  ctrobust train --model paper:resnet18 --dataset cifar10 --device cuda      # the paper's recipe, 200 epochs
  ctrobust train --model paper:resnet18 --dataset cifar10 --max-batches 3     # smoke test

A run interrupted after an epoch continues from <out>.resume.pt when started again with the same --out.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train", help="train a built-in or paper model", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="smallcnn", metavar="NAME",
                        help="smallcnn or paper:resnet18|50|152 (default: smallcnn)")
    parser.add_argument("--dataset", default=None, help=f"dataset: {', '.join(DATASET_CHOICES)} "
                        "(default: the model's own; paper: models need it)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: 4 for smallcnn, 200 for paper:)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default: 1e-3 Adam for smallcnn, 0.1 SGD for paper:)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--n-train", type=int, default=None, metavar="N", help="train on the first N points only")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="stop after the last whole epoch that fits in SECONDS (the lr schedule still follows --epochs)")
    parser.add_argument("--max-batches", type=int, default=None, metavar="N", help="stop after N batches (smoke tests)")
    parser.add_argument("--data-dir", default=None, metavar="DIR", help="dataset directory (env CTROBUST_DATA_DIR)")
    parser.add_argument("--device", default="auto", choices=[d.value for d in Device], help="default: auto")
    parser.add_argument(
        "--out", default=None, metavar="PATH",
        help="where to write the state dict (default: <user cache>/checkpoints/<model>_<dataset>.pt)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import platformdirs

    from ctrobust.errors import CtrobustError
    from ctrobust.models.paths import paper_checkpoint_path
    from ctrobust.models.registry import parse_model_name, resolve_model_dataset
    from ctrobust.models.train import TrainConfig, train_model
    from ctrobust.outputs import check_output_file
    from ctrobust.stages.pipeline import resolve_device

    parsed = parse_model_name(args.model)
    if parsed.source not in ("builtin", "paper"):
        raise CtrobustError(f"ctrobust train trains built-in and paper: models, not {args.model}.")
    dataset = resolve_model_dataset(args.model, args.dataset)
    paper = parsed.source == "paper"
    epochs = args.epochs if args.epochs is not None else (200 if paper else 4)
    lr = args.lr if args.lr is not None else (0.1 if paper else 1e-3)
    for flag, value in (("--epochs", epochs), ("--batch-size", args.batch_size), ("--max-batches", args.max_batches or 1)):
        if value <= 0:
            raise CtrobustError(f"Expected `{flag}` to be a positive integer, but got {value}.")
    if args.time_limit is not None and not args.time_limit > 0:
        raise CtrobustError(f"Expected `--time-limit` to be a positive number of seconds, but got {args.time_limit}.")
    if not (math.isfinite(lr) and lr > 0):
        raise CtrobustError(f"Expected `--lr` to be a positive finite number, but got {lr}.")
    if args.n_train is not None and args.n_train <= 0:
        raise CtrobustError(f"Expected `--n-train` to be a positive integer, but got {args.n_train}.")
    device = resolve_device(args.device)
    cfg = TrainConfig(args.model, dataset, epochs, args.batch_size, lr, args.seed, args.n_train, args.data_dir,
                      "paper" if paper else "adam", args.max_batches, str(device), args.time_limit)
    if args.out:
        out = Path(args.out)
    elif paper:
        out = paper_checkpoint_path(args.model.split(":", 1)[1], dataset)
    else:
        out = Path(platformdirs.user_cache_dir("ctrobust")) / "checkpoints" / f"{args.model.replace(':', '-')}_{dataset}.pt"
    check_output_file(out, "--out")  # before training, which can take hours
    check_output_file(out.with_suffix(".json"), "--out")
    command = "ctrobust " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    meta = train_model(cfg, out, command=command, progress=not args.no_progress)
    if meta.get("max_batches") is not None:
        trained = f"{meta['batches_trained']} batches (stopped by --max-batches)"
    elif meta["epochs_trained"] != meta["epochs"]:
        trained = f"{meta['epochs_trained']} of {meta['epochs']} epochs (stopped by --time-limit)"
    else:
        trained = f"{meta['epochs']} epochs"
    print(f"test accuracy {meta['test_accuracy']:.2%} after {trained} ({meta['train_seconds']} s)")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0
