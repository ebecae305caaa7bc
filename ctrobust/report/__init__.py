"""Reports from the results store: tables, figures, the HTML page, leaderboards.

matplotlib keeps a config and font-cache folder under the user's home; where that cannot be written (a
read-only HOME, a locked-down container) it prints a raw warning and leaves a ``matplotlib-*`` folder in the
temporary directory. Before matplotlib is first imported, ctrobust points it at a temporary folder of its
own instead, removed when the process ends (a folder the user chose with MPLCONFIGDIR is left alone).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def _writable_folder(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return path.is_dir() and os.access(path, os.W_OK)


def _matplotlib_home() -> None:
    if os.environ.get("MPLCONFIGDIR"):
        return
    home = Path(os.path.expanduser("~"))
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "matplotlib"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "matplotlib"
    if _writable_folder(config) and _writable_folder(cache):
        return
    own = tempfile.mkdtemp(prefix="ctrobust-matplotlib-")
    atexit.register(shutil.rmtree, own, ignore_errors=True)
    os.environ["MPLCONFIGDIR"] = own


_matplotlib_home()
