"""AutoAttack's own warnings about the model it attacks, caught instead of lost.

pyautoattack checks every model it attacks (randomised outputs, probabilities instead of logits,
zero gradients, Square beating the gradient attacks, dynamic defences) and logs a warning on the
``auto-attack`` logger. The terminal shows that logger only at ``-v``, so a run catches the warnings
itself, at every verbosity, and stores them with the cell that raised them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

AUTOATTACK_LOGGER = "auto-attack"


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().split(" See flags_doc.md")[0].strip()
        if message not in self.sink:
            self.sink.append(message)


@contextmanager
def autoattack_flags() -> Iterator[list[str]]:
    """Collect the distinct warnings pyautoattack raises inside the block (logger or ``warnings``)."""
    sink: list[str] = []
    handler = _Collect(sink)
    logger = logging.getLogger(AUTOATTACK_LOGGER)
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield sink
        for w in caught:  # attacks built without a logger warn through ``warnings``
            text = str(w.message).split(" See flags_doc.md")[0].strip()
            if "pyautoattack" in (w.filename or "") and text not in sink:
                sink.append(text)
    finally:
        logger.removeHandler(handler)
