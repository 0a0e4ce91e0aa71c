# wsreactor: the two commands a user needs are `make run` and `make test`.
# meson does the building; this file installs what is missing and picks build dirs.

PREFIX      ?= /usr/local
RELEASE_DIR ?= build/release
TEST_DIR    ?= build/asan
RUN_ARGS    ?=
MESON       ?= meson
NINJA       ?= ninja

# Debian 12 packages that building and running the daemon needs (make run, make static):
# nettle-dev is the crypto of builds without TLS, curl fetches simdjson's source for
# static builds. libhiredis-dev: the daemon links hiredis (--broker).
DEPS := build-essential pkg-config meson ninja-build libuv1-dev node-llhttp libssl-dev \
        zlib1g-dev libsimdjson-dev libjwt-dev libinih-dev libhiredis-dev nettle-dev curl python3
# What only the tests, fuzzers and benchmarks add (make test installs both lists);
# redis-server for the multi-node tests: `make run` needs no Redis.
TEST_DEPS := libcmocka-dev python3-websockets python3-prometheus-client python3-jwt apache2-utils haproxy \
        chromium chromium-driver python3-selenium clang valgrind libbenchmark-dev redis-server

.PHONY: all deps test-deps node-deps build run test bench bench-micro bench-peers fuzz fuzz-afl clean install

NODE_DIR ?= test/integration/node

all: build

# $(call install_missing,PACKAGES): installs only what is missing, so a prepared machine
# pays one dpkg query.
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call install_missing,$(DEPS))

test-deps: deps
	$(call install_missing,$(TEST_DEPS))

# node and npm for the node `ws` interop test, checked by command: NodeSource's nodejs
# bundles npm and conflicts with Debian's npm package.
node-deps: test-deps
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  echo "installing: nodejs npm"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm; \
	fi
	@[ -d $(NODE_DIR)/node_modules/ws ] || npm ci --prefix $(NODE_DIR) --no-audit --no-fund

# Link-time optimisation: the byte path crosses files (server, conn, frame, the echo
# handler) and inlining across them saves about 5 % of the instructions per message
# (bench/run-instr.sh, docs/benchmarks.md).
$(RELEASE_DIR)/build.ninja:
	$(MESON) setup $(RELEASE_DIR) --buildtype=release -Dtests=false -Db_lto=true

build: deps $(RELEASE_DIR)/build.ninja
	$(NINJA) -C $(RELEASE_DIR)

# A development key for the backend HTTP API, made fresh and printed, unless one is set
# (WSR_API_KEYS or --api-key in RUN_ARGS): the API is never open without a key.
run: build
	@if [ -z "$$WSR_API_KEYS" ] && ! echo "$(RUN_ARGS)" | grep -q -- --api-key; then \
	  key=$$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n'); echo "development API key (Authorization: Bearer): $$key"; \
	  exec ./$(RELEASE_DIR)/wsreactor --api-key "$$key" $(RUN_ARGS); \
	else exec ./$(RELEASE_DIR)/wsreactor $(RUN_ARGS); fi

$(TEST_DIR)/build.ninja:
	$(MESON) setup $(TEST_DIR) --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false

# Every test, built with ASan+UBSan; the last line is "N passed, N failed".
test: test-deps node-deps $(TEST_DIR)/build.ninja
	$(NINJA) -C $(TEST_DIR)
	@/usr/bin/python3 test/run_tests.py $(TEST_DIR)

# Load generator against wsreactor and a raw TCP echo in one run; medians and ratios.
bench: build
	bash bench/run.sh -b $(RELEASE_DIR)

# libFuzzer harnesses (clang, ASan+UBSan), each run for FUZZ_SECONDS; see docs/fuzzing.md.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: test-deps
	fuzz/build.sh
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_TARGETS)

# The same harnesses under AFL++.
fuzz-afl: test-deps
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
bench-micro: test-deps $(RELEASE_DIR)/build.ninja
	bash bench/micro/run.sh $(RELEASE_DIR)

# p99 echo latency of 50 clients at 2,000 msg/s in total, alone and while one client
# floods /echo with 1 MiB messages (plain, or ~1 KB of permessage-deflate that inflates to
# 1 MiB); medians of 5 runs each, ratios to alone, the 5 ms goal. About 2 minutes.
# Options of bench/run-flood.sh go in FLOOD_ARGS, e.g. FLOOD_ARGS="-n 3 -d 10".
# User-space instructions and syscalls per message of the release daemon and of the raw
# echo (callgrind and strace, the difference of a small and a large run: start-up and
# handshakes cancel); by object and top functions. About 10 minutes; see docs/benchmarks.md.
# Options of bench/run-instr.sh go in INSTR_ARGS, e.g. INSTR_ARGS="-c d1,d16 -t 20".
.PHONY: bench-instr
INSTR_ARGS ?= -s
bench-instr: build
	bash bench/run-instr.sh -b $(RELEASE_DIR) $(INSTR_ARGS)

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

