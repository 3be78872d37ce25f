#!/usr/bin/env bash
# The generalist -> FuSe chain of the README ("A generalist, finetuned with touch and sound"):
# collect the twin expert on the two vision-language tasks (pick_cube, place_in_bowl) and on the
# touch and sound tasks (pick_soft, press_beep), lockstep, seeds 1000-1039 (away from the
# evaluation seeds 0..49); export each pair as one LeRobotDataset; pretrain a vision-language
# "generalist" (both cameras and the instruction, action loss only) on the first pair; finetune
# it on the second pair with every sensor (cameras, both DIGITs, the microphone's spectrogram)
# and FuSe's contrastive and generative losses:
#   fuse   plain finetuning          l2sp   + L2-SP         spd   + selective projection decay
#   wise   fuse's weights mixed half-and-half with the generalist's (WiSE-FT, alpha 0.5)
#   noaux  fuse without the auxiliary losses (the paper's ablation)
#   vision fuse without touch and sound (cameras and instruction only)
# then export every bundle, replay-check each on the held-out episodes of both pairs (forgetting
# is the pretraining pair's error before and after), describe from touch and from sound, and
# evaluate closed loop; models/twin/table_chain.py prints the tables. WORK (default runs/chain,
# git-ignored) holds everything.
#
#   models/twin/make_chain_bundles.sh               # all steps
#   STEP=finetune models/twin/make_chain_bundles.sh # from a step on:
#                                                   # collect | export | pretrain | finetune | bundle | replay | eval
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
WORK=${WORK:-runs/chain}
STEP=${STEP:-collect}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-5000}
FINETUNE_STEPS=${FINETUNE_STEPS:-1000}
N=${N:-20}
mkdir -p "$WORK"
order=(collect export pretrain finetune bundle replay eval)
# shellcheck source=models/twin/steps.sh
source models/twin/steps.sh
PRETRAIN_TASKS=(pick_cube place_in_bowl)
FINETUNE_TASKS=(pick_soft press_beep)
FINETUNED=(fuse l2sp spd noaux vision)

if at collect; then
  # two lanes on their own DDS domains (the machine has two cores)
  lane() {
    for task in "$@"; do
      ./run.sh collect --task "$task" --teleop expert --episodes 40 --mode lockstep --seed 1000 \
          --out "$WORK/ep_$task" --log-dir "$WORK/log_collect_$task" --no-status --domain-id "$DOMAIN"
    done
  }
  DOMAIN=61 lane pick_cube pick_soft &
  DOMAIN=62 lane place_in_bowl press_beep
  wait
fi
if at export; then
  ./run.sh export "$WORK/ep_pick_cube" "$WORK/ep_place_in_bowl" --format lerobot --out "$WORK/ds_pretrain" --overwrite
  ./run.sh export "$WORK/ep_pick_soft" "$WORK/ep_press_beep" --format lerobot --out "$WORK/ds_finetune" --overwrite
fi
COMMON=(--batch 16 --lr 3e-4 --warmup 100 --seed 0 --val-fraction 0.1 --augment-shift 8
        --checkpoint-every 200 --log-every 50 --threads 1)
PRE=(--dataset "$WORK/ds_pretrain" --steps "$PRETRAIN_STEPS" --inputs image_primary,image_wrist
     --contrastive-weight 0 --generative-weight 0)
FT=(--dataset "$WORK/ds_finetune" --steps "$FINETUNE_STEPS" --pretrained "$WORK/train_generalist/checkpoints/last.pt")
ALL=(--inputs image_primary,image_wrist,image_digit_left,image_digit_right,mel_spectro)
declare -A RUN=(
  [fuse]="${ALL[*]}"
  [l2sp]="${ALL[*]} --l2sp 0.1"
  [spd]="${ALL[*]} --spd 0.5"
  [noaux]="${ALL[*]} --contrastive-weight 0 --generative-weight 0"
  [vision]="--inputs image_primary,image_wrist"
)
train() {  # NAME OPTIONS...: one run, its log beside it; an interrupted run resumes (a finished one stays)
  local name=$1; shift
  local resume=()
  [[ -f $WORK/train_$name/checkpoints/last.pt ]] && resume=(--resume)
  .venv/bin/python -m models.trainer "${COMMON[@]}" "$@" --out "$WORK/train_$name" "${resume[@]}" \
      >> "$WORK/train_$name.log" 2>&1
}
if at pretrain; then
  train generalist "${PRE[@]}" --threads 2   # alone on the machine
