#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv, installs the project, then runs
#   bash run.sh demo [ARGS...]   the main job (python build.py demo ARGS...)
#   bash run.sh test [ARGS...]   the default test suite (pytest ARGS...)
# Anything else is passed to build.py inside the venv: bash run.sh sim --help
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${RENETA_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when the dependency list changed.
stamp="$VENV/.reneta-installed"
want=$(sha256sum pyproject.toml run.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # The CPU build of torch: asked for by exact version so pip never resolves a CUDA build.
    "$VENV/bin/python" -m pip install -q "torch==2.13.0"
    "$VENV/bin/python" -m pip install -q -e ".[test,toolchain]"
    echo "$want" > "$stamp"
fi

cmd=${1:-demo}
shift || true
case "$cmd" in
    test)
        # -n 2: both cores; deprecation warnings are errors (pyproject.toml filterwarnings).
        exec "$VENV/bin/python" -m pytest -n 2 -q "$@" ;;
    demo)
        exec "$VENV/bin/python" build.py demo "$@" ;;
    *)
        exec "$VENV/bin/python" build.py "$cmd" "$@" ;;
esac
