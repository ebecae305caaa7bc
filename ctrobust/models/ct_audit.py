"""CT audit of the RobustBench zoo: build every architecture with random weights (no download),
apply CT, and report which ReLU sites it reaches and whether beta = 1 is the original function.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from ctrobust.ct import ct_coverage, curvature_tuned
from ctrobust.data.registry import canonical_dataset
from ctrobust.errors import CtrobustError
from ctrobust.outputs import spreadsheet_safe

AUDIT_CSV = Path(__file__).parent / "zoo_ct_audit.csv"


@dataclass
class AuditRow:
    dataset: str
    threat: str
    model: str
    architecture: str = ""
    params_m: float = 0.0
    status: str = ""  # ok | not applicable | skipped | error
    relu_module_calls: int = 0
    relu_functional_calls: int = 0
    relu_modules: int = 0
    relu_modules_defined: int = 0
    functional_sites: int = 0
    other_activations: str = ""
    max_abs_diff_beta1: float | None = None
    beta09_changes_output: bool | None = None
    note: str = ""
    seconds: float = 0.0


FIELDS = list(AuditRow.__dataclass_fields__)


def zoo_entries(datasets: Sequence[str] | None = None) -> Iterator[tuple[str, str, str]]:
    from ctrobust.models.zoo import zoo

    for ds, by_threat in zoo().items():
        if datasets and ds not in datasets:
            continue
        for th, models in by_threat.items():
            for name in models:
                yield ds, th, name


def audit_one(dataset: str, threat: str, name: str, max_params_m: float, seed: int = 0, impl: str = "fused") -> AuditRow:
    from ctrobust.models.zoo import build_zoo_architecture

    row = AuditRow(dataset, threat, name)
    start = time.perf_counter()
    try:
        torch.manual_seed(seed)
        model = build_zoo_architecture(name, dataset, threat)
        row.architecture = type(getattr(model, "model", model)).__name__
        n_params = sum(p.numel() for p in model.parameters())
        row.params_m = round(n_params / 1e6, 2)
        if row.params_m > max_params_m:
            row.status, row.note = "skipped", f"over --max-params {max_params_m}M"
            return row
        shape = canonical_dataset(dataset).input_size
        x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(seed))
        cov = ct_coverage(model, x)
        row.relu_module_calls, row.relu_functional_calls = cov.module_calls, cov.functional_calls
        row.relu_modules, row.functional_sites = len(cov.relu_modules), len(cov.functional_sites)
        row.relu_modules_defined = sum(isinstance(m, torch.nn.ReLU) for m in model.modules())
        row.other_activations = ";".join(sorted(set(cov.other_activations) | set(cov.other_activation_modules.values())))
        if cov.total == 0:
            row.status = "not applicable"
            row.note = "no ReLU"
            return row
        with torch.no_grad():
            original = model(x)
            row.max_abs_diff_beta1 = float((curvature_tuned(model, 1.0, impl=impl)(x) - original).abs().max())
            # relative: some architectures have near-zero outputs at random init (zero-init / layer-scale heads)
            scale = float(original.abs().max())
            changed = float((curvature_tuned(model, 0.9, impl=impl)(x) - original).abs().max())
            row.beta09_changes_output = bool(changed > 1e-4 * scale)
        row.status = "ok" if row.max_abs_diff_beta1 == 0.0 and row.beta09_changes_output else "check"
        if row.relu_modules < row.relu_modules_defined:  # e.g. RobustBench WRN's unused sub_block1
            row.note = f"{row.relu_modules_defined - row.relu_modules} nn.ReLU modules defined but never called in forward"
    except Exception as exc:  # an architecture that cannot be built offline is reported, not fatal
        row.status, row.note = "error", f"{type(exc).__name__}: {str(exc)[:150]}"
    finally:
        row.seconds = round(time.perf_counter() - start, 2)
    return row


def run_audit(
    out: Path, max_params_m: float, datasets: Sequence[str] | None = None, on_row: Callable[[AuditRow], None] | None = None,
    impl: str = "fused",
) -> list[AuditRow]:
    """Audit every zoo entry with the CT unit ``impl`` (the resolved --ctu); rows already in ``out`` are kept
    (the audit resumes), new ones appended."""
    done: dict[tuple[str, str, str], AuditRow] = {}
    if out.is_file():
        with out.open() as fh:
            for rec in csv.DictReader(fh):
                done[(rec["dataset"], rec["threat"], rec["model"])] = _row_from_csv(rec)
    by_arch: dict[tuple[str, str], AuditRow] = {(r.dataset, r.model): r for r in done.values()}
    out.parent.mkdir(parents=True, exist_ok=True)
    new_file = not out.is_file()
    rows = list(done.values())
    with out.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()
        for ds, th, name in zoo_entries(datasets):
            if (ds, th, name) in done:
                continue
            same = by_arch.get((ds, name))  # the same network listed under another threat
            row = AuditRow(**{**asdict(same), "threat": th, "seconds": 0.0}) if same else (
                audit_one(ds, th, name, max_params_m, impl=impl))
            by_arch[(ds, name)] = row
            writer.writerow({k: spreadsheet_safe(v) for k, v in asdict(row).items()})
            fh.flush()
            rows.append(row)
            if on_row:
                on_row(row)
    return rows


def _row_from_csv(rec: dict[str, str]) -> AuditRow:
    def opt_float(v: str) -> float | None:
        return float(v) if v not in ("", "None") else None

    return AuditRow(
        rec["dataset"], rec["threat"], rec["model"], rec["architecture"], float(rec["params_m"] or 0), rec["status"],
        int(rec["relu_module_calls"] or 0), int(rec["relu_functional_calls"] or 0), int(rec["relu_modules"] or 0),
        int(rec["relu_modules_defined"] or 0), int(rec["functional_sites"] or 0), rec["other_activations"],
        opt_float(rec["max_abs_diff_beta1"]),
        None if rec["beta09_changes_output"] in ("", "None") else rec["beta09_changes_output"] == "True",
        rec["note"], float(rec["seconds"] or 0),
    )


def read_audit(path: Path = AUDIT_CSV) -> list[AuditRow]:
    if not path.is_file():
        return []
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {f.name for f in fields(AuditRow)} - set(reader.fieldnames or [])
            if missing:
                raise CtrobustError(f"{path} is not a CT audit (no column {', '.join(sorted(missing))}): pass the CSV "
                                    "that `ctrobust audit-ct --out` wrote.")
            return [_row_from_csv(rec) for rec in reader]
    except (UnicodeDecodeError, ValueError, TypeError, csv.Error) as exc:
        raise CtrobustError(f"{path} is not a CT audit CSV ({type(exc).__name__}): pass the CSV that "
                            "`ctrobust audit-ct --out` wrote.") from None


def summarize(rows: list[AuditRow]) -> str:
    """A Markdown summary: counts per dataset and status, and the models CT does not apply to."""
    import pandas as pd

    statuses = ["ok", "not applicable", "skipped", "error", "check"]
    frame = pd.DataFrame({"dataset": [r.dataset for r in rows], "status": [r.status for r in rows]})
    counts = pd.crosstab(frame["dataset"], pd.Categorical(frame["status"], categories=statuses), dropna=False)
    counts.insert(0, "entries", counts.sum(axis=1))
    lines = [counts.rename_axis(index="dataset", columns=None).reset_index().to_markdown(index=False)]
    ok = [r for r in rows if r.status == "ok"]
    functional = sum(1 for r in ok if r.relu_functional_calls > 0)
    worst = max((r.max_abs_diff_beta1 or 0.0 for r in ok), default=0.0)
    lines += [
        "",
        f"- {len(ok)} ReLU entries: every one has beta = 1 output equal to the original (max |diff| = {worst:g}) "
        f"and a changed output at beta = 0.9; {functional} of them reach ReLUs through functional calls.",
    ]
    others: dict[str, set[str]] = {}
    for r in rows:
        if r.status == "not applicable":
            others.setdefault(r.other_activations or "none", set()).add(f"{r.model} ({r.dataset})")
    for acts, models in sorted(others.items()):
        lines.append(f"- not applicable, activations `{acts}`: {len(models)} models, e.g. {', '.join(sorted(models)[:3])}")
    for r in rows:
        if r.status in ("error", "check"):
            lines.append(f"- {r.status}: {r.model} ({r.dataset} {r.threat}): {r.note}")
    return "\n".join(lines)
