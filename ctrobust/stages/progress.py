"""Progress that tells the truth: a bar whose units are work, measured inside the attacks.

Work is counted where it happens: a forward pre-hook on the attacked model adds the images of each
call, weighted by what the call costs (a forward that will be back-propagated counts
``GRAD_WEIGHT`` forwards). Each stage of a run (one beta of the sweep, one final attack) is planned
with an estimate of its work from a cost model (:mod:`ctrobust.attacks.cost`), and the estimate of
the stages still to come is revised as soon as something is learnt (the robust fraction on the
selection split, the points left after each of AutoAttack's attacks). The bar's total is the work
done plus the work still estimated, so its rate-based ETA is in seconds of this machine.

Messages (the CT unit compiling, AutoAttack's progress) go through Python's ``logging`` under the
``ctrobust`` logger and are written above the bar.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from ctrobust.attacks.registry import GRAD_WEIGHT

log = logging.getLogger("ctrobust")



def bar_class() -> type[Any]:
    """tqdm's notebook bar where a notebook can draw it (ipywidgets installed), else the text bar: tqdm.auto
    in a notebook without ipywidgets prints a warning into the user's output instead of a bar."""
    import importlib.util

    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm


class _TqdmHandler(logging.Handler):
    """Write log records above any tqdm bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never break a run
            self.handleError(record)


def configure_logging(verbosity: int) -> None:
    """-q (-1): warnings and errors only; default (0): ctrobust's progress lines; -v (1): AutoAttack's own log too."""
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("ctrobust")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.WARNING if verbosity < 0 else logging.INFO)
    aa = logging.getLogger("auto-attack")
    aa.handlers[:] = [handler] if verbosity > 0 else []
    aa.propagate = False
    aa.setLevel(logging.DEBUG)  # its progress lines are DEBUG; _AutoAttackWatcher reads them either way


class WorkMeter:
    """Counts the work a module does: images per call, back-propagated calls weighted by GRAD_WEIGHT."""

    def __init__(self, on_work: Callable[[float], None]) -> None:
        self._on_work = on_work
        self.factor = 1.0  # time per unit of the attack running now, relative to a plain gradient attack

    def hook(self, _module: Any, args: tuple[Any, ...]) -> None:
        import torch

        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.dim() == 0:
            return
        tracked = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in _module.parameters()))
        self._on_work(len(x) * (GRAD_WEIGHT if tracked else 1.0) * self.factor)

    @contextmanager
    def watching(self, module: Any) -> Iterator[None]:
        handle = module.register_forward_pre_hook(self.hook)
        try:
            yield
        finally:
            handle.remove()


class RunProgress:
    """One bar over a run's work; stages are planned with estimates that later knowledge revises."""

    def __init__(self, desc: str, disable: bool = False, on_label: Callable[[str], None] | None = None,
                 full_text: bool = False) -> None:
        self._desc, self._disable, self._on_label = desc, disable, on_label
        self._full_text = full_text  # -v: the whole description, whatever the terminal's width
        self._short_label = self._text = self._short_text = ""
        self._bar: Any = None
        self._done = 0.0  # work of finished stages plus the current stage's work so far
        self._stage_estimate = 0.0
        self._stage_done = 0.0
        self._future: dict[str, float] = {}  # estimates of stages not started, by key
        self._label = ""
        self._seed_rate: float | None = None  # units per second measured before the first stage
        self.meter = WorkMeter(self.add_work)

    PRIOR_SECONDS = 20.0  # how many seconds of observation the measured rate weighs against what the bar sees

    def calibrate(self, seconds_per_unit: float) -> None:
        """Seed the bar's rate with a measurement on the real model and device (one batch's forward and
        backward), so its first ETAs are in this machine's seconds; the rate the bar then sees takes over
        as it accumulates (the measurement weighs as ``PRIOR_SECONDS`` of observation)."""
        if seconds_per_unit > 0:
            self._seed_rate = 1.0 / seconds_per_unit

    def rate(self, elapsed: float) -> float | None:
        """Units per second for the ETA: the seeded rate blended with the work done in ``elapsed`` seconds;
        None (tqdm's own estimate) when nothing was measured."""
        if self._seed_rate is None:
            return None
        return (self._done + self._seed_rate * self.PRIOR_SECONDS) / (max(elapsed, 0.0) + self.PRIOR_SECONDS)

    def part(self, units: float, after: float) -> None:
        """A part of the current stage begins (one of the checks, a phase of one): ``units`` of work, then
        ``after`` more in the stage's later parts. The stage's remaining work is revised to that, so that an
        estimate's error is carried only to the end of its part."""
        self.revise_stage(units + after)

    # planning -------------------------------------------------------------------------------
    def plan(self, key: str, estimate: float) -> None:
        """Add or revise the estimate of a stage that has not started yet."""
        self._future[key] = max(float(estimate), 0.0)
        self._refresh_total()

    def planned(self, key: str) -> float:
        return self._future.get(key, 0.0)

    def start(self, key: str, label: str, estimate: float | None = None, short: str | None = None) -> None:
        """Begin a planned stage (its estimate leaves the future and becomes the current stage's); ``short``: the
        label where the terminal is too narrow for it."""
        planned = self._future.pop(key, 0.0)
        self._stage_estimate = planned if estimate is None else float(estimate)
        self._stage_done = 0.0
        self._label, self._short_label = label, short or label
        self._text = self._short_text = ""
        if self._on_label is not None:
            self._on_label(label)
        self._ensure_bar()
        self._bar.set_postfix_str(label, refresh=False)
        self._refresh_total()

    def revise_stage(self, remaining: float) -> None:
        """The current stage now expects ``remaining`` more work than it has done."""
        self._stage_estimate = self._stage_done + max(float(remaining), 0.0)
        self._refresh_total()

    def skip(self, key: str) -> None:
        """A planned stage that will not run (reused from the store)."""
        self._future.pop(key, None)
        self._refresh_total()

    def finish(self) -> None:
        """End the current stage: whatever it estimated but did not use is dropped from the total."""
        self._stage_estimate = self._stage_done
        self._refresh_total()

    def status(self, text: str, short: str | None = None) -> None:
        """What runs now inside the stage (e.g. 'APGD-T: 143 of 1000 still robust'); ``short``: the same where the
        terminal is too narrow (the attack and the count, 'APGD-T 143/1000')."""
        self._text, self._short_text = text, short or text
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self._label} | {text}" if self._label else text)

    MIN_BAR = 20  # columns of bar kept on any terminal
    # what the bar's line holds besides the description: ': 100%||' and ' [12:34<1:23:45]' and ', '
    FIXED_COLUMNS = len(": 100%||") + len(" [12:34<1:23:45]") + len(", ")

    def fitted(self, ncols: int | None) -> str:
        """The description for a terminal of ``ncols`` columns: the whole text where it fits (or with -v), else
        the stage and the count in short, else that cut to fit, so that the bar keeps MIN_BAR columns."""
        def join(label: str, text: str) -> str:
            return f"{label} | {text}" if label and text else label or text

        whole = join(self._label, self._text)
        if self._full_text or not ncols:
            return whole
        room = ncols - len(self._desc) - self.FIXED_COLUMNS - self.MIN_BAR
        for candidate in (whole, join(self._short_label, self._short_text), self._short_text or self._short_label):
            if len(candidate) <= room:
                return candidate
        shortest = self._short_text or self._short_label
        return shortest[: max(room - 1, 0)] + "\u2026" if room > 1 else ""

    @property
    def done(self) -> float:
        return self._done

    @property
    def total(self) -> float:
        """Work done plus the work still estimated (what the bar's total shows)."""
        return self._done + max(self._stage_estimate - self._stage_done, 0.0) + sum(self._future.values())

    # work -------------------------------------------------------------------------------------
    def add_work(self, units: float) -> None:
        self._stage_done += units
        self._done += units
        if self._stage_done > self._stage_estimate:  # the estimate was low: never show > 100%
            self._stage_estimate = self._stage_done
        if self._bar is not None:
            self._refresh_total(refresh=False)
            self._bar.update(units)

    # bar --------------------------------------------------------------------------------------
    def _ensure_bar(self) -> None:
        if self._bar is None:
            base: Any = bar_class()
            owner = self

            class _SeededBar(base):
                """tqdm whose ETA uses the run's measured rate (see RunProgress.rate)."""

                @property
                def format_dict(self) -> dict[str, Any]:
                    d = dict(super().format_dict)
                    rate = owner.rate(float(d.get("elapsed") or 0.0))
                    if rate:
                        d["rate"] = rate
                    if d.get("postfix"):  # the description, shortened to what the terminal's width leaves
                        d["postfix"] = owner.fitted(d.get("ncols"))
                    return d

            self._bar = _SeededBar(total=max(self.total, 1.0), desc=self._desc, disable=self._disable, unit="work",
                             dynamic_ncols=True, mininterval=0.5, smoothing=0.05, file=sys.stderr,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]{postfix}")

    def _refresh_total(self, refresh: bool = True) -> None:
        if self._bar is None:
            return
        self._bar.total = max(self.total, 1.0)
        if refresh:
            self._bar.refresh()

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is None:
            return
        if exc_type is None:
            self._bar.total = max(self._done, 1.0)
            self._bar.n = self._bar.total
            self._bar.refresh()
        else:
            self._bar.leave = False
        self._bar.close()


