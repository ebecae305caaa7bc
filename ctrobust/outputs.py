"""Where results go: names derived from user input made safe, and output folders checked before any work.

A run can take an hour; finding only at its end that ``--out`` is a file, or on a read-only or full
disk, loses all of it. So every command checks its output folder first, without writing anything:
it resolves ``..`` and symlinks, refuses an existing file, a folder outside the one it must stay in,
pseudo-filesystems such as /proc, and a folder whose nearest existing parent is not writable.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ctrobust.errors import CtrobustError

MIN_FREE_BYTES = 16 * 1024 * 1024  # results, tables and figures fit easily; less means a full disk
PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))


def safe_name(text: str, limit: int = 80) -> str:
    """A file-name-safe name for user text (lower case); a short digest is added whenever anything but
    the case had to change, so two different texts never map to one name (``model_v1.py`` and
    ``model_v2.py`` cut to 80 characters), while plain names stay as they are (``Linf`` -> ``linf``)."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", text.lower())
    slug = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", "-", slug)).strip("-.") or "run"  # no '..' even inside a name
    if slug == text.lower() and len(slug) <= limit:
        return slug
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{slug[: limit - 11].rstrip('-.')}-{digest}"


def check_output_dir(path: str | os.PathLike[str], *, inside: str | os.PathLike[str] | None = None,
                     what: str = "--out") -> Path:
    """The resolved folder, or a CtrobustError saying why nothing can be written there. Writes nothing."""
    raw = Path(path)
    resolved = raw.expanduser().resolve()
    if inside is not None:
        root = Path(inside).expanduser().resolve()
        if resolved != root and root not in resolved.parents:
            raise CtrobustError(f"{what} {raw} resolves to {resolved}, outside {root}; choose a folder inside it.")
    for pseudo in PSEUDO_FILESYSTEMS:
        if resolved == pseudo or pseudo in resolved.parents:
            raise CtrobustError(f"{what} {raw} is under {pseudo}, where results cannot be written; choose another folder.")
    if resolved.exists() and not resolved.is_dir():
        raise CtrobustError(f"{what} {raw} is an existing file, not a folder; choose another path.")
    existing = resolved
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise CtrobustError(f"{what} {raw}: {existing} is a file, so no folder can be made under it.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CtrobustError(f"{what} {raw}: {existing} is not writable (read-only filesystem or no permission).")
    try:
        free = os.statvfs(existing).f_bavail * os.statvfs(existing).f_frsize
    except OSError:
        free = MIN_FREE_BYTES
    if free < MIN_FREE_BYTES:
        raise CtrobustError(f"{what} {raw}: the disk holding {existing} is full "
                            f"({free // 1024} KiB free); free space first.")
    return resolved


def check_output_file(path: str | os.PathLike[str], what: str) -> Path:
    """The same checks for a file that will be created or updated (a store): its folder must take it."""
    resolved = Path(path).expanduser().resolve()
    if resolved.exists() and resolved.is_dir():
        raise CtrobustError(f"{what} {path} is a folder, not a file; give a file path.")
    check_output_dir(resolved.parent, what=what)
    return resolved


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula


def spreadsheet_safe(value: object) -> object:
    """A CSV cell that a spreadsheet cannot run: text starting like a formula (a model file named
    ``=cmd|' C calc'!A0.py``) gets the usual ``'`` prefix; numbers, and text that is a number, stay as they are."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value



def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 point``, ``2 points``: a count with its noun in agreement (``nouns``: an irregular plural)."""
    return f"{count} {noun}" if count == 1 else f"{count} {nouns or noun + 's'}"
