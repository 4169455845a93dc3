# Set up, try out and test the gateway. `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
TGW := $(VENV)/bin/tgw

.PHONY: help setup demo test lint docs translations clean

help:
	@echo "make setup  - create $(VENV) and install the gateway with its test tools"
	@echo "make demo   - demo PKI, demo documents, one envelope built, signed, sealed and opened"
	@echo "make test   - lint, import contracts, security lint and the whole test suite"
	@echo "make docs   - regenerate docs/reason-codes.md and docs/configuration.md"
	@echo "make translations - merge the pages' new texts into the zh-TW catalogs and compile them"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

demo: setup
	@test -f var/demo/root.pem || $(TGW) pki demo --out var/demo --agencies 3
	$(TGW) registry import var/demo/registry.yaml --config config/inner.yaml
	$(TGW) demo-data documents --agency A10001 --count 10 --out var/demo-docs --seed 1
	$(TGW) agency build --pki var/demo --agency A10001 --out var/envelope.p7m var/demo-docs/*.json
	$(TGW) envelope inspect var/envelope.p7m
	$(TGW) envelope open var/envelope.p7m --config config/inner.yaml

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/bandit -q -ll -c pyproject.toml -r tgw tgw_common outer_zone inner_zone transfer monitoring agency_signer

test: lint
	$(VENV)/bin/pytest

docs: setup
	$(PY) -m tgw_common.docs_gen

translations: setup
	$(PY) -m tgw_common.web.catalogs

clean:
	rm -rf var test-artifacts
