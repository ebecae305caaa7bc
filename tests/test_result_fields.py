"""A result's fields are written once: every dataclass field reaches result.json and comes back, and the JSON
schema lists exactly what result.json holds (it refuses any other key), so a new field that is missing from
``to_dict``, ``from_dict`` or the schema fails here, not in a user's report."""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from typing import Any

import jsonschema
import pytest

from conftest import REPO
from ctrobust.cell import Counts
from ctrobust.plan.run_plan import Protocol
from ctrobust.results.evidence import SanityReport
from ctrobust.results.result import SETTINGS_KEYS, ArmResult, RunResult
from ctrobust.results.uncertainty import run_gain, selection_flags
from ctrobust.threats import ThreatModel

SCHEMA = json.loads((REPO / "docs" / "result.schema.json").read_text())
BASE = {"clean": [1, 1, 1, 0], "robust": [1, 0, 0, 0]}
CT = {"clean": [1, 1, 1, 1], "robust": [1, 1, 0, 0], "robust_white_box": [1, 1, 1, 0]}


def _arm(beta: float, outcomes: dict[str, list[int]], **kw: Any) -> ArmResult:
    return ArmResult(beta, Counts.of(outcomes), {"seconds": 1.5, "rejected_adversarials": 0}, **kw)


def _full_result() -> RunResult:
    """A result with every field set to a value other than its default (the test below checks that)."""
    curve = {0.8: 0.5, 0.9: 0.75, 1.0: 0.25}
    return RunResult(
        run_id="0123456789ab", identity={"model": "smallcnn", "seed": 3, "betas": [0.8, 0.9], "threat": "L2"},
        model="smallcnn", dataset="fashion-mnist",
        threat=ThreatModel.L2, eps=1.0, attack="autoattack-standard", select_attack="apgd-ce", seed=3,
        protocol=Protocol.HELDOUT, n_examples=4, n_select=4, betas=[0.8, 0.9], candidates=[0.8, 0.9, 1.0],
        base_candidate=True, select_curve=curve, select_clean={0.8: 1.0, 0.9: 0.75, 1.0: 1.0}, beta=0.9,
        base=_arm(1.0, BASE), ct=_arm(0.9, CT, white_box_correct=3),
        gain=run_gain(ThreatModel.L2, BASE, CT), flags=selection_flags(curve, 0.9, [0.8, 0.9, 1.0], 4),
        per_example={"base": BASE, "ct": CT}, eval_indices=[4, 5, 6, 7], select_indices=[0, 1, 2, 3],
        weights_digest="abcdef0123456789", model_source={"source": "builtin"},
        provenance={"device": "cpu", "versions": {"ctrobust": "0"}, "git_commit": None},
        settings={key: {"from": key} if key.endswith(("config", "data", "execution")) else [1] if key == "severities"
                  else ["x"] for key in SETTINGS_KEYS},
        sanity=SanityReport(warnings=["w"], seconds={"transfer": 0.5}, not_run={"binarization": "why"},
                            sizes={"reference_points": 20}), ct_coverage={"replaced": 3}, batch_size=64,
        ctu="eager", wall_seconds=2.5, cells_computed=2, cells_reused=1, command="ctrobust eval",
        sweep={"mode": "grid", "betas_per_pass": 1, "rungs": [{"n_points": 4, "curve": {"0.8": 0.5}}]},
        final_cells={"base": "k1", "ct": "k2"}, schema_version=4,
    )


def test_every_result_field_is_set_in_the_fixture() -> None:
    """So the round trip below covers a new field too: a field with a default must be given another value."""
    result = _full_result()
    unset = [f.name for f in fields(RunResult) if f.default is not MISSING and getattr(result, f.name) == f.default
             or f.default_factory is not MISSING and getattr(result, f.name) == f.default_factory()]
    assert unset == ["schema_version"]  # the current version is the default; it is the one field allowed to equal it


def test_every_result_field_survives_result_json() -> None:
    result = _full_result()
    back = RunResult.from_dict(json.loads(json.dumps(result.to_dict())))
    differ = [f.name for f in fields(RunResult) if getattr(back, f.name) != getattr(result, f.name)]
    assert differ == []


