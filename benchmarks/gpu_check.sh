#!/usr/bin/env bash
# The GPU check, in one shot under one 9-minute deadline, the headline figures first: a
# preflight that fails loudly without CUDA; CIFAR-10 converted from its JPEG archive; every CUDA
# spelling through the CLI (rows must say what was asked); the ResNet-20 CIFAR-10 epoch with and
# without CUDA graphs; the ensemble benchmark at K = 1…64 with and without graphs; ResNet-50
# bf16 by default settings; the harness-overhead benchmark; the lecture's degradation showcase
# at full CIFAR-10; `cnnbench profile` variants of ResNet-20/50; then the checks of the CUDA
# paths (step timer vs train_s, per-run peaks, resume after SIGTERM, fp16's loss scale, compile,
# divergence, --workers 2, bf16 + channels_last) and the CUDA-marked tests. A step the deadline
# does not reach is `skipped`. Its only outputs, in $OUT (or --out DIR): gpu_check_summary.txt
# (one table) and gpu_check_logs.tar.gz (every step's log).
#
#   bash benchmarks/gpu_check.sh --prepare   # on a machine with internet and ../shared/data
#   bash benchmarks/gpu_check.sh --dry-run   # prints the steps, checks the prepared folder
#   bash benchmarks/gpu_check.sh [--out DIR] # on the CUDA machine, from the repository root
#
# --prepare puts into .gpu_check/ (git-ignored; < 64 MiB): wheels for Python 3.12 manylinux
# x86_64 of what a bare torch image lacks (pydantic and its three helpers, typing-extensions,
# pytest and its helpers), pinned to the versions this environment runs, and the CIFAR-10 JPEG
# archive (20 MB; the decoded arrays, 180 MB, are made on the GPU machine in seconds). On the
# GPU machine nothing is downloaded: the wheels go into a temporary --target folder.
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
PREPARED="${GPU_CHECK_PREPARED:-$REPO/.gpu_check}"
SHARED_DATA="${GPU_CHECK_SHARED_DATA:-$REPO/../shared/data}"
PY="${GPU_CHECK_PYTHON:-python3}"
DEADLINE_S="${GPU_CHECK_DEADLINE_S:-540}"
ARCHIVE=cifar10-jpeg.tar.gz
ARCHIVE_SHA256=d34c68f61cca57aa9144c8f25bda427abb9921bd642d5857a2fc1a6b4416f965
PACKAGES=(pydantic pydantic-core annotated-types typing-inspection typing-extensions
          pytest pluggy iniconfig packaging pygments)
MAX_BYTES=$((64 * 1024 * 1024))

MODE=run
OUT_DIR="${OUT:-}"
while (($#)); do
  case $1 in
    --prepare) MODE=prepare ;;
    --dry-run) MODE=dry-run ;;
    --out) OUT_DIR=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (use --prepare, --dry-run or --out DIR)" >&2
       exit 2 ;;
  esac
  shift
done

# ─── The prepared folder ───────────────────────────────────────────────────────────────────────

