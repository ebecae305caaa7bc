"""Model names -> loaded models with their dataset and preprocessing (normalisation inside).

Names carry their source: ``builtin:smallcnn``, ``robustbench:Standard``, ``torchvision:resnet50``,
``paper:resnet18``, ``path/to/file.py:factory`` or ``package.module:factory``. A bare name is looked
up as a built-in model first, then in the RobustBench zoo; anything else is an error that lists the
prefixes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch.nn as nn

from ctrobust.data.registry import Dataset, canonical_dataset
from ctrobust.datasets import DatasetName, parse_dataset
from ctrobust.errors import CtrobustError, unknown_name_error
from ctrobust.models.checkpoint import load_checkpoint, state_dict_of
from ctrobust.models.normalize import Normalized
from ctrobust.models.paper_resnet import PAPER_RESNETS, paper_resnet
from ctrobust.models.paths import paper_checkpoint_path, resolve_model_dir
from ctrobust.models.smallcnn import SmallCNN
from ctrobust.models.source import ModelName, ModelSource
from ctrobust.threats import ThreatModel

WEIGHTS_DIR = Path(__file__).parent / "weights"
PREFIXES = tuple(s.value for s in ModelSource if s is not ModelSource.CUSTOM)
ZOO_DATASET_ORDER = ("cifar10", "cifar100", "imagenet")  # a bare zoo name found in several takes the first


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    dataset: str
    factory: type[nn.Module]

    @property
    def weights_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}_{self.dataset}.pt"


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smallcnn": BuiltinModel("smallcnn", "fashion-mnist", SmallCNN),
}


@dataclass
class LoadedModel:
    """A model ready for attacks (input in [0, 1]) and what a result must record about it."""

    name: str
    dataset: str
    model: nn.Module
    source: ModelSource
    checkpoint: str | None
    preprocessing: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRequest:
    """What a source's loader gets besides the name: the resolved dataset and the user's options."""

    dataset: str
    checkpoint: Path | None
    threat: ThreatModel
    zoo_threat: ThreatModel | None
    model_dir: str | os.PathLike[str] | None
    trust_checkpoint: bool
    mean: Sequence[float] | None
    std: Sequence[float] | None
    module: nn.Module | None = None

    @property
    def info(self) -> Dataset:
        return canonical_dataset(self.dataset)

    def preprocessing(self) -> dict[str, object]:
        ds = self.info
        return {"mean": list(ds.mean), "std": list(ds.std), "input_size": list(ds.input_size)}


def parse_model_name(raw: str) -> ModelName:
    """Split a model name into its source and name; bare names: built-in, then the zoo."""
    from ctrobust.models.custom import is_custom_spec

    text = raw.strip()
    prefix, sep, rest = text.partition(":")
    if sep and prefix.lower() in PREFIXES:
        return ModelName(ModelSource(prefix.lower()), rest)
    if is_custom_spec(text):
        return ModelName(ModelSource.CUSTOM, text)
    if sep:
        raise CtrobustError(f"Unknown model prefix {prefix!r} in {raw!r}; use one of "
                            f"{', '.join(PREFIXES)} or path.py:factory.")
    if text.lower() in BUILTIN_MODELS:
        return ModelName(ModelSource.BUILTIN, text.lower())
    from ctrobust.models.zoo import zoo_datasets_of

    if zoo_datasets_of(text):
        return ModelName(ModelSource.ROBUSTBENCH, text)
    raise unknown_model_error(raw)


def unknown_model_error(raw: str) -> CtrobustError:
    """'Unknown model' with the closest names among the built-ins, paper models and the whole zoo."""
    import difflib

    from ctrobust.models.zoo import zoo_names

    local = list(BUILTIN_MODELS) + [f"paper:{n}" for n in PAPER_RESNETS]
    candidates = {name.lower(): name for name in [*local, *zoo_names()]}
    close = difflib.get_close_matches(raw.strip().lower(), list(candidates), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(candidates[c]) for c in close)}?" if close else ""
    return CtrobustError(
        f"Unknown model {raw!r}.{hint} Built-in: {', '.join(local)}; the RobustBench zoo by name "
        "(`ctrobust models` lists it); or robustbench:NAME, torchvision:NAME, path/to/file.py:factory."
    )


def resolve_model_dataset(model_name: str | ModelName, dataset: str | None) -> DatasetName:
    """The dataset to use: the one given, or the one the model was trained on."""
    if dataset is not None:
        return parse_dataset(dataset)
    parsed = model_name if isinstance(model_name, ModelName) else parse_model_name(model_name)
    trained_on = SOURCES[parsed.source].trained_on
    if trained_on is None:
        raise CtrobustError(f"Pass --dataset for {parsed.name}: it does not say what it was trained on.")
    return parse_dataset(trained_on(parsed.name))


def _builtin(name: str) -> BuiltinModel:
    key = name.strip().lower()
    if key not in BUILTIN_MODELS:
        raise unknown_name_error("built-in model", name, BUILTIN_MODELS)
    return BUILTIN_MODELS[key]


def build_model(name: str | ModelName, dataset: str) -> nn.Module:
    """An untrained built-in or paper model for ``dataset``, wrapped with the dataset's normalisation."""
    parsed = name if isinstance(name, ModelName) else parse_model_name(name)
    ds = canonical_dataset(dataset)
    if parsed.source is ModelSource.BUILTIN:
        net: nn.Module = _builtin(parsed.name).factory(in_channels=ds.input_size[0], num_classes=ds.num_classes)
    elif parsed.source is ModelSource.PAPER:
        if parsed.name not in PAPER_RESNETS:
            raise unknown_name_error("paper model", parsed.name, PAPER_RESNETS)
        net = paper_resnet(parsed.name, ds.num_classes, ds.input_size[0])
    else:
        shown = name if isinstance(name, str) else parsed.name
        raise CtrobustError(f"{shown} cannot be built for training; use builtin: or paper: models.")
    return Normalized(net, ds.mean, ds.std)


