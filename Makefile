# gpulab.provision — developer entry points. Each target installs what it needs itself.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/collections:$(CURDIR)/$(VENV)/collections
export PY_COLORS := 0
export ANSIBLE_FORCE_COLOR := 0
SCENARIOS ?= $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))

.PHONY: help deps host venv image lint yamllint ansible-lint sanity unit molecule test demo demo-clean bench build clean \
  artifact-check tools-venv docs docs-lint ee-check ee-image release release-check test-matrix

help:
	@echo "make test   lint, sanity, unit and every Molecule scenario (installs what it needs)"
	@echo "make demo   a local lab: containers + mirrors on 127.0.10.x, one dead, provisioned by site.yml"
	@echo "make bench  the benchmarks under bench/ (ratios against a baseline, one run)"
	@echo "make docs   the HTML documentation site in build/docs/html (antsibull-docs + Sphinx)"
	@echo "make release  release notes (CHANGELOG.rst) and the artifact build/dist/gpulab-provision-<version>.tar.gz"
	@echo "make ee-image the execution environment image gpulab/provision-ee:<version>"

host:
	bash scripts/host-deps.sh

venv:
	bash scripts/venv.sh

image: host
	bash scripts/base-image.sh

deps: host venv image

yamllint: venv
	yamllint -s .

ansible-lint: venv
	ansible-lint --offline -q

lint: yamllint ansible-lint

build: venv
	rm -rf build/dist && mkdir -p build/dist
	ansible-galaxy collection build --force --output-path build/dist .

# The built artifact ships what users run and none of the development tooling (galaxy.yml build_ignore).
artifact-check: build
	bash scripts/artifact-check.sh

sanity: build
	bash scripts/sanity.sh

# Release, docs and execution-environment tooling: a venv of its own (.venv-tools).
tools-venv:
	bash scripts/tools-venv.sh

docs: tools-venv
	bash scripts/docs.sh build

docs-lint: tools-venv
	bash scripts/docs.sh lint

ee-check: tools-venv build
	bash scripts/ee.sh check

ee-image: tools-venv build image
	bash scripts/ee.sh image

release-check: tools-venv
	bash scripts/release.sh check

release: tools-venv
	bash scripts/release.sh notes
	$(MAKE) artifact-check

unit: venv
	python -m pytest -q tests/unit

molecule: deps
	@for s in $(SCENARIOS); do echo "== molecule test -s $$s"; \
	  rc=0; molecule test -s $$s || rc=$$?; \
	  docker volume ls -q --filter name=gpulab-molecule-$$s- | xargs -r docker volume rm >/dev/null 2>&1 || true; \
	  [ $$rc -eq 0 ] || exit $$rc; done

# The older ansible-core lines (2.16, 2.17, 2.18; .venv is 2.19): unit, sanity and one whole-lab
# scenario each, in a venv per line (scripts/core-matrix.sh; CORE_LINES= picks lines).
test-matrix: deps build
	bash scripts/core-matrix.sh all

test: deps lint artifact-check release-check docs-lint docs ee-check sanity unit molecule test-matrix
	@echo "make test: all passed"

demo: deps
	bash demo/run.sh

demo-clean:
	bash demo/run.sh --clean

bench: deps
	@for b in bench/*/run; do echo "== $$b"; $$b; done

clean:
	rm -rf build .pytest_cache
