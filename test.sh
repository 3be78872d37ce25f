#!/usr/bin/env bash
# Run the whole test suite (unit, node, multi-process integration, launch-file checks).
# Extra arguments go to pytest, e.g. ./test.sh tests/unit -k spectrogram
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ -x "$ROOT/.venv/bin/python" ]] || { echo "run ./setup.sh first" >&2; exit 1; }
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