def _load_weights(model: nn.Module, path: Path, trust: bool, what: str) -> None:
    state = state_dict_of(load_checkpoint(path, trust), path)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CtrobustError(f"{path} does not fit {what}: {first}") from None


def _load_builtin(name: str, req: ModelRequest) -> LoadedModel:
    entry = _builtin(name)
    model = build_model(ModelName(ModelSource.BUILTIN, name), req.dataset)
    ckpt = req.checkpoint
    if ckpt is None:
        if req.dataset != entry.dataset:
            raise CtrobustError(
                f"{entry.name} ships weights for {entry.dataset} only; train it with "
                f"`ctrobust train --model {entry.name} --dataset {req.dataset}` and pass --checkpoint."
            )
        ckpt = entry.weights_path
        if not ckpt.is_file():
            raise CtrobustError(
                f"The shipped weights of {entry.name} are missing ({ckpt}); reinstall ctrobust or make them with "
                f"`ctrobust train --model {entry.name} --out {ckpt}`."
            )
    _load_weights(model, ckpt, req.trust_checkpoint, entry.name)
    return LoadedModel(entry.name, req.dataset, model.eval(), ModelSource.BUILTIN, str(ckpt), req.preprocessing())


def _load_paper(name: str, req: ModelRequest) -> LoadedModel:
    ckpt = req.checkpoint
    if ckpt is None:
        ckpt = paper_checkpoint_path(name, req.dataset, req.model_dir)
        if not ckpt.is_file():
            raise CtrobustError(
                f"paper:{name} on {req.dataset} needs weights: put them at {ckpt}, pass --checkpoint, or "
                f"train them with `ctrobust train --model paper:{name} --dataset {req.dataset}`."
            )
    model = build_model(ModelName(ModelSource.PAPER, name), req.dataset)
    _load_weights(model, ckpt, req.trust_checkpoint, f"paper:{name}")
    return LoadedModel(f"paper:{name}", req.dataset, model.eval(), ModelSource.PAPER, str(ckpt), req.preprocessing())


def _zoo_dataset(name: str) -> str:
    from ctrobust.models.zoo import zoo_datasets_of

    found = zoo_datasets_of(name)
    if not found:
        raise CtrobustError(f"{name} is not in the RobustBench zoo.")
    return next(ds for ds in ZOO_DATASET_ORDER if ds in found)


