# fsbench: the commands a user runs. `make help` lists them.
CARGO   ?= cargo
BIN     := target/release/fsbench
MODE    ?= thread
POOL    ?= 5
PORT    ?= 7000
ROOT    ?= files
HOST    ?= 127.0.0.1

.PHONY: help build server test robustness fuzz lint fmt clean

help:
	@echo "make build                     release build of target/release/fsbench"
	@echo "make server MODE=thread POOL=5 PORT=7000 ROOT=files"
	@echo "make test                      unit, integration and compatibility tests (with the robustness suite)"
	@echo "make robustness                 the robustness suite alone: bad input, faults, floods; prints its figures"
	@echo "make fuzz FUZZ_SECS=60          fuzz the request parser (needs cargo-fuzz; see fuzz/README.md)"
	@echo "make lint                      cargo fmt --check and clippy -D warnings"

build:
	$(CARGO) build --release

server: build
	$(BIN) serve --host $(HOST) --port $(PORT) --mode $(MODE) --pool $(POOL) --root $(ROOT) $(ARGS)

# `cargo test` runs every test crate, the robustness suite (tests/robustness/) among them.
test: build
	$(CARGO) test --release -- --test-threads=2

# The robustness suite alone (root for its mounts; prlimit from util-linux).
robustness: build
	$(CARGO) test --release --test robustness

FUZZ_SECS ?= 60
fuzz:
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run parse_request -- -max_total_time=$(FUZZ_SECS)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
