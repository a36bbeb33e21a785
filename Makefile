# Two commands for a fresh machine:  `make demo`  and  `make test`.
# Both create .venv and install what they need.  A user with a GPU overrides TORCH_SPEC,
# e.g. `make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"`.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY         := $(VENV)/bin/python
PIP        := $(PY) -m pip --disable-pip-version-check
PYTEST_ARGS ?=

.PHONY: demo test venv clean lint bench docs docs-check

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is installed explicitly first, so nothing else pulls a multi-GB CUDA build.
$(VENV)/.installed-demo: setup.cfg pyproject.toml Makefile | $(PY)
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[obd,rl,fast]"
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml Makefile | $(PY)
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[obd,gen,rl,ray,test,fast]"
	touch $@

venv: $(VENV)/.installed-test

demo: $(VENV)/.installed-demo
	$(VENV)/bin/covercast demo

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check covercast tests benchmarks

# `make bench`: every benchmark, one report (runs/bench/report.md, results.csv, scaling.png);
# `make bench QUICK=1`: the same at smaller sizes, under 5 minutes on 2 cores.
# RecoGym goes in without its declared dependencies (tensorflow, jupyter: never imported by
# the environment and agent benchmarked); the bench extra has what it imports.
QUICK     ?=
BENCH_OUT ?= runs/bench

$(VENV)/.installed-bench: setup.cfg pyproject.toml Makefile | $(PY)
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[bench]"
	$(PIP) install --no-deps "recogym==0.1.3.0"
	$(PY) -c "from covercast.experiments.bench_envs import import_recogym; import_recogym()"
	touch $@

bench: $(VENV)/.installed-bench
	$(VENV)/bin/covercast bench all $(if $(QUICK),--quick) --out $(BENCH_OUT)

# `make docs`: the documentation site, offline, into build/site (docs/site/build.py: the README,
# the tutorials executed with their figures -- 6-10 minutes on 2 cores -- the API reference,
# the benchmark report, the population data cards). `make docs NOTEBOOKS=runs/tutorials` takes
# the executed tutorials from `python docs/tutorials/execute.py --out runs/tutorials` instead.
# `make docs-check`: a tutorial page of the built site in headless Chromium (Debian:
# `apt-get install chromium`), its figures checked and screenshots in build/site_check.
NOTEBOOKS ?=

$(VENV)/.installed-docs: setup.cfg pyproject.toml Makefile | $(PY)
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[obd,gen,rl,docs]"
	touch $@

docs: $(VENV)/.installed-docs
	$(PY) docs/site/build.py $(if $(NOTEBOOKS),--notebooks $(NOTEBOOKS))

docs-check: $(VENV)/.installed-docs
	$(PY) docs/site/check.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
