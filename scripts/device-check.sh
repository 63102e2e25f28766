#!/usr/bin/env bash
# make device-check [REPORT=folder]: the GPU paths on a machine with one CUDA device, in at most
# about 8 minutes, written as a Markdown report. Without a GPU it prints what it would run and
# exits 0 (CI never depends on a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
REPORT_DIR=${1:-device-report}
PY=${PY:-.venv/bin/python}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}

STEPS=(
  "gpu tests|$PY -m pytest -q -p no:cacheprovider -m gpu tests/gpu -rs"
  "models fp32|$PY bench/models.py --device cuda --repeat 5"
  "models bf16|$PY bench/models.py --device cuda --repeat 5 --precision bf16"
  "models channels_last|$PY bench/models.py --device cuda --repeat 5 --channels-last"
  "models torch.compile|$PY bench/models.py --device cuda --repeat 5 --compile --families ssid_bnn,ssid_unet,apbsn"
  "data feed|$PY bench/data.py"
  "one stage on every GPU (2 or more)|$PY bench/workers.py --gpu --profile smoke --ablation apbsn --steps 300 --batch 16"
  "ablations on the GPU|$PY jobs/ablations.py --ablations ssid,apbsn --out $REPORT_DIR/runs --no-tracking --set trial.gpu=1"
)

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "device-check: no CUDA device here (nvidia-smi finds none); nothing run. On a machine with one GPU it would:"
  echo "  0. install the CUDA build of $TORCH_PIN into .venv when torch there cannot see the GPU"
  i=1
  for step in "${STEPS[@]}"; do echo "  $i. ${step%%|*}: ${step#*|}"; i=$((i + 1)); done
  echo "  and write $REPORT_DIR/report.md with every step's output and time."
  exit 0
fi

mkdir -p "$REPORT_DIR"
REPORT="$REPORT_DIR/report.md"
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "device-check: torch in .venv cannot see the GPU; installing the CUDA build of $TORCH_PIN"
  $PY -m pip install -q --force-reinstall "$TORCH_PIN" --index-url https://download.pytorch.org/whl/cu128 \
    || { echo "device-check: could not install a CUDA build of $TORCH_PIN" >&2; exit 1; }
fi
{
  echo "# Device check"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
  echo "- torch: $($PY -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$REPORT"
status=0
for step in "${STEPS[@]}"; do
  name=${step%%|*}
  cmd=${step#*|}
  echo "== $name: $cmd"
  start=$(date +%s)
  out=$(bash -c "$cmd" 2>&1)
  rc=$?
  [ $rc -ne 0 ] && status=1
  took=$(( $(date +%s) - start ))
  printf '%s\n' "$out" | tail -n 40
  { echo; echo "## $name (exit $rc, ${took} s)"; echo; echo "\`$cmd\`"; echo; echo '```'
    printf '%s\n' "$out" | grep -v "WARNING\|INFO" | tail -n 60; echo '```'; } >> "$REPORT"
done
echo "device-check: report in $REPORT (exit $status)"
exit $status
