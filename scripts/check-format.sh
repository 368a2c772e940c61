#!/usr/bin/env bash
# Fails when a C++ source file of the repository differs from the style in
# .clang-format (part of the README's test command, so format drift fails
# CI). Fix with:  clang-format -i FILE...   (or all: scripts/check-format.sh --fix)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "check-format: clang-format is missing (bash scripts/setup.sh installs it)" >&2
  exit 2
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h')
else
  mapfile -t files < <(find pipeline plugins apps python tests bench fuzz examples -name '*.cpp' -o -name '*.hpp' -o -name '*.h')
fi
if [ "${1:-}" = --fix ]; then
  clang-format -i "${files[@]}"
  echo "check-format: formatted ${#files[@]} files"
  exit 0
fi
drifted=()
for file in "${files[@]}"; do
  if ! clang-format --dry-run -Werror "$file" >/dev/null 2>&1; then drifted+=("$file"); fi
done
if [ ${#drifted[@]} -ne 0 ]; then
  echo "check-format: ${#drifted[@]} file(s) differ from .clang-format:" >&2
  printf '  %s\n' "${drifted[@]}" >&2
  echo "fix with: clang-format -i ${drifted[*]}" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files follow .clang-format ($(clang-format --version | head -1))"
