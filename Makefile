# The two commands of the README. Both set up ./.venv (or use the active virtual environment) first.
#   make demo   - run every method on the bundled offline toyworld benchmark and print the leaderboard
#   make test   - install what the tests need (WordNet from Debian, test extras) and run the whole suite
VENV ?= .venv
BIN := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin,$(VENV)/bin)
PYTEST_ARGS ?=

.PHONY: demo test test-fast setup clean

setup:
	bash scripts/setup_env.sh

demo: setup
	$(BIN)/oodbench run --method all --id toyworld
	$(BIN)/oodbench report results/toyworld

test:
	bash scripts/install_wordnet.sh
	bash scripts/setup_env.sh test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast:
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache
