#!/usr/bin/env bash
# Fails when generated code (protobuf, OpenAPI document, SDK types, the transformer reference, the
# deploy/*.env.example files) no longer matches its source.
set -euo pipefail
cd "$(dirname "$0")/.."
pnpm --silent gen >/dev/null
paths=(proto/src/gen sdk/openapi.json sdk/src/api.d.ts docs/transformers.md deploy/control-plane.env.example
  deploy/agent.env.example)
if ! git diff --exit-code --stat -- "${paths[@]}"; then
  echo "generated code is out of date: run 'pnpm gen' and commit ${paths[*]}" >&2
  exit 1
fi
if [ -n "$(git status --porcelain -- "${paths[@]}")" ]; then
  echo "generated code has untracked files: run 'pnpm gen' and commit them" >&2
  git status --porcelain -- "${paths[@]}" >&2
  exit 1
fi
echo "generated code is up to date"
