"""Nothing stale, nothing trusted blindly: a stored number is reused only for the model and data that ran,
and every row read from the store is checked (issue "Nothing stale, nothing trusted blindly").

Numbered as the issue's items: 1 (an edited model), 2 (changed data), 3 (configs), 4 (exact betas),
5 (store rows), 6 (foreign and read-only stores), 7 (damaged artifacts). For 1, 2 and 5 each case
checks that the number printed is the right one, not only that a warning appeared.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

import ctrobust
from conftest import assert_one_line_error, read_json, run_cli
from ctrobust.errors import CtrobustError
from ctrobust.models import load_model
from ctrobust.models.fingerprint import behaviour_fingerprint, tensor_digest

# its module-scoped fixture is built once: pytest-xdist keeps this file's tests on one worker
pytestmark = pytest.mark.xdist_group("test_trust")

TINY = ["--n-examples", "20", "--n-select", "20", "--attack", "apgd-ce", "--steps", "2", "--select-steps", "2",
        "--no-progress"]
CT_RUN = [*TINY, "--betas", "0.9", "--no-base-candidate"]  # CT at 0.9: both final cells, base adversarials stored

MODEL_FILE = '''
import torch.nn as nn
from ctrobust.models import load_model


class Wrapped(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = load_model("smallcnn").model

    def forward(self, x):
        return {sign}self.net(x)


def build():
    return Wrapped()
'''


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def _eval(store: Path, out: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    proc = run_cli("eval", "--model", "smallcnn", *CT_RUN, *args, "--store", str(store), "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result = read_json(out / "result.json")
    result["_stderr"], result["_stdout"] = proc.stderr, proc.stdout
    return result


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """A store with two finished runs (seeds 0 and 1) of smallcnn, CT at beta 0.9."""
    root = tmp_path_factory.mktemp("stored")
    store = root / "store.sqlite"
    first = _eval(store, root / "run0")
    second = _eval(store, root / "run1", "--seed", "1")
    return store, first, second


def _copy(stored: tuple[Path, dict, dict], tmp_path: Path) -> Path:
    copy = tmp_path / "copy.sqlite"
    shutil.copy(stored[0], copy)
    return copy


def _clean_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


# 1. An edited model file (same path, same weights) is another model.
@pytest.mark.slow
def test_edited_model_code_is_not_reused(tmp_path: Path, fmnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    path = tmp_path / "mine.py"
    store, args = tmp_path / "s.sqlite", ["--model", f"{tmp_path / 'mine.py'}:build", "--dataset", "fashion-mnist"]
    path.write_text(MODEL_FILE.format(sign=""))
    first = run_cli("eval", *args, *TINY, "--betas", "0.9", "--store", str(store), "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    path.write_text(MODEL_FILE.format(sign="-"))  # forward now returns -logits; the state dict is unchanged
    second = run_cli("eval", *args, *TINY, "--betas", "0.9", "--store", str(store), "--out", str(tmp_path / "b"))
    assert second.returncode == 0, second.stderr
    assert "0 reused" in second.stdout and "0 cells computed" not in second.stdout
    a, b = read_json(tmp_path / "a" / "result.json"), read_json(tmp_path / "b" / "result.json")
    assert a["weights_digest"] == b["weights_digest"] and a["run_id"] != b["run_id"]
    negated = load_model("smallcnn").model
    x, y = fmnist_test[0][:20], fmnist_test[1][:20]
    assert b["base"]["clean_accuracy"] == pytest.approx(_clean_accuracy(lambda t: -negated(t), x, y))  # type: ignore[arg-type]
    assert a["base"]["clean_accuracy"] == pytest.approx(_clean_accuracy(negated, x, y))


# 1. The same holds for a module passed to ctrobust.run whose forward changed.
@pytest.mark.slow
def test_changed_module_forward_is_not_reused(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    options = {"n_examples": 20, "n_select": 20, "betas": "0.9", "attack": "apgd-ce", "steps": 2,
               "select_steps": 2}
    module = load_model("smallcnn").model
    first = ctrobust.run(module, dataset="fashion-mnist", store=store, name="mine", **options)
    again = ctrobust.run(module, dataset="fashion-mnist", store=store, name="mine", **options)
    assert again.cells_computed == 0 and again.run_id == first.run_id
    original = module.forward
    module.forward = lambda x: original(x) * 3.0  # type: ignore[method-assign]  # same weights, other outputs
    changed = ctrobust.run(module, dataset="fashion-mnist", store=store, name="mine", **options)
    assert changed.cells_reused == 0 and changed.run_id != first.run_id
    assert changed.identity["subject"]["behaviour"] != first.identity["subject"]["behaviour"]
    assert changed.identity["subject"]["weights"] == first.identity["subject"]["weights"]


def test_behaviour_fingerprint_tells_models_apart_and_randomised_ones_never_match() -> None:
    model = load_model("smallcnn").model
    same = behaviour_fingerprint(model, (1, 32, 32))
    assert behaviour_fingerprint(model, (1, 32, 32)) == same
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # another thread count may round differently in the last bits: still the same model
        assert behaviour_fingerprint(model, (1, 32, 32)) == same
    finally:
        torch.set_num_threads(threads)

    class Noisy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return model(x) + torch.randn(len(x), 10)

    noisy = Noisy()
    assert behaviour_fingerprint(noisy, (1, 32, 32)) != behaviour_fingerprint(noisy, (1, 32, 32))
    assert tensor_digest(torch.zeros(3)) != tensor_digest(torch.zeros(4)) != tensor_digest(torch.ones(4))


# 2. Other images under the same indices are other data.
@pytest.mark.slow
def test_changed_images_are_not_reused(stored: tuple[Path, dict, dict], tmp_path: Path,
                                       fmnist_test: tuple[torch.Tensor, torch.Tensor],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    source = Path("/usr/share/datasets/fashion-mnist")
    system = tmp_path / "inverted"
    system.mkdir()
    images = bytearray(gzip.decompress((source / "t10k-images-idx3-ubyte.gz").read_bytes()))
    images[16:] = bytes(255 - v for v in images[16:])  # every pixel inverted, the header kept
    (system / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(images)))
    shutil.copy(source / "t10k-labels-idx1-ubyte.gz", system)
    store = _copy(stored, tmp_path)
    result = _eval(store, tmp_path / "out", env={"CTROBUST_FASHION_MNIST_SYSTEM_DIR": str(system),
                                                 "CTROBUST_OFFLINE": "1"})
    assert result["cells"] == {"computed": 3, "reused": 0}
    assert result["identity"]["subject"]["data"] != stored[1]["identity"]["subject"]["data"]
    from ctrobust.data.fashion_mnist import load_fashion_mnist

    monkeypatch.setenv("CTROBUST_FASHION_MNIST_SYSTEM_DIR", str(system))
    x, y = load_fashion_mnist("test", tmp_path / "none", download=False)
    assert not torch.equal(x[:20], fmnist_test[0][:20])
    model = load_model("smallcnn").model
    assert result["base"]["clean_accuracy"] == pytest.approx(_clean_accuracy(model, x[:20], y[:20]))


# 3. Per-threat options in a reproduce config: --threat's spelling, and a typo is an error.
@pytest.mark.parametrize("section,needle", [
    ("[threats.Linf]\neps = 0.1\n", None),
    ("[threats.lnf]\neps = 0.1\n", "Did you mean 'linf'"),
    ("[defualts]\neps = 0.1\n", "Did you mean 'defaults'"),
    ("[defaults]\nbeta_batch = 4\n", None),
])
def test_config_sections_are_resolved_or_refused(tmp_path: Path, section: str, needle: str | None) -> None:
    config = tmp_path / "grid.toml"
    config.write_text(section + '[[grid]]\nmodels = ["smallcnn"]\nthreats = ["linf"]\n')
    if needle is None:
        from ctrobust.plan.reproduce import load_config

        plan = load_config(str(config)).units[0].plan
        assert plan.eps == (0.1 if "eps" in section else 0.05)
        assert plan.betas_per_pass == (4 if "beta_batch" in section else None)
        return
    proc = run_cli("reproduce", "--config", str(config), "--dry-run", cwd=tmp_path)
    assert_one_line_error(proc, needle)


# 4. Betas are kept exactly; two that CT cannot tell apart (one float32) are one candidate, with a note.
def test_betas_are_exact_keys() -> None:
    from ctrobust.plan.selection import parse_betas

    assert parse_betas("0.9,0.90001") == [0.9, 0.90001]
    assert parse_betas("0.9,0.9000000001") == [0.9]


@pytest.mark.slow
def test_close_betas_keep_their_own_points(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("eval", "--model", "smallcnn", *TINY, "--betas", "0.9,0.90001", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = read_json(out / "result.json")
    assert set(result["select_curve"]) == {"0.9", "0.90001", "1.0"}
    assert repr(result["beta"]) in result["select_curve"]


# 5. A store's rows are checked: a run that contradicts itself or its cells is named and left out.
def _edit_run(store: Path, run_id: str, edit: str) -> None:
    with sqlite3.connect(store) as db:
        key, text = next((k, t) for k, t in db.execute("SELECT key, result FROM runs")
                         if json.loads(t)["run_id"] == run_id)
        data = json.loads(text)
        if edit == "counts":  # CT 19 robust, as a hand edit would say, while the outcomes say otherwise
            data["ct"]["counts"]["robust_correct"] = 19
            data["ct"]["robust_accuracy"] = 0.95
            db.execute("UPDATE runs SET ct_robust = 0.95 WHERE key = ?", (key,))
        elif edit == "outcomes and counts":  # consistent with itself, not with the cell it came from
            robust = [1] * 20
            data["per_example"]["ct"]["robust"] = robust
            data["per_example"]["ct"]["robust_white_box"] = robust
            data["per_example"]["ct"]["clean"] = robust
            data["ct"]["counts"].update(clean_correct=20, robust_correct=20)
        elif edit == "impossible counts":
            data["base"]["counts"]["robust_correct"] = 25
        elif edit == "schema version":
            data["schema_version"] = "four"
        text = {"not JSON": "{not json", "empty": ""}.get(edit, json.dumps(data))
        db.execute("UPDATE runs SET result = ? WHERE key = ?", (text, key))


EDITS = ["counts", "outcomes and counts", "impossible counts", "not JSON", "empty", "schema version"]


@pytest.mark.slow
@pytest.mark.parametrize("command,edit", [*(("report", e) for e in EDITS), *(("load_results", e) for e in EDITS),
                                          ("leaderboard", "counts")])
def test_edited_run_rows_are_named_and_left_out(stored: tuple[Path, dict, dict], tmp_path: Path, edit: str,
                                                command: str) -> None:
    store = _copy(stored, tmp_path)
    bad, good = stored[1]["run_id"], stored[2]["run_id"]
    _edit_run(store, bad, edit)
    if command == "load_results":
        frame = ctrobust.load_results(store)
        assert list(frame["run_id"]) == [good]
        assert frame.loc[0, "ct_robust_accuracy"] == pytest.approx(stored[2]["ct"]["robust_accuracy"])
        return
    out = tmp_path / "out"
    proc = run_cli(command, "--store", str(store), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warnings = _warnings(proc.stderr)
    assert len(warnings) == 1 and "left out" in warnings[0], proc.stderr
    if command == "report":  # the other run is shown, with its own numbers; the edited one nowhere
        import pandas as pd

        summary = pd.read_csv(out / "summary.csv")
        assert list(summary["run_id"]) == [good] and "(1 run)" in proc.stdout  # singular (issue 37 item 9)
        assert summary.loc[0, "ct_robust_accuracy"] == pytest.approx(stored[2]["ct"]["robust_accuracy"])
        assert bad not in (out / "index.html").read_text()
    else:
        (entry,) = [read_json(p) for p in out.rglob("*.json")]
        assert entry["run_ids"] == [good]


@pytest.mark.slow
def test_edited_cell_is_recomputed_with_a_warning(stored: tuple[Path, dict, dict], tmp_path: Path) -> None:
    store = _copy(stored, tmp_path)
    key = stored[1]["final_cells"]["ct"]
    with sqlite3.connect(store) as db:  # 7 points robust but not clean: impossible
        (text,) = db.execute("SELECT per_example FROM cells WHERE key = ?", (key,)).fetchone()
        outcomes = json.loads(text)
        outcomes["clean"] = [0] * 20
        outcomes["robust"] = [1] * 7 + [0] * 13
        db.execute("UPDATE cells SET per_example = ?, clean_accuracy = 0, robust_accuracy = 0.35 WHERE key = ?",
                   (json.dumps(outcomes), key))
    result = _eval(store, tmp_path / "out")
    warnings = _warnings(result["_stderr"])
    assert len(warnings) == 1 and "damaged" in warnings[0] and "recomputing" in warnings[0]
    assert result["cells"] == {"computed": 1, "reused": 2}
    assert result["ct"]["counts"] == stored[1]["ct"]["counts"]  # the right numbers, as first computed
    with sqlite3.connect(store) as db:  # and the cell is mended in the store
        (text,) = db.execute("SELECT per_example FROM cells WHERE key = ?", (key,)).fetchone()
    assert json.loads(text)["clean"] == stored[1]["per_example"]["ct"]["clean"]


# 6. A file that is not a ctrobust store is refused untouched; reading commands never write.
@pytest.mark.parametrize("command", ["eval", "report"])
def test_foreign_sqlite_file_is_refused_untouched(tmp_path: Path, command: str) -> None:
    foreign = tmp_path / "app.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE cells (id INTEGER PRIMARY KEY, colour TEXT)")
        db.execute("INSERT INTO cells (colour) VALUES ('red')")
    before = foreign.read_bytes()
    args = ["eval", "--model", "smallcnn", *CT_RUN] if command == "eval" else ["report", "--out", str(tmp_path / "o")]
    proc = run_cli(*args, "--store", str(foreign), cwd=tmp_path)
    assert_one_line_error(proc, "another application", "left untouched")
    assert foreign.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.sqlite"]


@pytest.mark.slow
def test_reading_commands_never_create_or_convert(stored: tuple[Path, dict, dict], tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    proc = run_cli("report", "--store", str(empty), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "empty file")
    assert empty.read_bytes() == b""
    with pytest.raises(CtrobustError, match="empty file"):
        ctrobust.load_results(empty)
    store = _copy(stored, tmp_path)
    before = store.read_bytes()
    listing = sorted(p.name for p in tmp_path.iterdir())
    frame = ctrobust.load_results(store)
    assert len(frame) == 2
    assert store.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == listing


# 7. Damaged artifacts (the original model's stored adversarial examples) are recomputed, never used.
def _damage_artifact(store: Path, key: str, damage: str) -> None:
    import io

    import numpy as np

    from ctrobust.results.store.artifacts import pack as _pack
    from ctrobust.results.store.artifacts import unpack as _unpack

    with sqlite3.connect(store) as db:
        (blob,) = db.execute("SELECT data FROM artifacts WHERE key = ?", (key,)).fetchone()
        if damage == "garbage":
            blob = b"garbage" * 50
        else:
            arrays = _unpack(blob)
            if damage == "indices out of range":
                arrays["indices"] = arrays["indices"] + 1000
            else:  # zeros: far outside the eps-ball, with a valid checksum, so only the re-check can tell
                arrays["images"] = np.zeros_like(arrays["images"])
            blob = _pack(arrays)
        assert io  # the blob is rewritten in place
        db.execute("UPDATE artifacts SET data = ? WHERE key = ?", (blob, key))


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "indices out of range", "zeros"])
def test_damaged_adversarial_examples_are_recomputed(stored: tuple[Path, dict, dict], tmp_path: Path,
                                                     damage: str) -> None:
    store = _copy(stored, tmp_path)
    assert stored[1]["sanity_checks"]["transfer"]["base_adversarials"] > 0
    _damage_artifact(store, stored[1]["final_cells"]["base"], damage)
    result = _eval(store, tmp_path / "out")
    warnings = _warnings(result["_stderr"])
    assert len(warnings) == 1 and "damaged" in warnings[0] and "recomputing" in warnings[0], result["_stderr"]
    assert result["sanity_checks"]["transfer"] == stored[1]["sanity_checks"]["transfer"]
    assert result["ct"]["counts"] == stored[1]["ct"]["counts"]
    if damage == "zeros":  # mended in the store: the next run reuses everything, without a word
        again = _eval(store, tmp_path / "again")
        assert _warnings(again["_stderr"]) == [] and again["cells"] == {"computed": 0, "reused": 3}


@pytest.mark.slow
def test_store_on_read_only_media_is_read(stored: tuple[Path, dict, dict], tmp_path: Path) -> None:
    """A store on a read-only filesystem (a tmpfs remounted ro in a private mount namespace) is read as it is."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root and must be able to mount a private tmpfs")
        pytest.skip("needs root to mount a private tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (f'mount -t tmpfs tmpfs "{mnt}" && cp "{stored[0]}" "{mnt}/store.sqlite" && '
              f'mount -o remount,ro "{mnt}" && exec "$@"')
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-m", "ctrobust.cli.main",
                           "report", "--store", str(mnt / "store.sqlite"), "--out", str(tmp_path / "html")],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "(2 runs)" in proc.stdout and "Traceback" not in proc.stderr


