# Sourced by each peer's setup_env.sh: the peer's own virtual environment.
#
# make_venv NAME [DIR]   creates DIR (default <repo>/.peers/NAME) with $PYTHON (default
#                        python3) unless it holds an interpreter already; sets PY to it
# dist_version DIST      the version of DIST installed in $PY's environment ("" if none)

make_venv() {
    local repo venv python
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    venv="${2:-$repo/.peers/$1}"
    python="${PYTHON:-python3}"
    if ! command -v "$python" >/dev/null 2>&1; then
        echo "setup_env.sh: error: interpreter '$python' not found (set PYTHON=...)" >&2
        exit 2
    fi
    if [ ! -x "$venv/bin/python" ]; then
        echo "creating venv $venv"
        "$python" -m venv "$venv"
    fi
    PY="$venv/bin/python"
}

dist_version() {
    "$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" \
        2>/dev/null || true
}
