"""The terminal's and the report's lines for a stored attack audit (plain data in, text out)."""

from __future__ import annotations

from typing import Any


def summary_lines(audit: dict[str, Any]) -> list[str]:
    out = [f"attack audit of run {audit['run_id']}: {audit['samples']} samples, {audit['inner_points']} inner points "
           f"each, seed {audit['seed']}"]
    for name, arm in audit["arms"].items():
        label = f"CT beta={arm['beta']:.2f}" if name == "ct" else "base"
        for attack, r in arm["attacks"].items():
            out.append(f"  {label:<14} {attack:<34} {r['found']}/{r['m']} {r['verdict']:<12} random {r['random_found']}")
        u = arm["unbounded"]
        out.append(f"  {label:<14} {'unbounded eps (APGD-CE)':<34} {u['found']}/{u['m']}"
                   + ("" if u["found"] == u["m"] else "  <- the attack fails even without a budget"))
    if "grid" in audit:
        cells = ", ".join(f"{float(b):.2f}: {v['found']}/{v['m']}" for b, v in audit["grid"].items())
        out.append(f"  grid (selection attack, binarized): {cells}")
    for name, t in audit.get("trajectory", {}).items():
        out.append(f"  PGD indicators {name:<5} silent {t['silent_success']}, incomplete {t['incomplete_optimisation']}, "
                   f"no gradient {t['unavailable_gradients']}, unstable {t['unstable_predictions']}, "
                   f"unconstrained failures {t['unconstrained_failure']} (of {t['clean']} clean points)")
    fid = audit.get("fidelity")
    if fid:
        rho = "n/a" if fid["spearman"] is None else f"{fid['spearman']:.2f}"
        out.append(f"  selection fidelity on {fid['n']} points: Spearman {rho} between the selection attack's and "
                   f"AutoAttack's curves; best beta {fid['best_beta']['selection']:g} vs {fid['best_beta']['autoattack']:g}")
    return out
