#!/bin/sh
# tests/mutants/run.sh: the mutation check (make check-mutants; issue 19).
#
# Each tests/mutants/NN-name.patch plants one bug a developer could write.
# For each, this script applies it to a copy of the sources, rebuilds the
# library and runs the test programs one after another, stopping at the
# first that fails.  The suite must fail for every mutant:
#
#   KILLED by test-X   a test failed: the suite guards that promise
#   SURVIVED           every test passed: the bug would go unnoticed
#   STALE              the patch no longer applies: refresh it against src/
#   BROKEN             the mutated library does not build: fix the patch
#
# Anything but KILLED makes the script exit non-zero.
#
# Usage: run.sh SRCDIR BUILDDIR  (make check-mutants passes both, and the
# test list in TESTS).  Environment:
#   MUTANTS='03 07'     only these mutants (number or file name prefix)
#   MUTANTS_DIR=dir     the scratch directory (default BUILDDIR/tests/mutants-work)
#   MUTANTS_TIMEOUT=s   per test program: the tests' own alarm, UMM_TEST_TIMEOUT
#                       (default 300; not timeout(1), whose process group
#                       breaks tests that signal themselves)
#   MUTANTS_JOBS=n      make -j (default 2)
#   MUTANTS_BASELINE=1  first run the tests on the unmutated copy (a test
#                       that fails there would "kill" every mutant)
#
# The copy is configured (with BUILDDIR's configure arguments) and built
# once, with its test programs; it is kept in MUTANTS_DIR and reused while
# the sources are the same.  A mutant then costs the recompilation of the
# files its patch touches and the relinking of libumm.so: the test programs
# link to the shared library, so they are not rebuilt.  Tests run as make
# check runs them (TESTS_ENVIRONMENT: UMM_TEST_TMPDIR, top_builddir),
# through libtool's wrappers, with every signal at its default (a test that
# sends SIGINT to itself must die of it even when this runs in the
# background).
set -u

me=run.sh
die() { echo "$me: $*" >&2; exit 2; }

[ $# -eq 2 ] || die "usage: $me SRCDIR BUILDDIR"
srcdir=$(cd "$1" && pwd) || die "no source directory $1"
builddir=$(cd "$2" && pwd) || die "no build directory $2"
mutdir=$srcdir/tests/mutants
work=${MUTANTS_DIR:-$builddir/tests/mutants-work}
jobs=${MUTANTS_JOBS:-2}
tmo=${MUTANTS_TIMEOUT:-300}
[ -f "$builddir/config.status" ] || die "$builddir is not configured"
mkdir -p "$work" || die "cannot make $work"
work=$(cd "$work" && pwd)
tree=$work/tree           # the configured copy that is mutated
pristine=$work/pristine   # the unmutated sources, to restore from

# ---------------------------------------------------------- the test list
# Fast tests that cover much come first, so that most mutants die within
# seconds; the slow ones (seconds to minutes each, Valgrind last) at the
# end, in this order.  Every test of TESTS runs, these or not.
first="test-lazy-read test-shared-write test-private-read test-shared-read
test-eof test-msync test-truncate test-msync-invalidate test-exit-flush
test-page-cache-coherence test-madvise test-partial-munmap
test-partial-mprotect test-args-mmap test-args-others test-stats
test-threads-same-page test-crash-flush test-fileio test-readahead"
last="test-signal-death test-anon test-map-fixed-reuse test-threads-stress
test-random-256m test-fork test-sqlite test-lmdb test-overcommit
test-differential test-map-budget test-gdb.sh test-memcheck.sh
test-race-tools.sh"
tests=${TESTS:-}
if [ -z "$tests" ]; then
    # Not from make: the list in Makefile.am.
    tests=$(awk '/^C_TESTS =/, /^TESTS =/' "$srcdir/Makefile.am" | grep -o 'tests/test-[A-Za-z0-9_.-]*')
fi
ordered=
has() { case " $2 " in *" $1 "*) return 0 ;; esac; return 1; }
for t in $first; do has "tests/$t" "$(echo $tests)" && ! has "tests/$t" "$ordered" && ordered="$ordered tests/$t"; done
for t in $tests; do has "$(basename "$t")" "$(echo $last)" || has "$t" "$ordered" || ordered="$ordered $t"; done
for t in $last; do has "tests/$t" "$(echo $tests)" && ! has "tests/$t" "$ordered" && ordered="$ordered tests/$t"; done
[ -n "$ordered" ] || die "no tests found"

