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
