# Two commands from a fresh clone: `make test` and `make reproduce`.
# Both create .venv when it is missing and install the package with its dev extras.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SCALE ?= mini
OUT ?= reproduction

# Tests and the reproduction read data from ../shared/data when it is there (CI lays it beside the clone).
ifneq ($(wildcard ../shared/data),)
export SIMSIAM_COLLAPSE_DATA ?= $(abspath ../shared/data)
endif

.PHONY: setup lint test test-slow test-oldest mutation reproduce results docs export gpu-check gpu-wheels gpu-rehearsal clean

setup: $(BIN)/.installed

$(BIN)/.installed: setup.py settings.ini
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name simsiam-collapse --display-name "Python (simsiam_collapse)"
	touch $@

# The library must be exactly what the notebooks export.
export: setup
	@snap=$$(mktemp -d) && cp -r simsiam_collapse $$snap/ && $(BIN)/nbdev_export && \
	if diff -r -q -x __pycache__ $$snap/simsiam_collapse simsiam_collapse; then rm -rf $$snap; \
	else diff -r -u -x __pycache__ $$snap/simsiam_collapse simsiam_collapse | head -40; rm -rf $$snap; \
	echo "simsiam_collapse/ was out of sync with nbs/: edit the notebooks, run nbdev_export, commit both."; exit 1; fi

# Style: ruff on the package, notebooks, tests and benchmarks (120 columns), and codespell.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/codespell

# nbdev_proc_nbs: the notebooks go through nbdev's documentation processor (what nbdev_docs runs before Quarto). Called
# without its Quarto check: where Quarto is missing, nbdev_proc_nbs tries to install it (sudo) and then runs
# `pip install -e .[dev]` with the first pip on PATH, which can be the system's, outside the virtual environment.
PROC_NBS = $(BIN)/python -c "import nbdev.quarto as q; q._ensure_quarto = lambda: None; q._pre_docs()"

# It leaves the working tree as it found it (git status before and after; sidebar.yml is hand-kept: custom_sidebar).
test: setup export lint
	@git status --porcelain > .test-before 2>/dev/null || true
	$(BIN)/nbdev_test --n_workers 2
	$(PROC_NBS)
	$(BIN)/python -m pytest -m "not slow and not package_checks" tests
	@git status --porcelain 2>/dev/null | diff .test-before - > /dev/null || { echo "make test changed the working \
	tree (git status before, after):"; git status --porcelain | diff .test-before -; rm -f .test-before; exit 1; }
	@rm -f .test-before

# The slow checks (papermill experiments at smoke scale, long training runs); not part of CI.
test-slow: setup
	$(BIN)/nbdev_test --n_workers 2 --flags slow
	$(BIN)/python -m pytest -m slow tests

# The tests of `make test` against the oldest versions settings.ini allows: uv (pip cannot) installs every direct
# requirement at the lowest version its range allows that has a wheel for this Python, into $(OLDEST) (inside .venv,
# so the tools that skip .venv skip it); the versions tested are printed first. It installs that torch with its CUDA
# libraries (5.1 GB with the rest); not part of CI. A floor that fails is raised in settings.ini.
OLDEST ?= $(VENV)/oldest
UV := $(BIN)/python -m uv
test-oldest: setup
	$(BIN)/python -m pip install -q -e ".[dev,oldest]"
	$(UV) venv -q --allow-existing --python $(PYTHON) $(OLDEST)
	$(BIN)/python tests/oldest_requirements.py > $(OLDEST)/requirements.in
	$(UV) pip compile -q --python $(OLDEST)/bin/python --resolution lowest-direct --only-binary :all: \
	  -o $(OLDEST)/requirements.txt $(OLDEST)/requirements.in
	$(UV) pip sync -q --python $(OLDEST)/bin/python --only-binary :all: $(OLDEST)/requirements.txt
	$(UV) pip install -q --python $(OLDEST)/bin/python --no-deps -e .
	$(OLDEST)/bin/python -m ipykernel install --sys-prefix --name simsiam-collapse --display-name "Python (simsiam_collapse)"
	$(OLDEST)/bin/python tests/oldest_requirements.py --installed | tr '\n' ' '; echo
	$(OLDEST)/bin/nbdev_test --n_workers 2
	$(OLDEST)/bin/python -m pytest -m "not slow and not package_checks" tests