# ------------------------------------------------------ the scratch copy
# The sources: what git knows of the working tree (tracked and untracked,
# not ignored: local changes are part of what is tested), or, outside git,
# a copy of the source directory cleaned of build products.
src_tar() {
    if git -C "$srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$srcdir" && git ls-files -co --exclude-standard | while IFS= read -r f; do
            case $f in tests/mutants/* | tests/mutants-work/*) ;; *) [ -f "$f" ] && printf '%s\n' "$f" ;; esac
        done | tar -cf - -T -)
    else
        (cd "$srcdir" && tar -cf - --exclude=./tests/mutants-work --exclude=./tests/mutants --exclude=.git .)
    fi
}
# The copy is reused while the sources' contents (not their times) and the
# configure arguments are the same.
stamp=$(src_tar | tar -tf - | sort | (cd "$srcdir" &&
        while IFS= read -r f; do [ -f "$f" ] && { printf '%s ' "$f"; cksum <"$f"; }; done) | cksum) ||
    die "cannot read the sources in $srcdir"
stamp="$stamp $("$builddir/config.status" --config)"
if [ ! -f "$work/stamp" ] || [ "$(cat "$work/stamp")" != "$stamp" ]; then
    echo "$me: building a copy of the sources in $tree (once; a few minutes)"
    rm -rf "$tree" "$pristine" "$work/stamp"
    mkdir -p "$tree" "$pristine" || die "cannot make $tree"
    src_tar | tar -xf - -C "$pristine" || die "cannot copy the sources"
    (cd "$pristine" && tar -cf - .) | tar -xf - -C "$tree"
    (
        cd "$tree" || exit 1
        if ! git -C "$srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1 && [ -f Makefile ]; then
            make distclean || exit 1
        fi
        if [ ! -x configure ]; then autoreconf -fi || exit 1; fi
        eval "./configure $("$builddir/config.status" --config)" || exit 1
        make -j"$jobs" || exit 1
        make -j"$jobs" check TESTS= || exit 1 # the test programs, none run
    ) >"$work/build.log" 2>&1 || die "the unmutated copy does not build: see $work/build.log"
    echo "$stamp" >"$work/stamp"
fi

# Put back files a patch touched (a new mtime, so that make rebuilds them).
files_of() { sed -n 's|^+++ [^/]*/\([^	 ]*\).*|\1|p' "$1"; }
restore() {
    for f in $(files_of "$1"); do
        if [ -f "$pristine/$f" ]; then
            cmp -s "$pristine/$f" "$tree/$f" || cp "$pristine/$f" "$tree/$f"
        else
            rm -f "$tree/$f"
        fi
        rm -f "$tree/$f.orig" "$tree/$f.rej"
    done
}
for p in "$mutdir"/*.patch; do restore "$p"; done # after an interrupted run

if env --default-signal true 2>/dev/null; then dflcmd="env --default-signal"; else dflcmd=; fi

# Run one test program in the copy; 0 if it passed (TAP: no "not ok",
# the plan met, status 0), else 1.  Its output goes to $2.
run_test() {
    (cd "$tree" && UMM_TEST_TMPDIR=$tree/tests top_builddir=$tree UMM_TEST_TIMEOUT=$tmo \
        $dflcmd "$tree/$1" </dev/null) >"$2" 2>&1
    st=$?
    [ $st -eq 0 ] || return 1
    awk '/^not ok/ && !/# *[Tt][Oo][Dd][Oo]/ { bad = 1 }
         /^(not )?ok/ { n++ }
         /^1\.\.[0-9]+/ { plan = $1; sub(/^1\.\./, "", plan); seen = 1 }
         /^Bail out!/ { bad = 1 }
         END { exit (bad || !seen || n != plan + 0) }' "$2"
}

# The first test of the list that fails, or nothing.
first_failing() {
    for t in $ordered; do
        if ! run_test "$t" "$1/$(basename "$t").log"; then
            echo "$t"
            return
        fi
    done
}

if [ "${MUTANTS_BASELINE:-0}" = 1 ]; then
    mkdir -p "$work/logs/baseline"
    (cd "$tree" && make -j"$jobs" libumm.la) >"$work/logs/baseline/build.log" 2>&1 ||
        die "the unmutated library does not build: see $work/logs/baseline/build.log"
    f=$(first_failing "$work/logs/baseline")
    [ -z "$f" ] || die "$f fails without any mutant (see $work/logs/baseline): fix that first"
    echo "baseline: every test passes"
fi

# ------------------------------------------------------------ the mutants
n=0 killed=0 bad=0
start=$(date +%s)
for p in "$mutdir"/*.patch; do
    name=$(basename "$p" .patch)
    if [ -n "${MUTANTS:-}" ]; then
        sel=0
        for m in $MUTANTS; do case $name in "$m"*) sel=1 ;; esac; done
        [ $sel = 1 ] || continue
    fi
    n=$((n + 1))
    logs=$work/logs/$name
    rm -rf "$logs"
    mkdir -p "$logs"
    t0=$(date +%s)
    if ! patch -p1 -s -f --dry-run -d "$tree" <"$p" >"$logs/patch.log" 2>&1; then
        echo "$name: STALE (no longer applies to src/: refresh the patch; $logs/patch.log)"
        bad=$((bad + 1))
        continue
    fi
    patch -p1 -s -f -d "$tree" <"$p" >>"$logs/patch.log" 2>&1
    if ! (cd "$tree" && make -j"$jobs" libumm.la) >"$logs/build.log" 2>&1; then
        echo "$name: BROKEN (the mutated library does not build: fix the patch; $logs/build.log)"
        bad=$((bad + 1))
        restore "$p"
        continue
    fi
    f=$(first_failing "$logs")
    secs=$(($(date +%s) - t0))
    if [ -n "$f" ]; then
        echo "$name: KILLED by $(basename "$f") (${secs}s)"
        killed=$((killed + 1))
    else
        echo "$name: SURVIVED (${secs}s; the unguarded bug: $(sed -n '1s/^# *//p' "$p"))"
        bad=$((bad + 1))
    fi
    restore "$p"
done
# The copy's library back as it was, for the next run.
(cd "$tree" && make -j"$jobs" libumm.la) >"$work/logs/restore.log" 2>&1
[ $n -gt 0 ] || die "no mutant selected (MUTANTS='${MUTANTS:-}')"
echo "mutants: $killed killed of $n ($((killed * 100 / n))%) in $(($(date +%s) - start))s"
[ $bad -eq 0 ]
