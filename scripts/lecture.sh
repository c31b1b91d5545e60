#!/usr/bin/env bash
# Rebuild docs/lecture.md and its figures (docs/img/lecture/) from the lecture suites.
#
#   scripts/lecture.sh [all|run|page]     (default: all)
#
# run:  train every suite of suites/lecture/ and profile the classic nets, into $LECTURE_OUT
#       (default results/lecture); finished runs are skipped, so an interrupted rebuild resumes.
#       Delete the folder first for a rebuild from scratch.
# page: write docs/lecture.md and its figures from those results, with cnnbench's own commands.
#
# CIFAR-10 comes from $CIFAR10_JPEG (a folder of train/<class>/*.jpg + test/<class>/*.jpg), else
# from ../shared/data/cifar10-jpeg.tar.gz unpacked into $LECTURE_OUT, else from cnnbench's own
# cifar10 dataset (data root or download).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${LECTURE_OUT:-results/lecture}
STAGE=${1:-all}
mkdir -p "$OUT"

cifar_overrides() {
  local dir=${CIFAR10_JPEG:-}
  local tarball=../shared/data/cifar10-jpeg.tar.gz
  if [[ -z $dir && -f $tarball ]]; then
    dir=$OUT/cifar10-jpeg
    if [[ ! -d $dir/train ]]; then
      mkdir -p "$dir.partial" && tar -xzf "$tarball" -C "$dir.partial" && mv "$dir.partial" "$dir"
    fi
  fi
  if [[ -n $dir ]]; then
    echo "--set dataset.name=imagefolder --set dataset.root=$(cd "$dir" && pwd)"
  fi
}

timed() {  # timed NAME COMMAND...: run it, log its output, append NAME, seconds, exit code
  local name=$1 start rc=0
  shift
  start=$(date +%s)
  echo "[$(date +%T)] $name: $*" >&2
  "$@" >"$OUT/$name.log" 2>&1 || rc=$?  # 1: some runs diverged or failed; the page says which
  printf '%s\t%s\t%s\n' "$name" "$(($(date +%s) - start))" "$rc" >>"$OUT/timings.tsv"
  if ((rc > 1)); then echo "$name failed (exit $rc): see $OUT/$name.log" >&2 && return "$rc"; fi
}

run_all() {
  {
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
    echo "torch: $(python -c 'import torch; print(torch.__version__)')"
    echo "gpu: $(python -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "none")')"
    echo "date: $(date -u +%F)"
  } >"$OUT/hardware.txt"
  local cifar
  cifar=$(cifar_overrides)
  # shellcheck disable=SC2086  # $cifar is a list of options
  timed degradation cnnbench run suites/lecture/degradation.yaml --out "$OUT/degradation" $cifar
  # shellcheck disable=SC2086  # the same without the warm-up: what happens to the 56-layer nets
  timed degradation-no-warmup cnnbench run suites/lecture/degradation.yaml \
    --out "$OUT/degradation-no-warmup" --set 'train.schedule={name: cosine}' $cifar
  # shellcheck disable=SC2086
  timed vanishing cnnbench run suites/lecture/vanishing.yaml --out "$OUT/vanishing" $cifar
  timed keras_mnist cnnbench run suites/lecture/keras_mnist.yaml --out "$OUT/keras_mnist"
  timed gd_regimes cnnbench run suites/lecture/gd_regimes.yaml --out "$OUT/gd_regimes"
  timed optimizers cnnbench run suites/lecture/optimizers.yaml --out "$OUT/optimizers"
  timed data_parallel cnnbench run suites/lecture/data_parallel.yaml --out "$OUT/data_parallel"
  timed data_parallel-2 cnnbench run suites/lecture/data_parallel.yaml --nproc 2 \
    --out "$OUT/data_parallel-2"
  mkdir -p "$OUT/classics"
  # LeNet-5 at its own 1x32x32 input: at 224x224 its 5x5 "C5" layer would see 53x53 maps
  timed classics-lenet5 cnnbench profile lenet5 --device cpu --batch-sizes 64 --warmup 2 \
    --repeats 10 --out "$OUT/classics/lenet5.csv"
  for model in alexnet zfnet vgg16 resnet18 resnet34 resnet50; do
    timed "classics-$model" cnnbench profile "$model" --input 3x224x224 --device cpu \
      --batch-sizes 8 --warmup 1 --repeats 3 --out "$OUT/classics/$model.csv"
  done
}

write_page() {
  local img=docs/img/lecture
  rm -rf "$img" && mkdir -p "$img"
  python scripts/lecture_page.py "$OUT" "$img" >docs/lecture.md
}

case $STAGE in
  run) run_all ;;
  page) write_page ;;
  all) run_all && write_page ;;
  *) echo "usage: scripts/lecture.sh [all|run|page]" >&2 && exit 2 ;;
esac
