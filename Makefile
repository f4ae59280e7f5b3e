# Two commands for a newcomer (see README.md):
#   make lab       set up .venv and open the course in JupyterLab
#   make test      set up .venv, then lint, twin check, unit tests and every English chapter under
#                  nbval (quick mode), two workers: what a contributor runs on every change
#   make test-all  the same plus the Chinese and solution notebooks and the browser, website,
#                  2 GB memory-limit and torchrun tests (CI's command)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

BENCH  ?= .venv-bench
SWITCH_MODELS ?= lenet,bn_lenet,resnet18,densenet,googlenet,nin,alexnet,vgg11_4

.PHONY: setup lab test test-all lint site site-env bench-env bench floor dist clean

comma := ,
# $(call bench_md,TITLE,SCRIPT AND ARGS,FILE): run benchmarks/SCRIPT, store its table under a
# dated title in benchmarks/results/FILE (the README's speed section is built from these files)
bench_md = { echo "$(1) (\`python benchmarks/$(2)\`, $$(date +%F)):"; echo; \
	$(BIN)/python benchmarks/$(2); } > benchmarks/results/$(3)

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	touch $(STAMP)

lab: setup
	$(BIN)/jupyter lab notebooks/00_start_here.ipynb

# nbval strict over the notebooks, quick mode; -n 2: two workers (a file stays whole on one);
# WORKERS=0 runs one test at a time (CI: no cell then shares the cores with another notebook)
WORKERS ?= 2
PYTEST := D2LCNN_QUICK=1 $(BIN)/python -m pytest -n $(WORKERS) --nbval --nbval-current-env \
	--nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=600 -p no:cacheprovider

test: setup
	$(BIN)/ruff check .
	$(BIN)/python scripts/nbsync.py --check
	$(PYTEST) -m "not full" --durations=15 tests notebooks

test-all: setup
	$(BIN)/ruff check .
	$(BIN)/python scripts/nbsync.py --check
	$(PYTEST) --durations=25 tests notebooks

lint: setup
	$(BIN)/ruff check .

