#!/usr/bin/env bash
# Installs MetaRL's system dependencies from Debian (OpenBLAS), if they are missing.
set -euo pipefail
need=()
[ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ] || [ -e /usr/include/openblas/cblas.h ] || need+=(libopenblas-dev)
ldconfig -p | grep -q "libopenblas.so.0" || need+=(libopenblas-dev)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "== installing ${need[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