# 8. `train` checks its numbers and its output before training.
@pytest.mark.parametrize("args,needle", [
    (["--out", "/proc/self/model.pt"], "/proc"),
    (["--out", "{tmp}"], "is a folder"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "-1"], "--lr"),
    (["--n-train", "0"], "--n-train"),
    (["--n-train", "-5"], "--n-train"),
])
def test_train_refuses_bad_numbers_and_outputs_before_work(tmp_path: Path, args: list[str], needle: str) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = run_cli("train", "--model", "smallcnn", "--epochs", "1", "--no-progress", *args, cwd=tmp_path)
    assert_one_line_error(proc, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing trained, nothing written


# 9. `reproduce` with no successful unit: each unit's error, then one line; none selected: one line.
def _grid(tmp_path: Path, model: str) -> Path:
    config = tmp_path / "grid.toml"
    config.write_text('[defaults]\nn_examples = 10\nn_select = 10\nbetas = "0.9"\nattack = "apgd-ce"\nsteps = 2\n'
                      f'select_steps = 2\n[[grid]]\nmodels = ["{model}"]\ndatasets = ["fashion-mnist"]\n'
                      'threats = ["linf", "l2"]\nprotocols = ["heldout"]\n')
    return config


def test_reproduce_where_every_unit_fails_shows_their_errors(tmp_path: Path) -> None:
    proc = run_cli("reproduce", "--config", str(_grid(tmp_path, str(tmp_path / "missing.py:build"))),
                   "--no-progress", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 3 and all(line.startswith("ctrobust: error:") for line in lines), proc.stderr
    assert sum("missing.py" in line for line in lines[:2]) == 2 and "none of the 2 units succeeded" in lines[2]
    assert not (tmp_path / "out").exists()


def test_reproduce_with_no_unit_selected_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("reproduce", "--config", str(_grid(tmp_path, "smallcnn")), "--protocol", "paper",
                   "--no-progress", cwd=tmp_path)
    assert_one_line_error(proc, "leaves none of the units", "heldout")


# 10. The rest: each a one-line error before work, or the right behaviour.
OTHER_RESULT = '{"identity": {"model": "someone-else"}, "run_id": "abc"}'


@pytest.mark.parametrize("args,needle", [
    (["eval", "--threat", "corruptions", "--severities", "1-1000000000000"], "between 1 and 5"),
    (["eval", *TINY, "--attack", "pgd", "--step-size", "nan"], "step_size"),
    (["eval", *TINY, "--betas", "1", "--no-base-candidate"], "no CT beta"),
    (["eval", *TINY, "--betas", "0.9", "--out", "{tmp}/other"], "another run"),
    (["audit-ct", "--markdown", "--out", "{tmp}/other/result.csv"], "not a CT audit"),
])
def test_more_bad_inputs_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "result.json").write_text(OTHER_RESULT)
    (other / "result.csv").write_text("a,b\n1,2\n")
    proc = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in args], cwd=tmp_path)
    assert_one_line_error(proc, needle)
    assert (other / "result.json").read_text() == OTHER_RESULT


