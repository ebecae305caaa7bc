"""A progress bar over the named steps of a long run (on stderr, so --json stays clean).

The bar appears at the first step, so errors found while loading (bad names, missing files)
print as one line with no bar above them.
"""

from __future__ import annotations

from types import TracebackType

from tqdm.auto import tqdm


class StepBar:
    def __init__(self, total: int, desc: str, disable: bool = False) -> None:
        self._total, self._desc, self._disable = total, desc, disable
        self._bar: tqdm | None = None

    def step(self, label: str) -> None:
        """Mark the previous step done and show what runs now."""
        if self._bar is None:
            self._bar = tqdm(total=self._total, desc=self._desc, disable=self._disable, unit="step",
                             dynamic_ncols=True, mininterval=0.5)
        else:
            self._bar.update(1)
        self._bar.set_postfix_str(label)

    def __enter__(self) -> StepBar:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is None:
            return
        if exc_type is None:
            self._bar.update(1)
        else:
            self._bar.leave = False
        self._bar.close()
