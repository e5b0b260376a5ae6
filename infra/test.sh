#!/usr/bin/env bash
# `make test`: lint (ruff check, ruff format --check), start the servers the tests need, run pytest with
# the arguments given (the Makefile gives -m "not slow" unless ALL=1), then stop exactly the servers this
# script started (also when tests fail or are interrupted).
# The tests run on a stack of their own (`lake env test`: .lake/stacks/test, every port + 10000), never
# on the user's lake; its fingerprint (`lake fingerprint`) is taken before and compared after.
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

# The user's lake, as the tests found it (its servers' contents if it runs, else its files).
user_before=$(mktemp)
$LAKE fingerprint --json >"$user_before" || { echo "error: could not fingerprint the user's lake" >&2; exit 1; }
user_env=$(export -p | grep -E '^declare -x LAKE_(STATE_DIR|PORT_OFFSET)=' || true)
eval "$($LAKE env test)"

was_running=$($LAKE status --json 2>/dev/null | $PY -c \
  'import json,sys; print(" ".join(r["name"] for r in json.load(sys.stdin) if r["pid"]))' || true)
cleanup() {
  local started=()
  for s in $($LAKE status --json 2>/dev/null | $PY -c 'import json,sys; print(" ".join(r["name"] for r in json.load(sys.stdin)))'); do
    [[ " $was_running " == *" $s "* ]] || started+=("$s")
  done
  if ((${#started[@]})); then $LAKE down "${started[@]}"; fi
}
check_user_lake() {
  (unset LAKE_STATE_DIR LAKE_PORT_OFFSET; eval "$user_env"; $LAKE fingerprint --compare "$user_before")
}
trap cleanup EXIT INT TERM

$LAKE up || { echo "error: the local stack did not start; see $LAKE_STATE_DIR/logs/" >&2; exit 1; }
$PY -m pytest "$@"
rc=$?
check_user_lake || rc=1
rm -f "$user_before"
exit $rc
