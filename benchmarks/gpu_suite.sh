#!/usr/bin/env bash
# Everything objaug measures on a GPU, for one call of the workplace's `device` tool (or any CUDA box).
#
# The device machines have torch, torchvision, timm and Lightning but no kornia, pytorch-grad-cam or
# captum, and no network. Fetch their wheels here first (Python 3.12, x86-64), into the ignored .whl/:
#
#   echo /.whl/ >> "$(git rev-parse --git-path info/exclude)"
#   python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl kornia==0.9.0 kornia_rs==0.2.0 ttach==0.0.3 captum==0.9.0
#   .venv/bin/pip wheel -q --no-deps -w .whl grad-cam==1.5.7     # sdist only: build the pure-Python wheel
#
# then run, with `.whl` carried (about 8 MB):
#
#   bash benchmarks/gpu_suite.sh tests    # the whole test suite with CUDA present (CUDA tests included)
#   bash benchmarks/gpu_suite.sh cam      # ContraCAM targets: ResNet-50 (bf16, channels_last) and ViT-S/16, batch 256
#   bash benchmarks/gpu_suite.sh aug      # crop / mixup / pipeline targets and the input checks' cost, batch 256
#   bash benchmarks/gpu_suite.sh compile  # eager vs torch.compile(fullgraph=True): crop, mixup, pipeline, ContraCAM
#   bash benchmarks/gpu_suite.sh all      # the four, in that order (about 12 minutes on an H100)
#   bash benchmarks/gpu_suite.sh cam aug compile   # sections can be combined; within the 10-minute limit
#                                                  # of one device command, run `tests` and these as two calls
#
# On a GPU every kernel takes its accelerator path (fixed shapes, no host read of the batch); the test
# suite's tests/test_compile.py checks those paths compile whole and read nothing back (on a CPU they are
# forced with objaug.testing.accelerator_paths()). The input checks stay on in cam/aug rows that say so:
# on a GPU they run on the first 10 calls and then every 100th (objaug.validation_schedule).
#
# Logs go to $OUT (the device tool's folder that comes back) or ./gpu-results. Each section prints what
# it ran; the figures belong in docs/performance.md with the GPU model and torch version from env.txt.
# A smoke run of the script itself on a CPU machine with the venv (tiny sizes, a minute or two a section;
# `all` with QUICK=1 skips the test suite, which the CPU machine runs anyway):
#   WHEELS= DEVICE=cpu QUICK=1 PYTHON=.venv/bin/python bash benchmarks/gpu_suite.sh all
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-results}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
if [ -n "${QUICK:-}" ]; then  # tiny sizes: checks that the commands run, measures nothing
    CAM=(--arch resnet18 --batch-size 4 --image-size 64 --repeats 1 --warmup 0 --iters 1 --no-baselines)
    AUG=(--batch-size 8 --in-size 64 --out-size 56 --repeats 1 --warmup 0 --skip-lightly)
    LOOP=(--batch-size 8 --size 64 --repeats 1 --warmup 0)
    VIT=(--arch vit_tiny_patch16_224 --batch-size 2 --image-size 224 --repeats 1 --warmup 0 --iters 1 --no-baselines)
    COST=(--batch-size 8 --in-size 64 --out-size 56 --repeats 1 --warmup 0)
    COMPILE=(--quick)
else
    CAM=(--arch resnet50 --batch-size 256 --image-size 224 --amp --channels-last --repeats 20 --warmup 5 --iters 1 10)
    AUG=(--batch-size 256 --in-size 256 --out-size 224 --repeats 30 --warmup 5 --skip-lightly)
    LOOP=(--batch-size 256 --repeats 30)
    VIT=(--arch vit_small_patch16_224 --batch-size 256 --image-size 224 --amp --repeats 20 --warmup 5 --iters 1)
    COST=(--batch-size 256 --in-size 256 --out-size 224 --repeats 30 --warmup 5)
    COMPILE=(--batch-size 256 --in-size 256 --out-size 224 --cam-size 224 --cam-arch resnet50 --repeats 20 --warmup 3)
fi
export PYTHONUNBUFFERED=1

WHEELS="${WHEELS-.whl}"  # WHEELS= (empty) skips them, where the packages are installed already
if [ -n "$WHEELS" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/objaug-site \
        "$WHEELS"/*.whl || exit 1
    export PYTHONPATH="/tmp/objaug-site${PYTHONPATH:+:$PYTHONPATH}"
fi
# objaug itself, editable and offline (objaug.integrations lives in integrations/, see pyproject.toml),
# unless this checkout is what $PY imports already (a venv made for it, as in the CPU smoke run).
if ! "$PY" -c "import objaug, pathlib, sys; sys.exit(pathlib.Path(objaug.__file__).resolve().parent
!= pathlib.Path('objaug').resolve())" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 \
        || { echo "pip install -e . failed:"; cat "$OUT/install.log"; exit 1; }
fi

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
    "$PY" -c "import torch, torchvision, kornia; print('torch', torch.__version__, 'torchvision', torchvision.__version__,
'kornia', kornia.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
} | tee "$OUT/env.txt"

run_tests() {
    "$PY" -m pytest -q -p no:cacheprovider tests 2>&1 | tee "$OUT/tests.log"
}

run_cam() {
    "$PY" benchmarks/cam_speed.py --device "$DEVICE" "${CAM[@]}" 2>&1 | tee "$OUT/cam_speed.txt"
    "$PY" benchmarks/cam_speed.py --device "$DEVICE" "${VIT[@]}" 2>&1 | tee "$OUT/cam_speed_vit.txt"
}

run_aug() {
    "$PY" benchmarks/aug_speed.py --device "$DEVICE" "${AUG[@]}" 2>&1 | tee "$OUT/aug_speed.txt"
    "$PY" benchmarks/_mixup_loop.py --device "$DEVICE" "${LOOP[@]}" 2>&1 | tee "$OUT/mixup_loop.txt"
    "$PY" benchmarks/check_cost.py --device "$DEVICE" "${COST[@]}" 2>&1 | tee "$OUT/check_cost.txt"
}

run_compile() {
    "$PY" benchmarks/compile_speed.py --device "$DEVICE" "${COMPILE[@]}" 2>&1 | tee "$OUT/compile_speed.txt"
}

status=0
for section in "${@:-all}"; do
    case "$section" in
        tests) run_tests || status=$? ;;
        cam) run_cam || status=$? ;;
        aug) run_aug || status=$? ;;
        compile) run_compile || status=$? ;;
        all)
            if [ -z "${QUICK:-}" ]; then run_tests || status=$?; fi
            run_cam || status=$?; run_aug || status=$?; run_compile || status=$? ;;
        *) echo "usage: bash benchmarks/gpu_suite.sh [tests|cam|aug|compile|all]..."; exit 2 ;;
    esac
done
exit "$status"