# A release's files (CONTRIBUTING.md, "Making a release"): wheel and sdist in dist/, checked
dist: setup
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m twine check --strict dist/*

# The course as a static website in build/book/html (README: Website): Sphinx + MyST-NB + the
# book theme, from the notebooks' stored outputs (nothing is executed), warnings as errors.
SITE_STAMP := $(VENV)/.site-installed

site-env: $(SITE_STAMP)

$(SITE_STAMP): requirements-site.txt $(STAMP)
	$(BIN)/python -m pip install -r requirements-site.txt
	touch $(SITE_STAMP)

site: site-env
	$(BIN)/python book/build_site.py

# The benchmark's own environment: the course's packages plus d2l 1.0.3, installed with --no-deps
# (its pins do not install on current Pythons) and the few modules its import needs.
bench-env: $(BENCH)/.installed

$(BENCH)/.installed: requirements.txt
	$(PYTHON) -m venv $(BENCH)
	$(BENCH)/bin/python -m pip install -r requirements.txt
	$(BENCH)/bin/python -m pip install --no-deps d2l==1.0.3
	$(BENCH)/bin/python -m pip install pandas scipy requests psutil
	touch $(BENCH)/.installed

bench: bench-env setup
	$(BENCH)/bin/python benchmarks/vs_d2l.py --models lenet,bn_lenet --repeats 3 --epochs 3 \
		--subset 60000 --test-subset 10000 --output benchmarks/results/cpu-28px.md
	$(BENCH)/bin/python benchmarks/vs_d2l.py --models alexnet,vgg11_4,nin,googlenet,resnet18,densenet \
		--epochs 1 --subset-large 768 --test-subset 500 --repeats 2 --scaling --output benchmarks/results/cpu-large.md
	$(BENCH)/bin/python benchmarks/vs_d2l.py --api script --epochs 1 --repeats 5 \
		--output benchmarks/results/cpu-whole-run.md
	$(BENCH)/bin/python benchmarks/vs_d2l.py --api classes --models lenet,alexnet --repeats 3 --epochs 3 \
		--subset 60000 --test-subset 10000 --repeats-large 2 --epochs-large 1 --subset-large 768 \
		--test-subset-large 500 --output benchmarks/results/cpu-classes.md
	$(call bench_md,One process or several (torchrun$(comma) DistributedDataParallel on gloo)$(comma) side by side,distributed.py --repeats 2,cpu-distributed.md)
	$(call bench_md,Speed switches of \`d2lcnn.train\`$(comma) training examples/s,switches.py --models $(SWITCH_MODELS) --variants fp32$(comma)fp32+channels_last$(comma)bf16$(comma)bf16+channels_last,cpu-switches.md)
	$(call bench_md,What \`'auto'\` picks (layout and precision) for the book's LeNet$(comma) in fresh processes,layout_choice.py --processes 6,cpu-layout-choice.md)
	$(call bench_md,bf16 vs fp32 test accuracy of the chapters' laptop recipes,cpu_bf16.py --models lenet$(comma)resnet18,cpu-bf16-accuracy.md)
	$(call bench_md,Kernel peak memory of every notebook inside Binder's 2 GB (root: a memory cgroup),notebook_memory.py --limit 2G,notebook-memory.md)
	$(call bench_md,Optimizer steps$(comma) foreach vs fused,optimizer_step.py,cpu-optimizer-step.md)
	$(call bench_md,torch.compile$(comma) cost and gain,compile_cost.py,cpu-compile.md)
	$(call bench_md,Freed memory kept in the process vs handed back to the kernel,cpu_memory.py,cpu-memory.md)
	$(call bench_md,Start-up: \`import torch\`$(comma) then \`import d2lcnn\` on top of it,startup.py,cpu-startup.md)
	$(call bench_md,A whole run of the book's LeNet by phase$(comma) first run vs remembered run vs remembered run without \`gc.freeze()\`,startup.py --phases --repeats 5,cpu-startup-phases.md)
	$(BENCH)/bin/python scripts/results_table.py

# The oldest PyTorch the course declares (pyproject, requirements, environment.yml), proved: its
# own environment with exactly that torch/torchvision, the unit tests of make test (no notebooks)
# on it, the result stored in benchmarks/results/floor.md (tests/test_floors.py reads it). Not in
# CI: it downloads that torch build (gigabytes).
FLOOR        ?= .venv-floor
FLOOR_TORCH  ?= 2.5.1
FLOOR_VISION ?= 0.20.1

floor:
	$(PYTHON) -m venv $(FLOOR)
	$(FLOOR)/bin/python -m pip install --upgrade pip
	$(FLOOR)/bin/python -m pip install torch==$(FLOOR_TORCH) torchvision==$(FLOOR_VISION)
	$(FLOOR)/bin/python -m pip install -r requirements.txt
	D2LCNN_QUICK=1 $(FLOOR)/bin/python -m pytest -n 2 -m "not full" -p no:cacheprovider -q tests \
		--deselect tests/test_floors.py::test_the_torch_floor_is_the_one_make_floor_proved \
		> $(FLOOR)/unit-tests.log 2>&1 || true
	{ echo "The unit tests on the oldest torch the course declares (\`make floor\`, $$(date +%F)):"; echo; \
	  $(FLOOR)/bin/python -c 'import sys, torch, torchvision as tv; v = lambda m: m.__version__.split("+")[0]; print("Python " + sys.version.split()[0] + ", torch " + v(torch) + ", torchvision " + v(tv) + ":")'; \
	  echo; echo '```'; tail -n 1 $(FLOOR)/unit-tests.log; echo '```'; } > benchmarks/results/floor.md
	cat benchmarks/results/floor.md
	$(FLOOR)/bin/python scripts/results_table.py  # README's speed section lists every results file

clean:
	rm -rf $(VENV) $(BENCH) $(FLOOR) build/book
