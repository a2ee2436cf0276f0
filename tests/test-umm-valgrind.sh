#!/bin/sh
# Promise: the installed wrapper umm-valgrind (tools/umm-valgrind.in) runs a
# libumm program under a Valgrind tool with no homework: memcheck reports a
# real bug (a read after umm_munmap) at the program's line and nothing for
# a correct program, libumm finds the options it needs (it says nothing),
# the suppressions file is found next to the wrapper, and the caller's
# valgrind options (--tool, --leak-check, -- ...) pass through and win.
# (TAP; skipped without valgrind, naming the reason.)
top=${top_builddir:-.}
src=${srcdir:-.}
wrap="$top/tools/umm-valgrind"

name=umm-valgrind
. "$src/tests/tap-sh.sh"

# Without valgrind: a clear message and 127, whatever is installed.
UMM_VALGRIND="$dir/no-such-valgrind" "$wrap" /bin/true >"$dir/none.out" 2>&1
st=$?
[ $st -eq 127 ] && grep -q "no-such-valgrind not found" "$dir/none.out"
ok $? "with no valgrind it says so and exits 127 (status $st)"

if ! command -v valgrind >/dev/null 2>&1; then
  echo "ok 2 - # SKIP valgrind is not installed"; echo "1..2"; rm -rf "$dir"; exit 0
fi
if ! grep -q '^#define HAVE_VALGRIND_MEMCHECK_H 1' "$top/config.h" 2>/dev/null; then
  echo "ok 2 - # SKIP libumm was built without <valgrind/memcheck.h>"; echo "1..2"; rm -rf "$dir"; exit 0
fi
if grep -q -e '-fsanitize=address' "$top/Makefile" 2>/dev/null; then
  echo "ok 2 - # SKIP AddressSanitizer and Valgrind do not mix"; echo "1..2"; rm -rf "$dir"; exit 0
fi

# run NAME PROG [WRAPPER OPTIONS...]: the wrapper on tests/vg-prog-PROG; the
# tool's report (every process's, "==pid== " taken off) in $dir/NAME.log,
# the program's and libumm's output in $dir/NAME.out, the status in $status.
run() {
  rn=$1; prog=$2; shift 2
  "$top/libtool" --mode=execute "$wrap" --log-file="$dir/$rn.%p.vg" "$@" \
    "$top/tests/vg-prog-$prog" >"$dir/$rn.out" 2>&1
  status=$?
  cat "$dir/$rn".*.vg 2>/dev/null | sed 's/^==[0-9]*== //' >"$dir/$rn.log"
}

# ------------------------------------------------------------ a real bug
f0=$fails
run bug after-munmap
ok $status "a program that reads after umm_munmap runs to its end under the wrapper (status $status)"
line=$(grep -n "/\* the bug \*/" "$src/tests/vg-prog-after-munmap.c" | cut -d: -f1)
grep -A12 "^Invalid read of size 1" "$dir/bug.log" | grep -q "main (vg-prog-after-munmap.c:$line)"
ok $? "memcheck reports the invalid read at the program's line ($line)"
grep -q "ERROR SUMMARY: 1 errors" "$dir/bug.log"
ok $? "and nothing else (first touches are not reported)"
[ $status -eq 0 ] && ! grep -q "^libumm:" "$dir/bug.out"
ok $? "libumm finds the options it needs (it says nothing)"
[ $fails -ne $f0 ] && { show "$dir/bug.log"; show "$dir/bug.out"; }

# --------------------------------------------------------- a clean program
f0=$fails
run clean clean -v
ok $status "a correct program (it forks) runs to its end (status $status)"
procs=$(grep -c "ERROR SUMMARY:" "$dir/clean.log")
clean=$(grep -c "ERROR SUMMARY: 0 errors" "$dir/clean.log")
[ "$procs" -eq 2 ] && [ "$clean" -eq 2 ]
ok $? "memcheck reports nothing, in it or its child ($clean of $procs processes clean)"
grep -q "Reading suppressions file: .*tools/valgrind.supp" "$dir/clean.log"
ok $? "the suppressions file next to the wrapper is read"
[ $fails -ne $f0 ] && { show "$dir/clean.log"; show "$dir/clean.out"; }

# ------------------------------------------- the caller's options pass on
f0=$fails
run leak leak --leak-check=full --
ok $status "--leak-check=full -- before the program: the program runs (status $status)"
lost=$(grep -A1 "bytes in 1 blocks are definitely lost" "$dir/leak.log" | grep -c ": umm_mmap (")
[ "$lost" -eq 2 ]
ok $? "--leak-check=full reached memcheck: two loss records at umm_mmap ($lost)"
[ $fails -ne $f0 ] && show "$dir/leak.log"

f0=$fails
run chase clean --vex-guest-chase=yes
grep -q "^libumm: Valgrind is running without --vex-guest-chase=no" "$dir/chase.out"
ok $? "the caller's options come after the wrapper's and win (libumm notices chase=yes)"
[ $fails -ne $f0 ] && show "$dir/chase.out"

f0=$fails
run none clean --tool=none
ok $status "--tool=none runs the program (status $status)"
! grep -q "ERROR SUMMARY" "$dir/none.log" && grep -q "Nulgrind" "$dir/none.log" &&
  ! grep -q "^libumm:" "$dir/none.out"
ok $? "the tool is the caller's (Nulgrind, no memcheck summary), with libumm's options"
[ $fails -ne $f0 ] && { show "$dir/none.log"; show "$dir/none.out"; }

f0=$fails
run hg after-munmap --tool=helgrind -v
ok $status "--tool=helgrind runs the program (status $status)"
grep -q "helgrind" "$dir/hg.log" && grep -q "Reading suppressions file: .*tools/helgrind-drd.supp" "$dir/hg.log" &&
  grep -q -e "--fair-sched=yes" "$dir/hg.log" && grep -q "ERROR SUMMARY: 0 errors" "$dir/hg.log"
ok $? "helgrind gets its own suppressions and --fair-sched=yes, and finds no race"
[ $fails -ne $f0 ] && show "$dir/hg.log"

rm -rf "$dir"
echo "1..$n"