wheel_of() {  # the wheel of a package in the prepared folder (PEP 427 names: - becomes _)
  local stem=${1//-/_}
  compgen -G "$PREPARED/wheels/${stem}-[0-9]*.whl" | head -n 1
}

check_prepared() {  # one line per item; fails when anything is missing or too big
  local missing=0 pkg wheel bytes
  for pkg in "${PACKAGES[@]}"; do
    wheel=$(wheel_of "$pkg")
    if [[ -n $wheel ]]; then echo "  ok       $(basename "$wheel")"
    else echo "  MISSING  wheel of $pkg"; missing=1; fi
  done
  if [[ -f $PREPARED/$ARCHIVE ]] &&
     [[ $(sha256sum "$PREPARED/$ARCHIVE" | cut -d' ' -f1) == "$ARCHIVE_SHA256" ]]; then
    echo "  ok       $ARCHIVE (sha256 verified)"
  else
    echo "  MISSING  $ARCHIVE with sha256 $ARCHIVE_SHA256"; missing=1
  fi
  bytes=$(du -sb "$PREPARED" 2>/dev/null | cut -f1)
  if (( ${bytes:-0} >= MAX_BYTES )); then
    echo "  TOO BIG  $PREPARED holds $bytes bytes; what travels is limited to $MAX_BYTES"
    missing=1
  else
    echo "  ok       $((${bytes:-0} / 1024 / 1024)) MiB in all (limit 64 MiB)"
  fi
  return $missing
}

prepare() {
  echo "gpu_check --prepare: into $PREPARED"
  mkdir -p "$PREPARED/wheels"
  local pins
  # the versions this environment runs satisfy pyproject's needs and pin each other exactly
  pins=$("$PY" - "${PACKAGES[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    print(" ".join(f"{name}=={version(name)}" for name in sys.argv[1:]))
except PackageNotFoundError as exc:
    sys.exit(f"gpu_check --prepare: {exc} is not installed here: pip install -e '.[dev]' first")
PY
) || return 1
  echo "  wheels: $pins"
  local pin missing=()
  for pin in $pins; do  # a wheel already there at its pinned version is not fetched again
    compgen -G "$PREPARED/wheels/${pin%%==*}-${pin##*==}-*.whl" > /dev/null ||
      compgen -G "$PREPARED/wheels/$(tr - _ <<<"${pin%%==*}")-${pin##*==}-*.whl" > /dev/null ||
      missing+=("$pin")
  done
  if ((${#missing[@]})); then
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d "$PREPARED/wheels" "${missing[@]}" || return 1
  fi
  if [[ ! -f $SHARED_DATA/$ARCHIVE ]]; then
    echo "gpu_check --prepare: $SHARED_DATA/$ARCHIVE not found (set GPU_CHECK_SHARED_DATA)" >&2
    return 1
  fi
  cp "$SHARED_DATA/$ARCHIVE" "$PREPARED/$ARCHIVE"
  check_prepared
}

# ─── Steps ─────────────────────────────────────────────────────────────────────────────────────

row() {  # row NAME STATUS SECONDS DETAIL
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(printf '%s' "$4" | tr '\t\n' '  ')" \
    >> "$WORK/summary.tsv"
}

# step NAME LIMIT_S -- COMMAND...: run COMMAND under min(LIMIT_S, what the deadline leaves),
# its output to logs/NAME.log; the summary row's detail is the log's last line (the last one
# matching DETAIL when that is set), plus, when COUNT is set, how many log lines match it.
step() {
  local name=$1 limit=$2; shift 3
  if [[ $MODE == dry-run ]]; then
    printf '  %-26s %4s s  %s\n' "$name" "$limit" "$*"
    return
  fi
  local left=$((END - SECONDS - 20)) start=$SECONDS status detail log="$WORK/logs/$name.log"
  if ((left < 10)); then
    row "$name" skipped 0 "not started: the ${DEADLINE_S} s deadline was reached"
    return
  fi
  ((limit > left)) && limit=$left
  echo "=== $name (${limit} s): $*"
  timeout -k 5 "$limit" "$@" > "$log" 2>&1
  status=$?
  case $status in 0) status=ok ;; 124|137) status=timeout ;; *) status="FAILED($status)" ;; esac
  detail=$(grep -v '^\s*$' "$log" | grep -E "${DETAIL:-.}" | tail -n 1)
  [[ -n ${COUNT:-} ]] && detail="$detail; '$COUNT' lines logged: $(grep -c "$COUNT" "$log")"
  echo "    $status: $detail"
  row "$name" "$status" "$((SECONDS - start))" "$detail"
}

plan() {  # the headline figures first: a step the deadline does not reach is `skipped`
  local c="$PY benchmarks/gpu_checks.py" common=(--work "$WORK/checks" --device cuda)
  step cifar-from-jpeg 90 -- $c cifar "$PREPARED/$ARCHIVE" "$WORK/cifar/cifar-10-batches-bin"
  step spellings 150 -- $c spellings "${common[@]}"
  step epoch-graphs 90 -- $c epoch-graphs "${common[@]}" --cifar "$WORK/cifar"
  step epoch 90 -- $c epoch "${common[@]}" --cifar "$WORK/cifar"
  DETAIL='^(cuda|largest)' step ensemble 120 -- "$PY" benchmarks/ensemble.py --device cuda \
    --sizes 1,8,16,32,64 --steps 10 --repeats 2 --warmup 3
  DETAIL='^(cuda|largest)' step ensemble-graphs 120 -- "$PY" benchmarks/ensemble.py \
    --device cuda --sizes 1,8,16,32,64 --steps 10 --repeats 2 --warmup 4 --graphs
  step profile-resnet50-bf16 45 -- $c profile resnet50 "$WORK/logs/profile-resnet50-bf16.csv" \
    --input 3x224x224 --batch-sizes 256 --precision bf16
  DETAIL='^median' step overhead-cuda 90 -- \
    "$PY" benchmarks/overhead.py --device cuda --epochs 3 --repeats 3
  step showcase 400 -- $c showcase "${common[@]}" --cifar "$WORK/cifar"
  local model variant args flags
  for model in resnet20 resnet50; do
    case $model in
      resnet50) args=(--input 3x224x224 --batch-sizes 128,256) ;;
      *) args=(--input 3x32x32 --batch-sizes 128,512) ;;
    esac
    for variant in fp32 fp32-nchw bf16-nchw bf16-graphs; do
      flags=(--precision "${variant%%-*}")
      [[ $variant == *-nchw ]] && flags+=(--no-channels-last)
      [[ $variant == *-graphs ]] && flags+=(--graphs)
      step "profile-$model-$variant" 45 -- "$PY" benchmarks/gpu_checks.py profile \
        "$model" "$WORK/logs/profile-$model-$variant.csv" "${args[@]}" "${flags[@]}"
    done
  done
  step timer 90 -- $c timer "${common[@]}" --cifar "$WORK/cifar"
  step peaks 60 -- $c peaks "${common[@]}"
  step resume 90 -- $c resume "${common[@]}"
  step fp16 60 -- $c fp16 "${common[@]}"
  TORCH_LOGS=recompiles COUNT=Recompiling step compile 150 -- $c compile "${common[@]}"
  step divergence 60 -- $c divergence "${common[@]}"
  step workers 90 -- $c workers "${common[@]}"
  step bf16-channels-last 60 -- $c bf16-channels-last "${common[@]}" --cifar "$WORK/cifar"
  # the test files with CUDA tests (collecting the others would need their extra packages)
  step cuda-tests 120 -- "$PY" -m pytest -o addopts= -m cuda -q -p no:cacheprovider \
    $(grep -l 'mark.cuda' tests/test_*.py)
}

