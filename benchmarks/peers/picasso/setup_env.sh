#!/usr/bin/env bash
# Create (or reuse) a separate virtual environment holding the peer Picasso (picassosr 0.11.3).
#
# usage: setup_env.sh [VENV_DIR]     (default: <repo>/.peers/picasso)
#        PYTHON=python3.11 setup_env.sh ...   to choose the interpreter
#
# picassosr is installed from PyPI with its declared dependencies (numba, h5py, pandas, PyQt6,
# streamlit, ...: its modules import most of them at import time), about 1.7 GB. No CUDA:
# Picasso's numba CPU fitters run. The peer is never a dependency of srlive and srlive is
# never installed here. Safe to run again: an env that already has the right version is left
# as it is.
set -euo pipefail

PEER_VERSION="0.11.3"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
VENV="${1:-$REPO/.peers/picasso}"
PYTHON="${PYTHON:-python3}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "setup_env.sh: error: interpreter '$PYTHON' not found (set PYTHON=...)" >&2
    exit 2
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating venv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

installed="$("$PY" -c 'import importlib.metadata as m; print(m.version("picassosr"))' \
    2>/dev/null || true)"
if [ "$installed" != "$PEER_VERSION" ]; then
    "$PY" -m pip install --quiet "picassosr==$PEER_VERSION"
fi

"$PY" "$HERE/run_peer.py" --check
echo "peer env ready: $PY"
