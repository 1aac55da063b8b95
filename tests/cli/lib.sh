# Shared helpers for the CLI test scripts (sourced).

# expect_fail TEXT ARGS...: `voxalign ARGS` must fail with a one-line error containing TEXT and
# leave no output (out*) or temporary file behind.
expect_fail() {
  local want=$1; shift
  "$VOXALIGN" "$@" >stdout.txt 2>stderr.txt
  local rc=$?
  if [ $rc -eq 0 ]; then echo "expected failure: $*"; exit 1; fi
  if [ "$(wc -l < stderr.txt)" -ne 1 ]; then echo "not one line: $*"; cat stderr.txt; exit 1; fi
  if ! grep -q -- "$want" stderr.txt; then echo "message lacks '$want': $(cat stderr.txt)"; exit 1; fi
  if ls out* >/dev/null 2>&1 || ls .vxtmp* >/dev/null 2>&1; then echo "output left behind: $*"; exit 1; fi
  echo "ok ($rc): $(cat stderr.txt)"
}
