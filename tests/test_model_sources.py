"""Every model source: the RobustBench zoo offline, checkpoint safety, custom, paper, torchvision."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import read_json, run_cli
from ctrobust.data.cifar import write_cifar_batch
from ctrobust.errors import CtrobustError
from ctrobust.models.checkpoint import load_checkpoint
from ctrobust.models.registry import parse_model_name, resolve_model_dataset
from test_cli_errors import assert_one_line_error

# its module-scoped fixture is built once: pytest-xdist keeps this file's tests on one worker
pytestmark = pytest.mark.xdist_group("test_model_sources")

OFFLINE = {"CTROBUST_OFFLINE": "1"}


def write_tiny_cifar10(data_dir: Path, n: int = 16, train: bool = False, labels: np.ndarray | None = None) -> np.ndarray:
    """A CIFAR-10 python-format test (and train) set of random images; returns the images."""
    gen = np.random.default_rng(0)
    images = gen.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = np.arange(n) % 10 if labels is None else labels
    write_cifar_batch(data_dir / "cifar-10-batches-py" / "test_batch", images, labels)
    if train:
        for i in range(1, 6):
            write_cifar_batch(data_dir / "cifar-10-batches-py" / f"data_batch_{i}", images, labels)
    return images


@pytest.fixture(scope="module")
def standard_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised RobustBench `Standard` state dict at RobustBench's path."""
    from ctrobust.models.zoo import build_zoo_architecture

    model_dir = tmp_path_factory.mktemp("models")
    path = model_dir / "cifar10" / "Linf" / "Standard.pt"
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(build_zoo_architecture("Standard", "cifar10", "Linf").state_dict(), path)
    return model_dir


def test_name_parsing() -> None:
    assert parse_model_name("smallcnn").source == "builtin"
    assert parse_model_name("Standard").source == "robustbench"
    assert parse_model_name("robustbench:Standard").name == "Standard"
    assert parse_model_name("torchvision:resnet50").source == "torchvision"
    assert parse_model_name("paper:resnet18").source == "paper"
    assert parse_model_name("my/model.py:build").source == "custom"
    assert parse_model_name("mypkg.models:build").source == "custom"
    assert resolve_model_dataset("Standard", None) == "cifar10"
    assert resolve_model_dataset("smallcnn", None) == "fashion-mnist"
    with pytest.raises(CtrobustError, match="robustbench:NAME"):
        parse_model_name("resnet9000")
    with pytest.raises(CtrobustError, match="prefix"):
        parse_model_name("hub:thing")


@pytest.mark.slow
def test_standard_evaluates_offline_end_to_end(tmp_path: Path, standard_checkpoint: Path) -> None:
    """The acceptance command. Labels are set so the random-weight WRN-28-10 gets every point wrong:
    AutoAttack on one point it gets right costs about 100 s on 2 CPU cores (measured), too slow for CI."""
    from ctrobust.models.zoo import build_zoo_architecture

    images = write_tiny_cifar10(tmp_path / "data")
    model = build_zoo_architecture("Standard", "cifar10", "Linf")
    model.load_state_dict(torch.load(standard_checkpoint / "cifar10" / "Linf" / "Standard.pt", weights_only=True))
    with torch.no_grad():
        pred = model(torch.from_numpy(images).float() / 255).argmax(1).numpy()
    write_tiny_cifar10(tmp_path / "data", labels=(pred + 1) % 10)
    before = (standard_checkpoint / "cifar10" / "Linf" / "Standard.pt").read_bytes()
    proc = run_cli(
        "eval", "--model", "Standard", "--dataset", "cifar10", "--threat", "linf", "--n-examples", "8",
        "--n-select", "8", "--betas", "0.9,0.95", "--model-dir", str(standard_checkpoint),
        "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--no-progress", env=OFFLINE,
    )
    assert proc.returncode == 0, proc.stderr
    result = read_json(tmp_path / "out" / "result.json")
    assert result["model"] == "Standard" and result["dataset"] == "cifar10" and result["eps"] == 8 / 255
    cov = result["ct_coverage"]
    assert cov["module_calls"] == 25 and cov["functional_calls"] == 0  # WRN-28-10: 12 blocks x 2 + final
    assert result["base"]["clean_accuracy"] == 0.0 and set(result["select_curve"]) == {"0.9", "0.95", "1.0"}
    assert (standard_checkpoint / "cifar10" / "Linf" / "Standard.pt").read_bytes() == before


