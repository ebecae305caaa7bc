#!/usr/bin/env bash
# Set up a fresh machine for ctrobust: the Debian Fashion-MNIST package and a venv in .venv.
# Safe to run again: each step is skipped when already done. Works as root (no sudo needed) and as a
# user with sudo. CTROBUST_FASHION_MNIST_SYSTEM_DIR overrides where the data package is looked for
# (the same variable ctrobust reads), which also lets a test drive the install branch.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR="${CTROBUST_FASHION_MNIST_SYSTEM_DIR:-/usr/share/datasets/fashion-mnist}"

# Debian packages: the Fashion-MNIST data always; with --test also Chromium and its driver (the
# report test renders the HTML report in a real headless browser) and shellcheck (CI lints the scripts).
APT_PACKAGES=()
[ -f "$DATA_DIR/t10k-images-idx3-ubyte.gz" ] || APT_PACKAGES+=(dataset-fashion-mnist)
if [ "${1:-}" = "--test" ]; then
    command -v chromium >/dev/null || APT_PACKAGES+=(chromium)
    command -v chromedriver >/dev/null || APT_PACKAGES+=(chromium-driver)
    command -v shellcheck >/dev/null || APT_PACKAGES+=(shellcheck)
fi
if [ ${#APT_PACKAGES[@]} -gt 0 ]; then
    AS_ROOT=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || {
            echo "setup: need root or sudo to install Debian packages: ${APT_PACKAGES[*]}" >&2
            exit 1
        }
        AS_ROOT=(sudo)
    fi
    echo "setup: installing Debian packages: ${APT_PACKAGES[*]}" >&2
    # An assignment is recognised only before expansion, so the environment goes through `env`.
    "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
fi

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PY" >&2
    "$PY" -m venv .venv
fi
pip_install() {
    if ! .venv/bin/pip install -q --disable-pip-version-check "$@" > .venv/pip.log 2>&1; then
        grep -v "is ignored" .venv/pip.log | tail -30 >&2
        echo "setup: pip install $* failed (log: .venv/pip.log)" >&2
        exit 1
    fi
}
# torch/torchvision first and pinned: pip on these machines takes them from local disk.
pip_install "torch==2.14.1" "torchvision==0.29.1"
if [ "${1:-}" = "--test" ]; then pip_install -e ".[test]"; else pip_install -e .; fi
.venv/bin/python -c "import ctrobust, torch, pyautoattack"
