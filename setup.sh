#!/usr/bin/env bash
# One-command set-up for machines without a ROS 2 installation.
#
# Creates .venv/, installs the pinned ROS 2 wheels and every other dependency,
# builds the fuse_interfaces message package into the venv and installs the
# project's Python packages (editable). Safe to re-run: each step is skipped
# when its inputs have not changed since the last successful run.
#
#   ./setup.sh            # set up (or bring up to date)
#   ./setup.sh --force    # redo every step
#   ./setup.sh --train    # also the trainer's PyTorch, pyarrow, matplotlib (requirements/train.txt)
#   ./setup.sh --datasets # also .venv-datasets/ for ./run.sh export (requirements/datasets.txt)
#
# On a ROS 2 Jazzy/Kilted installation use colcon instead (see README.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${FUSE_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
STAMPS="$VENV/.fuse-stamps"
FORCE=0
TRAIN=0
DATASETS=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --train) TRAIN=1 ;;
    --datasets) DATASETS=1 ;;
    *) printf '[setup] ERROR: unknown option %s (use --force, --train, --datasets)\n' "$arg" >&2; exit 2 ;;
  esac
done

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- 0. the interpreter ------------------------------------------------------
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null \
  || die "Python 3.11 is required (the ROS 2 wheels are cp311); set PYTHON=/path/to/python3.11"

# --- 1. system libraries -------------------------------------------------------
# PortAudio for sounddevice; cmake and a C/C++ compiler to build fuse_interfaces.
missing_pkgs=()
ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || missing_pkgs+=(libportaudio2)
# EGL with Mesa's software renderer for the twin's off-screen rendering (MuJoCo, MUJOCO_GL=egl).
ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1 ' || missing_pkgs+=(libegl1)
ldconfig -p 2>/dev/null | grep -q libEGL_mesa.so.0 || missing_pkgs+=(libegl-mesa0)
compgen -G '/usr/lib/*/dri/swrast_dri.so' >/dev/null || missing_pkgs+=(libgl1-mesa-dri)
command -v cmake >/dev/null || missing_pkgs+=(cmake)
command -v g++ >/dev/null || missing_pkgs+=(g++)
command -v gcc >/dev/null || missing_pkgs+=(gcc)
"$PY" -c 'import sysconfig, os; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' 2>/dev/null \
  || missing_pkgs+=(python3-dev)
