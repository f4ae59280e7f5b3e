# Two commands for a newcomer (see README.md):
#   make lab    set up .venv and open the course in JupyterLab
#   make test   set up .venv and run the unit tests + every notebook (nbval, quick mode)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup lab test lint clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	touch $(STAMP)

lab: setup
	$(BIN)/jupyter lab notebooks/00_start_here.ipynb

test: setup
	$(BIN)/ruff check .
	$(BIN)/python scripts/nbsync.py --check
	D2LCNN_QUICK=1 $(BIN)/python -m pytest tests notebooks \
		--nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		--nbval-cell-timeout=600 -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV)