def test_full_stdout_is_one_line() -> None:
    import subprocess
    import sys

    from conftest import REPO

    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "ctrobust.cli.main", "models"], stdout=full,
                              stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "standard output" in lines[0], proc.stderr
    assert "store" not in lines[0] and "--out" not in lines[0]  # `models` has neither (issue 37 item 9)


@pytest.mark.slow
def test_sigterm_is_an_interruption_and_keeps_the_store(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    store = tmp_path / "s.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "ctrobust.cli.main", "eval", "--n-examples", "200",
                             "--n-select", "100", "--betas", "0.8:0.95:0.05", "--attack", "apgd-ce", "--no-progress",
                             "--store", str(store), "--out", str(tmp_path / "out")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6.0)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ctrobust: interrupted") and "Traceback" not in err, err
    if store.exists():
        with sqlite3.connect(store) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("damage,needle", [("short labels", "do not belong together"),
                                           ("data dir under /proc", "/proc")])
def test_data_and_cache_folders_checked_before_work(tmp_path: Path, damage: str, needle: str) -> None:
    source = Path("/usr/share/datasets/fashion-mnist")
    system = tmp_path / "fmnist"
    system.mkdir()
    shutil.copy(source / "t10k-images-idx3-ubyte.gz", system)
    labels = gzip.decompress((source / "t10k-labels-idx1-ubyte.gz").read_bytes())
    if damage == "short labels":  # a whole labels file of 9000 labels beside 10000 images
        labels = labels[:4] + (9000).to_bytes(4, "big") + labels[8:9008]
    (system / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    env = {"CTROBUST_FASHION_MNIST_SYSTEM_DIR": str(system), "CTROBUST_OFFLINE": "1",
           "CTROBUST_DATA_DIR": "/proc/self" if damage == "data dir under /proc" else str(tmp_path / "data")}
    args = ["--threat", "corruptions", "--corruptions", "gaussian_noise", "--severities", "1"] \
        if damage == "data dir under /proc" else ["--threat", "linf"]
    proc = run_cli("eval", *TINY, "--betas", "0.9", *args, "--store", str(tmp_path / "s.sqlite"), env=env)
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.slow
def test_a_model_that_modifies_its_input_gets_a_copy(tmp_path: Path,
                                                     fmnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    path = tmp_path / "inplace.py"
    path.write_text(MODEL_FILE.format(sign="").replace("return self.net(x)", "x.sub_(0.1)\n        return self.net(x)"))
    out = tmp_path / "out"
    proc = run_cli("eval", "--model", f"{path}:build", "--dataset", "fashion-mnist", *TINY, "--betas", "0.9",
                   "--out", str(out))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    model = load_model("smallcnn").model
    x, y = fmnist_test[0][:20], fmnist_test[1][:20]
    assert read_json(out / "result.json")["base"]["clean_accuracy"] == pytest.approx(
        _clean_accuracy(lambda t: model(t - 0.1), x, y))  # type: ignore[arg-type]


def test_grid_edge_advice_adds_betas_and_keeps_the_chosen_one() -> None:
    from ctrobust.plan.selection import PAPER_BETAS, parse_betas
    from ctrobust.results.uncertainty import selection_flags

    for grid, chosen in [(list(PAPER_BETAS), 0.99), ([0.8, 0.9, 0.95], 0.95), (list(PAPER_BETAS), 0.7),
                         ([0.05, 0.1, 0.2], 0.05)]:
        flags = selection_flags({b: 0.5 for b in grid}, chosen, grid, 100)
        assert flags.edge is not None and flags.suggestion is not None
        suggested = parse_betas(flags.suggestion)
        assert chosen in suggested and set(suggested) - set(grid), (grid, chosen, flags.suggestion)


def test_a_newline_in_a_model_name_keeps_the_leaderboard_table_whole() -> None:
    from ctrobust.report.leaderboard import leaderboard_markdown

    entry = {"name": "evil\nname | <b>x</b>", "architecture": "A\nB", "model_source": "custom", "attack": "apgd-ce",
             "protocol": "heldout", "optimistic": False, "n_examples": 20, "seeds": [0], "clean_acc": 90.0,
             "robust_acc": 10.0, "ct_beta": 0.9, "ct_clean_acc": 90.0, "ct_robust_acc": 12.0, "gain": 2.0,
             "gain_ci": [-1.0, 5.0], "gain_mcnemar_p": 0.5}
    text = leaderboard_markdown([{"dataset": "fashion-mnist", "threat": "Linf", "entries": [entry]}])
    rows = [line for line in text.splitlines() if line.startswith("|")]
    cells = [row.count("|") - row.count("\\|") for row in rows]  # a header, its rule, the one entry
    assert len(rows) == 3 and cells[0] == cells[2] and "evil name" in rows[2]