@pytest.mark.parametrize("arm", [_arm(1.0, BASE), _arm(0.9, CT, white_box_correct=3),
                                 _arm(0.9, BASE, clipped=True, clipped_from=0.25)])
def test_every_arm_field_survives_result_json(arm: ArmResult) -> None:
    outcomes = CT if arm.white_box_correct else BASE
    assert ArmResult.from_dict(json.loads(json.dumps(arm.to_dict())), outcomes, arm.beta) == arm


def test_the_schema_lists_exactly_what_result_json_holds() -> None:
    written = _full_result().to_dict()
    jsonschema.validate(written, SCHEMA)  # additionalProperties is false: an unlisted key fails
    assert SCHEMA["additionalProperties"] is False
    assert sorted(SCHEMA["properties"]) == sorted(written)  # and no listed key is stale
    for arm in ("base", "ct"):
        listed = SCHEMA["$defs"]["variant"]["properties"]
        assert {k for k in written[arm] if k not in ("seconds", "rejected_adversarials")} <= set(listed), arm


def test_a_key_the_schema_does_not_list_is_refused() -> None:
    written = {**_full_result().to_dict(), "robust_accuracy_typo": 0.5}
    with pytest.raises(jsonschema.ValidationError, match="robust_accuracy_typo"):
        jsonschema.validate(written, SCHEMA)


def _full_report() -> SanityReport:
    """Every check's record with values other than its defaults."""
    from ctrobust.results.evidence import (
        ArmBinarization,
        ArmsCompared,
        AttackEvidence,
        Binarization,
        BudgetSweep,
        GradientFidelity,
        LogitStats,
        ReAttack,
        Reference,
        Transfer,
    )

    return SanityReport(
        transfer=Transfer(12, 5, 2, 0.25, 0.2), budget=BudgetSweep(20, 10, {"1": 0.3, "8": 0.0}, {"1": 0.35, "8": 0.05}),
        logits={"ct": LogitStats(4.0, 2.0, 1.5, 0.3, 0.2, 0.1)}, breakdown={"ct": {"apgd-ce": 0.3}}, warnings=["w"],
        attack_evidence={"base": AttackEvidence(["flag"], 1, 2, 3, True)},
        reference={"ct": Reference(20, 10, 3, 1, 0.3, True)}, incomplete=ReAttack(20, 7, 2),
        gradients={"base": GradientFidelity(16, 4, 0.9, 1)},
        binarization=Binarization({"ct": ArmBinarization("CT beta=0.90", "apgd-ce", "FAIL", 20, 3, 1, 0, "logits",
                                                         "", [1, 0, -1])},
                                  "why", ArmsCompared(20, 4, 1, 0.2), 20, 1000, 3),
        seconds={"transfer": 0.5}, not_run={"gradient fidelity": "crashed"}, sizes={"reference_points": 20})


def test_every_check_record_survives_result_json() -> None:
    """Each check's numbers are a typed record between the checks and the report; stored as the JSON the schema
    lists, read back as the same records."""
    report = _full_report()
    back = SanityReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert back == report
    jsonschema.validate(_full_result().to_dict() | {"sanity_checks": report.to_dict()}, SCHEMA)


def test_an_older_stored_report_reads_with_what_it_has() -> None:
    """Keys a record does not know are left out, missing ones take their defaults, an empty check is None."""
    older = {"transfer": {"base_adversarials": 3, "fooled_ct": 1, "old_key": 9}, "budget": {}, "warnings": ["w"],
             "binarization": {"arms": {"ct": {"label": "CT", "attack": "pgd", "verdict": "PASS", "ci": [0, 1]}}}}
    report = SanityReport.from_dict(older)
    assert report.transfer is not None and report.transfer.fooled_ct == 1 and report.transfer.transfer_only == 0
    assert report.budget is None and report.incomplete is None and report.reference == {}
    assert report.binarization is not None and report.binarization.arms["ct"].verdict == "PASS"
    assert report.binarization.mcnemar is None
