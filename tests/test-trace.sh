#!/bin/sh
# Promise (umm-trace(1), README "Pictures of paging"): a program that knows
# nothing of tracing, run with UMM_TRACE_FILE (here through umm-trace's
# "-- COMMAND" form, which sets it), leaves a trace of every trap and every
# reclaim at exit; umm-trace draws it as two well-formed SVG pictures with
# one dot or bar per event of the kind and colour the trace says.  The
# workload (tests/trace-workload.c) reads a file privately and writes 4 of
# its pages, pages 8 anonymous pages out (MADV_PAGEOUT) and back, and reads
# a file 4x its 64-page budget: the trace must show 4 pages copied on
# write, 8 swapped in (UMM_TRACE_SWAPIN), reclaim (UMM_TRACE_RECLAIM), the
# frames never past the budget by more than the documented margin, and the
# same numbers as umm_stats.  (TAP.)
top=${top_builddir:-.}
name=trace
. "${srcdir:-.}/tests/tap-sh.sh"

echo "1..16"
UMM_RAM=256K "$top/tools/umm-trace" -o "$dir/w" -- "$top/tests/trace-workload" >"$dir/out" 2>"$dir/err"
status=$?
ok $status "the workload ran under umm-trace, every byte right (status $status)"
[ $status -eq 0 ] || { show "$dir/out"; show "$dir/err"; }
stat() { sed -n "s/^$1 //p" "$dir/out"; }
trace=$dir/w.trace

test -s "$trace"
ok $? "UMM_TRACE_FILE: the program wrote its trace at exit"
head -n 1 "$trace" | grep -q '^# umm-trace 1 page 4096 budget 64$'
ok $? "the trace names its page size and budget (UMM_RAM=256K: 64 pages): $(head -n 1 "$trace")"

# Every event line: WHEN KIND ADDR WRITE OFFSET PAGES NSEC RESIDENT FRAMES.
bad=$(awk '!/^#/ && (NF != 9 || $1 == 0 || $3 !~ /^0x/ || $5 !~ /^0x/)' "$trace" | wc -l)
events=$(grep -vc '^#' "$trace")
[ "$bad" -eq 0 ] && [ "$events" -gt 0 ]
ok $? "$events events, each with its time and nine fields ($bad malformed)"

# sum KIND [awk condition]: pages of the events of KIND; count likewise.
sum() { awk -v k="$1" '!/^#/ && $2 == k && ('"${2:-1}"') { s += $6 } END { print s + 0 }' "$trace"; }
count() { awk -v k="$1" '!/^#/ && $2 == k && ('"${2:-1}"') { n++ } END { print n + 0 }' "$trace"; }

cow=$(sum cow)
[ "$cow" -eq 4 ] && [ "$(stat cow_copies)" -eq 4 ]
ok $? "copy-on-write: 4 pages in the trace ($cow), 4 in umm_stats ($(stat cow_copies))"
swapin=$(sum swapin)
[ "$swapin" -eq 8 ] && [ "$(stat swapped_in)" -eq 8 ]
ok $? "swap-in: 8 pages in the trace ($swapin), 8 in umm_stats ($(stat swapped_in))"
# MADV_PAGEOUT's reclaim of the 8 anonymous pages, before the first swap-in.
first_swapin=$(awk '$2 == "swapin" { print NR; exit }' "$trace")
paged=$(awk -v to="${first_swapin:-0}" 'NR < to && $2 == "reclaim" && $3 != "0x0" { s += $6 } END { print s + 0 }' "$trace")
[ "$paged" -eq 8 ]
ok $? "MADV_PAGEOUT: reclaim events for the 8 anonymous pages before they came back ($paged)"
last_swapin=$(awk '$2 == "swapin" { n = NR } END { print n + 0 }' "$trace")
late=$(awk -v from="$last_swapin" 'NR > from && $2 == "reclaim" { s += $6 } END { print s + 0 }' "$trace")
[ "$late" -gt 0 ]
ok $? "reading 4x the budget: reclaim took $late pages (umm_stats: $(stat reclaimed) reclaimed)"
ra=$(count fill '$6 > 1')
[ "$ra" -gt 0 ]
ok $? "reading in order: $ra read-ahead events (more than one page read)"
fmax=$(awk '!/^#/ && $9 > m { m = $9 } END { print m + 0 }' "$trace")
[ "$fmax" -gt 0 ] && [ "$fmax" -le $((64 + 64)) ]
ok $? "frames after each event: at most the budget (64) and the margin (64): $fmax"

grep -q "$dir/w-pages.svg" "$dir/out" && grep -q "$dir/w-resident.svg" "$dir/out" &&
  test -s "$dir/w-pages.svg" && test -s "$dir/w-resident.svg"
ok $? "umm-trace drew $dir/w-pages.svg and $dir/w-resident.svg and said so"

if command -v xmllint >/dev/null 2>&1; then
  xmllint --noout "$dir/w-pages.svg" "$dir/w-resident.svg" 2>"$dir/xmllint"
  st=$?
  ok $st "both pictures are well-formed XML (xmllint)"
  [ $st -eq 0 ] || show "$dir/xmllint"
else
  echo "ok $((n = n + 1)) # SKIP xmllint is not installed (Debian: libxml2-utils)"
fi
head -n 2 "$dir/w-pages.svg" | grep -q '^<svg xmlns="http://www.w3.org/2000/svg"' &&
  tail -n 1 "$dir/w-pages.svg" | grep -q '^</svg>$'
ok $? "the page picture is one <svg> element from its second line to its last"

# One mark per placed event, of its kind's class and colour: read/read-ahead
# split fill by pages; reclaims of pages no mapping showed (address 0) are
# not drawn.
want=$(awk '!/^#/ && $3 != "0x0" { k = $2; if (k == "fill") k = ($6 > 1 ? "readahead" : "read"); n[k]++ }
  END { for (k in n) print k, n[k] }' "$trace" | sort)
got=$(grep -o 'class="[a-z]*" [a-z]*="[0-9.]*" [a-z]*="[0-9.]*"' "$dir/w-pages.svg" |
  sed 's/class="\([a-z]*\)".*/\1/' | sort | uniq -c | awk '{ print $2, $1 }' | sort)
[ -n "$want" ] && [ "$want" = "$got" ]
ok $? "a mark for every event, of its kind: $(echo $got)"
[ "$want" = "$got" ] || { echo "# want: $(echo $want)"; }

grep -q '<circle class="swapin" [^>]*fill="#e377c2"\|<rect class="swapin" [^>]*fill="#e377c2"' "$dir/w-pages.svg" &&
  grep -q 'class="reclaim" [^>]*fill="#9467bd"' "$dir/w-pages.svg" &&
  grep -q 'class="cow" [^>]*fill="#ff7f0e"' "$dir/w-pages.svg" &&
  grep -q '>swapped in (8, 8)<' "$dir/w-pages.svg"
ok $? "swap-in, reclaim and copy-on-write marks in their legend colours; the legend counts 8 swap-ins"

grep -q '<polyline class="resident"' "$dir/w-resident.svg" && grep -q '<polyline class="frames"' "$dir/w-resident.svg" &&
  grep -q '<line class="budget"' "$dir/w-resident.svg" && grep -q 'the budget (UMM_RAM): 64 (256 KiB)' "$dir/w-resident.svg"
ok $? "the resident picture: resident pages, frames and the 64-page budget"

rm -rf "$dir"
[ $fails -eq 0 ]
