# The README's two commands are `make demo` and `make test`; both set up first.
VENV := .venv/bin
SOURCES := webhook certs tests scripts

.PHONY: setup test lint typecheck unit e2e node-tier demo demo-down demo-local demo-local-down cluster-up cluster-down cluster-status \
	node-up node-down node-status image install uninstall bench soak clean

setup:
	@scripts/setup.sh

test: setup lint typecheck
	$(VENV)/pytest

unit: setup
	$(VENV)/pytest tests/unit

e2e: setup
	$(VENV)/pytest tests/e2e

node-tier: setup
	$(VENV)/pytest tests/node

lint: setup
	$(VENV)/ruff check $(SOURCES)
	$(VENV)/ruff format --check $(SOURCES)
	$(VENV)/lint-imports

typecheck: setup
	$(VENV)/mypy

demo: setup
	@scripts/demo.sh

demo-down:
	@scripts/demo.sh down

# The same story without root: `serve --local`, a fake kubelet, stand-ins on 127.0.0.x.
demo-local: setup
	@scripts/demo-local.sh

demo-local-down:
	@scripts/demo-local.sh down

cluster-up: setup
	@scripts/cluster.sh up

cluster-down:
	-@scripts/demo-local.sh down 2>/dev/null
	@scripts/cluster.sh down

cluster-status:
	@scripts/cluster.sh status

# The real node (kubelet + containerd) with its own control plane; needs root.
node-up: setup
	@scripts/node.sh up

node-down:
	@scripts/node.sh down

node-status:
	@scripts/node.sh status

# The injector, stand-in and pause images, built without Docker (buildah, debootstrap).
image: setup
	@scripts/images.sh build

# The injector installed on the real node from manifests/, as a user installs it.
install: setup
	@scripts/install.sh up

uninstall:
	@scripts/install.sh down

bench: setup
	@if [ -x scripts/bench.sh ]; then scripts/bench.sh; else echo "bench: no benchmarks yet (see issue 6)"; fi

soak: setup
	@if [ -x scripts/soak.sh ]; then scripts/soak.sh; else echo "soak: no soak tests yet"; fi

clean: cluster-down node-down
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
