"""One switch for download attempts: CTROBUST_OFFLINE=1 makes every loader skip them."""

from __future__ import annotations

import os

OFFLINE_ENV = "CTROBUST_OFFLINE"


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")
