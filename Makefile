# fsbench: the commands a user runs. `make help` lists them.
CARGO   ?= cargo
BIN     := target/release/fsbench
MODE    ?= thread
POOL    ?= 5
PORT    ?= 7000
ROOT    ?= files
HOST    ?= 127.0.0.1

.PHONY: help build server test lint fmt clean

help:
	@echo "make build                     release build of target/release/fsbench"
	@echo "make server MODE=thread POOL=5 PORT=7000 ROOT=files"
	@echo "make test                      unit, integration and compatibility tests"
	@echo "make lint                      cargo fmt --check and clippy -D warnings"

build:
	$(CARGO) build --release

server: build
	$(BIN) serve --host $(HOST) --port $(PORT) --mode $(MODE) --pool $(POOL) --root $(ROOT) $(ARGS)

test: build
	$(CARGO) test --release -- --test-threads=2

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
