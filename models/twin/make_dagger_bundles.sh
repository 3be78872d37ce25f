#!/usr/bin/env bash
# DAgger on pick_cube in the twin (README "DAgger: the expert labels the policy's own states"):
# collect the expert (80 episodes, seeds 1000-1079, two lanes), roll out a policy with bags on
# training seeds (ROLLOUT_BUNDLE, default the shipped models/twin_pick_cube; seeds 3000-3039),
# export the demonstrations alone (bc) and with the rollouts (dagger), every step labelled by the
# scripted expert (`./run.sh export --relabel expert`), train both from scratch with the same
# options and seed, export each bundle and evaluate it closed loop on the evaluation seeds 0..N-1.
# models/twin/failure_modes.py says where each failed episode went. WORK (default runs/dagger,
# git-ignored) holds everything; a finished step's output is kept.
#
#   models/twin/make_dagger_bundles.sh               # all steps
#   STEP=train models/twin/make_dagger_bundles.sh    # from a step on: collect | rollout | export | train | bundle | eval
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
WORK=${WORK:-runs/dagger}
STEP=${STEP:-collect}
STEPS=${STEPS:-3000}
N=${N:-20}
ROLLOUT_BUNDLE=${ROLLOUT_BUNDLE:-models/twin_pick_cube}
mkdir -p "$WORK"
order=(collect rollout export train bundle eval)
# shellcheck source=models/twin/steps.sh
source models/twin/steps.sh

if at collect; then
  for lane in 0 1; do
    [[ -d $WORK/ep_expert_$lane ]] && continue
    ./run.sh collect --task pick_cube --teleop expert --episodes 40 --mode lockstep --seed $((1000 + 40 * lane)) \
        --out "$WORK/ep_expert_$lane" --log-dir "$WORK/log_collect_$lane" --no-status --domain-id $((73 + lane)) &
  done
  wait
fi
if at rollout; then
  for lane in 0 1; do   # the policy's own episodes, bags on (what the expert relabels)
    out="$WORK/roll0_$lane" resume=()
    [[ -f $out/summary.json ]] && resume=(--resume)
    ./run.sh eval --bundle "$ROLLOUT_BUNDLE" --task pick_cube --episodes 20 --seed $((3000 + 20 * lane)) \
        --out "$out" --no-videos --domain-id $((71 + lane)) "${resume[@]}" &
  done
  wait
fi
DEMOS=("$WORK/ep_expert_0" "$WORK/ep_expert_1")
if at export; then
  ./run.sh export "${DEMOS[@]}" --relabel expert --format lerobot --out "$WORK/ds_bc" --overwrite &
  ./run.sh export "${DEMOS[@]}" "$WORK/roll0_0/episodes" "$WORK/roll0_1/episodes" --outcomes success,failure \
      --relabel expert --format lerobot --out "$WORK/ds_dagger1" --overwrite
  wait
fi
COMMON=(--steps "$STEPS" --batch 16 --lr 3e-4 --warmup 100 --seed 0 --inputs image_primary,image_wrist
        --contrastive-weight 0 --generative-weight 0 --val-fraction 0.1 --augment-shift 8
        --checkpoint-every 250 --log-every 50 --threads 1)
if at train; then
  train_run bc "$WORK/ds_bc" &
  train_run dagger1 "$WORK/ds_dagger1"
  wait
fi
if at bundle; then
  for name in bc dagger1; do bundle_run "$name" "$WORK/ds_$name"; done
fi
if at eval; then
  evaluate_pick_cube bc 76 &
  evaluate_pick_cube dagger1 77
  wait
  for name in bc dagger1; do .venv/bin/python models/twin/failure_modes.py "$WORK/eval_$name"; done
fi
