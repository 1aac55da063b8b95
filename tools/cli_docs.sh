#!/usr/bin/env bash
# Prints docs/cli.md: the hand-written docs/cli-intro.md, then the command reference that
# `voxalign help-markdown` generates from the command definitions (cli/*.cpp).
# Usage: tools/cli_docs.sh [VOXALIGN] > docs/cli.md   (VOXALIGN: default build/release/voxalign)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
voxalign=${1:-$root/build/release/voxalign}
cat "$root/docs/cli-intro.md"
"$voxalign" help-markdown
