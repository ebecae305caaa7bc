"""The 15 RobustBench corruptions (CIFAR-10-C order) and severities 1-5, parsed from the CLI."""

from __future__ import annotations

from collections.abc import Sequence

from ctrobust.errors import CtrobustError, unknown_name_error

CORRUPTIONS: tuple[str, ...] = (
    "shot_noise", "motion_blur", "snow", "pixelate", "gaussian_noise", "defocus_blur", "brightness", "fog",
    "zoom_blur", "frost", "glass_blur", "impulse_noise", "contrast", "jpeg_compression", "elastic_transform",
)
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)


def parse_corruptions(text: str | Sequence[str] | None) -> list[str]:
    """'all' / None -> all 15; else a comma list or a sequence of known names (dashes accepted for underscores)."""
    if text is None or isinstance(text, str) and text.strip().lower() == "all":
        return list(CORRUPTIONS)
    names = []
    for raw in text.split(",") if isinstance(text, str) else text:
        name = raw.strip().lower().replace("-", "_")
        if not name:
            continue
        if name not in CORRUPTIONS:
            raise unknown_name_error("corruption", raw.strip(), CORRUPTIONS)
        if name not in names:
            names.append(name)
    if not names:
        raise CtrobustError(f"--corruptions {text!r} names no corruption.")
    return names


def parse_severities(text: str | Sequence[int] | None) -> list[int]:
    """'all' / None -> 1..5; else '1,3,5', '2-4' or a sequence of integers; each must be in 1-5."""
    if text is None or isinstance(text, str) and text.strip().lower() == "all":
        return list(SEVERITIES)
    values = _severities_text(text) if isinstance(text, str) else {int(v) for v in text}
    bad = sorted(v for v in values if v not in SEVERITIES)
    if bad or not values:
        shown = text if isinstance(text, str) else ",".join(str(v) for v in text)
        raise CtrobustError(f"Expected severities between 1 and 5, but got {shown!r}.")
    return sorted(values)


def _severities_text(text: str) -> set[int]:
    values: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-"))
                if not (min(SEVERITIES) <= lo <= hi <= max(SEVERITIES)):  # checked before the range is built
                    raise CtrobustError(f"Expected severities between 1 and 5 (a range lo-hi with lo <= hi), "
                                        f"but got {part!r} in --severities {text!r}.")
                values.update(range(lo, hi + 1))
            elif part:
                values.add(int(part))
    except ValueError:
        raise CtrobustError(f"Expected --severities as '1,3,5' or '2-4', but got {text!r}.") from None
    return values
