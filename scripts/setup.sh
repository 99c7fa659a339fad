#!/usr/bin/env bash
# One-shot set-up on a fresh Debian 12 machine (root or sudo): system packages, the project and
# its test dependencies. Idempotent: re-running only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
for pkg in gcc python3 python3-dev python3-venv tshark tcpdump libpcap-dev tcpreplay iproute2 maven default-jre-headless unzip chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The project lives in its own virtual environment, .venv, made from Debian's Python: Debian 12
# refuses `pip install` into the system interpreter (PEP 668, "externally-managed-environment"),
# and its python3.11 is built with PGO and LTO, libpython inside the executable: about 15 % less
# CPU for a DTLS analysis than a plain `./configure` build of 3.11 (README, bench/README).
# PYTHON=... picks another base interpreter; a .venv made from another one, or that no longer
# runs, is made again.
BASE=${PYTHON:-/usr/bin/python3}
PY=.venv/bin/python
want=$(readlink -f "$(command -v "$BASE")")
have=$($PY -c "import os, sys; print(os.path.realpath(sys._base_executable))" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  rm -rf .venv
  "$BASE" -m venv .venv
fi
$PY -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test,live,accel]"
# the per-packet modules compiled with mypyc and Cython (pure Python without them); rebuilt only
# when stale, or when built by another interpreter
mkdir -p build
$PY scripts/build_accel.py --if-stale >build/accel.log 2>&1 || { tail -40 build/accel.log; exit 1; }
# byte-code for the modules that stay Python (CLI, keys, rules set-up): compiled once here, not
# at every start when the environment sets PYTHONDONTWRITEBYTECODE
$PY -m compileall -q monitor parsers >/dev/null
if [ "${1:-}" = "--tests" ]; then
  # the Kaitai compiler (TLV module up to date) and the OMA registry package (object cross-check)
  command -v npm >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
  for d in parsers/kaitai tests/registry; do
    [ -f "$d/package-lock.json" ] && (cd "$d" && npm ci --silent --no-audit --no-fund >/dev/null)
  done
  tests/es/install_es.sh >/dev/null
fi
