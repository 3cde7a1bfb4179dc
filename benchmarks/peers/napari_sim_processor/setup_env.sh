#!/usr/bin/env bash
# Create (or reuse) a separate virtual environment holding the peer napari-sim-processor 0.1.1.
#
# usage: setup_env.sh [VENV_DIR]     (default: <repo>/.peers/napari-sim-processor)
#        PYTHON=python3.11 setup_env.sh ...   to choose the interpreter
#
# The peer is installed from PyPI with --no-deps: its processors (the reconstruction code) need
# only numpy, scipy and matplotlib (imported at module level); magicgui/qtpy/superqt/napari are
# for its napari widget, which run_peer.py never imports. The peer is never a dependency of
# srlive and srlive is never installed here. Safe to run again: an env that already has the
# right versions is left as it is.
set -euo pipefail

PEER_VERSION="0.1.1"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../venv.sh"
make_venv napari-sim-processor "${1:-}"

if [ "$(dist_version napari-sim-processor)" != "$PEER_VERSION" ]; then
    "$PY" -m pip install --quiet --no-deps "napari-sim-processor==$PEER_VERSION"
fi
# The processors' real runtime needs (no Qt, no napari, no GPU back end).
if ! "$PY" -c 'import numpy, scipy, matplotlib' 2>/dev/null; then
    "$PY" -m pip install --quiet numpy scipy matplotlib
    echo "(pip's notes that magicgui/qtpy/superqt are missing are expected: widget not used)"
fi

"$PY" "$HERE/run_peer.py" --check
echo "peer env ready: $PY"
