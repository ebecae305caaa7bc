#!/usr/bin/env bash
# The README's test command: set up (if needed), run the static checks (lint and import order, types, the
# layering contracts of docs/architecture.md), then every test, slow ones included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
echo "test: ruff (lint, import order)" >&2
.venv/bin/ruff check ctrobust tests benchmarks
echo "test: mypy (types of ctrobust/)" >&2
.venv/bin/mypy
echo "test: import-linter (the layering)" >&2
.venv/bin/lint-imports --no-cache
# Two workers (pytest-xdist): much of the suite waits on subprocesses and kernels; a file's tests stay on one
# worker (--dist loadfile), so the Ray tests never start two clusters at once. Pass -n 0 to run in one process.
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"
