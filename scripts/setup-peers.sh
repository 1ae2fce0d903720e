#!/usr/bin/env bash
# Creates the two Python environments the speed comparisons run the peers in
# (`metarl bench rl2|maml|pearl --python …`), each a private virtualenv:
#
#   DIR/debian-torch  Debian's python3-torch 1.13 (OpenBLAS) and numpy 1.24, plus mpi4py
#                     built against Debian's Open MPI and the peers' small dependencies
#   DIR/pypi-torch    the current torch and numpy from PyPI (MKL, oneDNN), the same extras
#
# DIR is the first argument (default: ${TMPDIR:-/tmp}/metarl-peers). The peers' own code is
# not on PyPI; clone it beside and pass the checkout to the bench command:
#
#   git clone https://github.com/lucaslingle/pytorch_rl2         # commit 51afa4b
#   git clone https://github.com/tristandeleu/pytorch-maml-rl    # commit 21d4ba1
#   git clone https://github.com/katerakelly/oyster              # commit 44e20fd
#
# Usage: bash scripts/setup-peers.sh [DIR]
set -euo pipefail
dir="${1:-${TMPDIR:-/tmp}/metarl-peers}"
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q python3-venv python3-torch python3-yaml python3-tqdm libopenmpi-dev openmpi-bin >/dev/null

# What the three peers import besides torch and numpy: pytorch_rl2 needs mpi4py (for
# mpirun -np N); pytorch-maml-rl gym 0.17 (its own environments), pyyaml and tqdm; oyster
# gtimer, python-dateutil, joblib and cloudpickle 1.6 (gym 0.17 pins it).
extras=(mpi4py "gym==0.17.3" "cloudpickle==1.6.0" tqdm pyyaml gtimer python-dateutil joblib)

if [ ! -x "$dir/debian-torch/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$dir/debian-torch"
    "$dir/debian-torch/bin/pip" install -q "${extras[@]}"
    # gym pulls numpy from PyPI; Debian's torch is built against Debian's numpy, so use that one.
    "$dir/debian-torch/bin/pip" uninstall -y -q numpy
fi
if [ ! -x "$dir/pypi-torch/bin/python" ]; then
    /usr/bin/python3 -m venv "$dir/pypi-torch"
    "$dir/pypi-torch/bin/pip" install -q torch numpy "${extras[@]}"
fi
for venv in debian-torch pypi-torch; do
    "$dir/$venv/bin/python" -c "import torch, numpy, mpi4py, gym; print('$dir/$venv/bin/python: torch', torch.__version__, 'numpy', numpy.__version__)"
done
