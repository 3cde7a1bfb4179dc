#!/usr/bin/env bash
# Create (or reuse) a separate virtual environment holding the peer NanoPyx 2.1.5 (eSRRF).
#
# usage: setup_env.sh [VENV_DIR]     (default: <repo>/.peers/nanopyx)
#        PYTHON=python3.11 setup_env.sh ...   to choose the interpreter
#
# NanoPyx ships prebuilt wheels (Cython extensions with OpenMP, libgomp bundled), so no
# compiler is needed. It is installed with its declared dependencies (pyopencl, opencv-python,
# scikit-learn, ... all wheels). No OpenCL driver is installed: without one pyopencl finds no
# platform and NanoPyx runs its Cython CPU paths ("threaded", OpenMP), which run_peer.py forces.
# Numba, Dask and CuPy (optional extras) are left out: the eSRRF step has no run type using
# them. The peer is never a dependency of srlive and srlive is never installed here. Safe to
# run again: an env that already has the right version is left as it is.
set -euo pipefail

PEER_VERSION="2.1.5"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../venv.sh"
make_venv nanopyx "${1:-}"

if [ "$(dist_version nanopyx)" != "$PEER_VERSION" ]; then
    "$PY" -m pip install --quiet "nanopyx==$PEER_VERSION"
fi

"$PY" "$HERE/run_peer.py" --check
echo "peer env ready: $PY"
