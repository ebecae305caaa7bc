"""The bar fits the terminal: at 80 and 120 columns it keeps at least 20 columns of bar, and the description is
shortened to the stage and the count (read from a real pseudo-terminal of each width)."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import textwrap

import pytest

from conftest import REPO
from ctrobust.stages.progress import RunProgress

CHILD = textwrap.dedent("""
    import time
    from ctrobust.stages.progress import RunProgress

    with RunProgress("ctrobust eval") as progress:
        progress.plan("final", 1000.0)
        progress.start("final", "base (ReLU) and CT \\u03b2=0.74 on the evaluation split", short="final")
        progress.status("APGD-T on CT \\u03b2=0.74: 143 of 1000 still robust", "APGD-T CT 143/1000")
        for _ in range(4):
            progress.add_work(100.0)
            time.sleep(0.6)
        progress._bar.refresh()
        time.sleep(0.2)
""")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _drawn_lines(columns: int) -> list[str]:
    """Every state of the bar's line as the child drew it on a pty of ``columns`` columns."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": str(columns)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=REPO)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the pty
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
    return [line for line in re.split(r"[\r\n]", text) if line.startswith("ctrobust eval:")]


@pytest.mark.parametrize("columns", [80, 120])
def test_the_bar_keeps_twenty_columns_and_the_count_on_a_terminal_of(columns: int) -> None:
    lines = _drawn_lines(columns)
    assert lines, "no bar was drawn"
    for line in lines:
        assert len(line) <= columns, line
        bar = line.split("|")[1]
        assert len(bar) >= RunProgress.MIN_BAR, line
    last = lines[-1]
    assert "APGD-T" in last and "143/1000" in last, last


def test_the_whole_description_where_it_fits_or_with_verbose() -> None:
    progress = RunProgress("ctrobust eval", disable=True)
    progress.start("final", "base (ReLU) and CT \u03b2=0.74 on the evaluation split", short="final")
    progress.status("APGD-T on CT \u03b2=0.74: 143 of 1000 still robust", "APGD-T CT 143/1000")
    whole = "base (ReLU) and CT \u03b2=0.74 on the evaluation split | APGD-T on CT \u03b2=0.74: 143 of 1000 still robust"
    assert progress.fitted(200) == whole
    assert progress.fitted(120) == "final | APGD-T CT 143/1000"
    assert progress.fitted(80) == "APGD-T CT 143/1000"
    assert progress.fitted(70).endswith("\u2026") and len(progress.fitted(70)) <= 70 - 13 - RunProgress.FIXED_COLUMNS - 20
    verbose = RunProgress("ctrobust eval", disable=True, full_text=True)
    verbose.start("final", "base (ReLU) on the evaluation split")
    verbose.status("APGD-T on the original model: 143 of 1000 still robust", "APGD-T base 143/1000")
    assert verbose.fitted(80) == ("base (ReLU) on the evaluation split | APGD-T on the original model: 143 of 1000 "
                                  "still robust")