# Mutation testing of the modules that TARGETS in tests/mutation_score.py names (setup.cfg, tests/README.md); a few
# hours on two cores, not part of CI. MODULES narrows it to the targets of some modules (MODULES=train,
# MODULES="claims rules"), MUTANTS to mutmut name patterns.
# mutmut runs through tests/mutmut_run.py, which lets it mutate functions under @patch, @property and
# @torch.no_grad() too; its own test runs first, so that a mutmut it no longer fits stops the pass before any mutant.
# One thread per mutmut worker: with torch's default (a thread per core) the workers would oversubscribe the cores.
# mutmut keeps its results in mutants/; a stopped pass resumes with what has no result yet (mutmut itself re-runs every
# mutant it is named), and a function changed since is judged anew. rm -rf mutants/ for a fresh pass.
MUTANTS ?=
MODULES ?=
mutation: setup
	$(BIN)/python -m pip install -q -e ".[dev,mutation]"
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_mutmut_run.py
	set -f; todo="$(or $(MUTANTS),$$($(BIN)/python tests/mutation_score.py --pending $(MODULES)))"; \
	if [ -n "$$todo" ]; then OMP_NUM_THREADS=1 $(BIN)/python tests/mutmut_run.py run $$todo; else echo "Every mutant has a result (rm -rf mutants/ to judge again)."; fi
	$(BIN)/python tests/mutation_score.py --survivors

# mini trains on CIFAR-10: from ../shared/data when it is there, else downloaded once (170 MB) into ~/.cache/simsiam_collapse.
reproduce: setup
	SIMSIAM_COLLAPSE_DOWNLOAD=1 $(BIN)/simsiam-collapse reproduce --scale $(SCALE) --out $(OUT)

# Publish a finished reproduction into the repository (report, per-run CSV, tables, PNG figures, executed notebooks,
# environment; no checkpoints): results/$(SCALE)/, which the README links.
results: setup
	$(BIN)/python -c "from simsiam_collapse.report import publish_results; publish_results('$(OUT)', 'results/$(SCALE)')"

# The documentation site without Quarto: the library notebooks (through nbdev's processor, for show_doc), the executed
# notebooks of results/mini and the Markdown pages, as static HTML under $(SITE) (open $(SITE)/index.html); every
# relative link and image is checked. Built from a temporary copy: nothing is written into the checkout but the site
# (on a read-only checkout, name a writable SITE). With Quarto installed, nbdev_docs still builds nbdev's own site.
SITE ?= _site
docs: setup
	$(BIN)/python -c "from simsiam_collapse.docs import build_site, broken_links; \
	pages = build_site('$(SITE)'); bad = broken_links('$(SITE)'); print(len(pages), 'pages in $(SITE)/'); \
	[print('broken link:', page, '->', target) for page, target in bad]; exit(1 if bad else 0)"

# The GPU path in one prepared command for the minutes a GPU is lent (GUIDE.md): the CUDA tests, a smoke reproduction,
# throughput and epoch times at the gpu scale, the mini reproduction if time allows; everything into OUT (default
# results/gpu-check/<card>-<date>/). On a CPU, `make gpu-check GPU_CHECK="--device cpu --quick"` runs it CI-sized.
GPU_CHECK ?=
gpu-check: setup
	$(BIN)/python benchmarks/gpu_check.py $(if $(filter-out reproduction,$(OUT)),--out $(OUT)) $(GPU_CHECK)

# What gpu-check needs on a GPU machine without a network beyond what it has (benchmarks/gpu_machine_packages.txt):
# wheels for its Python (3.12) in .whl/, to carry there; benchmarks/gpu_device.sh installs them and runs the check.
GPU_WHEELS ?=
gpu-wheels: setup
	$(BIN)/python benchmarks/gpu_wheels.py $(GPU_WHEELS)

# gpu_device.sh on this CPU, as the GPU machine would run it (a copy of the tree, the wheels, an environment with only
# what that machine has, no network for the install); READ_ONLY=1 with that environment read-only. Not part of CI.
gpu-rehearsal: setup
	PYTHON=$(BIN)/python bash benchmarks/gpu_rehearsal.sh

clean:
	rm -rf $(VENV) *.egg-info _proc _docs _site
