"""Bad input: one line on stderr, exit code 2, no traceback. And --help that explains."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli

FAST = ["--n-examples", "10", "--n-select", "10", "--betas", "0.9", "--attack", "pgd", "--steps", "2",
        "--select-steps", "2", "--no-progress"]


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--model", "smalcnn"], ["Unknown model", "smallcnn"]),
        (["--eps", "-0.1"], ["eps", "-0.1"]),
        (["--eps", "0"], ["eps"]),
        (["--betas", "0.5,1.2"], ["beta", "[0, 1]"]),
        (["--betas", "-0.1"], ["beta"]),
        (["--betas", "zero"], ["--betas"]),
        (["--threat", "l3"], ["Unknown threat model", "l2"]),
        (["--attack", "fgsm"], ["Unknown attack"]),
        (["--dataset", "cifar11"], ["Unknown dataset"]),
        (["--protocol", "best"], ["--protocol"]),
        (["--n-examples", "9990", "--n-select", "500"], ["--n-select"]),
    ],
)
def test_bad_eval_input(args: list[str], needles: list[str]) -> None:
    proc = run_cli("eval", *FAST, *args)
    assert_one_line_error(proc, *needles)


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "smallcnn.pt"
    bad.write_text("<html><body>Google Drive: virus scan warning</body></html>")
    proc = run_cli("eval", *FAST, "--checkpoint", str(bad))
    assert_one_line_error(proc, str(bad), "HTML page", "untouched")
    assert bad.read_text().startswith("<html>")


def test_missing_checkpoint(tmp_path: Path) -> None:
    proc = run_cli("eval", *FAST, "--checkpoint", str(tmp_path / "nope.pt"))
    assert_one_line_error(proc, "Checkpoint not found", "nope.pt")


def test_missing_data(tmp_path: Path) -> None:
    env = {"CTROBUST_FASHION_MNIST_SYSTEM_DIR": str(tmp_path / "none"), "CTROBUST_OFFLINE": "1"}
    proc = run_cli("eval", *FAST, "--data-dir", str(tmp_path / "data"), env=env)
    assert_one_line_error(proc, "Fashion-MNIST not found", "apt-get install dataset-fashion-mnist")


def test_cuda_without_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = run_cli("eval", *FAST, "--device", "cuda")
    assert_one_line_error(proc, "--device cpu")


def test_train_bad_epochs() -> None:
    assert_one_line_error(run_cli("train", "--epochs", "0"), "epochs")


@pytest.mark.parametrize("command", ["eval", "train"])
def test_help_explains(command: str) -> None:
    proc = run_cli(command, "--help")
    assert proc.returncode == 0
    assert "examples:" in proc.stdout
    if command == "eval":
        for flag in ("--threat", "--eps", "--betas", "--n-select", "--protocol", "--select-attack", "--json"):
            assert flag in proc.stdout


def test_top_level_help() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0 and "eval" in proc.stdout and "train" in proc.stdout
