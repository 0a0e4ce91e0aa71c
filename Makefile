# wsreactor: the two commands a user needs are `make run` and `make test`.
# meson does the building; this file installs what is missing and picks build dirs.

PREFIX      ?= /usr/local
RELEASE_DIR ?= build/release
TEST_DIR    ?= build/asan
RUN_ARGS    ?=
MESON       ?= meson
NINJA       ?= ninja

# Debian 12 packages the build and the tests need. libhiredis-dev: the daemon links hiredis
# (--broker); redis-server is only for the tests (TEST_DEPS): `make run` needs no Redis.
DEPS := build-essential pkg-config meson ninja-build libuv1-dev node-llhttp libssl-dev \
        zlib1g-dev libsimdjson-dev libjwt-dev libinih-dev libhiredis-dev libcmocka-dev python3 python3-websockets python3-prometheus-client python3-jwt apache2-utils haproxy chromium chromium-driver python3-selenium clang valgrind \
        libbenchmark-dev

.PHONY: all deps node-deps build run test bench bench-micro bench-peers fuzz fuzz-afl clean install

NODE_DIR ?= test/integration/node

all: build

TEST_DEPS := redis-server

# Installs only what is missing, so a prepared machine pays one dpkg query.
deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(DEPS)"

# The multi-node tests start a real redis-server (test/integration/test_scaling.py).
test-deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(TEST_DEPS)"

.PHONY: install-packages test-deps
install-packages:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# node and npm for the node `ws` interop test, checked by command: NodeSource's nodejs
# bundles npm and conflicts with Debian's npm package.
node-deps: deps
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  echo "installing: nodejs npm"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm; \
	fi
	@[ -d $(NODE_DIR)/node_modules/ws ] || npm ci --prefix $(NODE_DIR) --no-audit --no-fund

$(RELEASE_DIR)/build.ninja:
	$(MESON) setup $(RELEASE_DIR) --buildtype=release -Dtests=false

build: deps $(RELEASE_DIR)/build.ninja
	$(NINJA) -C $(RELEASE_DIR)

# A development key for the backend HTTP API, made fresh and printed, unless one is set
# (WSR_API_KEYS or --api-key in RUN_ARGS): the API is never open without a key.
run: build
	@if [ -z "$$WSR_API_KEYS" ] && ! echo "$(RUN_ARGS)" | grep -q -- --api-key; then \
	  key=$$(openssl rand -hex 16); echo "development API key (Authorization: Bearer): $$key"; \
	  exec ./$(RELEASE_DIR)/wsreactor --api-key "$$key" $(RUN_ARGS); \
	else exec ./$(RELEASE_DIR)/wsreactor $(RUN_ARGS); fi

$(TEST_DIR)/build.ninja:
	$(MESON) setup $(TEST_DIR) --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false

# Every test, built with ASan+UBSan; the last line is "N passed, N failed".
test: deps test-deps node-deps $(TEST_DIR)/build.ninja
	$(NINJA) -C $(TEST_DIR)
	@/usr/bin/python3 test/run_tests.py $(TEST_DIR)

# Load generator against wsreactor and a raw TCP echo in one run; medians and ratios.
bench: build
	bash bench/run.sh -b $(RELEASE_DIR)

# libFuzzer harnesses (clang, ASan+UBSan), each run for FUZZ_SECONDS; see docs/fuzzing.md.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: deps
	fuzz/build.sh
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_TARGETS)

# The same harnesses under AFL++.
fuzz-afl: deps
	@dpkg-query -W -f='$${Status}' afl++ 2>/dev/null | grep -q 'install ok installed' || { \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; $$SUDO apt-get install -y -qq afl++; }
	fuzz/build-afl.sh
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run-afl.sh $(FUZZ_TARGETS)