# ─── Modes ─────────────────────────────────────────────────────────────────────────────────────

if [[ $MODE == prepare ]]; then
  prepare
  exit $?
fi
if [[ $MODE == dry-run ]]; then
  echo "gpu_check --dry-run: the prepared folder $PREPARED"
  check_prepared
  ready=$?
  WORK='$WORK'  # shown as a name: the real one is made when the check runs
  echo "the steps (each limited to min(its seconds, what the ${DEADLINE_S} s deadline leaves)):"
  echo "  preflight                   CUDA available, wheels installed with pip --no-index"
  plan
  if ((ready)); then
    echo "gpu_check --dry-run: the prepared folder is incomplete: run --prepare" >&2
  fi
  exit $ready
fi

END=$((SECONDS + DEADLINE_S))
WORK=$(mktemp -d -t cnnbench-gpu-check.XXXXXX)
OUT_DIR=${OUT_DIR:-$(mktemp -d -t cnnbench-gpu-check-out.XXXXXX)}
mkdir -p "$WORK/logs" "$OUT_DIR"
printf 'check\tstatus\tseconds\tdetail\n' > "$WORK/summary.tsv"

finish() {  # the two outputs: the table and the logs' tarball
  awk -F'\t' '{ printf "%-28s %-12s %7s  %s\n", $1, $2, $3, $4 }' "$WORK/summary.tsv" \
    >> "$OUT_DIR/gpu_check_summary.txt"
  cp "$WORK/summary.tsv" "$WORK/logs/"
  tar -czf "$OUT_DIR/gpu_check_logs.tar.gz" -C "$WORK" logs
  echo
  cat "$OUT_DIR/gpu_check_summary.txt"
  echo "gpu_check: $OUT_DIR/gpu_check_summary.txt and gpu_check_logs.tar.gz"
}

{
  echo "gpu_check $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
} > "$OUT_DIR/gpu_check_summary.txt"

# Preflight: CUDA, the prepared folder, the wheels installed where nothing is downloaded.
preflight() {
  "$PY" -c "import sys, torch
print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)
if not torch.cuda.is_available():
    sys.exit('no CUDA device: torch.cuda.is_available() is False')
print('device', torch.cuda.get_device_name(0), 'x', torch.cuda.device_count())" || return 1
  check_prepared || { echo "the prepared folder is incomplete: run --prepare first"; return 1; }
  if ! "$PY" -m pip install --quiet --no-index --no-deps --target "$WORK/site" \
      "$PREPARED"/wheels/*.whl; then
    "$PY" - "$WORK/site" "$PREPARED"/wheels/*.whl <<'PY' || return 1
import sys, zipfile  # a wheel is a zip laid out for site-packages: unpacked when pip cannot
for wheel in sys.argv[2:]:
    zipfile.ZipFile(wheel).extractall(sys.argv[1])
print("pip install failed (or there is no pip): the wheels were unpacked instead")
PY
  fi
  export PYTHONPATH="$WORK/site:$REPO"
  "$PY" -c "import pydantic, pytest, cnnbench; print('cnnbench imports; pydantic',
pydantic.VERSION)"
}
start=$SECONDS
preflight > "$WORK/logs/preflight.log" 2>&1
status=$?
cat "$WORK/logs/preflight.log"
if ((status)); then
  echo "gpu_check: PREFLIGHT FAILED — nothing else was run (see above)" >&2
  row preflight FAILED "$((SECONDS - start))" "$(tail -n 1 "$WORK/logs/preflight.log")"
  finish
  exit 1
fi
export PYTHONPATH="$WORK/site:$REPO"
row preflight ok "$((SECONDS - start))" "$(grep '^device' "$WORK/logs/preflight.log")"
plan
finish
! cut -f2 "$WORK/summary.tsv" | grep -qE '^(FAILED|timeout|skipped)'  # 0: every step ran and passed
