#!/usr/bin/env bash
# Compares MetaRL's MuJoCo families with Gymnasium's own HalfCheetah-v5 and Ant-v5, step by
# step, from the same initial states with the same actions. Installs gymnasium and mujoco from
# PyPI into a private virtualenv (once); needs a built metarl (default .build/release/metarl).
# Usage: bash scripts/check-mujoco.sh [--metarl PATH] [--episodes N] [--steps T]
set -euo pipefail
venv="${METARL_MUJOCO_VENV:-${TMPDIR:-/tmp}/metarl-mujoco-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import gymnasium, mujoco" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "gymnasium[mujoco]==1.4.0"
fi
exec "$venv/bin/python" "$(dirname "$0")/check_mujoco.py" "$@"
