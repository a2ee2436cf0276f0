#!/bin/sh
# Promise: under Valgrind's memcheck a mapping is a block.  A read after
# umm_munmap, or in a part a partial munmap took away, is reported inside a
# block free'd at umm_munmap (a store to byte 0 of the program's first
# mapping too: never inside pages libumm mapped for itself at start-up);
# a mapping whose last pointer is lost is "definitely lost" at umm_mmap,
# and one still pointed to at exit is "still reachable"; a correct program
# (first touches, partial munmap, MAP_FIXED over mappings, failing calls,
# fork) gets no report; a fatal fault is still fatal.  The vg-prog-*
# programs are run under memcheck and its reports read.  (TAP; skipped
# without valgrind, or when libumm was built without its headers.)
top=${top_builddir:-.}
command -v valgrind >/dev/null 2>&1 || { echo "1..0 # SKIP valgrind is not installed"; exit 0; }
grep -q '^#define HAVE_VALGRIND_MEMCHECK_H 1' "$top/config.h" 2>/dev/null ||
  { echo "1..0 # SKIP libumm was built without <valgrind/memcheck.h>"; exit 0; }
grep -q -e '-fsanitize=address' "$top/Makefile" 2>/dev/null &&
  { echo "1..0 # SKIP AddressSanitizer and Valgrind do not mix"; exit 0; }

name=memcheck
. "${srcdir:-.}/tests/tap-sh.sh"

# run NAME: the program under memcheck; its report (every process's, the
# "==pid== " prefixes taken off) in $dir/NAME.log, its status in $status.
# The options libumm needs to restart faulting instructions exactly (README).
exact="--vex-iropt-register-updates=allregs-at-mem-access --vex-guest-chase=no"
vgopts=$exact
run() {
  # shellcheck disable=SC2086
  "$top/libtool" --mode=execute valgrind $vgopts \
    --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=definite --num-callers=20 \
    --log-file="$dir/$1.%p.vg" "$top/tests/vg-prog-$1" >"$dir/$1.out" 2>&1
  status=$?
  cat "$dir/$1".*.vg | sed 's/^==[0-9]*== //' >"$dir/$1.log"
}

# report FILE FIRST-LINE: the report (error or loss record) of FILE that
# starts with a line matching FIRST-LINE, up to the blank line after it.
report() {
  awk -v re="$2" '!on && $0 ~ re { on = 1 } on { if ($0 == "") exit; print }' "$1"
}

# section REPORT-FILE FROM TO: the lines of a report from one matching FROM
# to the next matching TO (or the end): one of its stacks.
section() {
  awk -v from="$2" -v to="$3" 'on && $0 ~ to { exit } on { print } $0 ~ from { on = 1 }' "$1"
}

# has FILE PATTERN...: every pattern is in FILE, in this order of lines.
has() {
  f=$1; shift
  awk -v pats="$(printf '%s\n' "$@")" '
    BEGIN { n = split(pats, p, "\n"); i = 1 }
    i <= n && index($0, p[i]) { i++ }
    END { exit !(i > n) }' "$f"
}

# ------------------------------------------------------- read after munmap
f0=$fails
run after-munmap
ok $status "a program that reads after umm_munmap runs to its end (status $status)"
report "$dir/after-munmap.log" '^Invalid read of size 1' >"$dir/r1"
has "$dir/r1" "Invalid read of size 1" "main (vg-prog-after-munmap.c" \
  "is 4,106 bytes inside a block of size 12,288 free'd"
ok $? "memcheck reports the read inside the unmapped block"
section "$dir/r1" "free'd" "Block was alloc'd" >"$dir/s1"
has "$dir/s1" ": umm_munmap (" "main (vg-prog-after-munmap.c"
ok $? "free'd at umm_munmap, called by the program"
section "$dir/r1" "Block was alloc'd" "^$" >"$dir/s2"
head -n 1 "$dir/s2" | grep -q ": umm_mmap (" && has "$dir/s2" "main (vg-prog-after-munmap.c"
ok $? "alloc'd at umm_mmap (its first frame), called by the program"
grep -q "ERROR SUMMARY: 1 errors" "$dir/after-munmap.log"
ok $? "and that read is the only error (first touches are not reported)"
[ $fails -ne $f0 ] && show "$dir/after-munmap.log"

# ------------------------------- write to byte 0 of the first mapping gone
# libumm's start-up check maps and unmaps two pages of its own before the
# program's first mapping is made, perhaps where that mapping then goes:
# memcheck must blame the program's own block, not one left by the check.
f0=$fails
run first-byte
ok $status "a program that writes to byte 0 of its unmapped first mapping runs to its end (status $status)"
report "$dir/first-byte.log" '^Invalid write of size 1' >"$dir/r1"
has "$dir/r1" "Invalid write of size 1" "main (vg-prog-first-byte.c" \
  "is 0 bytes inside a block of size 8,192 free'd"
ok $? "memcheck reports the write inside the program's unmapped block"
section "$dir/r1" "free'd" "Block was alloc'd" >"$dir/s1"
has "$dir/s1" ": umm_munmap (" "main (vg-prog-first-byte.c" && ! grep -q "umm__trap_selfcheck" "$dir/s1"
ok $? "free'd at the program's umm_munmap"
section "$dir/r1" "Block was alloc'd" "^$" >"$dir/s2"
head -n 1 "$dir/s2" | grep -q ": umm_mmap (" && has "$dir/s2" "main (vg-prog-first-byte.c" &&
  ! grep -q "umm__trap_selfcheck" "$dir/s2"
