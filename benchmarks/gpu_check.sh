#!/usr/bin/env bash
# The GPU check of sknn, under 8 minutes on a CUDA machine (for instance the
# device tool's H200): the gpu-marked tests (a real CUDA fit, CUDA->CPU
# unpickling of real CUDA tensors, device='auto'), then benchmarks/gpu_check.py's
# table (epoch ratios against a plain loop, float16/bfloat16 speed-ups,
# GridSearchCV(n_jobs=2) sharing one GPU).
#
# The machine needs torch with CUDA, scikit-learn, pandas, joblib, tqdm,
# tabulate and pytest; skorch and skl2onnx travel as wheels in .whl/ (ignored by
# git), prepared here with
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps -d .whl skorch==1.4.0 skl2onnx==1.20.0
# and sknn itself runs from this checkout (PYTHONPATH), nothing installed.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, sklearn, skorch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'sklearn', sklearn.__version__, 'skorch', skorch.__version__)"
echo "--- gpu-marked tests"
timeout 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests 2>&1 | tail -15
echo "--- checks"
timeout 300 python3 benchmarks/gpu_check.py "$@"
