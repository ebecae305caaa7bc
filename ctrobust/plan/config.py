"""EvalConfig: the one description of an evaluation run; the CLI is built from its fields."""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar

from ctrobust.attacks.spec import AA_VERSIONS, ATTACKS, STEPPED_ATTACKS, STEPS_DEFAULTS, AttackSpec, parse_attack
from ctrobust.corruptions.names import parse_corruptions, parse_severities
from ctrobust.ct.arm import is_base
from ctrobust.datasets import DATASET_CHOICES
from ctrobust.errors import CtrobustError
from ctrobust.plan.run_plan import (
    DEFAULT_CHECK_SHARE,
    CtuImpl,
    Device,
    Executor,
    ModelSource,
    Protocol,
    RunPlan,
    SweepMode,
    resolve_ctu,
)
from ctrobust.plan.selection import parse_betas
from ctrobust.threats import THREAT_CHOICES, ZOO_THREATS, ThreatModel, check_eps, default_eps, parse_threat

E = TypeVar("E", Protocol, Device, CtuImpl, SweepMode)


def opt(default: Any, help: str, group: str = "run", *, in_config: bool = True, **argparse_kw: Any) -> Any:
    """A config field with its CLI help next to it; ``in_config``: whether a ``reproduce`` config file may set it.

    Which options make a run's identity is decided on the resolved plan (``ctrobust.plan.run_plan.RunPlan``).
    """
    return field(default=default, metadata={"help": help, "group": group, "in_config": in_config, **argparse_kw})


CLI_ONLY_METADATA = ("in_config", "group", "help")


