#!/usr/bin/env bash
# pick_cube from four times the demonstrations, and from noisy ones (README "More demonstrations,
# and noisy ones"): collect 320 clean expert episodes (seeds 1000-1319) and 100 whose open-finger
# commands carry seeded noise (`./run.sh collect --expert-noise`, seeds 4000-4099), export each set
# (a clean episode's labels are the expert's applied commands; a noisy one's, `--relabel expert`,
# the clean actions in the states the noise led to), train on the clean sets (bc320) and on all of
# them (dart; dart_film with FiLM; dart_conv with FiLM and the conv stem; dart_loc with location
# tokens; dart_locxy with their coordinates only; dart_grasp with their coordinates only and the
# grasp-point loss, `--grasp-weight 1`, without the shift augmentation) from scratch with the
# same options and seed, export each bundle and evaluate it closed loop on the evaluation seeds
# 0..N-1. WORK (default runs/dart, git-ignored) holds
# everything; a finished step's output is kept, a collection cut short is started again.
#
#   models/twin/make_dart_bundles.sh               # all steps
#   STEP=train models/twin/make_dart_bundles.sh    # from a step on: collect | export | train | bundle | eval
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
WORK=${WORK:-runs/dart}
STEP=${STEP:-collect}
STEPS=${STEPS:-6000}
N=${N:-20}
NOISE=${NOISE:-0.01}
mkdir -p "$WORK"
order=(collect export train bundle eval)
# shellcheck source=models/twin/steps.sh
source models/twin/steps.sh

# name, first seed, episodes, expert noise (m); two collections run side by side.
LANES=("clean_0 1000 40 0" "clean_1 1040 40 0" "clean_2 1080 120 0" "clean_3 1200 120 0"
       "noisy_0 4000 50 $NOISE" "noisy_1 4050 50 $NOISE")
collect() {  # NAME SEED EPISODES NOISE DOMAIN
  local have=0
  [[ -d $WORK/ep_$1 ]] && have=$(find "$WORK/ep_$1/" -mindepth 1 -maxdepth 1 -type d | wc -l)
  (( have >= $3 )) && return 0
  rm -rf "$WORK/ep_$1"
  ./run.sh collect --task pick_cube --teleop expert --episodes "$3" --mode lockstep --seed "$2" \
      --expert-noise "$4" --out "$WORK/ep_$1" --log-dir "$WORK/log_collect_$1" --no-status --domain-id "$5" \
      > "$WORK/collect_$1.log" 2>&1
}
if at collect; then
  for ((i = 0; i < ${#LANES[@]}; i += 2)); do
    # shellcheck disable=SC2086
    collect ${LANES[$i]} 73 &
    # shellcheck disable=SC2086
    collect ${LANES[$((i + 1))]} 74
    wait
  done
fi
# One dataset per collection (the trainer reads several as one), two exports side by side.
SETS=("clean_a clean_0 clean_1" "clean_2 clean_2" "clean_3 clean_3" "noisy_0 noisy_0" "noisy_1 noisy_1")
export_set() {  # NAME LANE...
  local name=$1; shift
  [[ -f $WORK/ds_$name/meta/info.json ]] && return 0
  local eps=() relabel=()
  for lane in "$@"; do eps+=("$WORK/ep_$lane"); done
  [[ $name == noisy_* ]] && relabel=(--relabel expert)
  ./run.sh export "${eps[@]}" "${relabel[@]}" --format lerobot --out "$WORK/ds_$name" --overwrite \
      > "$WORK/export_$name.log" 2>&1
}
if at export; then
  for ((i = 0; i < ${#SETS[@]}; i += 2)); do
    # shellcheck disable=SC2086
    export_set ${SETS[$i]} &
    # shellcheck disable=SC2086
    (( i + 1 < ${#SETS[@]} )) && export_set ${SETS[$((i + 1))]}
    wait
  done
fi
CLEAN="$WORK/ds_clean_a,$WORK/ds_clean_2,$WORK/ds_clean_3"
ALL="$CLEAN,$WORK/ds_noisy_0,$WORK/ds_noisy_1"
COMMON=(--steps "$STEPS" --batch 16 --lr 3e-4 --warmup 100 --seed 0 --inputs image_primary,image_wrist
        --contrastive-weight 0 --generative-weight 0 --val-fraction 0.1 --augment-shift 8
        --checkpoint-every 250 --log-every 50 --threads 1)
FILM=(--threads 2 --model '{"film": true}')
CONV=(--threads 2 --steps 4000 --model '{"film": true, "stem": "conv"}')
LOC=(--threads 2 --model '{"locate": 2}')
LOCXY=(--threads 2 --model '{"locate": 2, "locate_values": 0}')
GRASP=("${LOCXY[@]}" --grasp-weight 1 --augment-shift 0)  # the shift kept the head from learning (README)
if at train; then
  train_run bc320 "$CLEAN" &
  train_run dart "$ALL"
  wait
  train_run dart_film "$ALL" "${FILM[@]}"
  train_run dart_conv "$ALL" "${CONV[@]}"
  train_run dart_loc "$ALL" "${LOC[@]}"
  train_run dart_locxy "$ALL" "${LOCXY[@]}"
  train_run dart_grasp "$ALL" "${GRASP[@]}"
fi
if at bundle; then
  bundle_run bc320 "$CLEAN"
  bundle_run dart "$ALL"
  bundle_run dart_film "$ALL" "${FILM[@]}"
  bundle_run dart_conv "$ALL" "${CONV[@]}"
  bundle_run dart_loc "$ALL" "${LOC[@]}"
  bundle_run dart_locxy "$ALL" "${LOCXY[@]}"
  bundle_run dart_grasp "$ALL" "${GRASP[@]}"
fi
if at eval; then
  evaluate_pick_cube bc320 76 &
  evaluate_pick_cube dart 77
  wait
  evaluate_pick_cube dart_film 76 &
  evaluate_pick_cube dart_conv 77
  wait
  evaluate_pick_cube dart_loc 76 &
  evaluate_pick_cube dart_locxy 77
  wait
  evaluate_pick_cube dart_grasp 76
  for name in bc320 dart dart_film dart_conv dart_loc dart_locxy dart_grasp; do .venv/bin/python models/twin/failure_modes.py "$WORK/eval_$name"; done
fi
