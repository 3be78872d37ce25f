#!/usr/bin/env bash
# The touch experiment of the README ("Touch, and FuSe's auxiliary losses, on pick_soft"):
# collect the twin expert's pick_soft demonstrations (lockstep, seeds 1000-1059, away from the
# evaluation seeds 0..49), export them as a LeRobotDataset, train the same recipe (same seed,
# steps, batch and held-out episodes) as (a) FuSe (contrastive + generative losses), (b) the
# ablation without them, (c) FuSe without touch (cameras only) and (d) FuSe on the same data with
# tactile texts that say what the expert felt (models/twin/felt_instructions.py); export each
# bundle and replay-check it on the held-out episodes with every preprocessing variant. WORK
# (default runs/twin_soft, git-ignored) holds the episodes, datasets, runs, bundles and reports.
# models/twin_pick_soft is run (b)'s last step ($WORK/bundle_noaux); no FuSe bundle is shipped.
#
#   models/twin/make_pick_soft_bundles.sh               # all steps
#   STEP=train models/twin/make_pick_soft_bundles.sh    # from a step on: collect | export | train | bundle | replay
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
WORK=${WORK:-runs/twin_soft}
STEP=${STEP:-collect}
STEPS=${STEPS:-3000}
mkdir -p "$WORK"
order=(collect export train bundle replay)
# shellcheck source=models/twin/steps.sh
source models/twin/steps.sh

if at collect; then
  ./run.sh collect --task pick_soft --teleop expert --episodes 60 --mode lockstep --seed 1000 \
      --out "$WORK/ep_pick_soft" --log-dir "$WORK/log_collect" --no-status
fi
if at export; then
  ./run.sh export "$WORK/ep_pick_soft" --format lerobot --out "$WORK/ds_pick_soft" --overwrite
  # (d): the same data, tactile texts saying what the expert felt (models/twin/felt_instructions.py)
  rm -rf "$WORK/ds_pick_soft_felt"
  .venv/bin/python models/twin/felt_instructions.py "$WORK/ep_pick_soft" "$WORK/ds_pick_soft" "$WORK/ds_pick_soft_felt"
fi
COMMON=(--dataset "$WORK/ds_pick_soft" --steps "$STEPS" --batch 16 --lr 3e-4 --warmup 100 --seed 0
        --val-fraction 0.1 --augment-shift 8 --checkpoint-every 250 --log-every 50 --threads 1)
TOUCH=(--inputs image_primary,image_wrist,image_digit_left,image_digit_right)
declare -A RUN=(
  [fuse]="${TOUCH[*]}"
  [noaux]="${TOUCH[*]} --contrastive-weight 0 --generative-weight 0"
  [vision]="--inputs image_primary,image_wrist"
  [felt]="${TOUCH[*]} --dataset $WORK/ds_pick_soft_felt"
)
if at train; then
  for name in fuse noaux vision felt; do
    # shellcheck disable=SC2086  # the run's own options, word-split on purpose
    .venv/bin/python -m models.trainer "${COMMON[@]}" ${RUN[$name]} --out "$WORK/train_$name" 2>&1 \
        | tee "$WORK/train_$name.log"
  done
fi
if at bundle; then
  for name in fuse noaux vision felt; do
    # shellcheck disable=SC2086
    .venv/bin/python -m models.trainer "${COMMON[@]}" ${RUN[$name]} --out "$WORK/train_$name" \
        --name "twin-pick-soft-$name" --export "$WORK/bundle_$name" \
        --export-checkpoint "$WORK/train_$name/checkpoints/last.pt"
  done
fi
if at replay; then
  held=$(held_out "$WORK/ds_pick_soft" "$WORK/bundle_fuse" pick_soft)
  for name in fuse noaux vision felt; do
    ./run.sh replay-check --bundle "$WORK/bundle_$name" "$held" --out "$WORK/replay_$name" --overwrite
  done
fi
