"""A progress bar over the named steps of a long run (on stderr, so --json stays clean)."""

from __future__ import annotations

from types import TracebackType

from tqdm.auto import tqdm


class StepBar:
    def __init__(self, total: int, desc: str, disable: bool = False) -> None:
        self._bar = tqdm(total=total, desc=desc, disable=disable, unit="step", dynamic_ncols=True, mininterval=0.5)
        self._started = False

    def step(self, label: str) -> None:
        """Mark the previous step done and show what runs now."""
        if self._started:
            self._bar.update(1)
        self._started = True
        self._bar.set_postfix_str(label)

    def __enter__(self) -> StepBar:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None and self._started:
            self._bar.update(1)
        self._bar.close()
