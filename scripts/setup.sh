#!/usr/bin/env bash
# Set up a fresh machine for ctrobust: the Debian Fashion-MNIST package and a venv in .venv.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the Fashion-MNIST data always; with --test also Chromium and its driver, which the
# report test uses to render the HTML report in a real headless browser.
APT_PACKAGES=()
[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || APT_PACKAGES+=(dataset-fashion-mnist)
if [ "${1:-}" = "--test" ]; then
    command -v chromium >/dev/null || APT_PACKAGES+=(chromium)
    command -v chromedriver >/dev/null || APT_PACKAGES+=(chromium-driver)
fi
if [ ${#APT_PACKAGES[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
fi

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
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
pip_install -e ".[test]"
.venv/bin/python -c "import ctrobust, torch, pyautoattack" 
