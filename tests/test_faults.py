"""Bad input and faults: one line on stderr, the right exit code, no traceback, nothing wrong written.

Each case names the row of the fault table it covers (issue "Every bad input and fault handled").
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error, interruptible, run_cli
from ctrobust.outputs import safe_name

TINY = ["--n-examples", "20", "--n-select", "20", "--betas", "0.9", "--attack", "apgd-ce", "--steps", "2",
        "--select-steps", "2", "--no-progress"]

NAN_MODEL = '''
import torch
import torch.nn as nn


class NaNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32 * 32, 10)

    def forward(self, x):
        return torch.relu(self.fc(x.flatten(1))) * float("nan")


def build():
    return NaNNet()


class SqrtNet(nn.Module):
    """Finite with ReLU (its output is >= 0), NaN under CT, whose unit goes below 0."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(32 * 32, 10)

    def forward(self, x):
        return torch.sqrt(torch.relu(self.fc(x.flatten(1) - 0.3)))


def build_sqrt():
    return SqrtNet()
'''


def _cells(store: Path) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        return int(db.execute("SELECT COUNT(*) FROM cells").fetchone()[0])


# 1. Path traversal through a reproduce config's name.
@pytest.mark.slow
def test_reproduce_name_cannot_leave_reports(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    config = tmp_path / "evil.toml"
    config.write_text('name = "x/../../../../../../elsewhere"\n[defaults]\nn_examples = 10\nn_select = 10\n'
                      'betas = "0.9"\nattack = "apgd-ce"\nsteps = 2\nselect_steps = 2\n'
                      '[[grid]]\nmodels = ["smallcnn"]\ndatasets = ["fashion-mnist"]\nthreats = ["linf"]\n'
                      'seeds = [1]\nprotocols = ["heldout"]\n')
    before = {p for p in tmp_path.rglob("*")}
    proc = run_cli("reproduce", "--config", str(config), "--no-progress", cwd=work)
    assert proc.returncode == 0, proc.stderr
    written = {p for p in tmp_path.rglob("*") if not p.name.startswith("store.sqlite")} - before  # the test's store
    assert written and all(work / "reports" in p.parents or p == work / "reports" for p in written), written
    assert (work / "reports" / f"reproduce-{safe_name('x/../../../../../../elsewhere')}" / "table.md").is_file()


# 2. A model whose outputs are NaN is not scored: caught on the first batch, or in the stage where CT makes it so.
@pytest.mark.parametrize("factory,needles", [
    ("build", ["NaN or infinite", "clean fashion-mnist images"]),
    ("build_sqrt", ["NaN or infinite", "choosing beta, beta 0.9", "nothing was stored"]),
])
def test_nan_outputs_stop_with_one_line_and_store_nothing(tmp_path: Path, factory: str, needles: list[str]) -> None:
    src = tmp_path / "nan_net.py"
    src.write_text(NAN_MODEL)
    store = tmp_path / "s.sqlite"
    proc = run_cli("eval", "--model", f"{src}:{factory}", "--dataset", "fashion-mnist", *TINY, "--store", str(store),
                   "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, *needles)
    assert _cells(store) == 0
    assert not (tmp_path / "out" / "result.json").exists()


# 3. A bad --out is refused before any work.
@pytest.mark.parametrize("kind", ["existing file", "under /proc", "under a file"])
def test_bad_out_refused_before_work(tmp_path: Path, kind: str) -> None:
    existing = tmp_path / "a-file"
    existing.write_text("keep me")
    out = {"existing file": existing, "under /proc": Path("/proc/nonsense/out"),
           "under a file": existing / "sub"}[kind]
    store = tmp_path / "s.sqlite"
    start = time.perf_counter()
    proc = run_cli("eval", *TINY, "--out", str(out), "--store", str(store))
    assert_one_line_error(proc, "--out")
    assert _cells(store) == 0 and existing.read_text() == "keep me"
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize("command", ["report", "leaderboard"])
def test_report_and_leaderboard_out_is_a_file(tmp_path: Path, command: str) -> None:
    existing = tmp_path / "a-file"
    existing.write_text("keep me")
    proc = run_cli(command, "--out", str(existing), "--store", str(tmp_path / "none.sqlite"))
    assert_one_line_error(proc, "--out", "existing file")
    assert existing.read_text() == "keep me"


# 4. Leaderboard names cut to 80 characters never collide.
def test_long_names_do_not_collide() -> None:
    stem = "/very/long/directory/" + "d" * 90
    one, two = safe_name(f"{stem}/model_v1.py:build"), safe_name(f"{stem}/model_v2.py:build")
    assert one != two and len(one) <= 80 and len(two) <= 80
    assert safe_name("smallcnn") == "smallcnn"


# 5. Ctrl-C at any moment: exit 130, one line, the store intact.
@pytest.mark.slow
@pytest.mark.parametrize("delay", [1.5, 4.0, 7.0])
def test_ctrl_c_exits_130_with_one_line(tmp_path: Path, delay: float) -> None:
    store = tmp_path / "s.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "ctrobust.cli.main", "eval", "--n-examples", "200",
                             "--n-select", "100", "--betas", "0.8:0.95:0.05", "--attack", "apgd-ce", "--no-progress",
                             "--store", str(store), "--out", str(tmp_path / "out")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # finished before the signal: nothing to check
        return
    assert proc.returncode == 130, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("ctrobust: interrupted") and "Traceback" not in err, err
    if store.exists():
        with sqlite3.connect(store) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# 10. Command-line mistakes are one line, exit 2.
@pytest.mark.parametrize("args", [["eval", "--device", "tpu"], ["eval", "--no-such-option"], ["nonsense"],
                                  ["eval", "--n-examples", "many"]])
def test_argparse_errors_are_one_line(args: list[str]) -> None:
    proc = run_cli(*args)
    assert_one_line_error(proc, "--help")


# 7 and 8. Values that used to end in a traceback or be accepted without a word.
@pytest.mark.parametrize("args,needles", [
    (["--seed", "1180591620717411303424"], ["--seed"]),
    (["--seed", "-1"], ["--seed"]),
    (["--betas", "0.7:inf:0.01"], ["--betas"]),
    (["--betas", "0.7:0.99:1e-7"], ["--betas", "at most 1000"]),
    (["--eps", "1e30"], ["eps", "range"]),
    (["--eps", "2"], ["Linf eps 2", "every image"]),
    (["--std", "nan", "--mean", "0.5"], ["--std"]),
    (["--mean", "0.5", "--std", "0.5"], ["--mean/--std", "smallcnn"]),
    (["--n-select", "0"], ["--n-select"]),
])
def test_bad_values_one_line(args: list[str], needles: list[str], tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    proc = run_cli("eval", *TINY, *args, "--store", str(store))
    assert_one_line_error(proc, *needles)
    assert not store.exists()


def test_bad_ctu_environment_names_the_variable(tmp_path: Path) -> None:
    proc = run_cli("eval", *TINY, "--store", str(tmp_path / "s.sqlite"), env={"CTROBUST_CTU": "nonsense"})
    assert_one_line_error(proc, "$CTROBUST_CTU", "'nonsense'")


WRONG_SHAPES = '''
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.fc = nn.Linear(32 * 32, 20)
        self.shape = shape

    def forward(self, x):
        out = torch.relu(self.fc(x.flatten(1)))
        if self.shape == "raise":
            raise ValueError("this model is broken")
        return {"n102": out.view(-1, 10, 2), "n": out[:, 0], "three": out[:, :3], "thousand": out.repeat(1, 50)}[self.shape]


