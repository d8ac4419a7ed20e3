# vtpmd: `make` builds, `make check` sets up and runs every test,
# `make demo` sets up and runs the main job. See README.md.

CC      ?= cc
CFLAGS  ?= -O2 -g
WERROR  ?=
PKGS     = libtpms openssl jansson libseccomp tss2-esys tss2-mu tss2-rc tss2-tctildr
WARN     = -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
           -Wimplicit-fallthrough -Wformat=2 -Wpointer-arith -Wvla -Wundef \
           -Wcast-align -Wwrite-strings -Wno-unused-parameter \
           -Wno-format-truncation
HARDEN   = -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE \
           -fstack-clash-protection -fcf-protection
LDHARDEN = -pie -Wl,-z,relro,-z,now,-z,noexecstack
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(WERROR) $(HARDEN) $(CFLAGS) \
             $(shell pkg-config --cflags $(PKGS)) -Isrc
LIBS     = $(shell pkg-config --libs $(PKGS)) -lhttp_parser

SAN_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(WERROR) -O1 -g -fno-omit-frame-pointer \
             -fsanitize=address,undefined -fno-sanitize-recover=undefined \
             $(shell pkg-config --cflags $(PKGS)) -Isrc
SAN_LDFLAGS = -fsanitize=address,undefined

# libFuzzer targets (clang): tests/fuzz/fuzz_NAME.c, corpus tests/fuzz/corpus/NAME/.
FUZZ_CC     = clang
FUZZ_CFLAGS = -std=gnu11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
              $(shell pkg-config --cflags $(PKGS)) -Isrc
FUZZ_TARGETS = $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

# The programs, by module (src/vtpmd.h and src/vtpmctl.h are the maps).
VTPMCTL_SRC = $(wildcard src/vtpmctl*.c) src/approval.c src/hex.c src/log.c
VTPMD_SRC = $(filter-out src/vtpmctl%,$(wildcard src/*.c))
VTPMD_LIB_SRC = $(filter-out src/vtpmd.c,$(VTPMD_SRC))
HWTPM_SRC = src/hwtpm.c src/approval.c src/log.c

TOOLS = build/tpmsend build/hwtpm-check build/sandbox-probe build/certs-demo

UNIT_TESTS = $(patsubst tests/unit/%.c,build/san/%,$(wildcard tests/unit/test_*.c))
BENCH_TOOLS = $(patsubst bench/%.c,build/bench_%,$(wildcard bench/*.c))

.PHONY: all san deps check unit integration e2e demo bench clean format fuzz-build fuzz-replay

all: build/vtpmd $(if $(wildcard src/vtpmctl.c),build/vtpmctl) $(TOOLS)
san: build/san/vtpmd build/san/api-stub build/san/makecred

build/vtpmd: $(VTPMD_SRC) src/vtpmd.h | build
	$(CC) $(ALL_CFLAGS) -o $@ $(VTPMD_SRC) $(LDHARDEN) $(LDFLAGS) $(LIBS)

build/vtpmctl: $(VTPMCTL_SRC) src/vtpmd.h $(wildcard src/vtpmctl.h) | build
	$(CC) $(ALL_CFLAGS) -o $@ $(VTPMCTL_SRC) $(LDHARDEN) $(LDFLAGS) $(LIBS)

build/san/vtpmd: $(VTPMD_SRC) src/vtpmd.h | build/san
	$(CC) $(SAN_CFLAGS) -o $@ $(VTPMD_SRC) $(SAN_LDFLAGS) $(LIBS)

build/tpmsend: tests/tools/tpmsend.c src/endpoint.c src/log.c src/tpmwire.c src/vtpmd.h | build
	$(CC) $(ALL_CFLAGS) -o $@ tests/tools/tpmsend.c src/endpoint.c src/log.c src/tpmwire.c $(LDHARDEN) $(LIBS)

build/hwtpm-check: tests/tools/hwtpm-check.c $(HWTPM_SRC) src/vtpmd.h | build
	$(CC) $(ALL_CFLAGS) -o $@ tests/tools/hwtpm-check.c $(HWTPM_SRC) $(LDHARDEN) $(LIBS)

build/sandbox-probe: tests/tools/sandbox-probe.c src/sandbox.c src/endpoint.c src/log.c src/vtpmd.h | build
	$(CC) $(ALL_CFLAGS) -o $@ tests/tools/sandbox-probe.c src/sandbox.c src/endpoint.c src/log.c \
	    $(LDHARDEN) $(LIBS)

build/certs-demo: tests/tools/certs-demo.c src/certs.c src/certs.h src/fileio.c src/hex.c src/vtpmd.h | build
	$(CC) $(ALL_CFLAGS) -o $@ tests/tools/certs-demo.c src/certs.c src/fileio.c src/hex.c \
	    $(LDHARDEN) $(LIBS)

build/bench_%: bench/%.c $(VTPMD_LIB_SRC) src/vtpmd.h | build
	$(CC) $(ALL_CFLAGS) -o $@ $< $(VTPMD_LIB_SRC) $(LDHARDEN) $(LIBS)

build/san/api-stub: tests/tools/api-stub.c src/api.c src/approval.c src/hex.c src/log.c src/vtpmd.h | build/san
	$(CC) $(SAN_CFLAGS) -o $@ tests/tools/api-stub.c src/api.c src/approval.c src/hex.c src/log.c \
	    $(SAN_LDFLAGS) $(LIBS)

build/san/makecred: tests/tools/makecred.c src/credential.c src/credential.h src/hex.c | build/san
	$(CC) $(SAN_CFLAGS) -o $@ tests/tools/makecred.c src/credential.c src/hex.c $(SAN_LDFLAGS) $(LIBS)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(VTPMD_LIB_SRC) src/vtpmd.h | build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(VTPMD_LIB_SRC) $(LIBS)

# A unit test's link-time fakes (-Wl,--wrap=SYMBOL), in WRAP_test_NAME.
WRAP_test_store = -Wl,--wrap=fdatasync -Wl,--wrap=fsync -Wl,--wrap=renameat
WRAP_test_credential = -Wl,--wrap=EVP_PKEY_generate
build/san/test_credential: src/credential.h

build/san/test_%: tests/unit/test_%.c $(VTPMD_LIB_SRC) src/vtpmd.h | build/san
	$(CC) $(SAN_CFLAGS) -o $@ $< $(VTPMD_LIB_SRC) $(SAN_LDFLAGS) $(WRAP_test_$*) $(LIBS) -lcmocka

build build/san build/fuzz:
	mkdir -p $@

# Installs the Debian packages a fresh machine lacks (needs root once).
deps:
	@scripts/install-deps.sh

unit: $(UNIT_TESTS)
	@tests/run-unit.sh $(UNIT_TESTS)

integration: all san
	@tests/run.sh tests/integration

e2e: all
	@tests/run.sh tests/e2e

fuzz-build: $(FUZZ_TARGETS)

# Replays every fuzz target's corpus once (what `make check` runs).
fuzz-replay:
	@tests/fuzz/replay.sh

check: deps
	$(MAKE) all san
	$(MAKE) unit
	$(MAKE) fuzz-replay
	$(MAKE) integration
	$(MAKE) e2e

demo: deps
	$(MAKE) all
	@scripts/demo.sh

bench: deps
	$(MAKE) all $(BENCH_TOOLS)
	@bench/run.sh

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c tests/tools/*.c

clean:
	rm -rf build
