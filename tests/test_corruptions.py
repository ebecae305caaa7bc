"""The corruption threat: names, official CIFAR-10-C layout, generated Fashion-MNIST cells, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import read_json, run_cli
from ctrobust.corruptions import CORRUPTIONS, parse_corruptions, parse_severities
from ctrobust.corruptions.generated import GeneratedCorruptions
from ctrobust.corruptions.official import load_official_cell
from ctrobust.corruptions.source import corrupted_cells
from ctrobust.errors import CtrobustError
from test_cli_errors import assert_one_line_error


def test_fifteen_robustbench_corruptions() -> None:
    from ctrobust.compat.robustbench_import import import_robustbench

    import_robustbench()
    from robustbench.data import CORRUPTIONS as RB

    assert CORRUPTIONS == tuple(RB)
    assert parse_corruptions(None) == list(CORRUPTIONS) and parse_severities(None) == [1, 2, 3, 4, 5]
    assert parse_corruptions("fog, glass-blur") == ["fog", "glass_blur"]
    assert parse_severities("2-4") == [2, 3, 4] and parse_severities("5,1") == [1, 5]


@pytest.mark.parametrize("bad", ["fogg", "fog,speckle_noise"])
def test_unknown_corruption(bad: str) -> None:
    with pytest.raises(CtrobustError, match="Unknown corruption"):
        parse_corruptions(bad)


@pytest.mark.parametrize("bad", ["0", "6", "1-6", "x", ""])
def test_bad_severity(bad: str) -> None:
    with pytest.raises(CtrobustError, match="severit"):
        parse_severities(bad)


N_TINY = 12


def write_tiny_cifar10c(root: Path, corruptions: tuple[str, ...] = ("fog", "snow")) -> Path:
    """A CIFAR-10-C-format dir: pixel (0,0,0) holds the severity, pixel (0,1,0) the image index."""
    d = root / "CIFAR-10-C"
    d.mkdir(parents=True)
    labels = np.tile(np.arange(N_TINY) % 10, 5).astype(np.uint8)  # the real labels.npy repeats per severity
    np.save(d / "labels.npy", labels)
    for k, name in enumerate(corruptions):
        images = np.zeros((5 * N_TINY, 32, 32, 3), dtype=np.uint8)
        for s in range(1, 6):
            block = slice((s - 1) * N_TINY, s * N_TINY)
            images[block, 0, 0, 0] = s
            images[block, 0, 1, 0] = np.arange(N_TINY)
            images[block, 0, 2, 0] = k
        np.save(d / f"{name}.npy", images)
    return d


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_official_severity_reads_its_block(tmp_path: Path, severity: int) -> None:
    root = write_tiny_cifar10c(tmp_path)
    idx = [0, 3, 11]
    x, y = load_official_cell(root, "snow", severity, idx)
    assert x.shape == (3, 3, 32, 32) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert torch.equal((x[:, 0, 0, 0] * 255).round().long(), torch.full((3,), severity))
    assert torch.equal((x[:, 0, 0, 1] * 255).round().long(), torch.tensor(idx))
    assert (x[:, 0, 0, 2] * 255).round().long().tolist() == [1, 1, 1]  # snow, not fog
    assert y.tolist() == [0, 3, 1]


def test_official_files_used_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny_cifar10c(tmp_path)
    import ctrobust.corruptions.official as official

    def no_download(*_a: object, **_k: object) -> None:
        raise AssertionError("must not download when the files are present")

    monkeypatch.setattr(official, "import_robustbench", no_download, raising=False)
    x_test = torch.zeros(N_TINY, 3, 32, 32)
    cells, info = corrupted_cells("cifar10", tmp_path, x_test, torch.zeros(N_TINY, dtype=torch.long), [2, 5],
                                  ["fog"], [4], seed=0)
    assert info["source"] == "official"
    x, _ = cells[("fog", 4)]
    assert (x[:, 0, 0, 0] * 255).round().long().tolist() == [4, 4]


def test_official_missing_says_where(tmp_path: Path) -> None:
    from ctrobust.corruptions.official import ensure_official

    with pytest.raises(CtrobustError, match=str(tmp_path / "CIFAR-10-C")):
        ensure_official("cifar10", tmp_path, download=False)


def _images(n: int = 6) -> np.ndarray:
    gen = np.random.default_rng(0)
    return gen.integers(0, 256, size=(n, 32, 32), dtype=np.uint8)


def test_generated_is_deterministic_per_image_and_cached(tmp_path: Path) -> None:
    images = _images()
    names = ["glass_blur", "impulse_noise", "shot_noise"]
    a = GeneratedCorruptions("toy", images, tmp_path / "a", seed=7, workers=1)
    cells_a = a.cells(names, [2], [0, 1, 2, 3])
    assert a.generated == 12
    b = GeneratedCorruptions("toy", images, tmp_path / "b", seed=7, workers=1)
    cells_b = b.cells(names, [2], [3, 1])  # other indices asked, other order: same images
    for name in names:
        assert np.array_equal(cells_b[(name, 2)], cells_a[(name, 2)][[3, 1]])
        assert not np.array_equal(cells_a[(name, 2)], images[:4])
    again = GeneratedCorruptions("toy", images, tmp_path / "a", seed=7, workers=1)
    assert all(np.array_equal(v, cells_a[k]) for k, v in again.cells(names, [2], [0, 1, 2, 3]).items())
    assert again.generated == 0
    other_seed = GeneratedCorruptions("toy", images, tmp_path / "a", seed=8, workers=1).cells(["shot_noise"], [2], [0])
    assert not np.array_equal(other_seed[("shot_noise", 2)], cells_a[("shot_noise", 2)][:1])


def test_generated_in_parallel_equals_serial(tmp_path: Path) -> None:
    images = _images(4)
    serial = GeneratedCorruptions("toy", images, tmp_path / "s", seed=1, workers=1).cells(["fog", "snow"], [1, 3], range(4))
    parallel = GeneratedCorruptions("toy", images, tmp_path / "p", seed=1, workers=2).cells(
        ["fog", "snow"], [1, 3], range(4))
    assert serial.keys() == parallel.keys()
    assert all(np.array_equal(serial[k], parallel[k]) for k in serial)


@pytest.mark.parametrize("args,needles", [
    (["--corruptions", "fogg"], ["Unknown corruption", "fog"]),
    (["--severities", "6"], ["severities between 1 and 5"]),
    (["--severities", "0-2"], ["severities between 1 and 5"]),
    (["--eps", "0.1"], ["--eps does not apply"]),
])
def test_cli_bad_corruption_input(args: list[str], needles: list[str]) -> None:
    assert_one_line_error(run_cli("eval", "--threat", "corruptions", "--no-progress", *args), *needles)


def test_cli_corruption_flags_need_corruption_threat() -> None:
    assert_one_line_error(run_cli("eval", "--threat", "linf", "--severities", "1"), "only to --threat corruptions")


@pytest.mark.slow
def test_cli_corruptions_end_to_end_and_cache(tmp_path: Path) -> None:
    args = ["eval", "--model", "smallcnn", "--dataset", "fashion-mnist", "--threat", "corruptions",
            "--n-examples", "30", "--n-select", "20", "--betas", "0.85,0.95", "--corruptions", "fog,shot_noise,contrast",
            "--severities", "1,5", "--data-dir", str(tmp_path / "data"), "--no-progress"]
    first = run_cli(*args, "--out", str(tmp_path / "r1"))
    assert first.returncode == 0, first.stderr
    assert "corr. acc" in first.stdout
    r1 = read_json(tmp_path / "r1" / "result.json")
    assert r1["threat"] == "corruptions" and r1["corruption_data"]["source"] == "generated"
    assert r1["corruption_data"]["generated_images"] == 50 * 6
    for part in ("base", "ct"):
        cells = r1[part]["cells"]
        assert set(cells) == {"fog", "shot_noise", "contrast"} and all(set(v) == {"1", "5"} for v in cells.values())
        mean = np.mean([a for v in cells.values() for a in v.values()])
        assert r1[part]["robust_accuracy"] == pytest.approx(mean)
    second = run_cli(*args, "--out", str(tmp_path / "r2"))
    assert second.returncode == 0, second.stderr
    r2 = read_json(tmp_path / "r2" / "result.json")
    assert r2["corruption_data"]["generated_images"] == 0
    assert r2["base"]["cells"] == r1["base"]["cells"] and r2["ct"]["cells"] == r1["ct"]["cells"]
