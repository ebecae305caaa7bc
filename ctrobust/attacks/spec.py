"""Which attack to run and with what settings, as one value that goes into every result."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum

from ctrobust.attacks.registry import AttackEntry, attack_names, entry, parse_attack_name
from ctrobust.errors import CtrobustError


class AttackName(StrEnum):
    """The attacks ctrobust ships, as choices for Python callers; each is an entry of
    :mod:`ctrobust.attacks.registry`, which holds everything about it (an attack registered there by a
    plugin or a test is named by its string)."""

    AUTOATTACK = "autoattack"
    PGD = "pgd"
    APGD_CE = "apgd-ce"
    APGD_DLR = "apgd-dlr"


class AutoAttackVersion(StrEnum):
    """AutoAttack's versions (pyautoattack's own settings for each)."""

    STANDARD = "standard"
    PLUS = "plus"
    RAND = "rand"


ATTACKS = attack_names()
STEPPED_ATTACKS = tuple(name for name in ATTACKS if entry(name).has_steps)
STEPS_DEFAULTS = ", ".join(f"{name} {entry(name).default_steps}" for name in STEPPED_ATTACKS)
AA_VERSIONS = tuple(v.value for v in AutoAttackVersion)


@dataclass(frozen=True)
class AttackSpec:
    """An attack name (a registry entry's) and its settings; ``steps``/``restarts`` apply to attacks with steps."""

    name: str = "autoattack"
    steps: int | None = None
    restarts: int = 1
    step_size: float | None = None
    version: str = "standard"

    def __post_init__(self) -> None:
        name = parse_attack(self.name)  # a stored spec's name comes back as text
        object.__setattr__(self, "name", name)
        if self.steps is None and self.entry.has_steps:
            object.__setattr__(self, "steps", self.entry.default_steps)
        if self.steps is not None and self.steps <= 0:
            raise CtrobustError(f"Expected `steps` to be a positive integer, but got {self.steps}.")
        if self.restarts <= 0:
            raise CtrobustError(f"Expected `restarts` to be a positive integer, but got {self.restarts}.")
        if self.step_size is not None and not (math.isfinite(self.step_size) and self.step_size > 0):
            raise CtrobustError(f"Expected `step_size` to be a positive finite float, but got {self.step_size}.")
        if self.version not in AA_VERSIONS:
            raise CtrobustError(f"Expected AutoAttack version standard, plus or rand, but got {self.version!r}.")

    @property
    def entry(self) -> AttackEntry:
        """Everything about this attack (:mod:`ctrobust.attacks.registry`)."""
        return entry(self.name)

    def label(self) -> str:
        if self.entry.versioned:
            return f"{self.name}-{self.version}"
        return f"{self.name}-{self.steps}steps" + (f"-{self.restarts}restarts" if self.restarts > 1 else "")

    def to_dict(self) -> dict[str, object]:
        if self.entry.versioned:
            return {"name": self.name, "version": self.version}
        out = asdict(self)
        out.pop("version")
        return out


def parse_attack(name: object) -> str:
    """An attack's name as typed ('APGD_CE', 'pgd', an ``AttackName``), or an error that lists the attacks."""
    return parse_attack_name(name)


def as_spec(attack: str | AttackSpec) -> AttackSpec:
    return attack if isinstance(attack, AttackSpec) else AttackSpec(parse_attack(attack))
