"""``ctrobust models``: what can be loaded, its architecture, and whether CT applies to it."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  ctrobust models
  ctrobust models --dataset cifar10 --threat linf

"CT applies" for zoo models comes from the committed audit (ctrobust audit-ct).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="list loadable models and whether CT applies", description=__doc__,
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None, help="only this dataset (cifar10, cifar100, imagenet, fashion-mnist)")
    parser.add_argument("--threat", default=None, help="only this RobustBench zoo threat (linf, l2, corruptions)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ctrobust.audit import read_audit
    from ctrobust.data.registry import canonical_dataset
    from ctrobust.models.paper_resnet import PAPER_RESNETS
    from ctrobust.models.registry import BUILTIN_MODELS
    from ctrobust.models.zoo import zoo
    from ctrobust.threats import parse_threat

    dataset = canonical_dataset(args.dataset).name if args.dataset else None
    threat = parse_threat(args.threat).value if args.threat else None
    audit = {(r.dataset, r.threat, r.model): r for r in read_audit()}
    rows: list[tuple[str, str, str, str, str]] = []
    for name, entry in BUILTIN_MODELS.items():
        if dataset in (None, entry.dataset) and threat is None:
            rows.append((f"builtin:{name}", entry.dataset, "-", entry.factory.__name__, "yes (ReLU)"))
    if threat is None and dataset in (None, "cifar10", "cifar100"):
        for name in PAPER_RESNETS:
            rows.append((f"paper:{name}", dataset or "cifar10|cifar100", "-", "CifarResNet", "yes (ReLU)"))
    if threat is None and dataset in (None, "imagenet"):
        rows.append(("torchvision:NAME", "imagenet", "-", "any torchvision classifier", "where it uses ReLU"))
    for ds, by_threat in zoo().items():
        if dataset not in (None, ds):
            continue
        for th, models in by_threat.items():
            if threat not in (None, th):
                continue
            for name in models:
                r = audit.get((ds, th, name))
                arch = r.architecture if r else "?"
                applies = "not audited"
                if r:
                    applies = {"ok": "yes (ReLU)", "not applicable": f"no ({r.other_activations or 'no ReLU'})",
                               "skipped": f"not audited ({r.note})", "error": "not audited (build failed)"}.get(
                                  r.status, r.status)
                rows.append((name, ds, th, arch, applies))
    import pandas as pd

    table = pd.DataFrame(rows, columns=["model", "dataset", "threat", "architecture", "CT applies"])
    print(table.to_markdown(index=False, tablefmt="simple"))
    return 0
