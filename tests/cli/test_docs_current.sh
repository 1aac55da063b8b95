#!/usr/bin/env bash
# Verifies: docs/cli.md is what `make docs` generates now (docs/cli-intro.md + `voxalign
# help-markdown`), so the command reference cannot drift from the command definitions.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bash "$root/tools/cli_docs.sh" "$VOXALIGN" > cli.md || exit 1
if ! diff -u "$root/docs/cli.md" cli.md; then
  echo "docs/cli.md is out of date: run make docs"
  exit 1
fi
echo "docs/cli.md is current ($(wc -l < cli.md) lines)"
