# Two commands for learners: `make lab` and `make test`. Everything else is for maintainers.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KERNEL := metagrad-course
STAMP := $(VENV)/.installed

.PHONY: lab test grade browser-test screenshot notebooks site lint benchmarks results clean

# The stamp is rebuilt when the dependency list changes, so `git pull` + `make test` picks up new packages.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (meta-gradient course)"
	touch $(STAMP)

# The course's JupyterLab settings (jupyter/overrides.json: no news popup, no update check) go to
# the overrides.d folder of the venv's JupyterLab, which reads every file there; the learner's own
# ~/.jupyter is never touched.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d/metagrad-course.json

$(LAB_OVERRIDES): jupyter/overrides.json $(STAMP)
	mkdir -p $(@D)
	cp $< $@

# Jupyter refuses to run as root unless told; containers and cloud machines often run as root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

# Opens lesson 00 (JupyterLab wants the file as an absolute path when the root is notebooks/).
lab: $(STAMP) $(LAB_OVERRIDES)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --MultiKernelManager.default_kernel_name=$(KERNEL) \
		$(ALLOW_ROOT) "$(CURDIR)/notebooks/00_setup_and_jax.ipynb"

# One pytest worker per core; tests that share a kernel, a compiled program or a fixture run in one
# worker (the root conftest.py says how they are grouped).
test: $(STAMP) $(LAB_OVERRIDES)
	COURSE_QUICK=1 $(PY) -m pytest -n auto --dist loadgroup

# Grade one lesson from a terminal: make grade LESSON=01
grade: $(STAMP)
	COURSE_QUICK=1 $(PY) -m pytest --nbval-lax notebooks/$(LESSON)_*.ipynb

browser-test: $(STAMP) $(LAB_OVERRIDES)
	COURSE_QUICK=1 $(PY) -m pytest tests/browser

# Refreshes the README's picture of the live explorer (needs Chromium, see .ci/install-system-deps).
screenshot: $(STAMP)
	SAVE_SCREENSHOT=docs/explorer.png COURSE_QUICK=1 $(PY) -m pytest tests/browser -k explorer

notebooks: $(STAMP)
	$(PY) -m tools.make_notebooks

# The static site in site/ (committed, so the lessons can be read before installing): every lesson
# of solutions/ executed at full size, about 10 min on 2 CPU cores; executions are cached in
# .cache/site, so a rebuild executes only the lessons whose notebook or library changed.
site: $(STAMP)
	$(PY) -m tools.make_site

# ruff, then course_lib's floors (pyproject.toml's [tool.importlinter]: imports point down).
lint: $(STAMP)
	$(VENV)/bin/ruff check course_lib tools tests benchmarks
	$(VENV)/bin/lint-imports

benchmarks: $(STAMP)
	$(PY) benchmarks/envs.py
	$(PY) benchmarks/metagrad.py
	$(PY) benchmarks/widgets.py

# Regenerates the stored runs: lesson 02's sweep (about 7 min on 2 loaded CPU cores), then the
# capstone's full run (full_config; benchmarks/experiments.py estimates its time; it resumes if
# interrupted). Each shows a progress bar with the time left. The same numbers only on the machine
# and JAX build that made them (the .json sidecars); elsewhere the numbers differ a little and the
# conclusions stay, within the intervals the lessons quote (course_lib/experiments).
results: $(STAMP)
	$(PY) -m course_lib.experiments sweep --out results/a2c_sweep.npz --overwrite
	$(PY) -m course_lib.experiments snake --out results/snake_full.npz --overwrite

clean:
	rm -rf $(VENV) .pytest_cache
