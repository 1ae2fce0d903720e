#!/usr/bin/env bash
# Compares MetaRL's MuJoCo families with Gymnasium's own HalfCheetah-v5 and Ant-v5, step by
# step, from the same initial states with the same actions. Installs gymnasium 1.4.0 and mujoco
# 2.3.2 from PyPI into a private virtualenv (once): 2.3.2 is the oldest mujoco wheel for current
# Pythons, the nearest to Debian's 2.2.2 that MetaRL links (MuJoCo 3.x/4.x changed the contact
# dynamics: the Ant then differs by whole units of velocity in one step, the cheetah does not).
# METARL_MUJOCO_WHEEL=4.0.1 checks against another wheel instead (its own virtualenv).
# Needs a built metarl (default .build/release/metarl).
# Usage: bash scripts/check-mujoco.sh [--metarl PATH] [--episodes N] [--steps T]
set -euo pipefail
wheel="${METARL_MUJOCO_WHEEL:-2.3.2}"
venv="${METARL_MUJOCO_VENV:-${TMPDIR:-/tmp}/metarl-mujoco-venv-$wheel}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import gymnasium, mujoco; assert mujoco.__version__ == '$wheel'" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "gymnasium==1.4.0" "mujoco==$wheel" imageio packaging
fi
exec "$venv/bin/python" "$(dirname "$0")/check_mujoco.py" "$@"