fi
if at finetune; then
  # two at a time
  # shellcheck disable=SC2086  # each run's own options, word-split on purpose
  for pair in "fuse l2sp" "spd noaux" "vision"; do
    for name in $pair; do train "$name" "${FT[@]}" ${RUN[$name]} & done
    wait
  done
fi
export_bundle() {  # BUNDLE RUN OPTIONS...: export RUN's last checkpoint unless the bundle is newer
  local bundle=$1 run=$2; shift 2
  [[ $WORK/bundle_$bundle/manifest.json -nt $WORK/train_$run/checkpoints/last.pt ]] && return 0
  .venv/bin/python -m models.trainer "${COMMON[@]}" "$@" --out "$WORK/train_$run" --name "twin-chain-$bundle" \
      --export "$WORK/bundle_$bundle" --export-checkpoint "$WORK/train_$run/checkpoints/last.pt"
}
if at bundle; then
  export_bundle generalist generalist "${PRE[@]}"
  for name in "${FINETUNED[@]}"; do
    # shellcheck disable=SC2086
    export_bundle "$name" "$name" "${FT[@]}" ${RUN[$name]}
  done
  # shellcheck disable=SC2086
  export_bundle wise fuse "${FT[@]}" ${RUN[fuse]} --wise-alpha 0.5
fi
if at replay; then
  pre=$(held_out "$WORK/ds_pretrain" "$WORK/bundle_generalist" "${PRETRAIN_TASKS[@]}")
  ft=$(held_out "$WORK/ds_finetune" "$WORK/bundle_fuse" "${FINETUNE_TASKS[@]}")
  replay() {  # BUNDLE EPISODES REPORT OPTIONS...: unless the report is newer than the bundle
    local bundle=$1 episodes=$2 out=$3; shift 3
    [[ $out/replay.json -nt $bundle/manifest.json ]] && return 0
    ./run.sh replay-check --bundle "$bundle" "$episodes" --out "$out" --overwrite "$@"
  }
  for name in generalist "${FINETUNED[@]}" wise; do
    replay "$WORK/bundle_$name" "$pre" "$WORK/replay_pre_$name"
    [[ $name == generalist ]] && continue
    describe=()  # the generative head's descriptions from touch and from sound, where it has those inputs
    if grep -q '"generative"' "$WORK/bundle_$name/manifest.json"; then
      grep -q '"image_digit_left"' "$WORK/bundle_$name/manifest.json" && describe+=(--describe tactile)
      grep -q '"mel_spectro"' "$WORK/bundle_$name/manifest.json" && describe+=(--describe audio)
    fi
    replay "$WORK/bundle_$name" "$ft" "$WORK/replay_ft_$name" "${describe[@]}"
  done
fi
if at eval; then
  evaluate() {  # BUNDLE TASK DOMAIN
    local out="$WORK/eval_$1_$2" resume=()
    [[ -f $out/summary.json ]] && resume=(--resume)
    ./run.sh eval --bundle "$WORK/bundle_$1" --task "$2" --episodes "$N" --seed 0 --no-bags --out "$out" \
        --domain-id "$3" "${resume[@]}"
  }
  # forgetting (pick_cube) on one lane, the sound task on the other (EVAL_TASKS="press_beep pick_soft"
  # adds the touch task, about 10 minutes a bundle more; EVAL_TASKS="" leaves that lane out)
  ( for name in generalist fuse l2sp spd wise; do evaluate "$name" pick_cube 63; done ) &
  for task in ${EVAL_TASKS-press_beep}; do for name in fuse noaux vision; do evaluate "$name" "$task" 64; done; done
  wait
  .venv/bin/python models/twin/table_chain.py "$WORK"
fi
