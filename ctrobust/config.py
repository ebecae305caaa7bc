"""EvalConfig: the one description of an evaluation run; the CLI is built from its fields."""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from ctrobust.attacks.spec import ATTACKS, AttackSpec
from ctrobust.corruptions.names import parse_corruptions, parse_severities
from ctrobust.errors import CtrobustError
from ctrobust.selection import parse_betas
from ctrobust.threats import THREAT_CHOICES, check_eps, parse_threat

PROTOCOLS = ("heldout", "paper")


def opt(default: Any, help: str, group: str = "run", *, identity: bool = True, in_config: bool = True,
        **argparse_kw: Any) -> Any:
    """A config field with its CLI help next to it.

    ``identity``: whether the field can change a run's numbers, and so belongs to the run's identity
    (the default: a new option is part of it unless marked otherwise). ``in_config``: whether a
    ``reproduce`` config file may set it.
    """
    return field(default=default, metadata={"help": help, "group": group, "identity": identity,
                                            "in_config": in_config, **argparse_kw})


CLI_ONLY_METADATA = ("identity", "in_config", "group", "help")


@dataclass
class EvalConfig:
    model: str = opt(
        "smallcnn",
        "model: smallcnn, a RobustBench name (Standard, ...), robustbench:NAME, torchvision:NAME, paper:resnet18|50|152, "
        "path/to/file.py:factory or package.module:factory",
        "model and data", metavar="NAME",
    )
    dataset: str | None = opt(
        None, "dataset; default: the one the model was trained on (smallcnn -> fashion-mnist)", "model and data"
    )
    checkpoint: str | None = opt(
        None, "weights to load (built-in, paper:, torchvision: and custom models)", "model and data", metavar="PATH"
    )
    model_dir: str | None = opt(
        None, "RobustBench checkpoints, as <dir>/<dataset>/<threat>/<name>.pt (env CTROBUST_MODEL_DIR; default: user cache)",
        "model and data", metavar="DIR", identity=False
    )
    zoo_threat: str | None = opt(
        None, "take the RobustBench model from this threat's zoo (Linf, L2, corruptions); default: --threat",
        "model and data", metavar="THREAT",
    )
    trust_checkpoint: bool = opt(
        False, "allow checkpoints that need arbitrary unpickling (only for files you trust)", "model and data",
        action="store_true", identity=False
    )
    mean: str | None = opt(None, "custom models: per-channel mean to normalise with inside the model, e.g. 0.5,0.5,0.5",
                           "model and data", metavar="LIST")
    std: str | None = opt(None, "custom models: per-channel std, with --mean", "model and data", metavar="LIST")
    data_dir: str | None = opt(
        None, "where datasets are looked for and downloaded (env CTROBUST_DATA_DIR; default: user cache)",
        "model and data", metavar="DIR", identity=False
    )
    threat: str = opt("linf", f"threat model: {', '.join(THREAT_CHOICES)} (case-insensitive)", "attack")
    eps: float | None = opt(None, "perturbation budget; default: the dataset's standard eps", "attack", type=float)
    attack: str = opt("autoattack", f"final attack on the evaluation split: {', '.join(ATTACKS)}", "attack")
    aa_version: str = opt("standard", "AutoAttack version: standard, plus, rand", "attack")
    steps: int | None = opt(None, "steps of the final attack when it is pgd or apgd-ce (default 20)", "attack", type=int)
    restarts: int = opt(1, "restarts of the final attack when it is pgd or apgd-ce", "attack", type=int)
    step_size: float | None = opt(None, "pgd step size (default 2.5 * eps / steps)", "attack", type=float)
    corruptions: str | None = opt(
        None, "with --threat corruptions: comma list of corruptions (default: all 15)", "corruptions", metavar="LIST"
    )
    severities: str | None = opt(
        None, "with --threat corruptions: severities, '1,3,5' or '2-4' (default: 1-5)", "corruptions", metavar="LIST"
    )
    select_attack: str | None = opt(
        None, "attack used to choose beta (default: apgd-ce; with --protocol paper: the final attack)", "beta search"
    )
    select_steps: int = opt(10, "steps of the selection attack when it is pgd or apgd-ce", "beta search", type=int)
    betas: str = opt("0.70:0.99:0.01", "beta grid: 'b1,b2,...' or 'start:stop:step' (the paper's grid)", "beta search")
    no_base_candidate: bool = opt(
        False, "heldout protocol: leave beta = 1 (the original ReLU model) out of the candidates and report the best "
        "beta below 1, even where ReLU did better on the held-out points", "beta search", action="store_true",
    )
    protocol: str = opt(
        "heldout",
        "heldout: choose beta on a disjoint selection split; paper: choose it on the evaluation split "
        "and clip CT up to the base (optimistic, for comparison with the paper only)",
        "beta search",
    )
    n_examples: int = opt(1000, "evaluation split: the first N test points", "splits", type=int, metavar="N")
    n_select: int = opt(500, "selection split: N other test points, drawn with --seed", "splits", type=int, metavar="N")
    seed: int = opt(0, "seed for the selection split and every attack", "run", type=int)
    device: str = opt("auto", "auto (CUDA when present), cpu or cuda", "run", choices=["auto", "cpu", "cuda"], identity=False)
    batch_size: int = opt(500, "attack batch size", "run", type=int)
    executor: str = opt(
        "local", "local: run here; ray: run as one task on a Ray cluster (from a checkout: pip install -e '.[ray]')", "run",
        choices=["local", "ray"], identity=False, in_config=False
    )
    ray_address: str | None = opt(None, "with --executor ray: the cluster to join, auto or HOST:PORT "
                                  "(default: start a local one)", "run", metavar="ADDRESS", identity=False, in_config=False)
    ctu: str = opt(
        "auto", "CT unit: fused (one kernel each way, compiled once per process: CUDA kernels on a GPU, about 1 s; "
        "torch.compile on a CPU, about 10-20 s), eager (the plain formula), or auto (fused unless env CTROBUST_CTU "
        "says eager)", "run",
        choices=["auto", "fused", "eager"], identity=False
    )
    out: str | None = opt(None, "output directory (default: reports/<run-name>/)", "output", metavar="DIR", identity=False, in_config=False)
    store: str | None = opt(
        None, "results store (SQLite) that every finished cell is written to and looked up in, so an interrupted "
        "run resumes (env CTROBUST_STORE; default: reports/ctrobust.sqlite)", "output", metavar="PATH", identity=False, in_config=False
    )
    json: bool = opt(False, "print the result JSON on stdout instead of the table", "output", action="store_true", identity=False, in_config=False)
    no_progress: bool = opt(False, "hide the progress bar", "output", action="store_true", identity=False, in_config=False)

    def validate(self) -> None:
        """All cross-field checks in one place; raises CtrobustError with what to change."""
        threat = parse_threat(self.threat)
        if self.eps is not None:
            if not threat.is_norm_bounded:
                raise CtrobustError("--eps does not apply to --threat corruptions; leave it out.")
            check_eps(self.eps)
            if threat.value == "Linf" and self.eps >= 1.0:
                raise CtrobustError(
                    f"Linf eps {self.eps:g} reaches every image (pixels lie in [0, 1]): no point can be robust; "
                    "use an eps below 1 (the Fashion-MNIST default is 0.05)."
                )
        if threat.is_norm_bounded and (self.corruptions is not None or self.severities is not None):
            raise CtrobustError("--corruptions and --severities apply only to --threat corruptions.")
        self.corruption_cells()
        mean, std = self.normalisation()
        if (mean is None) != (std is None) or (mean is not None and std is not None and len(mean) != len(std)):
            raise CtrobustError("Pass --mean and --std together, with one value per channel each.")
        if std is not None and not all(math.isfinite(v) and v > 0 for v in std):
            raise CtrobustError(f"Expected --std values to be positive and finite, but got {self.std!r}.")
        if mean is not None and not all(math.isfinite(v) for v in mean):
            raise CtrobustError(f"Expected --mean values to be finite, but got {self.mean!r}.")
        if mean is not None and self.model.strip().lower().split(":", 1)[0] in ("smallcnn", "builtin", "paper",
                                                                              "robustbench"):
            raise CtrobustError(
                f"--mean/--std apply to custom and torchvision models; {self.model} normalises its input itself."
            )
        if not 0 <= self.seed < 2**32:
            raise CtrobustError(f"Expected --seed to be an integer in [0, 2^32), but got {self.seed}.")
        for name in ("n_examples", "n_select", "select_steps"):
            if getattr(self, name) <= 0:
                raise CtrobustError(f"Expected --{name.replace('_', '-')} to be a positive integer, but got "
                                    f"{getattr(self, name)}.")
        if self.protocol not in PROTOCOLS:
            raise CtrobustError(f"Expected --protocol to be one of {', '.join(PROTOCOLS)}, but got {self.protocol!r}.")
        self.beta_grid()
        self.final_attack()
        self.selection_attack()
        if self.batch_size <= 0:
            raise CtrobustError(f"Expected --batch-size to be a positive integer, but got {self.batch_size}.")

    def normalisation(self) -> tuple[list[float] | None, list[float] | None]:
        return _floats(self.mean, "--mean"), _floats(self.std, "--std")

    def corruption_cells(self) -> tuple[list[str], list[int]]:
        return parse_corruptions(self.corruptions), parse_severities(self.severities)

    def beta_grid(self) -> list[float]:
        return parse_betas(self.betas)

    def final_attack(self) -> AttackSpec:
        return AttackSpec(self.attack, self.steps, self.restarts, self.step_size, self.aa_version)

    def selection_attack(self) -> AttackSpec:
        if self.select_attack is None and self.protocol == "paper":
            return self.final_attack()
        name = self.select_attack or "apgd-ce"
        return AttackSpec(name, self.select_steps if name != "autoattack" else None, 1, None, self.aa_version)


def identity_fields(config_type: type[EvalConfig] | None = None) -> list[str]:
    """The fields that make a run's identity: every field not marked ``identity=False``."""
    return [f.name for f in fields(config_type or EvalConfig) if f.metadata.get("identity", True)]


def config_file_fields() -> set[str]:
    """The fields a ``reproduce`` config file may set."""
    return {f.name for f in fields(EvalConfig) if f.metadata.get("in_config", True)}


def config_fields() -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, default, metadata) of every EvalConfig field, for building the CLI."""
    return [(f.name, f.default if f.default is not MISSING else None, dict(f.metadata)) for f in fields(EvalConfig)]


def _floats(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CtrobustError(f"Expected {flag} as comma-separated floats, but got {text!r}.") from None
