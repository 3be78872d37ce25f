#!/usr/bin/env bash
# Reproduce the twin-trained bundles shipped in models/twin_*: collect the twin expert's
# demonstrations (lockstep, seeds away from the evaluation seeds 0..49), export them as a
# LeRobotDataset, train with models/trainer and export the bundle of the lowest held-out loss.
# Everything runs on the CPU here (about an hour on 2 cores); WORK holds the episodes,
# datasets and runs (default runs/twin, git-ignored).
#
#   models/twin/make_bundles.sh                 # all steps
#   STEP=train models/twin/make_bundles.sh      # from a step on: collect | export | train | bundle
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
WORK=${WORK:-runs/twin}
STEP=${STEP:-collect}
mkdir -p "$WORK"
order=(collect export train bundle)
# shellcheck source=models/twin/steps.sh
source models/twin/steps.sh

# The vision-language bundle: pick_cube, primary and wrist cameras and the instruction.
if at collect; then
  ./run.sh collect --task pick_cube --teleop expert --episodes 60 --mode lockstep --seed 1000 \
      --out "$WORK/ep_pick_cube" --log-dir "$WORK/log_collect" --no-status
  ./run.sh collect --task pick_cube --teleop expert --episodes 100 --mode lockstep --seed 2000 \
      --out "$WORK/ep_pick_cube2" --log-dir "$WORK/log_collect2" --no-status
fi
if at export; then
  ./run.sh export "$WORK/ep_pick_cube" "$WORK/ep_pick_cube2" --format lerobot --out "$WORK/ds_pick_cube" --overwrite
fi
TRAIN=(--dataset "$WORK/ds_pick_cube" --out "$WORK/train_pick_cube" --steps 3000 --batch 16 --lr 3e-4
       --warmup 100 --seed 0 --inputs image_primary,image_wrist --contrastive-weight 0 --generative-weight 0
       --val-fraction 0.1 --augment-shift 8 --checkpoint-every 250 --log-every 50 --threads 1 --workers 1
       --name twin-pick-cube-vl)
if at train; then
  .venv/bin/python -m models.trainer "${TRAIN[@]}"
fi
if at bundle; then
  best=$(.venv/bin/python - "$WORK/train_pick_cube/metrics.csv" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r['val_action']]
best = min(rows, key=lambda r: float(r['val_action']))
print(f"step_{int(best['step']):06d}.pt")
PY
)
  echo "lowest held-out action loss: $best"
  .venv/bin/python -m models.trainer "${TRAIN[@]}" --export models/twin_pick_cube \
      --export-checkpoint "$WORK/train_pick_cube/checkpoints/$best"
fi