def _load_robustbench(name: str, req: ModelRequest) -> LoadedModel:
    from ctrobust.models.zoo import checkpoint_paths, load_zoo_model, zoo

    if req.checkpoint is not None:
        raise CtrobustError("--checkpoint does not apply to RobustBench models; they live under --model-dir.")
    # The zoo's leaderboard the weights come from: the one asked for, the run's threat where the zoo has one
    # (its names are ThreatModel's values), else Linf's (the zoo has no L1 leaderboard; a model is one checkpoint).
    zoo_th = req.zoo_threat or (req.threat if req.threat.value in zoo().get(req.dataset, {}) else ThreatModel.LINF)
    mdir = resolve_model_dir(req.model_dir)
    net = load_zoo_model(name, req.dataset, zoo_th.value, mdir, req.trust_checkpoint)
    prep: dict[str, object] = {"normalisation": "inside the RobustBench model",
                               "input_size": list(req.info.input_size), "zoo_threat": zoo_th.value}
    paths = checkpoint_paths(name, req.dataset, zoo_th.value, mdir)
    return LoadedModel(name, req.dataset, net, ModelSource.ROBUSTBENCH, str(paths[0]), prep)


def _load_torchvision(name: str, req: ModelRequest) -> LoadedModel:
    from ctrobust.models.torchvision_source import torchvision_model

    net, weights = torchvision_model(name)
    if req.checkpoint is not None:
        _load_weights(net, req.checkpoint, req.trust_checkpoint, f"torchvision:{name}")
    ds = req.info
    mean, std = list(req.mean or ds.mean), list(req.std or ds.std)
    model = Normalized(net, mean, std)
    prep = {**req.preprocessing(), "weights": weights, "mean": mean, "std": std}
    return LoadedModel(f"torchvision:{name}", req.dataset, model.eval(), ModelSource.TORCHVISION,
                       str(req.checkpoint) if req.checkpoint else weights, prep)


def _load_custom(name: str, req: ModelRequest) -> LoadedModel:
    from ctrobust.models.custom import load_factory_model

    net = load_factory_model(name)
    if req.checkpoint is not None:
        _load_weights(net, req.checkpoint, req.trust_checkpoint, name)
    net, prep = _normalised(net, req)
    return LoadedModel(name, req.dataset, net.eval(), ModelSource.CUSTOM, str(req.checkpoint) if req.checkpoint else None,
                       prep)


def _normalised(net: nn.Module, req: ModelRequest) -> tuple[nn.Module, dict[str, object]]:
    """A user's model with the normalisation they gave (--mean/--std) put inside it, or as it is."""
    if (req.mean is None) != (req.std is None):
        raise CtrobustError("Pass both --mean and --std, or neither.")
    if req.mean is not None and req.std is not None:
        return Normalized(net, req.mean, req.std), {**req.preprocessing(), "mean": list(req.mean), "std": list(req.std)}
    return net, {"normalisation": "none added (the model normalises itself, or takes [0, 1])",
                 "input_size": list(req.info.input_size)}


def _load_module(name: str, req: ModelRequest) -> LoadedModel:
    if req.module is None:
        raise CtrobustError("module: models are given as objects from Python: ctrobust.run(model, dataset=...).")
    net, prep = _normalised(req.module, req)
    return LoadedModel(f"module:{name}", req.dataset, net.eval(), ModelSource.MODULE, None, prep)


ModelRow = tuple[str, str, str, str, str]  # model, dataset, zoo threat, architecture, whether CT applies


@dataclass(frozen=True)
class SourceEntry:
    """Everything that differs by model source: its loader, the dataset its names imply (None: --dataset is
    required), whether it takes --mean/--std, how a user names it, and its rows in ``ctrobust models``."""

    load: Callable[[str, ModelRequest], LoadedModel]
    trained_on: Callable[[str], str] | None
    takes_normalisation: bool
    spelling: str  # how a model of this source is named on the command line
    rows: Callable[[str | None, ThreatModel | None], list[ModelRow]] = lambda dataset, threat: []