ok $? "alloc'd at the program's umm_mmap, not at libumm's start-up check"
grep -q "ERROR SUMMARY: 1 errors" "$dir/first-byte.log"
ok $? "and that write is the only error"
[ $fails -ne $f0 ] && show "$dir/first-byte.log"

# ------------------------------------------------ read in a partial munmap
f0=$fails
run partial
ok $status "a program that reads in a hole it unmapped runs to its end (status $status)"
report "$dir/partial.log" '^Invalid read of size 1' >"$dir/r1"
has "$dir/r1" "Invalid read of size 1" "main (vg-prog-partial.c" \
  "is 4,116 bytes inside a block of size 8,192 free'd"
ok $? "memcheck reports the read inside the part that was unmapped"
section "$dir/r1" "free'd" "Block was alloc'd" >"$dir/s1"
line=$(grep -n "/\* the hole \*/" "$(dirname "$0")/vg-prog-partial.c" | cut -d: -f1)
has "$dir/s1" ": umm_munmap (" "main (vg-prog-partial.c:$line)"
ok $? "free'd at the umm_munmap that made the hole (line $line)"
grep -q "ERROR SUMMARY: 1 errors" "$dir/partial.log"
ok $? "and the rest of the mapping, on both sides, is used unreported"
[ $fails -ne $f0 ] && show "$dir/partial.log"

# ---------------------------------------------------------- lost mappings
f0=$fails
run leak
ok $status "a program that loses two mappings runs to its end (status $status)"
lost=$(grep -A1 "bytes in 1 blocks are definitely lost" "$dir/leak.log" | grep -c ": umm_mmap (")
[ "$lost" -eq 2 ]
ok $? "the two mappings it lost are definitely lost, no other ($lost)"
for size in 20,480 28,672; do
  report "$dir/leak.log" "^$size bytes in 1 blocks are definitely lost" >"$dir/r1"
  sed -n 2p "$dir/r1" | grep -q ": umm_mmap (" && has "$dir/r1" "leak (vg-prog-leak.c:"
  ok $? "the $size bytes lost: a loss record at umm_mmap, called by the program"
done
grep -q "possibly lost: 0 bytes in 0 blocks" "$dir/leak.log"
ok $? "none is possibly lost"
for size in 8,192 12,288 65,536; do
  report "$dir/leak.log" "^$size bytes in 1 blocks are still reachable" >"$dir/r1"
  sed -n 2p "$dir/r1" | grep -q ": umm_mmap ("
  ok $? "the $size bytes it still points to are still reachable, not lost"
done
grep -q "LEAK SUMMARY:" "$dir/leak.log"
ok $? "a block the program made inside a mapping does not stop the leak check"
[ $fails -ne $f0 ] && show "$dir/leak.log"

# --------------------------------------------------------- a clean program
f0=$fails
run clean
ok $status "a correct program runs to its end under memcheck (status $status)"
procs=$(grep -c "ERROR SUMMARY:" "$dir/clean.log")
clean=$(grep -c "ERROR SUMMARY: 0 errors" "$dir/clean.log")
[ "$procs" -eq 2 ] && [ "$clean" -eq 2 ]
ok $? "no error in it or in its child of fork ($clean of $procs processes clean)"
! grep -E -A1 "are (definitely|possibly|indirectly) lost" "$dir/clean.log" | grep -q -e ": umm_mmap (" -e ": umm_munmap (" -e "blocks_unmap (" &&
  ! grep -q -e "Mempool" -e "Invalid free" -e "mempool" "$dir/clean.log"
ok $? "no mapping lost, and every pool request was right"
[ $fails -ne $f0 ] && show "$dir/clean.log"

# ------------------------------------------------------ a fatal fault
f0=$fails
run crash
[ $status -eq 139 ]
ok $? "a read of a PROT_NONE mapping still kills the program with SIGSEGV (status $status)"
has "$dir/crash.log" "Process terminating with default action of signal 11" "main (vg-prog-crash.c"
ok $? "memcheck reports the fault where it happened"
[ $fails -ne $f0 ] && show "$dir/crash.log"

# ------------------------------ the start-up check of Valgrind's options
# Without them, libumm says which are missing, once, in one sentence; with
# them, nothing.  (The clean program forks: the child says nothing more.)
f0=$fails
vgopts=""
run clean
[ "$(grep -c "^libumm: Valgrind is running without --vex-iropt-register-updates=allregs-at-mem-access and --vex-guest-chase=no," "$dir/clean.out")" -eq 1 ]
ok $? "without the options libumm names both, once"
vgopts="--vex-iropt-register-updates=allregs-at-mem-access"
run clean
[ "$(grep -c "^libumm: Valgrind is running without --vex-guest-chase=no," "$dir/clean.out")" -eq 1 ]
ok $? "without --vex-guest-chase=no libumm names that one"
vgopts=$exact
run clean
! grep -q "^libumm:" "$dir/clean.out"
ok $? "with both, libumm says nothing"
[ $fails -ne $f0 ] && sed 's/^/# /' "$dir/clean.out"

rm -rf "$dir"
echo "1..$n"
