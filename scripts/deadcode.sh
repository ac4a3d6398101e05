#!/usr/bin/env bash
# Runs deadcode (golang.org/x/tools/cmd/deadcode, pinned in tools/go.mod)
# over the module, tests included, and fails on any unreachable function
# that scripts/deadcode-allow.txt does not list.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
if [ ! -x bin/deadcode ] || [ tools/go.mod -nt bin/deadcode ]; then
  "$GO" build -C tools -o ../bin/deadcode golang.org/x/tools/cmd/deadcode
fi
out=$(bin/deadcode -test ./...)
allowed=$({ grep -v '^#' scripts/deadcode-allow.txt || true; } | sed '/^$/d')
bad=""
while IFS= read -r line; do
  [ -z "$line" ] && continue
  file=${line%%:*}
  fn=${line##*unreachable func: }
  if ! grep -qxF "$file: $fn" <<<"$allowed"; then
    bad+="$line"$'\n'
  fi
done <<<"$out"
if [ -n "$bad" ]; then
  echo "deadcode: unreachable functions (delete them, or list them with a reason in scripts/deadcode-allow.txt):"
  printf '%s' "$bad"
  exit 1
fi
