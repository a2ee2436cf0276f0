#!/bin/sh
# Promise (umm.h and README, "Zero-copy file pages"): with UMM_ZEROCOPY=1
# every file mapping's pages are the host's own page cache, and every
# promise of libumm's mappings still holds -- the same bytes and errno as
# the kernel (test-differential runs both), the real clients (SQLite and
# LMDB, every row against the kernel's run), one truth with read/write,
# fork, mremap, truncation and SIGBUS, write-back and crash write-back,
# POSIX locks, read-ahead and its laziness, the map count, reclaim under a
# budget, huge sparse mappings that cost what is used.  Each program checks
# its own bytes; a point is its whole run passing with UMM_ZEROCOPY=1.
# Left out, because they check what only copying does (and say so in their
# own words): the counters of write-back by the flush (test-msync,
# test-flush-interval), the documented stale page after a truncation from
# outside (test-truncate), a fault held inside libumm's pread
# (test-threads-parallel), a write-back that fails at exit (test-enospc:
# zero-copy stores meet the full disk at the store), UMM_FILEIO=0 leaving
# pages stale (test-fileio) and the memfd's memory (test-release-batch,
# test-frame-pool).  Nor test-reclaim-cgroup: zero-copy stores are the
# host's dirty pages, charged to the cgroup, which a memory cgroup v1
# cannot reclaim before the disk has them -- under a busy disk its child
# was OOM-killed in the write pass once (make check beside a Valgrind
# run), as the kernel's own mmap is in that limit (the test's comment);
# it passed 12 runs in 12 on an idle machine (PERFORMANCE.md).
# Zero-copy pages are the host's memory, not the budget's: a few points
# that count libumm's frames or its reclaim of file pages are expected to
# differ, named in $expected (program:pattern of the point's name); each
# run passes when every failing point is one of those, and says how many.
# (TAP.)
top=${top_builddir:-.}
name=zerocopy-all
. "${srcdir:-.}/tests/tap-sh.sh"

progs="test-differential test-sqlite test-lmdb test-page-cache-coherence test-page-cache-shared test-shared-read test-shared-write test-private-read test-split-private test-fork test-mremap test-eof test-msync-invalidate test-stale-bytes test-writeback-unlocked test-threads-stress test-threads-same-page test-posix-locks test-crash-flush test-signal-death test-exit-flush test-reclaim test-map-count test-evict-fstat test-huge-sparse test-read-around test-fault-around test-readahead test-cow-readahead test-lazy-read test-madvise test-unlinked-file"
expected="test-page-cache-shared:one frame holds it
test-threads-same-page:one new frame per copy
test-reclaim:reclaim gave frames back
test-reclaim:dirty pages were written back by reclaim
test-evict-fstat:reclaim dropped pages meanwhile
test-evict-fstat:the file's size asked"
set -- $progs
echo "1..$#"
for p in $progs; do
  run_under UMM_ZEROCOPY=1 "$p" "$(printf '%s\n' "$expected" | sed -n "s|^$p:||p")"
done
rm -rf "$dir"
[ $fails -eq 0 ]
