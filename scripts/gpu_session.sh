#!/usr/bin/env bash
# The GPU runs of the course on a CUDA machine that has PyTorch but no Jupyter and no network
# access (see CONTRIBUTING.md, "Runs on a GPU machine"). Three steps:
#
#   bash scripts/gpu_session.sh bundle              # here: wheels + Fashion-MNIST into .gpu/
#   bash scripts/gpu_session.sh all                 # there: all below, most valuable first, in
#                                                   # BUDGET_S seconds (default 540) -> $OUT
#   bash scripts/gpu_session.sh cuda                # there: the CUDA unit tests (pytest -m cuda)
#   bash scripts/gpu_session.sh bench               # there: the vs-d2l table on CUDA -> $OUT
#   bash scripts/gpu_session.sh notebooks 03 05 ... # there: real runs (not quick mode) -> $OUT
#   bash scripts/gpu_session.sh distributed         # there, with 2+ GPUs: 1..N GPUs (DDP, NCCL)
#
# .gpu/ is git-ignored: copy it to the GPU machine along with the repository, and set OUT there
# to a folder for the results. Back here, copy gpu.md from $OUT to benchmarks/results/, unpack
# notebooks.tar.gz at the repository root, and run `python scripts/results_table.py`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=.gpu

# The wheels are for x86-64 Linux and this CPython version (TARGET_PYTHON=3.11 for another).
TARGET_PYTHON="${TARGET_PYTHON:-3.12}"
# Python packages such a machine usually lacks: the notebook runner, the summary table, and d2l
# for the benchmark. It is expected to have torch, torchvision, matplotlib, pandas, scipy,
# requests, psutil and tqdm already (compare `python3 -m pip list` there); setup_there says
# which of the modules the runs import it lacks.
PACKAGES="nbclient nbformat ipykernel torchinfo pytest"
# Taken without their dependencies (all of them on such a machine): d2l for the benchmark, and
# Captum for chapter 14 (it needs matplotlib, numpy, packaging, torch and tqdm).
NO_DEPS="d2l==1.0.3 captum==0.9.0"
# What the runs import, beyond the standard library and the bundle (ch14: sklearn; ch02:
# tensorboard; d2l: pandas, scipy, requests, PIL).
MODULES="torch torchvision numpy matplotlib tqdm pandas scipy requests PIL sklearn tensorboard"
# Dependencies of those that a PyTorch installation normally has already: left out of the bundle
# so that they do not shadow the machine's own versions.
MACHINE_HAS="attrs packaging psutil pygments python_dateutil typing_extensions"

setup_there() {
    : "${OUT:?OUT is not set: set it to the folder the results should go to}"
    mkdir -p "$OUT"
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    export D2LCNN_DATA="$PWD/$BUNDLE/data" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
    if [ -n "${GPU_SESSION_READY:-}" ]; then return; fi  # `all` runs the other steps: set up once
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$BUNDLE"/wheels/*.whl
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    fi
    python3 -c "import torch; c = torch.cuda.is_available(); print('torch', torch.__version__,
        torch.cuda.get_device_name() if c else '(no CUDA GPU: a dry run)')"
    # A module missing here makes the step that needs it fail: say so before anything runs.
    python3 - $MODULES captum torchinfo nbclient ipykernel d2l <<'PY'
import importlib.metadata, importlib.util, sys
found = {"PIL": "pillow", "sklearn": "scikit-learn"}
missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]
have = []
for m in sys.argv[1:]:
    if m not in missing:
        try:
            have.append(f"{m} {importlib.metadata.version(found.get(m, m))}")
        except importlib.metadata.PackageNotFoundError:
            have.append(m)
print("python", sys.version.split()[0] + ";", ", ".join(have))
if missing:
    print("MISSING on this machine (the steps that import them will fail):", " ".join(missing))
PY
    export GPU_SESSION_READY=1
}

