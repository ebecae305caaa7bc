"""One entry per attack: everything that differs between attacks, in one frozen record.

The planner, the runners, the progress bar's cost model, every check (binarization test, re-attack of
the survivors, weak-attack warnings, randomised models) and the audit read an attack's entry; no code
outside this module asks "which attack is this?" (``tests/test_attack_registry.py`` walks the code and
fails on a comparison with an attack's name). Adding an attack is one entry here and one runner.

Torch-free: the functions an entry needs are named as lazy ``"module:attr"`` targets, loaded on first
use, so the command line and the plan can read entries without importing torch or pyautoattack.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from ctrobust.errors import CtrobustError, unknown_name_error

# The unit of every entry's cost and of the progress bar: one image through the model is 1, a pass that is
# back-propagated (forward with its graph kept, then backward) counts about 3.
GRAD_WEIGHT = 3.0

_RUNNERS = "ctrobust.attacks.runners"
_COST = "ctrobust.attacks.cost"


@dataclass(frozen=True)
class AttackEntry:
    """An attack and everything about it that the rest of ctrobust needs.

    Fields holding ``"module:attr"`` are loaded with :meth:`load`:

    - ``runner``: ``(model, x, y, clean_correct, eps, threat, spec, seed, batch_size) -> (x_adv, extra)``
      (``ctrobust.attacks.runners.AttackRunner``); its candidates are re-checked before they count.
    - ``work``: ``(spec, correct, survivors, n, n_classes, threat) -> units`` for the progress bar.
    - ``binarized``: ``(spec, threat, seed) -> BinarizedAttack``, how the attack runs on the binarization
      test's two-class model; None when it cannot, and ``not_binarizable`` says why (the test then
      records NOT RUN with that reason).
    - ``threat_check``: ``(threat) -> None``, raising a ``CtrobustError`` when the attack has no form
      under that threat model.
    - ``image_check``: ``(spec, threat, image_shape) -> None``, raising a ``CtrobustError`` before any work
      when the attack cannot run on images of that shape (C x H x W).
    """

    name: str
    summary: str
    runner: str
    work: str
    default_steps: int | None = None  # None: the attack has no steps setting (--steps does not apply)
    iterations: int | None = None  # for an attack without steps: its iterations per point (to compare strength)
    versioned: bool = False  # has versions (AutoAttack's standard/plus/rand), part of its label
    staged: bool = False  # runs attack by attack across both arms (AutoAttack's stages; resumable)
    batches_betas: bool = False  # the sweep may attack many betas in one batched pass (one restart)
    binarized: str | None = None
    not_binarizable: str = ""
    reattack: bool = False  # incomplete-optimisation check: CT's survivors attacked again with twice the steps
    plain_gradient: bool = False  # a gain that rests on this attack alone is warned about (overstates smooth models)
    scale_invariant: bool = False  # a loss unchanged by the logits' scale (DLR, margins); cross-entropy is not
    eot_versions: tuple[str, ...] = ()  # versions that attack a randomised model in expectation
    threat_check: str | None = None
    image_check: str | None = None

    def load(self, target: str) -> Any:
        """The object a ``"module:attr"`` field names."""
        module, _, attr = target.partition(":")
        return getattr(import_module(module), attr)

    @property
    def has_steps(self) -> bool:
        return self.default_steps is not None

    def strength(self, steps: int | None) -> int:
        """Iterations per point, for "is the selection attack weaker than the final one?"."""
        return self.iterations if self.iterations is not None else (steps or self.default_steps or 0)

    def handles_randomised(self, version: str) -> bool:
        """Whether this attack (at ``version``) attacks a randomised model in expectation."""
        return version in self.eot_versions

    def check_threat(self, threat: Any) -> None:
        if self.threat_check is not None:
            self.load(self.threat_check)(threat)

    def check_images(self, spec: Any, threat: Any, image_shape: tuple[int, ...]) -> None:
        if self.image_check is not None:
            self.load(self.image_check)(spec, threat, image_shape)


_REGISTRY: dict[str, AttackEntry] = {}


def register(entry: AttackEntry) -> AttackEntry:
    """Add an attack; a second entry under a taken name is an error, never a silent replacement."""
    if entry.name in _REGISTRY:
        raise CtrobustError(f"an attack named {entry.name!r} is already registered")
    if (entry.binarized is None) == (not entry.not_binarizable):
        raise CtrobustError(f"attack {entry.name!r}: give either how it runs on a binarized model or why it cannot")
    _REGISTRY[entry.name] = entry
    return entry


@contextmanager
def registered(entry: AttackEntry) -> Iterator[AttackEntry]:
    """An attack registered for the duration of a block (tests, plugins tried out)."""
    register(entry)
    try:
        yield entry
    finally:
        _REGISTRY.pop(entry.name, None)


def attack_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def parse_attack_name(name: object) -> str:
    """An attack's name as typed ('APGD_CE', 'pgd', an ``AttackName``), or an error that lists the attacks."""
    text = str(name).strip().lower().replace("_", "-")
    if text not in _REGISTRY:
        raise unknown_name_error("attack", str(name), _REGISTRY)
    return text


