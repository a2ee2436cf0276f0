# tests/tap-sh.sh: sourced by the shell tests that run programs under a
# Valgrind tool (test-memcheck.sh, test-race-tools.sh).  Gives them a
# scratch directory of their own ($dir, also UMM_TEST_TMPDIR for the
# programs), TAP points (ok STATUS NAME: $n points so far, $fails failed),
# show FILE (a file as TAP comments) and run_under (below: a test
# program run with a setting, one point).  Set $name first.
#
# (No trap to remove the directory: dash leaks the trap's string, and under
# make check-valgrind the shell itself runs under memcheck.  Each test
# removes it at its end.)
dir=$(mktemp -d "${UMM_TEST_TMPDIR:-/tmp}/tmp.$name.XXXXXX") || exit 99
UMM_TEST_TMPDIR=$dir
export UMM_TEST_TMPDIR

n=0
fails=0
ok() { # ok COND-STATUS NAME
  n=$((n + 1))
  if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi
}
show() { sed 's/^/# /' "$1"; }

# run_under SETTING PROG [EXPECTED]: one TAP point, test program PROG run
# with SETTING (VAR=value) in its environment (test-kmap.sh,
# test-zerocopy-all.sh).  It passes when the run passed -- or, with
# EXPECTED (lines, each a piece of a point's name), when every point it
# failed is one of those (its status is then 1, tap_done's), and says how
# many differed.  A failed run's end goes to the TAP output as comments.
run_under() {
  setting=$1 prog=$2 expect=$3
  if [ ! -x "$top/tests/$prog" ]; then
    ok 1 "$prog: not built"
    return
  fi
  env "$setting" "$top/tests/$prog" >"$dir/out" 2>"$dir/err"
  status=$?
  grep '^not ok' "$dir/out" >"$dir/bad"
  if [ -n "$expect" ]; then
    printf '%s\n' "$expect" >"$dir/pat"
    grep -v -F -f "$dir/pat" "$dir/bad" >"$dir/bad2"
  else
    cp "$dir/bad" "$dir/bad2"
  fi
  bad=$(wc -l <"$dir/bad2")
  differ=$(($(wc -l <"$dir/bad") - bad))
  { [ $status -eq 0 ] || { [ $status -eq 1 ] && [ $differ -gt 0 ]; }; } && [ "$bad" -eq 0 ] && grep -q '^ok ' "$dir/out"
  ok $? "$setting $prog: status $status, $bad points failed of $(grep -c '^\(not \)\{0,1\}ok ' "$dir/out")${expect:+ ($differ expected to differ)}"
  if [ "$bad" -ne 0 ] || [ $status -gt 1 ]; then
    tail -n 20 "$dir/out" | show /dev/stdin
    show "$dir/err"
  fi
}
