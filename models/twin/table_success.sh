#!/usr/bin/env bash
# The success table of the README ("Twin-trained bundles"): each action source on each task,
# N episodes from seed 0 (seeds 0..N-1, never used for training), with the 95 % Wilson interval,
# then one side-by-side comparison. Reports land in $REPORTS (default reports/twin).
#
#   models/twin/table_success.sh                       # N=50, pick_cube
#   N=20 TASKS="pick_cube pick_soft" models/twin/table_success.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
N=${N:-50}
TASKS=${TASKS:-pick_cube}
REPORTS=${REPORTS:-reports/twin}
SOURCES=${SOURCES:-"expert models/reference models/twin_pick_cube"}
dirs=()
for task in $TASKS; do
  for src in $SOURCES; do
    name=$(basename "$src")_$task
    if [[ $src == expert ]]; then what=(--expert); else what=(--bundle "$src"); fi
    out="$REPORTS/$name"
    resume=()
    [[ -f $out/summary.json ]] && resume=(--resume)
    ./run.sh eval "${what[@]}" --task "$task" --episodes "$N" --seed 0 --out "$out" "${resume[@]}"
    dirs+=("$out")
  done
done
./run.sh compare "${dirs[@]}" --html "$REPORTS/compare.html"