_AA_RUNNING = re.compile(r"^running (\S+)$")
_AA_AFTER = re.compile(r"^robust accuracy after (\S+): ([\d.]+)% \(total time")
_AA_INITIAL = re.compile(r"^initial accuracy: ([\d.]+)%")


class AutoAttackWatcher(logging.Handler):
    """Reads pyautoattack's log ('running apgd-t', 'robust accuracy after APGD-T: 11.80%') as it runs.

    On each line it tells ``on_event(attack, points_left, n)``: which attack runs now and how many of
    the n points are still robust, so the caller can show it and re-estimate the remaining work.
    """

    def __init__(self, n: int, on_event: Callable[[str, int, int], None]) -> None:
        super().__init__(level=logging.DEBUG)
        self.n, self.on_event = n, on_event
        self.left = n
        self.current = "clean"

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if m := _AA_INITIAL.match(message):
            self.left = round(float(m.group(1)) / 100 * self.n)
        elif m := _AA_AFTER.match(message):
            self.left = round(float(m.group(2)) / 100 * self.n)
            self.current = f"after {m.group(1).lower()}"
        elif m := _AA_RUNNING.match(message):
            self.current = m.group(1)
        else:
            return
        self.on_event(self.current, self.left, self.n)

    @contextmanager
    def attached(self) -> Iterator[AutoAttackWatcher]:
        logger = logging.getLogger("auto-attack")
        old_level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(old_level)
