# Fresh-machine entry points: each target creates .venv when needed, installs
# geogan into it, then runs. Override PYTHON or TORCH_SPEC if you need to, e.g.
#   make test TORCH_SPEC='torch>=2.10'    (the newest torch, CUDA build on Linux)
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.geogan-installed
DOCS_STAMP := $(VENV)/.geogan-docs-installed

.PHONY: install demo test lint bench clean qgis-plugin docs dist

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/geogan demo --output demo_output --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m pip install -q ruff
	$(PY) -m ruff check geogan qgis_plugin tests benchmarks docs

# The documentation site (docs/ -> site/): the CLI and QGIS reference pages are generated
# from geogan/contract/options.py first; any MkDocs warning (a broken link) fails the build.
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) docs/gen_reference.py
	$(PY) -m mkdocs build --strict

# The sdist and the wheel (with the sample rasters and the pretrained model) in dist/.
dist:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q build twine
	rm -f dist/geogan-*.whl dist/geogan-*.tar.gz
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/geogan-*.whl dist/geogan-*.tar.gz

qgis-plugin:
	$(PYTHON) qgis_plugin/build_zip.py
	$(PYTHON) qgis_plugin/check_zip.py --strict dist/geogan_qgis.zip

clean:
	rm -rf $(VENV) demo_output build dist site docs/reference *.egg-info
