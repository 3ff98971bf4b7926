# Shared by the CLI tests (sourced, not a test itself: CMake registers only the scripts that do not start with lib):
# the binary and source dir from the arguments, a temporary directory removed at exit, and expect_error.
PHANTOM="$1"; SRC="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
expect_error() {  # expect_error <regex> <args...>: a non-zero exit and exactly one stderr line matching <regex>
  local re="$1"; shift
  "$PHANTOM" "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  local lines; lines=$(wc -l <"$tmp/err")
  if [ $rc -eq 0 ] || [ "$lines" -ne 1 ] || ! grep -Eq "$re" "$tmp/err"; then
    echo "FAIL: phantom $* -> rc=$rc, $lines stderr line(s), expected /$re/:"; cat "$tmp/err"; fail=1
  else
    echo "ok: phantom $* -> $(cat "$tmp/err")"
  fi
}