def entry(name: object) -> AttackEntry:
    """The entry of an attack (a name as typed, an ``AttackName`` or an ``AttackSpec``'s name)."""
    return _REGISTRY[parse_attack_name(getattr(name, "name", name))]


def entry_for_label(label: str) -> AttackEntry | None:
    """The entry of a stored result's attack label ('autoattack-standard', 'apgd-ce-20steps'), if known."""
    matches = [e for e in _REGISTRY.values() if label == e.name or label.startswith(e.name + "-")]
    return max(matches, key=lambda e: len(e.name)) if matches else None


BENCHMARK_ATTACK = "autoattack"  # the field's reference evaluation: the leaderboard ranks its runs first
REFERENCE_ATTACK = "apgd-ce"  # the sanity checks' reference attack (budget sweep, reference check)
# Beside it at 1x eps, on the same points: a loss no scale of the logits can flatten (a model whose logits are
# divided by 1000 gives cross-entropy almost nothing to climb, and would hide a point from APGD-CE alone).
REFERENCE_SCALE_FREE_ATTACK = "apgd-dlr"


def is_benchmark_label(label: str) -> bool:
    """Whether a stored result's attack label is the field's reference evaluation (AutoAttack)."""
    found = entry_for_label(label)
    return found is not None and found.name == BENCHMARK_ATTACK

register(AttackEntry(
    "autoattack", "AutoAttack (pyautoattack): APGD-CE, APGD-T, FAB-T, Square; --aa-version standard|plus|rand",
    runner=f"{_RUNNERS}:run_autoattack", work=f"{_COST}:autoattack_work", iterations=100, versioned=True,
    staged=True, binarized=f"{_RUNNERS}:autoattack_on_binarized", eot_versions=("rand",),
    # APGD-T's DLR loss, FAB's geometry and Square's margin do not see the logits' scale
    scale_invariant=True, image_check="ctrobust.attacks.autoattack:check_square_shape"))
register(AttackEntry(
    "pgd", "PGD with random start (Madry et al.); keeps mid-run successes", runner=f"{_RUNNERS}:run_pgd",
    work=f"{_COST}:pgd_work", default_steps=20, binarized=f"{_RUNNERS}:pgd_on_binarized", reattack=True,
    plain_gradient=True, threat_check="ctrobust.attacks.norms:check_pgd"))
register(AttackEntry(
    "apgd-ce", "APGD on the cross-entropy loss (AutoAttack's first attack)", runner=f"{_RUNNERS}:run_apgd_ce",
    work=f"{_COST}:apgd_work", default_steps=20, batches_betas=True, binarized=f"{_RUNNERS}:apgd_ce_on_binarized",
    reattack=True))
register(AttackEntry(
    "apgd-dlr", "APGD on the DLR loss (AutoAttack's margin loss: invariant to the logits' scale and shift)",
    runner=f"{_RUNNERS}:run_apgd_dlr", work=f"{_COST}:apgd_work", default_steps=100, reattack=True,
    scale_invariant=True, not_binarizable="the DLR loss compares three logits; the binarized model has two"))