# --- the edge: static binaries and other CPUs (docs/edge.md) ------------------------------

# Debian packages simdjson as a shared library only; a static build compiles the
# single-file source of the same version from Debian's source package, checked against the
# checksum its .dsc publishes. snapshot.debian.org keeps it once the pool moves on.
SIMDJSON_VERSION := 3.0.1
SIMDJSON_SHA256  := 156b1bc5eb0561b2bd166b46d191fd3d95a3e709cc63761477d3b7aec2b6e9ed
SIMDJSON_TAR     := build/simdjson_$(SIMDJSON_VERSION).orig.tar.gz
SIMDJSON_DIR     := build/simdjson-$(SIMDJSON_VERSION)/singleheader
SIMDJSON_URLS    := http://deb.debian.org/debian/pool/main/s/simdjson/simdjson_$(SIMDJSON_VERSION).orig.tar.gz \
                    https://snapshot.debian.org/archive/debian/20230601T000000Z/pool/main/s/simdjson/simdjson_$(SIMDJSON_VERSION).orig.tar.gz

$(SIMDJSON_DIR)/simdjson.cpp:
	@mkdir -p build
	@if ! echo "$(SIMDJSON_SHA256)  $(SIMDJSON_TAR)" | sha256sum -c --status 2>/dev/null; then \
	  for u in $(SIMDJSON_URLS); do \
	    echo "fetching $$u"; curl -fsSL --retry 3 -o $(SIMDJSON_TAR).part "$$u" && mv $(SIMDJSON_TAR).part $(SIMDJSON_TAR) && break; \
	  done; \
	fi
	echo "$(SIMDJSON_SHA256)  $(SIMDJSON_TAR)" | sha256sum -c --quiet
	tar -xzf $(SIMDJSON_TAR) -C build simdjson-$(SIMDJSON_VERSION)/singleheader/simdjson.cpp \
	  simdjson-$(SIMDJSON_VERSION)/singleheader/simdjson.h
	touch $@

# Two statically linked daemons. Without TLS on musl: Debian's musl-dev, and libuv, zlib,
# nettle, hiredis, inih and libxcrypt built against it from Debian's source packages by
# test/cross/musl.sh (build/musl); with TLS and JWT on glibc, because OpenSSL is not
# rebuilt for musl. `make static-glibc` builds the daemon without TLS on glibc as well, the
# one to compare with (docs/edge.md). -Os and --gc-sections pay, LTO does not, and two of
# simdjson's four x86-64 kernels are enough (bench/run-edge-size.sh, docs/edge.md); the
# stripped copies are build/wsreactor-static, build/wsreactor-static-tls and
# build/wsreactor-static-glibc.
STATIC_DIR       ?= build/static-musl
STATIC_TLS_DIR   ?= build/static-tls
STATIC_GLIBC_DIR ?= build/static-glibc
STATIC_OPTS      := --buildtype=release -Doptimization=s -Dstatic=true -Dtests=false \
                    -Ddefault_library=static -Db_pie=false -Dsimdjson_src=$(SIMDJSON_DIR) \
                    -Dsimdjson_kernels=westmere,fallback
# musl-gcc and musl's headers and libc.a; libxcrypt's source is its git tree, which
# autoreconf turns into a configure script.
MUSL_DEPS        := musl-tools musl-dev autoconf automake libtool
MUSL_NATIVE      := build/musl/native.ini

# Fetches, checks and builds the musl libraries once; later runs only check.
.PHONY: musl-deps
musl-deps: deps
	$(call install_missing,$(MUSL_DEPS))
	test/cross/musl.sh

# Debian ships libjwt as a shared library only: the static TLS daemon links one that
# test/cross/libjwt.sh builds from Debian's source package (build/jwt), against Debian's
# static OpenSSL and jansson (libjansson-dev); meson finds it by its pkg-config path.
JWT_DEPS         := libjansson-dev
JWT_PKGCONFIG    := $(CURDIR)/build/jwt/prefix/lib/pkgconfig
JWT_PC           := build/jwt/prefix/lib/pkgconfig/libjwt.pc

# Builds the static libjwt once, again when its scripts change (a second of work).
.PHONY: jwt-static
jwt-static: $(JWT_PC)
$(JWT_PC): test/cross/libjwt.sh test/cross/debsrc.sh test/cross/libjwt-base64.h | deps
	$(call install_missing,$(JWT_DEPS))
	rm -f $@
	nice test/cross/libjwt.sh

$(STATIC_DIR)/build.ninja: | $(SIMDJSON_DIR)/simdjson.cpp musl-deps
	$(MESON) setup $(STATIC_DIR) --native-file $(MUSL_NATIVE) $(STATIC_OPTS) -Dtls=disabled

