# Sourced by the twin bundle scripts after they set `order` (their steps, in order) and STEP
# (the step to start from): checks STEP and defines `at NAME`, true for NAME and every later step,
# and `held_out` (a bundle's held-out episodes, linked into one directory for the replay check).
from=-1
for i in "${!order[@]}"; do [[ ${order[$i]} == "$STEP" ]] && from=$i; done
(( from >= 0 )) || { echo "STEP must be one of ${order[*]}" >&2; exit 2; }
at() { for i in "${!order[@]}"; do [[ ${order[$i]} == "$1" ]] && (( i >= from )) && return 0; done; return 1; }
held_out() {  # DATASET BUNDLE TASK...: link the bundle's held-out episodes into a directory, print it
  # (episode_index = export order = each task's sorted bags; every bag was exported, else refuse)
  local ds=$1 bundle=$2; shift 2
  local dir="$WORK/held_out_$(basename "$ds")"
  local eps=()
  for task in "$@"; do mapfile -t -O "${#eps[@]}" eps < <(find "$WORK/ep_$task" -mindepth 1 -maxdepth 1 -type d | sort); done
  local exported
  exported=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['total_episodes'])" "$ds/meta/info.json")
  (( exported == ${#eps[@]} )) || { echo "$ds has $exported episodes, $* ${#eps[@]} bags" >&2; exit 1; }
  rm -rf "$dir"; mkdir -p "$dir"
  for i in $(.venv/bin/python -c "import json,sys; print(*json.load(open(sys.argv[1]))['held_out_episodes'])" \
             "$bundle/training_report.json"); do
    ln -sfn "$(realpath "${eps[$i]}")" "$dir/"
  done
  echo "$dir"
}
# The pick_cube runs (make_dagger_bundles.sh, make_dart_bundles.sh) read COMMON (their shared
# trainer options), WORK and N; options after NAME DATASET override COMMON's (the last one wins).
train_run() {  # NAME DATASET [OPTION...]: one training, its log beside it; an interrupted one resumes
  local name=$1 data=$2 resume=()
  shift 2
  [[ -f $WORK/train_$name/checkpoints/last.pt ]] && resume=(--resume)
  .venv/bin/python -m models.trainer "${COMMON[@]}" "$@" --dataset "$data" --out "$WORK/train_$name" \
      "${resume[@]}" >> "$WORK/train_$name.log" 2>&1
}
bundle_run() {  # NAME DATASET [OPTION...]: the run's last checkpoint as WORK/bundle_NAME (kept if newer)
  local name=$1 data=$2
  shift 2
  [[ $WORK/bundle_$name/manifest.json -nt $WORK/train_$name/checkpoints/last.pt ]] && return 0
  .venv/bin/python -m models.trainer "${COMMON[@]}" "$@" --dataset "$data" --out "$WORK/train_$name" \
      --name "twin-pick-cube-$name" --export "$WORK/bundle_$name" \
      --export-checkpoint "$WORK/train_$name/checkpoints/last.pt"
}
evaluate_pick_cube() {  # NAME DOMAIN: WORK/bundle_NAME on seeds 0..N-1, bags on (failure_modes.py reads them)
  local out="$WORK/eval_$1" resume=()
  [[ -f $out/summary.json ]] && resume=(--resume)
  ./run.sh eval --bundle "$WORK/bundle_$1" --task pick_cube --episodes "$N" --seed 0 --no-videos --out "$out" \
      --domain-id "$2" "${resume[@]}" > "$WORK/eval_$1.log" 2>&1
}
