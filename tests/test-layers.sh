#!/bin/sh
# Promise (doc/DESIGN.md "The pieces"): the calls between libumm's pieces
# point one way, down the house -- system-call layer and trap, fault core,
# reclaim, page cache and address space, frames, host -- with no circle.
# Read from the objects themselves: a piece calls another when its object
# needs (nm -u) a symbol the other defines, functions and data alike, and
# the C library's names libumm stands in front of (open, close, fcntl...)
# count as calls to the piece that defines them.  Every piece has a place
# in ORDER below (top first); a call to a piece above its caller, or to
# one not in ORDER, fails and names the symbols.  (TAP.)
top=${top_builddir:-.}
name=layers
. "${srcdir:-.}/tests/tap-sh.sh"

# Top first.  A piece may call only pieces after it.  The order is one way
# of reading doc/DESIGN.md's picture; pieces on one level are in some order.
ORDER="fileio softdirty mman init trap signals fork daemon kvma fault vmscan
pagecache pager locks vma mapcount fdtable trace frame swap kmem mm host"

objs=$(ls "$top"/src/.libs/libumm_la-*.o 2>/dev/null || ls "$top"/src/libumm_la-*.o 2>/dev/null)
pieces=$(ls "${srcdir:-.}"/src/*.c | sed 's|.*/||; s|\.c$||' | sort)
set -- $pieces
echo "1..$(($# + 3))"

# defs: "SYMBOL PIECE"; uses: "PIECE SYMBOL".
: >"$dir/defs"
: >"$dir/uses"
for o in $objs; do
  p=${o##*/libumm_la-}
  p=${p%.o}
  nm -g --defined-only "$o" | awk -v p="$p" 'NF == 3 { print $3, p }' >>"$dir/defs"
  nm -u "$o" | awk -v p="$p" '{ print p, $NF }' >>"$dir/uses"
done
[ -n "$objs" ] && [ -s "$dir/defs" ] && [ -s "$dir/uses" ]
ok $? "the library's objects read with nm ($(echo $objs | wc -w) objects)"

# edges: "CALLER CALLEE SYMBOL", one per symbol.
awk 'NR == FNR { def[$1] = $2; next } ($2 in def) && def[$2] != $1 { print $1, def[$2], $2 }' \
  "$dir/defs" "$dir/uses" | sort >"$dir/edges"

# up ORDER EDGES: the edges whose callee is not below its caller in ORDER.
up() {
  awk -v order="$1" 'BEGIN { n = split(order, o, /[ \n]+/); for (i = 1; i <= n; i++) rank[o[i]] = i }
    !($1 in rank) || !($2 in rank) || rank[$2] <= rank[$1] { print }' "$2"
}

missing=
for p in $pieces; do
  case " $(echo $ORDER) " in *" $p "*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ]
ok $? "every piece of src/ has its place in the order${missing:+ (missing:$missing)}"

up "$ORDER" "$dir/edges" >"$dir/up"
for p in $pieces; do
  grep "^$p " "$dir/up" >"$dir/up.$p"
  [ ! -s "$dir/up.$p" ]
  ok $? "$p calls only pieces below it ($(awk -v p="$p" '$1 == p { print $2 }' "$dir/edges" | sort -u | tr '\n' ' '))"
  [ -s "$dir/up.$p" ] && awk '{ print "  calls up: " $1 " -> " $2 ": " $3 }' "$dir/up.$p" | show /dev/stdin
done

# The check itself: read bottom first, the same calls must nearly all go
# up (a check that saw no calls would pass anything).
rev=$(echo $ORDER | tr ' ' '\n' | tac | tr '\n' ' ')
n_up=$(up "$rev" "$dir/edges" | wc -l)
n_all=$(wc -l <"$dir/edges")
n_fwd=$(wc -l <"$dir/up")
[ "$n_all" -gt 100 ] && [ $((n_up + n_fwd)) -eq "$n_all" ]
ok $? "with the order upside down every call that went down goes up ($n_up of $n_all)"

rm -rf "$dir"
[ $fails -eq 0 ]