# Set up anew when libjwt is rebuilt: a directory set up before the static libjwt existed
# would otherwise go on without JWT. Not with --reconfigure: meson 1.0 then applies
# --buildtype=release after -Doptimization=s, and the daemon is built with -O3.
$(STATIC_TLS_DIR)/build.ninja: $(JWT_PC) | $(SIMDJSON_DIR)/simdjson.cpp
	rm -rf $(STATIC_TLS_DIR)
	$(MESON) setup $(STATIC_TLS_DIR) $(STATIC_OPTS) -Dtls=enabled -Dpkg_config_path=$(JWT_PKGCONFIG)

$(STATIC_GLIBC_DIR)/build.ninja: | $(SIMDJSON_DIR)/simdjson.cpp
	$(MESON) setup $(STATIC_GLIBC_DIR) $(STATIC_OPTS) -Dtls=disabled

.PHONY: static static-glibc
static: deps musl-deps jwt-static $(SIMDJSON_DIR)/simdjson.cpp $(STATIC_DIR)/build.ninja $(STATIC_TLS_DIR)/build.ninja
	$(NINJA) -C $(STATIC_DIR) wsreactor
	$(NINJA) -C $(STATIC_TLS_DIR) wsreactor
	strip -o build/wsreactor-static $(STATIC_DIR)/wsreactor
	strip -o build/wsreactor-static-tls $(STATIC_TLS_DIR)/wsreactor
	@ls -l build/wsreactor-static build/wsreactor-static-tls | awk '{printf "%-28s %8d bytes (%d KiB)\n", $$9, $$5, $$5 / 1024}'

static-glibc: deps $(SIMDJSON_DIR)/simdjson.cpp $(STATIC_GLIBC_DIR)/build.ninja
	$(NINJA) -C $(STATIC_GLIBC_DIR) wsreactor
	strip -o build/wsreactor-static-glibc $(STATIC_GLIBC_DIR)/wsreactor
	@ls -l build/wsreactor-static-glibc | awk '{printf "%-28s %8d bytes (%d KiB)\n", $$9, $$5, $$5 / 1024}'

# The integration tests against the two daemons of `make static` (test/cross/static.sh):
# those that apply without TLS and JWT against the musl one, and the same with their TLS
# and JWT cases, and test_tls.py, against the TLS one. Kept out of `make test`, which
# would otherwise fetch and build the musl libraries and libjwt on every clean machine
# (docs/edge.md).
.PHONY: test-static
test-static: static node-deps
	test/cross/static.sh build/wsreactor-static
	test/cross/static.sh --tls build/wsreactor-static-tls

# Cross builds without TLS for ARCH (aarch64, armhf, s390x), tested under qemu-user:
# test/cross/run.sh says what runs where. Installs the cross compiler and qemu-user; the
# libraries come as a private sysroot of Debian packages (test/cross/sysroot.sh).
ARCH ?= aarch64
CROSS_TRIPLET_aarch64 := aarch64-linux-gnu
CROSS_TRIPLET_armhf   := arm-linux-gnueabihf
CROSS_TRIPLET_s390x   := s390x-linux-gnu
.PHONY: test-cross test-cross-all
test-cross: test-deps
	@[ -n "$(CROSS_TRIPLET_$(ARCH))" ] || { echo "ARCH=$(ARCH): one of aarch64, armhf, s390x"; exit 2; }
	$(call install_missing,g++-$(CROSS_TRIPLET_$(ARCH)) qemu-user file)
	test/cross/run.sh $(ARCH)

# The static daemon without TLS for ARCH, from the same sysroot (it holds the static
# archives too): build/wsreactor-static-ARCH, stripped.
.PHONY: static-cross
static-cross: deps $(SIMDJSON_DIR)/simdjson.cpp
	@[ -n "$(CROSS_TRIPLET_$(ARCH))" ] || { echo "ARCH=$(ARCH): one of aarch64, armhf, s390x"; exit 2; }
	$(call install_missing,g++-$(CROSS_TRIPLET_$(ARCH)) qemu-user)
	test/cross/sysroot.sh $(ARCH)
	@[ -f build/cross/$(ARCH)/static/build.ninja ] || $(MESON) setup build/cross/$(ARCH)/static \
	  --cross-file test/cross/$(ARCH).ini --cross-file build/cross/$(ARCH)/sysroot.ini $(STATIC_OPTS) -Dtls=disabled
	$(NINJA) -C build/cross/$(ARCH)/static wsreactor
	$(CROSS_TRIPLET_$(ARCH))-strip -o build/wsreactor-static-$(ARCH) build/cross/$(ARCH)/static/wsreactor
	@ls -l build/wsreactor-static-$(ARCH) | awk '{printf "%-28s %8d bytes (%d KiB)\n", $$9, $$5, $$5 / 1024}'

# All three, one after the other.
test-cross-all:
	$(MAKE) test-cross ARCH=aarch64
	$(MAKE) test-cross ARCH=armhf
	$(MAKE) test-cross ARCH=s390x

clean:
	rm -rf build
