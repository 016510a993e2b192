# fsbench: the commands a user runs. `make help` lists them.
CARGO   ?= cargo
BIN     := target/release/fsbench
MODE    ?= thread
POOL    ?= 5
PORT    ?= 7000
ROOT    ?= files
HOST    ?= 127.0.0.1

# The sweep's matrix (make stress); each variable narrows it, e.g.
#   make stress MODES=thread OPS=download VOLUMES=10 CLIENTS="1 5" SERVERS=5
MODES   ?= thread process
OPS     ?= download upload list
VOLUMES ?= 10 50 100
CLIENTS ?= 1 5 50
SERVERS ?= 1 5 50
REPEAT  ?= 1
# Extra sweep flags, e.g. SWEEP_FLAGS=--no-fsync (recorded in the metadata).
SWEEP_FLAGS ?=
# Stress another server: SERVER_CMD='python3 file_server.py --mode {mode} --workers {pool} --port {port}'
# (SERVER_LABEL names it in the CSV; default the template's first word).
SERVER_CMD ?=
SERVER_LABEL ?=
SERVER_FLAGS = $(if $(SERVER_CMD),--server-cmd '$(SERVER_CMD)') $(if $(SERVER_LABEL),--server-label '$(SERVER_LABEL)')
# Other hosts, over ssh (see README, "Two machines in a lab"):
#   make stress SERVER_HOST=user@host CLIENT_HOSTS="user@c1 user@c2" [SSH_OPTS="-F cfg"] [SSH_USER=u]
SERVER_HOST  ?=
CLIENT_HOSTS ?=
SSH_OPTS     ?=
SSH_USER     ?=
SERVER_FLAGS += $(if $(SERVER_HOST),--server-host '$(SERVER_HOST)') $(if $(CLIENT_HOSTS),--client-hosts '$(CLIENT_HOSTS)') $(if $(SSH_OPTS),--ssh-opts '$(SSH_OPTS)') $(if $(SSH_USER),--ssh-user '$(SSH_USER)')
SWEEP_MATRIX = --modes "$(MODES)" --ops "$(OPS)" --servers "$(SERVERS)" --repeat $(REPEAT)

.PHONY: help build server test robustness fuzz lint fmt clean stress stress-quick report bench bench-cpu bench-codec

help:
	@echo "make build                     release build of target/release/fsbench"
	@echo "make server MODE=thread POOL=5 PORT=7000 ROOT=files"
	@echo "make test                      unit, integration and compatibility tests (with the robustness suite)"
	@echo "make robustness                 the robustness suite alone: bad input, faults, floods; prints its figures"
	@echo "make fuzz FUZZ_SECS=60          fuzz the request parser (needs cargo-fuzz; see fuzz/README.md)"
	@echo "make lint                      cargo fmt --check, clippy -D warnings, no circle between src/ modules"
	@echo "make stress                     the 162-scenario sweep -> results/stress_<UTC>.csv"
	@echo "                                (narrow it: MODES OPS VOLUMES CLIENTS SERVERS REPEAT;"
	@echo "                                 other hosts: SERVER_HOST CLIENT_HOSTS SSH_OPTS SSH_USER)"
	@echo "make stress-quick               the same 162 scenarios, 10/50/100 KB, clients 1/2/5"
	@echo "                                (both end by writing the HTML report beside the CSV)"
	@echo "make report                     the newest results/stress_*.csv as an HTML report beside it"
	@echo "make bench                      10 and 100 MB, 1 and 50 clients, server pool 5, each twice (about 2 min)"
	@echo "make bench-codec                one core's GB/s for base64, line search, content and SHA-256, old way and new"
	@echo "make bench-cpu                  CPU-seconds per GB on each side: download and upload, 100 MB x 5 clients, server pool 5, 3 times"

build:
	$(CARGO) build --release

server: build
	$(BIN) serve --host $(HOST) --port $(PORT) --mode $(MODE) --pool $(POOL) --root $(ROOT) $(ARGS)

# `cargo test` runs every test crate, the robustness suite (tests/robustness/) among them.
test: build
	$(CARGO) test --release -- --test-threads=2
	$(MAKE) --no-print-directory stress-quick

stress: build
	$(BIN) sweep $(SWEEP_MATRIX) --volumes "$(VOLUMES)" --clients "$(CLIENTS)" $(SERVER_FLAGS) $(SWEEP_FLAGS)

# Volumes and client pools are fixed here; MODES, OPS, SERVERS and REPEAT still apply.
stress-quick: build
	$(BIN) sweep --quick $(SWEEP_MATRIX) $(SERVER_FLAGS) $(SWEEP_FLAGS)

# The newest stress CSV's report, beside it (named with -o, so the one the
# sweep wrote is replaced). `fsbench report A.csv B.csv` draws two runs together.
report: build
	@csv=$$(ls -t results/stress_*.csv 2>/dev/null | head -1); \
	if [ -z "$$csv" ]; then echo "make report: no results/stress_*.csv (run make stress first)" >&2; exit 2; fi; \
	$(BIN) report "$$csv" -o "$${csv%.csv}.html"

bench: build
	$(BIN) sweep --prefix bench --modes "$(MODES)" --ops "download upload list" --volumes "10 100" --clients "1 50" --servers 5 --repeat 2 $(SWEEP_FLAGS)

# A benchmark, not a test: each piece of a transfer on one core, the way it
# was done before and the way it is done now (examples/codec.rs).
bench-codec:
	$(CARGO) run --release --example codec

# A benchmark, not a test: where the CPU goes. The sweep ends with the table
# of each side's CPU-seconds per GB (mean and min-max over the 3 repeats).
bench-cpu: build
	$(BIN) sweep --prefix benchcpu --modes "$(MODES)" --ops "download upload" --volumes 100 --clients 5 --servers 5 --repeat 3 $(SWEEP_FLAGS)

# The robustness suite alone (root for its mounts; prlimit from util-linux).
robustness: build
	$(CARGO) test --release --test robustness

FUZZ_SECS ?= 60
fuzz:
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run parse_request -- -max_total_time=$(FUZZ_SECS)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	scripts/module-deps.sh > /dev/null || scripts/module-deps.sh

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
