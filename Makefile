# element-pose: the two commands of the README, and a few helpers.
#   make demo   set up everything and run the pipeline on generated sample data
#   make test   set up everything and run the whole test suite
# Another interpreter in its own environment (CI checks 3.12 and 3.13 this way):
#   make setup PYTHON=python3.12 VENV=.venv312
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo lab docs test test-embedded test-mysql lint bench clean-db constraints

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]" -c constraints.txt
	@# aniposelib pulls opencv-contrib-python and sleap-nn opencv-python (GUI builds) over
	@# DeepLabCut's headless OpenCV; all write cv2/. Keep only the headless build (it has
	@# ArUco since 4.7).
	@for gui in opencv-contrib-python opencv-python; do \
	  if $(BIN)/python -m pip show $$gui >/dev/null 2>&1; then \
	    v=$$($(BIN)/python -m pip show opencv-python-headless | sed -n 's/^Version: //p'); \
	    $(BIN)/python -m pip uninstall --quiet -y $$gui; \
	    $(BIN)/python -m pip install --quiet --force-reinstall --no-deps "opencv-python-headless==$$v"; \
	  fi; \
	done
	@# bytecode for the editable package: pip compiles what it installs, but an editable
	@# package is compiled at first import, and never where PYTHONDONTWRITEBYTECODE is set
	@# or the source is read-only (a container's user): then every fresh worker process
	@# compiles it again, ~0.1 s of each first call
	$(BIN)/python -m compileall -q element_pose workflow
	touch $(STAMP)

demo: setup
	$(BIN)/element-pose demo

# JupyterLab on the tutorials, on the same database and roots as `make demo`
lab: setup
	$(BIN)/element-pose lab

# execute the tutorials and build the documentation site (strict) into site/
docs: setup
	$(BIN)/python docs/build.py site

test: setup
	$(MAKE) --no-print-directory test-embedded
	$(MAKE) --no-print-directory test-mysql

test-embedded: setup
	$(BIN)/python -m pytest

# The database tests again on a MySQL/MariaDB server (skipped, with the reason, when none answers).
test-mysql: setup
	$(BIN)/python -m pytest --db mysql -m "not slow" tests/test_model.py tests/test_train.py \
	  tests/test_analysis.py tests/test_publish.py tests/test_multicam.py tests/test_publish_nwb.py \
	  tests/test_door_values.py tests/test_params.py tests/test_settings.py tests/test_s3.py \
	  tests/test_slurm.py tests/test_roots_per_worker.py tests/test_store.py \
	  tests/test_arrays.py tests/test_realproject.py tests/test_pipeline_module.py \
	  tests/test_util.py tests/test_model_engines.py tests/test_multicam_anipose.py \
	  tests/test_migrate.py tests/test_queries.py tests/test_refine.py tests/test_iteration.py \
	  tests/test_evaluation_scores.py tests/test_worker_headings.py tests/io/test_labels_videoset.py

lint: setup
	$(BIN)/ruff check element_pose workflow tests bench
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python -m bench.run

clean-db:
	$(BIN)/element-pose db stop || true

# Re-pin constraints.txt from the current .venv (after a dependency change that installs).
# Lines with an environment marker (a pin per Python version) are kept as they are.
MARKED = grep -v '^\#' constraints.txt | grep ';'
constraints: setup
	{ sed -n '/^#/!q;p' constraints.txt; \
	  { $(BIN)/python -m pip freeze --exclude-editable \
	      | grep -v -i -E "^($$($(MARKED) | sed 's/[=<>~!; ].*//' | paste -sd'|' -))=="; \
	    $(MARKED); } | LC_ALL=C sort -f; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
