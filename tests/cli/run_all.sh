#!/usr/bin/env bash
# Runs every tests/cli/test_*.sh with $VOXALIGN pointing at the CLI under test; prints
# "N passed, N failed" and exits non-zero when any failed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export VOXALIGN=${VOXALIGN:-$(cd "$here/../.." && pwd)/build/release/voxalign}
export PYTHONPATH=$(cd "$here/../.." && pwd)/build/release/python${PYTHONPATH:+:$PYTHONPATH}
pass=0; fail=0
for t in "$here"/test_*.sh; do
  work=$(mktemp -d)
  if (cd "$work" && bash "$t") >"$work/log" 2>&1; then
    pass=$((pass + 1)); echo "PASS $(basename "$t")"
  else
    fail=$((fail + 1)); echo "FAIL $(basename "$t")"; sed 's/^/    /' "$work/log"
  fi
  rm -rf "$work"
done
echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
