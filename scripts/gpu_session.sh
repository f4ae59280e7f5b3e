#!/usr/bin/env bash
# The GPU runs of the course on a CUDA machine that has PyTorch but no Jupyter and no network
# access (see CONTRIBUTING.md, "Runs on a GPU machine"). Three steps:
#
#   bash scripts/gpu_session.sh bundle              # here: wheels + Fashion-MNIST into .gpu/
#   bash scripts/gpu_session.sh bench               # there: the vs-d2l table on CUDA -> $OUT
#   bash scripts/gpu_session.sh notebooks 03 05 ... # there: real runs (not quick mode) -> $OUT
#   bash scripts/gpu_session.sh distributed         # there, with 2+ GPUs: 1..N GPUs (DDP, NCCL)
#
# .gpu/ is git-ignored: copy it to the GPU machine along with the repository, and set OUT there
# to a folder for the results. Back here, copy gpu.md from $OUT to benchmarks/results/, unpack
# notebooks.tar at the repository root, and run `python scripts/results_table.py`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=.gpu

# The wheels are for x86-64 Linux and this CPython version (TARGET_PYTHON=3.11 for another).
TARGET_PYTHON="${TARGET_PYTHON:-3.12}"
# Python packages such a machine usually lacks: the notebook runner, the summary table, and d2l
# for the benchmark. It is expected to have torch, torchvision, matplotlib, pandas, scipy,
# requests, psutil and tqdm already (compare `python3 -m pip list` there).
PACKAGES="nbclient nbformat ipykernel torchinfo"
# Dependencies of those that a PyTorch installation normally has already: left out of the bundle
# so that they do not shadow the machine's own versions.
MACHINE_HAS="attrs packaging psutil pygments python_dateutil typing_extensions"

setup_there() {
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$BUNDLE"/wheels/*.whl
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    export D2LCNN_DATA="$PWD/$BUNDLE/data" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
    : "${OUT:?OUT is not set: set it to the folder the results should go to}"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
}

case "${1:-}" in
bundle)
    rm -rf "$BUNDLE" && mkdir -p "$BUNDLE/wheels" "$BUNDLE/data"
    "${PYTHON:-python3}" -m pip download -q --python-version "$TARGET_PYTHON" --implementation cp --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d "$BUNDLE/wheels" $PACKAGES
    "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: -d "$BUNDLE/wheels" d2l==1.0.3
    for name in $MACHINE_HAS; do rm -f "$BUNDLE"/wheels/"$name"-*.whl; done
    cp "${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"/*-ubyte.gz "$BUNDLE/data/"
    du -sh "$BUNDLE"/*
    ;;
bench)
    setup_there
    python3 benchmarks/vs_d2l.py --device cuda --subset 60000 --subset-large 10000 \
        --test-subset 10000 --epochs 1 --scaling --output benchmarks/results/gpu.md
    cp benchmarks/results/gpu.md "$OUT/"
    ;;
notebooks)
    shift
    setup_there
    for n in "$@"; do python3 scripts/run_notebook.py notebooks/"$n"_*.ipynb; done
    tar -cf "$OUT/notebooks.tar" notebooks/*.ipynb
    ;;
distributed)
    setup_there
    n=$(python3 -c "import torch; print(torch.cuda.device_count())")
    procs=1; p=2; while [ "$p" -le "$n" ]; do procs="$procs,$p"; p=$((p * 2)); done
    { echo "One GPU or several (torchrun, DistributedDataParallel on NCCL), side by side" \
        "(\`python benchmarks/distributed.py --device cuda --procs $procs\`, $(date +%F)):"; echo
      python3 benchmarks/distributed.py --device cuda --procs "$procs" --resnet-images 60000
    } > "$OUT/gpu-distributed.md"
    ;;
*)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
