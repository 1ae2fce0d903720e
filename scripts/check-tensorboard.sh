#!/usr/bin/env bash
# Installs TensorBoard from PyPI into a private virtualenv (once) and checks that each run
# directory's event file holds the same scalars as its metrics.csv, read by TensorBoard's
# own EventAccumulator.   Usage: bash scripts/check-tensorboard.sh RUN_DIR [RUN_DIR…]
set -euo pipefail
venv="${METARL_TB_VENV:-${TMPDIR:-/tmp}/metarl-tensorboard-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import tensorboard" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q tensorboard
fi
exec "$venv/bin/python" "$(dirname "$0")/check_tensorboard.py" "$@"