def _builtin_rows(dataset: str | None, threat: ThreatModel | None) -> list[ModelRow]:
    return [(f"builtin:{name}", entry.dataset, "-", entry.factory.__name__, "yes (ReLU)")
            for name, entry in BUILTIN_MODELS.items() if dataset in (None, entry.dataset) and threat is None]


def _paper_rows(dataset: str | None, threat: ThreatModel | None) -> list[ModelRow]:
    if threat is not None or dataset not in (None, "cifar10", "cifar100"):
        return []
    return [(f"paper:{name}", dataset or "cifar10|cifar100", "-", "CifarResNet", "yes (ReLU)") for name in PAPER_RESNETS]


def _torchvision_rows(dataset: str | None, threat: ThreatModel | None) -> list[ModelRow]:
    if threat is not None or dataset not in (None, "imagenet"):
        return []
    return [("torchvision:NAME", "imagenet", "-", "any torchvision classifier", "where it uses ReLU")]


def _zoo_rows(dataset: str | None, threat: ThreatModel | None) -> list[ModelRow]:
    """The RobustBench zoo, with whether CT applies from the committed audit (``ctrobust audit-ct``)."""
    from ctrobust.models.ct_audit import read_audit
    from ctrobust.models.zoo import zoo

    audit = {(r.dataset, r.threat, r.model): r for r in read_audit()}
    rows: list[ModelRow] = []
    for ds, by_threat in zoo().items():
        for th, models in by_threat.items():
            if dataset not in (None, ds) or (threat is not None and threat.value != th):
                continue
            for name in models:
                r = audit.get((ds, th, name))
                applies = "not audited"
                if r:
                    applies = {"ok": "yes (ReLU)", "not applicable": f"no ({r.other_activations or 'no ReLU'})",
                               "skipped": f"not audited ({r.note})", "error": "not audited (build failed)"}.get(
                                  r.status, r.status)
                rows.append((name, ds, th, r.architecture if r else "?", applies))
    return rows


# One entry per source: adding a source means a ModelSource value (ctrobust/models/source.py), its loader
# module, and its entry here; tests/test_registries.py fails when a source has none.
SOURCES: dict[ModelSource, SourceEntry] = {
    ModelSource.BUILTIN: SourceEntry(_load_builtin, lambda name: _builtin(name).dataset, False, "builtin:NAME",
                                     _builtin_rows),
    ModelSource.PAPER: SourceEntry(_load_paper, None, False, "paper:resnet18|50|152", _paper_rows),
    ModelSource.ROBUSTBENCH: SourceEntry(_load_robustbench, _zoo_dataset, False, "NAME or robustbench:NAME",
                                         _zoo_rows),
    ModelSource.TORCHVISION: SourceEntry(_load_torchvision, lambda name: "imagenet", True, "torchvision:NAME",
                                         _torchvision_rows),
    ModelSource.CUSTOM: SourceEntry(_load_custom, None, True, "path/to/file.py:factory or package.module:factory"),
    ModelSource.MODULE: SourceEntry(_load_module, None, True, "an nn.Module given to ctrobust.run"),
}


def load_model(
    name: str | ModelName,
    dataset: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    threat: ThreatModel = ThreatModel.LINF,
    zoo_threat: ThreatModel | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    trust_checkpoint: bool = False,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    module: nn.Module | None = None,
) -> LoadedModel:
    """Load any supported model, in eval mode, taking images in [0, 1]; ``name``: as typed or as the plan parsed it;
    ``module``: one given as an object."""
    if isinstance(name, ModelName):
        parsed = name
    else:
        parsed = parse_model_name(name) if module is None else ModelName(ModelSource.MODULE, name.removeprefix("module:"))
    request = ModelRequest(canonical_dataset(dataset).name if module is not None and dataset else
                           resolve_model_dataset(parsed, dataset), Path(checkpoint) if checkpoint is not None else None,
                           threat, zoo_threat, model_dir, trust_checkpoint, mean, std, module)
    return SOURCES[parsed.source].load(parsed.name, request)
