# Sourced by the twin bundle scripts after they set `order` (their steps, in order) and STEP
# (the step to start from): checks STEP and defines `at NAME`, true for NAME and every later step.
from=-1
for i in "${!order[@]}"; do [[ ${order[$i]} == "$STEP" ]] && from=$i; done
(( from >= 0 )) || { echo "STEP must be one of ${order[*]}" >&2; exit 2; }
at() { for i in "${!order[@]}"; do [[ ${order[$i]} == "$1" ]] && (( i >= from )) && return 0; done; return 1; }
