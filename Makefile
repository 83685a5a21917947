# The two commands of the README: `make run` and `make test`.
.PHONY: run test demo bench lint
SHELL := /bin/bash

run:
	DEMO=$(DEMO) scripts/run.sh

test:
	scripts/test.sh $(PYTEST_ARGS)

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