def test_standard_missing_offline_names_exact_path(tmp_path: Path) -> None:
    write_tiny_cifar10(tmp_path / "data")
    proc = run_cli("eval", "--model", "Standard", "--threat", "linf", "--model-dir", str(tmp_path / "m"),
                   "--data-dir", str(tmp_path / "data"), "--n-examples", "8", "--n-select", "8", env=OFFLINE)
    assert_one_line_error(proc, str(tmp_path / "m" / "cifar10" / "Linf" / "Standard.pt"))


def test_html_page_as_checkpoint_is_refused_untouched(tmp_path: Path) -> None:
    write_tiny_cifar10(tmp_path / "data")
    path = tmp_path / "m" / "cifar10" / "Linf" / "Standard.pt"
    path.parent.mkdir(parents=True)
    page = "<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>"
    path.write_text(page)
    proc = run_cli("eval", "--model", "Standard", "--threat", "linf", "--model-dir", str(tmp_path / "m"),
                   "--data-dir", str(tmp_path / "data"), "--n-examples", "8", "--n-select", "8")
    assert_one_line_error(proc, str(path), "HTML page")
    assert path.read_text() == page


def test_unsafe_pickle_needs_trust(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "args": Path("/x")}, path)  # an arbitrary class in the pickle
    with pytest.raises(CtrobustError, match="--trust-checkpoint"):
        load_checkpoint(path)
    assert load_checkpoint(path, trust=True)["state_dict"]["w"].shape == (2,)


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CtrobustError, match=str(path)):
        load_checkpoint(path)


def test_zoo_threat_hint(tmp_path: Path) -> None:
    from ctrobust.models.zoo import zoo_entry

    with pytest.raises(CtrobustError, match="--zoo-threat Linf"):
        zoo_entry("Carmon2019Unlabeled", "cifar10", "L2")


