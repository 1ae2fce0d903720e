#!/usr/bin/env bash
# Installs MetaRL's system dependencies from Debian (OpenBLAS; MuJoCo 2.2.2 for the locomotion
# families; python3-venv for the Gymnasium bridge), if they are missing.
set -euo pipefail
need=()
[ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ] || [ -e /usr/include/openblas/cblas.h ] || need+=(libopenblas-dev)
ldconfig -p | grep -q "libopenblas.so.0" || need+=(libopenblas-dev)
[ -e /usr/include/mujoco/mujoco.h ] || need+=(libmujoco-dev)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]} from Debian"
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# The Gymnasium bridge (`--env gym:…`) makes its private virtualenv with `python3 -m venv` on
# first use; Debian splits venv/ensurepip into python3-venv.
if command -v python3 >/dev/null && ! python3 -c "import ensurepip, venv" 2>/dev/null; then
    echo "== installing python3-venv from Debian (for the Gymnasium bridge's virtualenv)"
    $SUDO apt-get install -y -q --no-install-recommends python3-venv || echo "note: python3-venv not installed; gym: task families need --python PATH"
fi
