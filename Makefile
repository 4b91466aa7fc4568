# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test bench system-deps lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU wheel first, so that the range in pyproject.toml is already satisfied.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# The library is installed; the service (api, db, worker, service) runs from this
	# checkout, which a .pth file puts on the venv's path.
	echo "$(CURDIR)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nirvana-service.pth"
	touch $(STAMP)

# Offline-safe: never downloads data (`nirvana data fetch TASK` does, on request). The
# banner it prints once the port accepts connections ends with the line to paste:
#   export NIRVANA_URL=http://127.0.0.1:$(PORT)
PORT ?= 8000
serve: $(STAMP)
	$(BIN)/nirvana serve --port $(PORT)

# Debian packages the tests use: real Fashion-MNIST, Chromium, nginx; PostgreSQL started if installed.
system-deps:
	@scripts/system-deps

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# Types (mypy --strict, configured in pyproject.toml) and unused or undefined names.
lint: $(STAMP)
	$(BIN)/mypy
	$(BIN)/python -m pyflakes nirvana db api worker service bench migrations tests

bench: $(STAMP)
	$(BIN)/python bench/train_loop.py

clean:
	rm -rf $(VENV) .pytest_cache
