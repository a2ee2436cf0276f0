#!/bin/sh
# Promise (README "Full file systems and limits", doc/DESIGN.md "kmap"):
# without a direct map (as under RLIMIT_AS; UMM_KMAP=1 asks for it without
# a limit), every path that reads or writes frame bytes goes through kmap
# windows of at most 16 pages and keeps every byte: fills and read-around
# runs longer than a window, copy-on-write, write-back of long dirty runs,
# fork, truncation, the file I/O layer, and reclaim: write-back, the swap
# file (private and shared anonymous memory twice the budget, MADV_PAGEOUT)
# and fork under a budget (test-reclaim).  Each program below checks its
# own bytes (against the kernel's run, mostly); a point is its whole run
# passing with UMM_KMAP=1.  (TAP.)
top=${top_builddir:-.}
name=kmap
. "${srcdir:-.}/tests/tap-sh.sh"

progs="test-read-around test-shared-write test-private-read test-split-private test-fork test-truncate test-fileio test-stale-bytes test-writeback-unlocked test-threads-stress test-reclaim"
set -- $progs
echo "1..$#"
for p in $progs; do
  run_under UMM_KMAP=1 "$p"
done
rm -rf "$dir"
[ $fails -eq 0 ]