def n102():
    return Net("n102")


def n():
    return Net("n")


def three():
    return Net("three")


def thousand():
    return Net("thousand")


def raises():
    return Net("raise")
'''


@pytest.mark.parametrize("factory,needle", [("n102", "expected (batch, 10)"), ("n", "expected (batch, 10)"),
                                            ("three", "3 outputs"), ("thousand", "1000 outputs"),
                                            ("raises", "ValueError: this model is broken")])
def test_model_output_checked_on_one_batch(tmp_path: Path, factory: str, needle: str) -> None:
    src = tmp_path / "shapes.py"
    src.write_text(WRONG_SHAPES)
    store = tmp_path / "s.sqlite"
    proc = run_cli("eval", "--model", f"{src}:{factory}", "--dataset", "fashion-mnist", *TINY, "--store", str(store))
    assert_one_line_error(proc, needle)
    assert _cells(store) == 0


@pytest.mark.parametrize("body,needle", [
    # (betas = 0.9 is one beta, as betas=0.9 is from Python: a TOML value converts as a Python value does)
    ('[defaults]\nbetas = true\n[[grid]]\nmodels = ["smallcnn"]\n', "betas"),
    ('[defaults]\nn_select = 1.5\n[[grid]]\nmodels = ["smallcnn"]\n', "n_select"),
    ('defaults = 5\n[[grid]]\nmodels = ["smallcnn"]\n', "[defaults]"),
    ('[[grid]]\nmodels = ["smallcnn"]\nthreats = [5]\n', "threats"),
    ('[[grid]]\nmodels = ["smallcnn"]\nseeds = [1.5]\n', "seeds"),
    ('[[grid]]\nmodels = ["smallcnn"]\nthreats = "x"\n', "threat"),
])
def test_badly_typed_config_values(tmp_path: Path, body: str, needle: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(body)
    assert_one_line_error(run_cli("reproduce", "--config", str(config), "--dry-run"), needle)


def test_directory_as_config(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("reproduce", "--config", str(tmp_path), "--dry-run"), "not a file")


# 9. Nothing written when the input is refused: no empty store file.
@pytest.mark.parametrize("args", [["--model", "nonsense_model"], ["--n-examples", "20000"],
                                  ["--checkpoint", "/no/such/file.pt"]])
def test_refused_run_leaves_no_store(tmp_path: Path, args: list[str]) -> None:
    store = tmp_path / "s.sqlite"
    proc = run_cli("eval", *TINY, *args, "--store", str(store))
    assert proc.returncode == 2, proc.stderr
    assert not store.exists()


# 7. The store's location is checked before any work; its disk filling up is one line.
def test_store_under_proc_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("eval", *TINY, env={"CTROBUST_STORE": "/proc/nonsense/x.db"})
    assert_one_line_error(proc, "/proc")


def test_store_disk_full_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctrobust.cell import Scored
    from ctrobust.errors import CtrobustError
    from ctrobust.results.store import open_store

    store = open_store(tmp_path / "s.sqlite")
    identity = {"model": "m", "dataset": "d", "threat": "Linf", "attack": {}, "beta": 1.0, "split": "eval",
                "seed": 0, "n": 1}
    store.put_cell(identity, Scored({}, {}), {})
    store._db.execute("PRAGMA max_page_count = 1")  # the next write finds the disk full
    with pytest.raises(CtrobustError, match="full; every cell finished before is kept"):
        store.put_cell({**identity, "beta": 0.5}, Scored({}, {"x": "y" * 10000}), {})
    store.close()
    with open_store(tmp_path / "s.sqlite") as reopened:
        assert reopened.count_cells() == 1


# 7. A truncated or non-gzip data file.
@pytest.mark.parametrize("content", [b"", b"not gzip at all", "truncated"])
def test_damaged_data_file_is_one_line(tmp_path: Path, content: bytes | str) -> None:
    import gzip
    import shutil

    system = tmp_path / "fmnist"
    system.mkdir()
    source = Path("/usr/share/datasets/fashion-mnist")
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(source / name, system / name)
    damaged = system / "t10k-images-idx3-ubyte.gz"
    if content == "truncated":
        damaged.write_bytes(damaged.read_bytes()[:5000])
    else:
        damaged.write_bytes(content)
    assert gzip  # the module the reader uses
    proc = run_cli("eval", *TINY, env={"CTROBUST_FASHION_MNIST_SYSTEM_DIR": str(system), "CTROBUST_OFFLINE": "1",
                                       "CTROBUST_DATA_DIR": str(tmp_path / "data")})
    assert_one_line_error(proc, str(damaged))


# 6. A damaged corruption cache is noticed by its checksum and generated again.
@pytest.mark.parametrize("damage", ["truncated", "zeros without checksum", "zeros with a wrong checksum"])
def test_damaged_corruption_cache_is_regenerated(tmp_path: Path, damage: str) -> None:
    import numpy as np

    from ctrobust.corruptions.generated import GeneratedCorruptions

    images = (np.arange(6 * 32 * 32) % 251).astype(np.uint8).reshape(6, 32, 32)
    first = GeneratedCorruptions("toy", images, tmp_path, seed=3, workers=1)
    good = first.cells(["shot_noise"], [2], [0, 1, 2])[("shot_noise", 2)]
    path = first._path("shot_noise", 2)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        extra = {"sha256": np.asarray("0" * 64)} if "wrong" in damage else {}
        np.savez(path, indices=np.arange(3), images=np.zeros_like(good), **extra)
    again = GeneratedCorruptions("toy", images, tmp_path, seed=3, workers=1)
    assert np.array_equal(again.cells(["shot_noise"], [2], [0, 1, 2])[("shot_noise", 2)], good)
    assert again.generated == 3
    third = GeneratedCorruptions("toy", images, tmp_path, seed=3, workers=1)
    third.cells(["shot_noise"], [2], [0, 1, 2])
    assert third.generated == 0  # the rewritten file is good again


# 7. A broken JSON file in the leaderboard folder: the pages are built from the store, so it cannot
# break them (tests/test_report.py::test_leaderboard_entries_and_pages puts one there).


# 10. A refused legacy (non-zip) pickle is one line, without torch's warning before it.
def test_legacy_pickle_refused_in_one_line(tmp_path: Path) -> None:
    import torch

    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    proc = run_cli("eval", *TINY, "--checkpoint", str(legacy), "--store", str(tmp_path / "s.sqlite"))
    assert_one_line_error(proc, str(legacy))
    assert not (tmp_path / "s.sqlite").exists()


# 8. Test labels outside the model's classes.
def test_labels_out_of_range_refused(tmp_path: Path) -> None:
    import gzip
    import shutil

    system = tmp_path / "fmnist"
    system.mkdir()
    source = Path("/usr/share/datasets/fashion-mnist")
    shutil.copy(source / "t10k-images-idx3-ubyte.gz", system / "t10k-images-idx3-ubyte.gz")
    labels = bytearray(gzip.decompress((source / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    labels[8 + 5] = 200  # one label out of range (8 header bytes)
    (system / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels)))
    store = tmp_path / "s.sqlite"
    proc = run_cli("eval", *TINY, "--store", str(store),
                   env={"CTROBUST_FASHION_MNIST_SYSTEM_DIR": str(system), "CTROBUST_OFFLINE": "1",
                        "CTROBUST_DATA_DIR": str(tmp_path / "data")})
    assert_one_line_error(proc, "labels run from 0 to 200")
    assert not store.exists()


def _in_private_mount(tmp_path: Path, options: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ctrobust with ``tmp_path/mnt`` a tmpfs mounted with ``options`` in a private mount namespace."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = f'mount -t tmpfs -o {options} tmpfs "{mnt}" && exec "$@"'
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-m", "ctrobust.cli.main",
                           *argv], capture_output=True, text=True, cwd=REPO, timeout=300)


def _can_mount(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    ok = subprocess.run(["unshare", "-m", "sh", "-c", f'mount -t tmpfs tmpfs "{probe}"'], capture_output=True)
    return ok.returncode == 0


# 3. Read-only and full filesystems, found before any work.
@pytest.mark.parametrize("command,options,needle", [
    (["eval", *TINY], "ro", "not writable"),
    (["eval", *TINY], "size=1m", "full"),
    (["leaderboard"], "ro", "not writable"),
])
def test_out_on_read_only_or_full_filesystem(tmp_path: Path, command: list[str], options: str, needle: str) -> None:
    if not _can_mount(tmp_path):
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root and must be able to mount a private tmpfs")
        pytest.skip("needs root to mount a private tmpfs")
    out = tmp_path / "mnt" / "out"
    store = tmp_path / "s.sqlite"
    proc = _in_private_mount(tmp_path, options, [*command, "--out", str(out), "--store", str(store)])
    assert_one_line_error(proc, needle)
    assert not store.exists()