# Chromium for the browser tests (report page, quick-look page) and screenshots: best effort,
# those tests skip without it.
want_chromium=1
command -v chromium >/dev/null || command -v chromium-browser >/dev/null && want_chromium=0
if ((${#missing_pkgs[@]} || want_chromium)); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    if ((${#missing_pkgs[@]})); then
      say "installing Debian packages: ${missing_pkgs[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null
    elif ! apt_log=$(apt-get update -qq 2>&1); then
      say "WARNING: apt-get update failed: $(tail -n 2 <<<"$apt_log")"
    fi
    if ((want_chromium)); then
      say "installing chromium (best effort; the browser tests skip without it)"
      if ! apt_log=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium 2>&1); then
        say "WARNING: chromium not installed, the browser tests will skip; apt-get said: $(tail -n 3 <<<"$apt_log")"
      fi
    fi
  elif ((${#missing_pkgs[@]})); then
    die "missing system packages; run: sudo apt-get install -y ${missing_pkgs[*]}"
  else
    say "no chromium: the browser tests will skip (to add it: sudo apt-get install -y chromium)"
  fi
fi

# --- 2. the virtual environment ----------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating $VENV"
  "$PY" -m venv "$VENV"
fi
mkdir -p "$STAMPS"
VPY="$VENV/bin/python"

# stamp_ok NAME FILES...: true when the hash of FILES equals the stored stamp.
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() {
  local name=$1; shift
  [[ $FORCE -eq 0 && -f "$STAMPS/$name" && "$(cat "$STAMPS/$name")" == "$(hash_of "$@")" ]]
}
stamp_write() { local name=$1; shift; hash_of "$@" >"$STAMPS/$name"; }

REQS=("$ROOT/requirements/ros.txt" "$ROOT/requirements/runtime.txt" "$ROOT/requirements/test.txt" "$ROOT/requirements/nodeps.txt")
if stamp_ok requirements "${REQS[@]}"; then
  say "dependencies up to date"
else
  say "installing pinned dependencies (ROS 2 wheels, runtime, test tools)"
  "$VPY" -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
  "$VPY" -m pip install -q --disable-pip-version-check \
    -r "$ROOT/requirements/ros.txt" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/test.txt"
  "$VPY" -m pip install -q --disable-pip-version-check --no-deps -r "$ROOT/requirements/nodeps.txt"
  stamp_write requirements "${REQS[@]}"
fi

# The trainer's packages (opt-in: torch is ~0.9 GB in the venv and takes minutes to install).
if ((TRAIN)); then
  if stamp_ok train "$ROOT/requirements/train.txt"; then
    say "trainer dependencies up to date"
  else
    say "installing the trainer's dependencies (requirements/train.txt: torch CPU build, pyarrow, matplotlib)"
    "$VPY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements/train.txt" \
      -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/test.txt"
    stamp_write train "$ROOT/requirements/train.txt"
  fi
fi

# The dataset exporters' libraries (opt-in, ~8 GB): TensorFlow Datasets and lerobot in their own
# venv, because lerobot pins numpy < 2.3 and OpenCV 4 below the nodes' versions. The export
# runs each writer there in a subprocess (TensorFlow and PyTorch never share one process).
if ((DATASETS)); then
  DVENV="${FUSE_DATASETS_VENV:-$ROOT/.venv-datasets}"
  if [[ -x "$DVENV/bin/python" ]] && stamp_ok datasets "$ROOT/requirements/datasets.txt"; then
    say "dataset export libraries up to date ($DVENV)"
  else
    say "installing the dataset export libraries into $DVENV (requirements/datasets.txt; minutes, several GB)"
    "$PY" -m venv "$DVENV"
    "$DVENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$DVENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements/datasets.txt" \
      || die "installing requirements/datasets.txt failed"
    stamp_write datasets "$ROOT/requirements/datasets.txt"
  fi
fi

# --- 3. point the wheels' CMake exports at this machine's include dirs ---------
# The wheels were built in a manylinux container and their exported CMake files
# name that container's Python and numpy include dirs. Rewriting them is what
# lets rosidl generate Python bindings for our own messages here.
PY_INC=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
NP_INC=$("$VPY" -c 'import numpy; print(numpy.get_include())')
grep -rlZ --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null \
  | xargs -0 -r sed -i \
      -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NP_INC#g" \
      -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INC#g" || true

# --- 4. build and install the interface packages into the venv ---------------
# tf2_msgs has no wheel: its TFMessage (the same definition a ROS install has) is built here
# from ros2_ws/src/interfaces/ (COLCON_IGNOREd there, so colcon uses the distro's package).
build_interfaces() {  # NAME DIR
  local name=$1 dir=$2 files
  files=("$dir/CMakeLists.txt" "$dir/package.xml" "$dir"/msg/*.msg)
  compgen -G "$dir/srv/*.srv" >/dev/null && files+=("$dir"/srv/*.srv)
  if stamp_ok "interfaces-$name" "${files[@]}" && "$VPY" -c "import $name.msg" 2>/dev/null; then
    say "$name up to date"
    return
  fi
  say "building $name"
  local build="$ROOT/build/$name" log="$ROOT/build/$name.log"
  rm -rf "$build"
  mkdir -p "$build"
  if ! (PATH="$VENV/bin:$PATH" cmake -S "$dir" -B "$build" \
          -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" \
          -DPython3_EXECUTABLE="$VPY" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
        && PATH="$VENV/bin:$PATH" cmake --build "$build" -j"$(nproc)" \
        && cmake --install "$build") >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "building $name failed; full log in $log"
  fi
  "$VPY" -c "import $name.msg" || die "$name built but does not import"
  stamp_write "interfaces-$name" "${files[@]}"
}
build_interfaces tf2_msgs "$ROOT/ros2_ws/src/interfaces/tf2_msgs"
build_interfaces fuse_interfaces "$ROOT/ros2_ws/src/fuse_interfaces"

# --- 5. the project's Python packages (editable) -----------------------------
PKGS=(fuse_core fuse_sim fuse_nodes fuse_bringup)
PKG_FILES=()
for p in "${PKGS[@]}"; do PKG_FILES+=("$ROOT/ros2_ws/src/$p/setup.py" "$ROOT/ros2_ws/src/$p/setup.cfg"); done
if stamp_ok packages "${PKG_FILES[@]}" && "$VPY" -c 'import fuse_core, fuse_sim, fuse_nodes, fuse_bringup' 2>/dev/null; then
  say "project packages up to date"
else
  say "installing project packages: ${PKGS[*]}"
  args=()
  for p in "${PKGS[@]}"; do args+=(-e "$ROOT/ros2_ws/src/$p"); done
  "$VPY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation "${args[@]}" \
    2> >(grep -vE 'Warning|!!|\*\*\*|^\s*$|careful|name as your|precedence|wheel_obj' >&2)
  stamp_write packages "${PKG_FILES[@]}"
fi

# --- 5b. Foxglove's protocol client for the viewer's test (npm, optional) ---------
CLIENT="$ROOT/tests/support/foxglove_client"
if ! command -v npm >/dev/null; then
  say "npm not found: the viewer's protocol test (Foxglove's own client) will be skipped"
elif stamp_ok foxglove-client "$CLIENT/package-lock.json" && [[ -d "$CLIENT/node_modules/@foxglove/ws-protocol" ]]; then
  say "Foxglove protocol client up to date"
else
  say "installing Foxglove's protocol client (@foxglove/ws-protocol) for the viewer test"
  (cd "$CLIENT" && npm ci --no-audit --no-fund --silent) || die "npm ci in $CLIENT failed"
  stamp_write foxglove-client "$CLIENT/package-lock.json"
fi

# --- 6. smoke check ---------------------------------------------------------------
"$VPY" - <<'EOF'
import rclpy, tf2_msgs.msg, fuse_interfaces.msg, fuse_core, fuse_sim, fuse_nodes, fuse_bringup  # noqa: F401
import onnxruntime, cv2, serial, foxglove  # noqa: F401
print('[setup] ok: rclpy, fuse_interfaces, fuse_core, fuse_nodes, fuse_bringup, onnxruntime', onnxruntime.__version__)
EOF
say "done. Run the simulation with: ./run.sh sim    Run the tests with: ./test.sh"
