#!/usr/bin/env bash
# `make test`: lint (ruff check, ruff format --check), start the servers the tests need, run every
# test, then stop exactly the servers this script started (also when tests fail or are interrupted).
#
#   infra/test.sh [pytest args...]
set -uo pipefail
cd "$(dirname "$0")/.."
LAKE=.lake/venvs/core/bin/lake
PY=.lake/venvs/core/bin/python
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

RUFF=.lake/venvs/core/bin/ruff
$RUFF check . || { echo "error: ruff check found problems (ruff check --fix . mends most)" >&2; exit 1; }
$RUFF format --check . || { echo "error: files not formatted: run ruff format ." >&2; exit 1; }

was_running=$($LAKE status --json 2>/dev/null | $PY -c \
  'import json,sys; print(" ".join(r["name"] for r in json.load(sys.stdin) if r["pid"]))' || true)
cleanup() {
  local started=()
  for s in $($LAKE status --json 2>/dev/null | $PY -c 'import json,sys; print(" ".join(r["name"] for r in json.load(sys.stdin)))'); do
    [[ " $was_running " == *" $s "* ]] || started+=("$s")
  done
  if ((${#started[@]})); then $LAKE down "${started[@]}"; fi
}
trap cleanup EXIT INT TERM

$LAKE up || { echo "error: the local stack did not start; see .lake/logs/" >&2; exit 1; }
$PY -m pytest "$@"
