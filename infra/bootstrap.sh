#!/usr/bin/env bash
# Create or refresh one of Lake's venvs from its lock file, with uv (cached under
# ~/.cache/lake). Idempotent: does nothing when the venv matches its lock.
#
#   infra/bootstrap.sh core        # .lake/venvs/core (+ lake itself, editable)
#   infra/bootstrap.sh airflow     # .lake/venvs/airflow
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=${1:-core}
CACHE=${LAKE_CACHE_DIR:-$HOME/.cache/lake}
UV_VERSION=0.13.9
LOCK=requirements/$NAME.lock
VENV=.lake/venvs/$NAME
export UV_CACHE_DIR=$CACHE/uv UV_LINK_MODE=${UV_LINK_MODE:-hardlink}

PY=$(command -v python3.11 || command -v python3)
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' 2>/dev/null \
  || { echo "error: Python 3.11+ is needed (found $("$PY" -V 2>&1))" >&2; exit 1; }

UV=$CACHE/tools/bin/uv
if ! "$UV" --version 2>/dev/null | grep -q "$UV_VERSION"; then
  echo "bootstrap: installing uv $UV_VERSION into $CACHE/tools"
  "$PY" -m venv "$CACHE/tools"
  "$CACHE/tools/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
fi

STAMP=$VENV/.lock-sha256
# the recipe (this line's "bytecode" flag) is part of the stamp: changing it re-syncs existing venvs
WANT=$( (cat "$LOCK" pyproject.toml; echo bytecode) | sha256sum | cut -d' ' -f1)
if [[ -f $STAMP && $(cat "$STAMP") == "$WANT" ]]; then
  exit 0
fi
echo "bootstrap: syncing $VENV from $LOCK"
[[ -x $VENV/bin/python ]] || "$UV" venv -q --python "$PY" "$VENV"
# --compile-bytecode: this machine sets PYTHONDONTWRITEBYTECODE=1, so without it every process (each
# Spark Python worker too) recompiles torch and transformers: ~7 s per worker start, ~3 s with bytecode
"$UV" pip sync -q --compile-bytecode --python "$VENV/bin/python" "$LOCK"
if [[ $NAME == core ]]; then
  "$UV" pip install -q --python "$VENV/bin/python" --no-deps -e .
fi
echo "$WANT" > "$STAMP"
