#!/usr/bin/env bash
# One GPU check, under 8 minutes on one H100: the CUDA-marked tests, the harness-overhead
# benchmark on CUDA, `cnnbench profile` for keras_cnn, resnet20 and resnet50 in fp32, bf16 and
# bf16 + channels_last, and one CIFAR-10 ResNet-20 epoch through `cnnbench run`. Ends with one
# summary table. Run from the repository root:  bash benchmarks/gpu_check.sh
#
# CIFAR-10: set CIFAR10_ROOT to a folder holding cifar-10-batches-bin/ (or -py/). Without it the
# JPEG copy in ../shared/data/cifar10-jpeg.tar.gz (or shared/data/) is converted to the binary
# layout once (JPEG is lossy: accuracies run slightly below those on the original arrays).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WORK="${GPU_CHECK_DIR:-$(mktemp -d -t cnnbench-gpu-check.XXXXXX)}"
mkdir -p "$WORK"
SUMMARY="$WORK/summary.tsv"
printf 'check\tstatus\tseconds\tdetail\n' > "$SUMMARY"
echo "gpu_check: outputs in $WORK"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# step NAME LIMIT_S DETAIL_CMD -- COMMAND...: run COMMAND under a time limit, log its output to
# $WORK/NAME.log, and add a summary row whose detail is DETAIL_CMD's output.
step() {
  local name=$1 limit=$2 detail=$3; shift 4
  local start=$SECONDS status
  echo "=== $name: $*"
  timeout "$limit" "$@" 2>&1 | tee "$WORK/$name.log"
  status=${PIPESTATUS[0]}
  case $status in 0) status=ok ;; 124) status=timeout ;; *) status="failed($status)" ;; esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" \
    "$(eval "$detail" 2>/dev/null | tr '\t\n' '  ')" >> "$SUMMARY"
}

step cuda-tests 150 "tail -n 1 '$WORK/cuda-tests.log'" -- \
  python -m pytest -m cuda -q -p no:cacheprovider

step overhead-cuda 120 "grep '^median' '$WORK/overhead-cuda.log'" -- \
  python benchmarks/overhead.py --device cuda --epochs 5 --repeats 3

for model in keras_cnn resnet20 resnet50; do
  case $model in
    resnet50) args=(--input 3x224x224 --batch-sizes 64,128) ;;
    resnet20) args=(--input 3x32x32 --batch-sizes 128,512) ;;
    *) args=(--batch-sizes 128,512) ;;
  esac
  for variant in fp32 bf16 bf16-cl; do
    flags=(--precision "${variant%%-*}")
    [[ $variant == *-cl ]] && flags+=(--channels-last)
    out="$WORK/profile-$model-$variant.csv"
    step "profile-$model-$variant" 60 \
      "python -c \"import pandas as p; d=p.read_csv('$out'); d=d[d.phase=='train'].iloc[-1]; print(f'train bs {d.batch_size}: {d.samples_per_s:,.0f} samples/s, {d.step_ms_median:.2f} ms, MFU {d.mfu:.1%}')\"" -- \
      python -m cnnbench profile "$model" "${args[@]}" "${flags[@]}" --device cuda \
        --warmup 10 --repeats 30 --out "$out"
  done
done

CIFAR_ROOT="${CIFAR10_ROOT:-}"
if [[ -z $CIFAR_ROOT ]]; then
  for tarball in ../shared/data/cifar10-jpeg.tar.gz shared/data/cifar10-jpeg.tar.gz; do
    [[ -f $tarball ]] || continue
    CIFAR_ROOT="$WORK/cifar"
    step cifar-from-jpeg 120 "ls '$CIFAR_ROOT/cifar-10-batches-bin'" -- \
      python - "$tarball" "$CIFAR_ROOT/cifar-10-batches-bin" <<'PY'
"""Write the JPEG ImageFolder copy of CIFAR-10 in the official binary layout: per image one
label byte then 3072 bytes (R, G, B planes of 32×32); 5 train batches of 10,000 and test_batch."""
import io, sys, tarfile
from pathlib import Path
import numpy as np
from PIL import Image
CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()
tar, out = tarfile.open(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
records = {"train": [], "test": []}
for member in sorted(tar.getmembers(), key=lambda m: m.name):
    parts = Path(member.name).parts
    if not member.isfile() or len(parts) < 3 or parts[-3] not in records:
        continue
    image = np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"))
    label = CLASSES.index(parts[-2])
    records[parts[-3]].append(bytes([label]) + image.transpose(2, 0, 1).tobytes())
rng = np.random.default_rng(0)  # the official batches are shuffled across classes too
train = [records["train"][i] for i in rng.permutation(len(records["train"]))]
for b in range(5):
    (out / f"data_batch_{b + 1}.bin").write_bytes(b"".join(train[b * 10000:(b + 1) * 10000]))
(out / "test_batch.bin").write_bytes(b"".join(records["test"]))
(out / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n")
print(f"{len(train)} train and {len(records['test'])} test images written to {out}")
PY
    break
  done
fi
cat > "$WORK/cifar-resnet20.yaml" <<YAML
name: gpu-check-cifar10
dataset: {name: cifar10, root: "${CIFAR_ROOT:-missing-set-CIFAR10_ROOT}", download: false, val_size: 5000}
train: {epochs: 1, batch_size: 128}
device: cuda
matrix: {model: [resnet20], optimizer: [{name: sgd, momentum: 0.9}], lr: [0.1]}
probes: [time, memory, flops]
YAML
step cifar10-resnet20-epoch 180 \
  "python -c \"import cnnbench; r,_=cnnbench.load_results('$WORK/results'); r=r.iloc[0]; print(f'{r.status}: val_acc {r.val_acc:.3f}, train {r.train_s:.1f} s, {r.samples_per_s:,.0f} samples/s, step {r.step_ms_median:.2f} ms (p90 {r.step_ms_p90:.2f}), data {r.data_ms_median:.3f} ms, peak CUDA {r.peak_cuda_allocated_bytes/2**20:.0f} MiB, MFU {r.mfu:.1%}')\"" -- \
  python -m cnnbench run "$WORK/cifar-resnet20.yaml" --out "$WORK/results"

python - "$SUMMARY" <<'PY'
import sys
import pandas as pd
from rich.console import Console
from rich.table import Table
rows = pd.read_csv(sys.argv[1], sep="\t", dtype=str, keep_default_na=False)
table = Table(title="gpu_check summary")
for column in rows.columns:
    table.add_column(column, justify="right" if column == "seconds" else "left")
for row in rows.itertuples(index=False):
    table.add_row(*row)
Console(width=200).print(table)
PY