case "${1:-}" in
bundle)
    rm -rf "$BUNDLE" && mkdir -p "$BUNDLE/wheels" "$BUNDLE/data"
    "${PYTHON:-python3}" -m pip download -q --python-version "$TARGET_PYTHON" --implementation cp --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d "$BUNDLE/wheels" $PACKAGES
    "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: -d "$BUNDLE/wheels" $NO_DEPS
    for name in $MACHINE_HAS; do rm -f "$BUNDLE"/wheels/"$name"-*.whl; done
    cp "${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"/*-ubyte.gz "$BUNDLE/data/"
    du -sh "$BUNDLE"/*
    # the device tool sends the tracked files and the carried .gpu/: at most 64 MiB together
    travels=$(( ($(git ls-files -z | xargs -0 cat | wc -c) + $(du -sb "$BUNDLE" | cut -f1)) >> 20 ))
    echo "the repository's files and $BUNDLE/ together: $travels MiB (the device tool takes 64)"
    [ "$travels" -le 64 ] || { echo "too large for one device call: carry less" >&2; exit 1; }
    ;;
cuda)
    setup_there
    # the tests with a CUDA branch (marked `cuda` in tests/), each result in cuda-tests.xml; the
    # machine's own pytest plugins stay out (they were built for its pytest, not the bundle's)
    PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -m cuda -rA -p no:cacheprovider --junitxml="$OUT/cuda-tests.xml" \
        tests/test_train.py tests/test_reproducible.py tests/test_classes.py \
        tests/test_distributed.py 2>&1 | tee "$OUT/cuda-tests.txt"
    ;;
all)
    # One lent GPU, one call: the CUDA tests, then the chapters furthest below the book's
    # accuracy, then the rest, then the speed table, while BUDGET_S lasts. Each step's result is
    # in $OUT as soon as it ends (the notebooks that ran whole in $OUT/notebooks.tar.gz), and
    # $OUT/record.md says what ran, how long and how it ended, so a call cut short still returns
    # what it finished. The device tool brings back at most 8 files: this writes 6.
    mkdir -p "${OUT:?OUT is not set: set it to the folder the results should go to}"
    setup_there > >(tee "$OUT/setup.txt") 2>&1  # in this shell: its exports hold for the steps
    budget="${BUDGET_S:-540}" start=$(date +%s) record="$OUT/record.md" done_nbs=()
    echo "| step | exit status | seconds |" > "$record"; echo "|---|---|---|" >> "$record"
    left() { echo $(( budget - ($(date +%s) - start) )); }
    step() {  # step NAME SECONDS COMMAND...: run it with at most SECONDS, record the outcome
        local name=$1 limit=$2; shift 2
        if [ "$limit" -lt 60 ]; then echo "| $name | not started: budget spent | 0 |" >> "$record"; return; fi
        local t0=$(date +%s) rc=0
        timeout "$limit" "$@" || rc=$?
        echo "| $name | $rc$([ "$rc" = 124 ] && echo ' (time limit)') | $(( $(date +%s) - t0 )) |" >> "$record"
        return "$rc"
    }
    step "CUDA unit tests" "$(( $(left) < 240 ? $(left) : 240 ))" bash "$0" cuda || true
    for n in ${CHAPTERS:-05 06 08 07 09 10 11 13 03 04 14}; do  # a notebook is stored only whole
        nb=$(ls notebooks/"$n"_*.ipynb)
        if step "$nb" "$(( $(left) - 120 ))" python3 scripts/run_notebook.py "$nb"; then
            done_nbs+=("$nb")  # the archive is replaced whole (rename), never left half-written
            tar -czf "$OUT/notebooks.part" "${done_nbs[@]}" && mv "$OUT/notebooks.part" "$OUT/notebooks.tar.gz"
        fi
    done
    step "speed: vs d2l" "$(left)" bash "$0" bench || true
    cat "$record"
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
    tar -czf "$OUT/notebooks.tar.gz" notebooks/*.ipynb
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
    sed -n '2,15p' "$0"
    exit 2
    ;;
esac
