#!/usr/bin/env bash
# Start a fuse-ros node graph here (no `ros2 launch` needed): ./run.sh sim [--duration 60] [...]
# Same nodes and parameter files as launch/sim.launch.py; see ./run.sh sim --help.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ -x "$ROOT/.venv/bin/python" ]] || { echo "run ./setup.sh first" >&2; exit 1; }
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m fuse_bringup.runner "$@"
