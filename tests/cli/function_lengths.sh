#!/usr/bin/env bash
# No function over 120 lines in phantom/, data/, trainers/ without a `// long:` reason right above it
# (scripts/function_lengths.py). The scanner itself is checked first on a made-up tree, so the test can fail.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
py="$SRC/.venv/bin/python"
mkdir -p "$tmp/fake/trainers"
long_body() { for i in $(seq 1 130); do echo "  x += $i;  // { not a brace"; done; }
{
  echo 'namespace phantom { template <class T> struct S { int f() { return 1; } };'
  echo 'int long_one(int x) {'; long_body; echo '  return x; }'
  echo '// why it is long'; echo '// long: one table, read top to bottom'
  echo 'int long_two(int x) {'; long_body; echo '  return x; }'
  echo 'static const int table[] = {1, 2}; }'
} >"$tmp/fake/trainers/a.cpp"
out=$("$py" "$SRC/scripts/function_lengths.py" --root "$tmp/fake" 2>&1); rc=$?
if [ $rc -ne 1 ] || ! grep -q "132  trainers/a.cpp:2  long_one  NO REASON" <<<"$out" ||
   ! grep -q "long_two  long: one table" <<<"$out" || ! grep -q "^3 functions, 2 over 120 lines, 1 without" <<<"$out"; then
  echo "FAIL: the scanner on a made-up file (rc $rc):"; echo "$out"; fail=1
fi
# The product code.
if ! "$py" "$SRC/scripts/function_lengths.py"; then fail=1; fi
exit $fail
