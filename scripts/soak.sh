#!/usr/bin/env bash
# The slow checks that `make test` leaves out: the long admission fuzz and the
# repeated fault tests (tests/soak/soak_*.py, which the default run does not
# collect). Every loop in them is bounded in count and time, and all traffic
# stays on 127.0.0.1. Prints one summary line per stage; exits non-zero if any
# stage failed.
#
#   scripts/soak.sh                       everything
#   STELLAR_FUZZ_EXAMPLES=50000 scripts/soak.sh fuzz
#   scripts/soak.sh faults
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTEST="$ROOT/.venv/bin/pytest"
export STELLAR_FUZZ_EXAMPLES="${STELLAR_FUZZ_EXAMPLES:-10000}"
WHAT="${1:-all}"
LOGS="$(mktemp -d "${TMPDIR:-/tmp}/stellar-soak.XXXXXX")"
declare -a SUMMARY=()
FAILED=0

stage() {  # stage NAME PYTEST-ARGS...
  local name=$1 started=$SECONDS rc last; shift
  echo "soak: $name ..." >&2
  "$PYTEST" -p no:cacheprovider -q -rfEX -s "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  last="$(grep -E '(passed|failed|error)' "$LOGS/$name.log" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')"
  if ((rc != 0)); then FAILED=1; tail -40 "$LOGS/$name.log" >&2; fi
  SUMMARY+=("$(printf '%-8s %-4s %5ss  %s' "$name" "$([[ $rc == 0 ]] && echo ok || echo FAIL)" \
    $((SECONDS - started)) "${last:-no result line}")")
  grep -o 'soak: .*' "$LOGS/$name.log" | sed "s/^/  $name: /" >>"$LOGS/notes"
}

if [[ "$WHAT" == all || "$WHAT" == fuzz ]]; then
  # STELLAR_FUZZ_EXAMPLES examples for each fuzz test (11 of them, >= 10,000 cases in all).
  stage fuzz tests/unit/test_fuzz_admission.py tests/unit/test_smuggling.py
fi
if [[ "$WHAT" == all || "$WHAT" == faults ]]; then
  stage faults tests/soak/soak_faults.py tests/e2e/test_faults.py
fi

echo
echo "soak summary (fuzz examples per test: $STELLAR_FUZZ_EXAMPLES; logs in $LOGS)"
for line in "${SUMMARY[@]}"; do echo "  $line"; done
[[ -f "$LOGS/notes" ]] && cat "$LOGS/notes"
exit $FAILED
