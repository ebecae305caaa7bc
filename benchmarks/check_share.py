"""The checks' share of a run (issue: "checks within a declared budget"), in three configurations.

Each configuration runs ``ctrobust eval`` in its own process with a fresh store and prints the run's wall
time, the seconds each check took (``sanity_checks.seconds``) and their share, with the sizes the check
budget gave. Configurations: ``default`` (the README's main command), ``n100`` (a 100-point AutoAttack
run) and ``wrn8`` (RobustBench's ``Standard`` WRN-28-10, randomly initialised and saved where RobustBench
looks, on 8 points of a CIFAR-10 stand-in of random images: what a slow model on a CPU costs).

    python benchmarks/check_share.py [--outcomes DIR] [default] [n100] [wrn8]

``--outcomes DIR``: also write each run's per-point outcomes (both arms, as result.json holds them) to
``DIR/outcomes_<config>.json``, so a later commit can be compared point by point ("same numbers").

Time it with nothing else running: the shares are ratios of one run's own wall time, but the machine's
load moves the stages unequally.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIGS = {
    "default": ["--model", "smallcnn", "--threat", "linf"],
    "n100": ["--model", "smallcnn", "--threat", "linf", "--n-examples", "100", "--n-select", "100",
             "--betas", "0.8,0.9"],
    "wrn8": ["--model", "Standard", "--dataset", "cifar10", "--threat", "linf", "--n-examples", "8",
             "--n-select", "8", "--betas", "0.9,0.95"],
}


def _wrn_fixture(root: Path) -> list[str]:
    """A random-init `Standard` at RobustBench's path and a CIFAR-10 test set of 64 random images."""
    import numpy as np
    import torch

    from ctrobust.data.cifar import write_cifar_batch
    from ctrobust.models.zoo import build_zoo_architecture

    path = root / "models" / "cifar10" / "Linf" / "Standard.pt"
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(build_zoo_architecture("Standard", "cifar10", "Linf").state_dict(), path)
    gen = np.random.default_rng(0)
    images = gen.integers(0, 256, size=(64, 3, 32, 32), dtype=np.uint8)
    write_cifar_batch(root / "data" / "cifar-10-batches-py" / "test_batch", images, np.arange(64) % 10)
    return ["--model-dir", str(root / "models"), "--data-dir", str(root / "data")]


def run(name: str, outcomes: Path | None = None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        extra = _wrn_fixture(root) if name == "wrn8" else []
        cmd = [sys.executable, "-m", "ctrobust.cli.main", "eval", *CONFIGS[name], *extra, "--store",
               str(root / "store.sqlite"), "--out", str(root / "out"), "--no-progress"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={"CTROBUST_OFFLINE": "1",
                                                                         **__import__("os").environ})
        if proc.returncode != 0:
            raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
        result = json.loads((root / "out" / "result.json").read_text())
    if outcomes is not None:
        outcomes.mkdir(parents=True, exist_ok=True)
        kept = {"command": "ctrobust eval " + " ".join(CONFIGS[name]), "beta": result["beta"],
                "per_example": result["per_example"]}
        (outcomes / f"outcomes_{name}.json").write_text(json.dumps(kept, separators=(",", ":")) + "\n")
    checks = result["sanity_checks"]
    seconds = sum(checks["seconds"].values())
    return {"config": name, "command": "ctrobust eval " + " ".join(CONFIGS[name]), "wall_s": result["wall_seconds"],
            "checks_s": round(seconds, 1), "share": round(seconds / result["wall_seconds"], 3),
            "per_check_s": checks["seconds"], "sizes": checks.get("sizes"), "not_run": checks.get("not_run"),
            "base": result["base"]["robust_accuracy"], "ct": result["ct"]["robust_accuracy"], "beta": result["beta"]}


def main() -> None:
    import platform

    import torch

    args = sys.argv[1:]
    outcomes = None
    if args[:1] == ["--outcomes"]:
        outcomes, args = Path(args[1]), args[2:]
    names = args or list(CONFIGS)
    print(f"machine: {platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}")
    for name in names:
        out = run(name, outcomes)
        print(json.dumps(out))
        print(f"{name}: checks {out['checks_s']} s of {out['wall_s']} s = {100 * float(out['share']):.1f}% "  # type: ignore[arg-type]
              f"of the run")


if __name__ == "__main__":
    main()