CUSTOM_MODEL = textwrap.dedent(
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, stride=2)
            self.fc = nn.Linear(8 * 15 * 15, 10)

        def forward(self, x):
            h = F.relu(self.conv(x))
            return self.fc(torch.relu(h).flatten(1))

    def build():
        torch.manual_seed(0)
        return Net()
    """
)


@pytest.mark.slow
def test_custom_model_with_functional_relus(tmp_path: Path) -> None:
    src = tmp_path / "mynet.py"
    src.write_text(CUSTOM_MODEL)
    proc = run_cli(
        "eval", "--model", f"{src}:build", "--dataset", "fashion-mnist", "--mean", "0.286", "--std", "0.353",
        "--n-examples", "20", "--n-select", "20", "--betas", "0.8,0.9", "--attack", "apgd-ce", "--steps", "5",
        "--out", str(tmp_path / "out"), "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    result = read_json(tmp_path / "out" / "result.json")
    assert result["ct_coverage"]["functional_calls"] == 2 and result["ct_coverage"]["module_calls"] == 0
    assert result["model_source"]["mean"] == [0.286]


def test_custom_model_without_dataset_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "mynet.py"
    src.write_text(CUSTOM_MODEL)
    assert_one_line_error(run_cli("eval", "--model", f"{src}:build"), "--dataset")


def test_model_without_relu_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "silu.py"
    src.write_text(CUSTOM_MODEL.replace("F.relu", "F.silu").replace("torch.relu", "torch.tanh"))
    proc = run_cli("eval", "--model", f"{src}:build", "--dataset", "fashion-mnist", "--n-examples", "10",
                   "--n-select", "10", "--no-progress")
    assert_one_line_error(proc, "CT reaches no ReLU", "silu", "tanh")


@pytest.mark.slow
def test_paper_resnet_train_smoke_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny_cifar10(tmp_path / "data", n=16, train=True)
    from ctrobust.models import train as train_module
    from ctrobust.models.train import paper_config, resume_path, train_model

    cfg = paper_config("paper:resnet18", "cifar10", epochs=2, batch_size=8, data_dir=str(tmp_path / "data"))
    out = tmp_path / "r18.pt"
    calls = {"n": 0}
    real_augment = train_module._augment

    def interrupt_in_second_epoch(xb, recipe, gen):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 7:  # 80 train images / 16 = 5 batches per epoch: the 7th batch is in epoch 2
            raise KeyboardInterrupt
        return real_augment(xb, recipe, gen)

    monkeypatch.setattr(train_module, "_augment", interrupt_in_second_epoch)
    cfg_short = paper_config("paper:resnet18", "cifar10", epochs=2, batch_size=16, data_dir=str(tmp_path / "data"))
    with pytest.raises(KeyboardInterrupt):
        train_model(cfg_short, out, progress=False)
    assert resume_path(out).is_file() and not out.exists()
    monkeypatch.setattr(train_module, "_augment", real_augment)
    meta = train_model(cfg_short, out, progress=False)
    assert meta["resumed_from_epoch"] == 1 and out.is_file() and not resume_path(out).exists()
    assert cfg.lr == 0.1 and cfg.epochs == 2 and cfg.recipe == "paper"


@pytest.mark.slow
def test_train_cli_paper_few_batches(tmp_path: Path) -> None:
    write_tiny_cifar10(tmp_path / "data", n=16, train=True)
    out = tmp_path / "r18.pt"
    proc = run_cli("train", "--model", "paper:resnet18", "--dataset", "cifar10", "--max-batches", "2",
                   "--batch-size", "8", "--data-dir", str(tmp_path / "data"), "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    meta = read_json(out.with_suffix(".json"))
    assert meta["recipe"] == "paper" and meta["epochs"] == 200 and meta["lr"] == 0.1 and meta["max_batches"] == 2


def test_torchvision_offline_names_cache_path(tmp_path: Path) -> None:
    write_tiny_cifar10(tmp_path / "data")
    proc = run_cli("eval", "--model", "torchvision:resnet18", "--dataset", "cifar10", "--n-examples", "8",
                   "--n-select", "8", "--data-dir", str(tmp_path / "data"),
                   env={**OFFLINE, "TORCH_HOME": str(tmp_path / "torch")})
    assert_one_line_error(proc, str(tmp_path / "torch" / "hub" / "checkpoints"), "resnet18")


def test_models_command_lists_sources() -> None:
    proc = run_cli("models", "--dataset", "cifar10", "--threat", "linf")
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert "Standard" in lines and "yes (ReLU)" in lines["Standard"]
    assert "not applicable" not in proc.stdout
    assert any("no (" in line for line in lines.values())  # SiLU / Swish models are marked


def test_a_missing_factory_lists_the_callables_the_file_has(tmp_path: Path) -> None:
    """Issue 37 item 9: ``file.py:nonexistent`` names what the file defines (not what it imports)."""
    from ctrobust.models.custom import load_factory_model

    path = tmp_path / "net.py"
    path.write_text("import torch.nn as nn\nfrom torch.nn import Linear\n\n\nclass Net(nn.Module):\n    pass\n\n\n"
                    "def build():\n    return Net()\n\n\ndef _helper():\n    pass\n")
    with pytest.raises(CtrobustError) as info:
        load_factory_model(f"{path}:nonexistent")
    assert str(info.value) == f"{path} has no callable 'nonexistent'; it defines Net, build."
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(CtrobustError, match="it defines no function or class"):
        load_factory_model(f"{tmp_path / 'empty.py'}:build")