@dataclass
class EvalConfig:
    model: str = opt(
        "smallcnn",
        "model: smallcnn, a RobustBench name (Standard, ...), robustbench:NAME, torchvision:NAME, paper:resnet18|50|152, "
        "path/to/file.py:factory or package.module:factory",
        "model and data", metavar="NAME",
    )
    dataset: str | None = opt(
        None, f"dataset: {', '.join(DATASET_CHOICES)}; default: the one the model was trained on "
        "(smallcnn -> fashion-mnist)", "model and data"
    )
    checkpoint: str | None = opt(
        None, "weights to load (built-in, paper:, torchvision: and custom models)", "model and data", metavar="PATH"
    )
    model_dir: str | None = opt(
        None, "RobustBench checkpoints, as <dir>/<dataset>/<threat>/<name>.pt (env CTROBUST_MODEL_DIR; default: user cache)",
        "model and data", metavar="DIR"
    )
    zoo_threat: str | None = opt(
        None, f"take the RobustBench model from this threat's zoo ({', '.join(ZOO_THREATS)}); default: --threat "
        "(Linf where the zoo has no leaderboard for it)",
        "model and data", metavar="THREAT",
    )
    trust_checkpoint: bool = opt(
        False, "allow checkpoints that need arbitrary unpickling (only for files you trust)", "model and data",
        action="store_true"
    )
    mean: str | tuple[float, ...] | None = opt(
        None, "custom models: per-channel mean to normalise with inside the model, e.g. 0.5,0.5,0.5", "model and data",
        metavar="LIST")
    std: str | tuple[float, ...] | None = opt(None, "custom models: per-channel std, with --mean", "model and data",
                                             metavar="LIST")
    data_dir: str | None = opt(
        None, "where datasets are looked for and downloaded (env CTROBUST_DATA_DIR; default: user cache)",
        "model and data", metavar="DIR"
    )
    threat: str = opt("linf", f"threat model: {', '.join(THREAT_CHOICES)} (case-insensitive)", "attack")
    eps: float | None = opt(None, "perturbation budget; default: the dataset's standard eps", "attack", type=float)
    attack: str = opt("autoattack", f"final attack on the evaluation split: {', '.join(ATTACKS)}", "attack")
    aa_version: str = opt("standard", f"AutoAttack version: {', '.join(AA_VERSIONS)}", "attack", choices=AA_VERSIONS)
    steps: int | None = opt(None, f"steps of the final attack when it has steps (default: {STEPS_DEFAULTS})", "attack",
                            type=int)
    restarts: int = opt(1, f"restarts of the final attack when it has steps ({', '.join(STEPPED_ATTACKS)})", "attack",
                        type=int)
    step_size: float | None = opt(None, "pgd step size (default 2.5 * eps / steps)", "attack", type=float)
    corruptions: str | tuple[str, ...] | None = opt(
        None, "with --threat corruptions: comma list of corruptions (default: all 15)", "corruptions", metavar="LIST"
    )
    severities: str | tuple[int, ...] | None = opt(
        None, "with --threat corruptions: severities, '1,3,5' or '2-4' (default: 1-5)", "corruptions", metavar="LIST"
    )
    select_attack: str | None = opt(
        None, "attack used to choose beta (default: apgd-ce; with --protocol paper: the final attack)", "beta search"
    )
    select_steps: int = opt(10, f"steps of the selection attack when it has steps ({', '.join(STEPPED_ATTACKS)})",
                            "beta search", type=int)
    betas: str | tuple[float, ...] = opt("0.70:0.99:0.01", "beta grid: 'b1,b2,...' or 'start:stop:step' (the paper's grid)",
                                         "beta search")
    no_base_candidate: bool = opt(
        False, "heldout protocol: leave beta = 1 (the original ReLU model) out of the candidates and report the best "
        "beta below 1, even where ReLU did better on the held-out points", "beta search", action="store_true",
    )
    beta_batch: str | int = opt(
        "auto", "betas of the sweep attacked together in one batched pass (each point and beta an independent "
        "example; the numbers are those of one beta at a time): auto (on a GPU as many as its memory holds, on a "
        "CPU one), or a number", "beta search", metavar="K",
    )
    sweep: str = opt(
        "grid", "grid: every beta on the whole selection split; halving: successive halving (every beta on a third "
        "of it, the best third on more, ...; see docs/protocol.md)", "beta search",
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
    device: str = opt("auto", "auto (CUDA when present), cpu or cuda", "run", choices=[d.value for d in Device])
    batch_size: int = opt(500, "attack batch size", "run", type=int)
    check_budget: float = opt(
        DEFAULT_CHECK_SHARE, "the checks against weak attacks may do this share of the final attacks' work (model "
        "passes); a check whose minimum does not fit says NOT RUN and why", "run", type=float, metavar="SHARE")
    executor: str = opt(
        "local", "local: run here; ray: run as one task on a Ray cluster (from a checkout: pip install -e '.[ray]')", "run",
        choices=[e.value for e in Executor], in_config=False
    )
    ray_address: str | None = opt(None, "with --executor ray: the cluster to join, auto or HOST:PORT "
                                  "(default: start a local one)", "run", metavar="ADDRESS", in_config=False)
    ctu: str = opt(
        "auto", "CT unit: fused (one kernel each way, compiled once per process: CUDA kernels on a GPU, about 1 s; "
        "torch.compile on a CPU, about 10-20 s), eager (the plain formula), or auto (fused unless env CTROBUST_CTU "
        "says eager)", "run",
        choices=[c.value for c in CtuImpl]
    )
    out: str | None = opt(None, "output directory (default: reports/<run-name>/)", "output", metavar="DIR", in_config=False)
    store: str | None = opt(
        None, "results store (SQLite) that every finished cell is written to and looked up in, so an interrupted "
        "run resumes (env CTROBUST_STORE; default: reports/ctrobust.sqlite)", "output", metavar="PATH", in_config=False
    )
    json: bool = opt(False, "print the result JSON on stdout instead of the table", "output", action="store_true",
                     in_config=False)
    no_progress: bool = opt(False, "hide the progress bar", "output", action="store_true", in_config=False)
    strict_checks: bool = opt(
        False, "exit with status 3 when the binarization test FAILs on either arm, or a check could not run on "
        "this model (NOT RUN) or crashed (the result is still written and stored)", "output", action="store_true",
        in_config=False)

    def resolve(self, module: Any = None) -> RunPlan:
        """Check every option and every combination once, and return the resolved plan.

        ``module``: a model given as an ``nn.Module`` (``ctrobust.run``); ``self.model`` then names it.
        Raises CtrobustError with what to change. Nothing downstream parses an option again.
        """
        from ctrobust.models.registry import SOURCES, parse_model_name, resolve_model_dataset
        from ctrobust.models.source import ModelName

        threat = parse_threat(self.threat)
        if self.eps is not None:
            if not threat.is_norm_bounded:
                raise CtrobustError("--eps does not apply to --threat corruptions; leave it out.")
            check_eps(self.eps, threat)
            if threat is ThreatModel.LINF and self.eps >= 1.0:
                raise CtrobustError(
                    f"Linf eps {self.eps:g} reaches every image (pixels lie in [0, 1]): no point can be robust; "
                    "use an eps below 1 (the Fashion-MNIST default is 0.05)."
                )
        if threat.is_norm_bounded and (self.corruptions is not None or self.severities is not None):
            raise CtrobustError("--corruptions and --severities apply only to --threat corruptions.")
        corruptions, severities = parse_corruptions(self.corruptions), parse_severities(self.severities)
        mean, std = _floats(self.mean, "--mean"), _floats(self.std, "--std")
        if (mean is None) != (std is None) or (mean is not None and std is not None and len(mean) != len(std)):
            raise CtrobustError("Pass --mean and --std together, with one value per channel each.")
        if std is not None and not all(math.isfinite(v) and v > 0 for v in std):
            raise CtrobustError(f"Expected --std values to be positive and finite, but got {self.std!r}.")
        if mean is not None and not all(math.isfinite(v) for v in mean):
            raise CtrobustError(f"Expected --mean values to be finite, but got {self.mean!r}.")
        if not 0 <= self.seed < 2**32:
            raise CtrobustError(f"Expected --seed to be an integer in [0, 2^32), but got {self.seed}.")
        if not (math.isfinite(self.check_budget) and self.check_budget >= 0):
            raise CtrobustError(f"Expected `check_budget` to be a finite share >= 0 (0.05: a twentieth of the final "
                                f"attacks' work), but got {self.check_budget}.")
        for name in ("n_examples", "n_select", "select_steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise CtrobustError(f"Expected --{name.replace('_', '-')} to be a positive integer, but got "
                                    f"{getattr(self, name)}.")
        protocol = _choice(Protocol, self.protocol, "--protocol")
        sweep = _choice(SweepMode, self.sweep, "--sweep")
        if sweep is SweepMode.HALVING and protocol is Protocol.PAPER:
            raise CtrobustError("--sweep halving goes with --protocol heldout: the paper's protocol scores every "
                                "beta on the evaluation split.")
        beta_batch: int | None = None
        if isinstance(self.beta_batch, int):
            beta_batch = self.beta_batch
        elif self.beta_batch.strip().lower() != "auto":
            try:
                beta_batch = int(self.beta_batch)
            except ValueError:
                beta_batch = 0
            if beta_batch <= 0:
                raise CtrobustError(f"Expected --beta-batch to be auto or a positive integer, but got {self.beta_batch!r}.")
        betas = tuple(parse_betas(self.betas))
        if all(is_base(b) for b in betas) and (self.no_base_candidate or protocol is Protocol.PAPER):
            raise CtrobustError(f"--betas {_shown(self.betas)} holds no CT beta (1 is the original ReLU model): give betas "
                                "below 1 to choose from.")
        final = AttackSpec(parse_attack(self.attack), self.steps, self.restarts, self.step_size, self.aa_version)
        if self.select_attack is None and protocol is Protocol.PAPER:
            select = final
        else:
            name = parse_attack(self.select_attack or "apgd-ce")
            select = AttackSpec(name, self.select_steps if AttackSpec(name).entry.has_steps else None, 1, None,
                                self.aa_version)
        if threat.is_norm_bounded:
            for spec in (final, select):
                spec.entry.check_threat(threat)
        parsed = parse_model_name(self.model) if module is None else ModelName(
            ModelSource.MODULE, self.model.strip().removeprefix("module:"))
        source = parsed.source
        if module is not None and self.dataset is None:
            raise CtrobustError("Pass dataset= for a model given as an object: ctrobust cannot tell what it was "
                                "trained on (e.g. dataset='fashion-mnist').")
        if mean is not None and not SOURCES[source].takes_normalisation:
            names = [s.value for s, e in SOURCES.items() if e.takes_normalisation]
            takers = ", ".join(names[:-1]) + f" and {names[-1]}"
            raise CtrobustError(f"--mean/--std apply to {takers} models; {self.model} normalises its input itself.")
        dataset = resolve_model_dataset(parsed, self.dataset)
        eps: float | None = None
        if threat.is_norm_bounded:
            eps = check_eps(self.eps, threat) if self.eps is not None else default_eps(dataset, threat)
        return RunPlan(
            model=self.model.strip(), model_source=source, model_name=parsed, dataset=dataset, threat=threat, eps=eps,
            final_attack=final if threat.is_norm_bounded else None,
            select_attack=select if threat.is_norm_bounded else None,
            corruptions=tuple(corruptions) if not threat.is_norm_bounded else (),
            severities=tuple(severities) if not threat.is_norm_bounded else (),
            betas=betas, sweep=sweep, betas_per_pass=beta_batch,
            base_candidate=protocol is Protocol.HELDOUT and not self.no_base_candidate,
            protocol=protocol, n_examples=self.n_examples, n_select=self.n_select, seed=self.seed,
            batch_size=self.batch_size, check_budget=float(self.check_budget), checkpoint=self.checkpoint,
            zoo_threat=parse_threat(self.zoo_threat) if self.zoo_threat else None,
            mean=tuple(mean) if mean is not None else None, std=tuple(std) if std is not None else None,
            model_dir=self.model_dir, data_dir=self.data_dir, trust_checkpoint=self.trust_checkpoint,
            device=_choice(Device, self.device, "--device"), ctu=resolve_ctu(_choice(CtuImpl, self.ctu, "--ctu")),
            weights=_module_digest(module) if module is not None else None, module=module,
        )


def _module_digest(module: Any) -> str:
    from ctrobust.models.fingerprint import weights_digest

    if not hasattr(module, "state_dict") or not callable(module):
        raise CtrobustError(f"Expected model to be a torch.nn.Module or a model name, but got {type(module).__name__}.")
    return weights_digest(module)


def _choice(kind: type[E], value: str, flag: str) -> E:
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        raise CtrobustError(f"Expected {flag} to be one of {', '.join(k.value for k in kind)}, "
                            f"but got {value!r}.") from None


def config_file_fields() -> set[str]:
    """The fields a ``reproduce`` config file may set."""
    return {f.name for f in fields(EvalConfig) if f.metadata.get("in_config", True)}


def config_fields() -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, default, metadata) of every EvalConfig field, for building the CLI."""
    return [(f.name, f.default if f.default is not MISSING else None, dict(f.metadata)) for f in fields(EvalConfig)]


def _shown(value: str | tuple[float, ...]) -> str:
    """A list option as the command line writes it, for messages."""
    return value if isinstance(value, str) else ",".join(f"{v:g}" for v in value)


def _floats(text: str | tuple[float, ...] | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    if not isinstance(text, str):
        return list(text)
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CtrobustError(f"Expected {flag} as comma-separated floats, but got {text!r}.") from None
