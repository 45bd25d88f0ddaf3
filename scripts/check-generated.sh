#!/usr/bin/env bash
# Fails when generated code (protobuf) no longer matches its source.
set -euo pipefail
cd "$(dirname "$0")/.."
pnpm --silent gen
if ! git diff --exit-code --stat -- proto/src/gen; then
  echo "generated protobuf code is out of date: run 'pnpm gen' and commit proto/src/gen" >&2
  exit 1
fi
if [ -n "$(git status --porcelain -- proto/src/gen)" ]; then
  echo "generated protobuf code has untracked files: run 'pnpm gen' and commit proto/src/gen" >&2
  git status --porcelain -- proto/src/gen >&2
  exit 1
fi
echo "generated code is up to date"
