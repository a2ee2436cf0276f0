#!/bin/sh
# Promise: helgrind and drd see libumm's mappings as they see the kernel's.
# A real data race in a mapping (two threads write one word) is reported,
# whatever kind of page it is (zero-filled anonymous, copy-on-write copy,
# page-cache page); a correct threaded program whose threads fault the same
# pages at once, map, unmap and msync meanwhile gets no report at all -- so
# nothing of libumm's own synchronisation (futex bit locks, atomics, the
# host mmap that installs a page) looks like a race.  And helgrind keeps no
# state for libumm's RAM: 4 GiB of it do not show in its memory.  The
# vg-prog-* programs run under each tool and its reports are read.  (TAP; skipped without
# valgrind, or when libumm was built without <valgrind/helgrind.h>.)
top=${top_builddir:-.}
command -v valgrind >/dev/null 2>&1 || { echo "1..0 # SKIP valgrind is not installed"; exit 0; }
grep -q '^#define HAVE_VALGRIND_HELGRIND_H 1' "$top/config.h" 2>/dev/null ||
  { echo "1..0 # SKIP libumm was built without <valgrind/helgrind.h>"; exit 0; }
grep -q -e '-fsanitize=' "$top/Makefile" 2>/dev/null &&
  { echo "1..0 # SKIP sanitizers and Valgrind do not mix"; exit 0; }
srcdir=${srcdir:-.}

name=racetools
. "$srcdir/tests/tap-sh.sh"

# run TOOL NAME [ARG]: vg-prog-NAME under TOOL, its report (the "==pid== "
# prefixes taken off) in $dir/TOOL-NAME-ARG.log, its status in $status.
# The options libumm needs under any Valgrind tool (README); libumm's RAM
# is $ram (small unless said).
ram=256M
run() {
  log="$dir/$1-$2-${3:-}.log"
  UMM_RAM=$ram "$top/libtool" --mode=execute valgrind --tool="$1" \
    --vex-iropt-register-updates=allregs-at-mem-access --vex-guest-chase=no \
    --suppressions="$srcdir/tests/helgrind-drd.supp" \
    --log-file="$log.raw" "$top/tests/vg-prog-$2" ${3:+"$3"} >"$dir/out" 2>&1
  status=$?
  sed 's/^==[0-9]*== //' "$log.raw" >"$log"
}
# errors LOG, contexts LOG: the counts in the tool's ERROR SUMMARY.  (One
# racy store can count more than once in one context: the store that
# faults is seen, then seen again when the trap restarts it.)
errors() { sed -n 's/^ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$1" | tail -n 1; }
contexts() { sed -n 's/^ERROR SUMMARY: .* from \([0-9]*\) contexts.*/\1/p' "$1" | tail -n 1; }

for tool in helgrind drd; do
  case $tool in
    helgrind) says="Possible data race during write of size 8" ;;
    drd) says="Conflicting store by thread" ;;
  esac
  for kind in anon cow shared; do
    f0=$fails
    run $tool race $kind
    ok $status "$tool: the racy program ($kind page) runs to its end (status $status)"
    awk -v s="$says" 'index($0, s) { on = 1 } on && /race_writer \(vg-prog-race.c/ { found = 1 } on && /^$/ { on = 0 } END { exit !found }' "$log"
    ok $? "$tool reports the race in the $kind page, in race_writer"
    [ "$(contexts "$log")" = 1 ]
    ok $? "$tool: that race and nothing else ($(contexts "$log") contexts)"
    [ $fails -ne $f0 ] && show "$log"
  done
  f0=$fails
  run $tool threads
  ok $status "$tool: the correct threaded program runs to its end (status $status)"
  [ "$(errors "$log")" = 0 ]
  ok $? "$tool: no report for it ($(errors "$log") errors)"
  [ $fails -ne $f0 ] && show "$log"
done

# helgrind keeps no state for libumm's RAM (README), so a larger RAM costs
# it nothing.  (With the direct map mapped read-write, helgrind took it all
# as written memory: about 3 GB for these 4 GiB.)
f0=$fails
ram=4G
run helgrind threads
hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB.*/\1/p' "$dir/out")
[ $status -eq 0 ] && [ -n "$hwm" ] && [ "$hwm" -lt 1048576 ]
ok $? "helgrind with 4 GiB of libumm's RAM: the correct program peaks at ${hwm:-?} kB, under 1 GiB"
[ $fails -ne $f0 ] && show "$dir/out"

rm -rf "$dir"
echo "1..$n"
