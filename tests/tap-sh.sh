# tests/tap-sh.sh: sourced by the shell tests that run programs under a
# Valgrind tool (test-memcheck.sh, test-race-tools.sh).  Gives them a
# scratch directory of their own ($dir, also UMM_TEST_TMPDIR for the
# programs), TAP points (ok STATUS NAME: $n points so far, $fails failed)
# and show FILE (a file as TAP comments).  Set $name first.
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
