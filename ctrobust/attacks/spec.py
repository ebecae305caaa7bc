"""Which attack to run and with what settings, as one value that goes into every result."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum

from ctrobust.errors import CtrobustError, unknown_name_error


class AttackName(StrEnum):
    """Attacks ctrobust runs; ``attacks/evaluation.py`` maps each to its runner, ``attacks/cost.py`` to its cost."""

    AUTOATTACK = "autoattack"
    PGD = "pgd"
    APGD_CE = "apgd-ce"


class AutoAttackVersion(StrEnum):
    """AutoAttack's versions (pyautoattack's own settings for each)."""

    STANDARD = "standard"
    PLUS = "plus"
    RAND = "rand"


ATTACKS = tuple(a.value for a in AttackName)
AA_VERSIONS = tuple(v.value for v in AutoAttackVersion)
DEFAULT_STEPS = {AttackName.PGD: 20, AttackName.APGD_CE: 20}


@dataclass(frozen=True)
class AttackSpec:
    """An attack name and its settings; ``steps``/``restarts`` apply to pgd and apgd-ce."""

    name: AttackName = AttackName.AUTOATTACK
    steps: int | None = None
    restarts: int = 1
    step_size: float | None = None
    version: str = "standard"

    def __post_init__(self) -> None:
        name = parse_attack(self.name)  # a stored spec's name comes back as text
        object.__setattr__(self, "name", name)
        if self.steps is None and name in DEFAULT_STEPS:
            object.__setattr__(self, "steps", DEFAULT_STEPS[name])
        if self.steps is not None and self.steps <= 0:
            raise CtrobustError(f"Expected `steps` to be a positive integer, but got {self.steps}.")
        if self.restarts <= 0:
            raise CtrobustError(f"Expected `restarts` to be a positive integer, but got {self.restarts}.")
        if self.step_size is not None and not (math.isfinite(self.step_size) and self.step_size > 0):
            raise CtrobustError(f"Expected `step_size` to be a positive finite float, but got {self.step_size}.")
        if self.version not in AA_VERSIONS:
            raise CtrobustError(f"Expected AutoAttack version standard, plus or rand, but got {self.version!r}.")

    def label(self) -> str:
        if self.name is AttackName.AUTOATTACK:
            return f"autoattack-{self.version}"
        return f"{self.name.value}-{self.steps}steps" + (f"-{self.restarts}restarts" if self.restarts > 1 else "")

    def to_dict(self) -> dict[str, object]:
        if self.name is AttackName.AUTOATTACK:
            return {"name": self.name.value, "version": self.version}
        out = asdict(self)
        out.pop("version")
        out["name"] = self.name.value
        return out


def parse_attack(name: str) -> AttackName:
    """An attack's name as typed ('APGD_CE', 'pgd', ...), or an error that lists the attacks."""
    text = str(name).strip().lower().replace("_", "-")
    if text not in ATTACKS:
        raise unknown_name_error("attack", str(name), ATTACKS)
    return AttackName(text)


def as_spec(attack: str | AttackSpec) -> AttackSpec:
    return attack if isinstance(attack, AttackSpec) else AttackSpec(parse_attack(attack))
