#!/bin/sh
# Promise: libumm coexists with gdb.  With the README's two handle
# commands, a program whose pages fault in through libumm runs to its end
# under gdb, and its output is right.  (TAP; skipped without gdb.)
command -v gdb >/dev/null 2>&1 || { echo "1..0 # SKIP gdb is not installed"; exit 0; }
top=${top_builddir:-.}
# LeakSanitizer cannot work under ptrace; in an --enable-asan build let the
# rest of ASan run but not the leak check at exit.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export ASAN_OPTIONS
out=$("$top/libtool" --mode=execute gdb -nx -batch \
      -ex 'handle SIGSEGV nostop noprint pass' -ex 'handle SIGBUS nostop noprint pass' \
      -ex run --args "$top/examples/quickstart" "$0" 2>&1)
status=$?
want=$(wc -l < "$0")
echo "1..3"
[ $status -eq 0 ] && echo "ok 1 - gdb ran the program" || echo "not ok 1 - gdb ran the program (status $status)"
case "$out" in
  *"$want lines;"*) echo "ok 2 - the program read its file through libumm under gdb ($want lines)" ;;
  *) echo "not ok 2 - the program read its file through libumm under gdb"; echo "$out" | sed 's/^/# /' ;;
esac
case "$out" in
  *"exited normally"*) echo "ok 3 - and exited normally" ;;
  *) echo "not ok 3 - and exited normally" ;;
esac