# wsreactor side by side with echo servers on Debian-packaged peers (libwebsockets,
# Boost.Beast, websocketpp, node ws) and the raw TCP echo: medians, ratios to wsreactor and
# latency plots in bench/results/latest. About 10 minutes. Options of bench/run-peers.sh
# go in PEERS_ARGS, e.g. PEERS_ARGS="-n 5 -r".
PEERS_ARGS ?=
bench-peers: build
	bash bench/run-peers.sh -b $(RELEASE_DIR) $(PEERS_ARGS)

# Microbenchmarks of src/proto (Google Benchmark) against plain reference code in the same
# run: medians of 5 repetitions and ratios. CPU=, REPS=, MIN_TIME= tune bench/micro/run.sh.
bench-micro: deps $(RELEASE_DIR)/build.ninja
	bash bench/micro/run.sh $(RELEASE_DIR)

# p99 echo latency of 50 clients at 2,000 msg/s in total, alone and while one client
# floods /echo with 1 MiB messages (plain, or ~1 KB of permessage-deflate that inflates to
# 1 MiB); medians of 5 runs each, ratios to alone, the 5 ms goal. About 2 minutes.
# Options of bench/run-flood.sh go in FLOOD_ARGS, e.g. FLOOD_ARGS="-n 3 -d 10".
.PHONY: bench-flood
FLOOD_ARGS ?=
bench-flood: build
	bash bench/run-flood.sh -b $(RELEASE_DIR) $(FLOOD_ARGS)

# GET /healthz over HTTP/1.1 keep-alive (wrk -t1 -c1 and -c50) against HAProxy answering the
# same response itself: medians of 5 runs, wsreactor/HAProxy ratios. About 2 minutes.
# Options of bench/run-http.sh go in HTTP_ARGS, e.g. HTTP_ARGS="-n 3 -d 10".
.PHONY: bench-http
HTTP_ARGS ?=
bench-http: build
	bash bench/run-http.sh -b $(RELEASE_DIR) $(HTTP_ARGS)

# TLS: plain ws:// vs wss:// on one daemon (bench/run-tls.sh): echo, connect (server CPU per
# handshake, full and resumed), idle bytes per TLS connection; about 5 minutes.
# Options of bench/run-tls.sh go in TLS_BENCH_ARGS, e.g. TLS_BENCH_ARGS="-n 5 -q".
.PHONY: bench-tls
TLS_BENCH_ARGS ?=
bench-tls: build
	bash bench/run-tls.sh -b $(RELEASE_DIR) $(TLS_BENCH_ARGS)

# The release build installed under PREFIX (default /usr/local), below DESTDIR when given
# (make install DESTDIR=/tmp/pkg PREFIX=/usr): the binary, libwsreactor and
# libwsreactor-messaging with their headers and pkg-config files, the systemd unit, the man
# page wsreactor(1) and an example config in share/doc/wsreactor (nothing under /etc; see
# docs/deployment.md). The release directory is re-configured only when PREFIX changes.
install: build
	@prefix=$$($(MESON) introspect $(RELEASE_DIR) --buildoptions | /usr/bin/python3 -c \
	  'import json, sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))'); \
	if [ "$$prefix" != "$(PREFIX)" ]; then \
	  echo "$(MESON) configure $(RELEASE_DIR) -Dprefix=$(PREFIX)"; \
	  $(MESON) configure $(RELEASE_DIR) -Dprefix=$(PREFIX) >/dev/null || exit 1; \
	fi
	$(NINJA) -C $(RELEASE_DIR)
	$(MESON) install -C $(RELEASE_DIR) --no-rebuild $(if $(DESTDIR),--destdir "$(abspath $(DESTDIR))")

# Rewrites the OPTIONS entries of docs/wsreactor.1 from `wsreactor --help`
# (docs/man-options.py); test/integration/install fails while one is missing.
.PHONY: man
man: build
	/usr/bin/python3 docs/man-options.py $(RELEASE_DIR)/wsreactor --write docs/wsreactor.1

clean:
	rm -rf build
