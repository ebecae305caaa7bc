"""``ctrobust train``: train a built-in model and write its weights with how they were made."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

EPILOG = """examples:
  ctrobust train --model smallcnn --dataset fashion-mnist
  ctrobust train --model smallcnn --epochs 1 --out /tmp/smallcnn.pt
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train", help="train a built-in model", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="smallcnn", metavar="NAME", help="built-in model (default: smallcnn)")
    parser.add_argument("--dataset", default=None, help="dataset (default: the model's own)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs (default: 4)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3; peak 3x, one-cycle)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--n-train", type=int, default=None, metavar="N", help="train on the first N points only")
    parser.add_argument("--data-dir", default=None, metavar="DIR", help="dataset directory (env CTROBUST_DATA_DIR)")
    parser.add_argument(
        "--out", default=None, metavar="PATH",
        help="where to write the state dict (default: <user cache>/checkpoints/<model>_<dataset>.pt)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import platformdirs

    from ctrobust.errors import CtrobustError
    from ctrobust.models import resolve_model_dataset
    from ctrobust.train import TrainConfig, train_model

    dataset = resolve_model_dataset(args.model, args.dataset)
    for name in ("epochs", "batch_size"):
        if getattr(args, name) <= 0:
            raise CtrobustError(f"Expected `--{name.replace('_', '-')}` to be a positive integer, but got {getattr(args, name)}.")
    cfg = TrainConfig(args.model, dataset, args.epochs, args.batch_size, args.lr, args.seed, args.n_train, args.data_dir)
    out = Path(args.out) if args.out else Path(platformdirs.user_cache_dir("ctrobust")) / "checkpoints" / f"{args.model}_{dataset}.pt"
    command = "ctrobust " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    meta = train_model(cfg, out, command=command, progress=not args.no_progress)
    print(f"test accuracy {meta['test_accuracy']:.2%} after {meta['epochs']} epochs ({meta['train_seconds']} s)")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0
