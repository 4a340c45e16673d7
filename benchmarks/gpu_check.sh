#!/usr/bin/env bash
# The GPU checks of the full-scale path, as one prepared run that fits a short device lease
# (7 minutes on a 2-core CPU; a GPU should take less, not yet measured):
#
#   1. benchmarks/device_pipeline.py --batches 50: seconds per batch and per epoch of VGG-19 and
#      WRN-40-2 with the CPU loader and with the on-device pipeline, and their ratio;
#   2. benchmarks/full_scale_estimate.py: one training step of every full-scale network timed
#      on the GPU, and each chapter's wall time on 1, 8 and 32 GPUs;
#   3. tests/test_full_scale_dry_run.py (end to end, not through Ray): every chapter's
#      full-scale code path on CUDA, on tiny files in the datasets' official formats;
#   4. benchmarks/semi_structured.py: a 2:4 linear layer on sparse tensor cores against the dense
#      one (chapter 7), written as JSON for the page.
#
# Here, on a machine with pip and the package registry (the device machine has neither):
#     bash benchmarks/gpu_check.sh prepare      # the wheels the device image lacks, into .whl/
# Then on the device machine, from the repository root, carrying .whl:
#     bash benchmarks/gpu_check.sh run          # outputs into $OUT (or ./gpu-check)
# The device image has torch, torchvision, numpy, scipy, matplotlib, tqdm and pytest; the
# package is used from the working tree (PYTHONPATH), not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the dry run needs beyond the device image: chapter 5's saliency network trains on MNIST-1D.
WHEELS=(mnist1d==0.0.2.post1)

case "${1:-}" in
prepare)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >>.git/info/exclude
    mkdir -p .whl
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d .whl "${WHEELS[@]}"
    ls -l .whl
    ;;
run)
    out=${OUT:-gpu-check}
    mkdir -p "$out"
    if compgen -G ".whl/*.whl" >/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site
    fi
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    {
        nvidia-smi -L || true
        python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
    } 2>&1 | tee "$out/device.txt"
    python3 benchmarks/device_pipeline.py --batches 50 2>&1 | tee "$out/device_pipeline.txt"
    python3 benchmarks/full_scale_estimate.py 2>&1 | tee "$out/full_scale_estimate.txt"
    # addopts name nbval, which the device image lacks; the dry run needs none of it
    python3 -m pytest -o addopts="" -p no:cacheprovider -q -k end_to_end \
        tests/test_full_scale_dry_run.py 2>&1 | tee "$out/dry_run.txt"
    python3 benchmarks/semi_structured.py --json "$out/semi_structured.json" 2>&1 |
        tee "$out/semi_structured.txt"
    ;;
*)
    echo "usage: bash benchmarks/gpu_check.sh prepare|run" >&2
    exit 2
    ;;
esac
