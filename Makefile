# vtpmd: `make` builds, `make check` sets up and runs every test,
# `make demo` sets up and runs the main job. See README.md.

CC      ?= cc
CFLAGS  ?= -O2 -g
WERROR  ?=
PKGS     = libtpms openssl
WARN     = -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
           -Wimplicit-fallthrough -Wformat=2 -Wpointer-arith -Wvla -Wundef \
           -Wcast-align -Wwrite-strings -Wno-unused-parameter
HARDEN   = -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE \
           -fstack-clash-protection -fcf-protection
LDHARDEN = -pie -Wl,-z,relro,-z,now,-z,noexecstack
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(WERROR) $(HARDEN) $(CFLAGS) \
             $(shell pkg-config --cflags $(PKGS)) -Isrc
LIBS     = $(shell pkg-config --libs $(PKGS))

SAN_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(WERROR) -O1 -g -fno-omit-frame-pointer \
             -fsanitize=address,undefined -fno-sanitize-recover=undefined \
             $(shell pkg-config --cflags $(PKGS)) -Isrc
SAN_LDFLAGS = -fsanitize=address,undefined

# The vtpmd program, by module (see src/vtpmd.h for the map).
VTPMD_SRC = src/vtpmd.c src/instance.c src/instance_ctrl.c src/ctrl.c \
            src/engine.c src/store.c src/statefile.c src/tpmwire.c \
            src/endpoint.c src/secret.c src/log.c
VTPMD_LIB_SRC = $(filter-out src/vtpmd.c,$(VTPMD_SRC))

# The host-TPM side (manager only: workers never link tpm2-tss).
HWTPM_SRC = src/hwtpm.c src/approval.c src/log.c
HWTPM_LIBS = $(shell pkg-config --libs tss2-esys tss2-mu tss2-rc tss2-tctildr openssl)

TOOLS = build/tpmsend build/hwtpm-check

UNIT_TESTS = $(patsubst tests/unit/%.c,build/san/%,$(wildcard tests/unit/test_*.c))
BENCH_TOOLS = $(patsubst bench/%.c,build/bench_%,$(wildcard bench/*.c))

.PHONY: all san deps check unit integration e2e demo bench clean format

all: build/vtpmd $(TOOLS)
san: build/san/vtpmd

build/vtpmd: $(VTPMD_SRC) src/vtpmd.h | build
	$(CC) $(ALL_CFLAGS) -o $@ $(VTPMD_SRC) $(LDHARDEN) $(LDFLAGS) $(LIBS)

build/san/vtpmd: $(VTPMD_SRC) src/vtpmd.h | build/san
	$(CC) $(SAN_CFLAGS) -o $@ $(VTPMD_SRC) $(SAN_LDFLAGS) $(LIBS)

build/tpmsend: tests/tools/tpmsend.c src/endpoint.c src/log.c src/tpmwire.c src/vtpmd.h | build
	$(CC) $(ALL_CFLAGS) -o $@ tests/tools/tpmsend.c src/endpoint.c src/log.c src/tpmwire.c $(LDHARDEN) $(LIBS)

build/hwtpm-check: tests/tools/hwtpm-check.c $(HWTPM_SRC) src/vtpmd.h | build
	$(CC) $(ALL_CFLAGS) -o $@ tests/tools/hwtpm-check.c $(HWTPM_SRC) $(LDHARDEN) $(HWTPM_LIBS)

build/bench_%: bench/%.c $(VTPMD_LIB_SRC) src/vtpmd.h | build
	$(CC) $(ALL_CFLAGS) -o $@ $< $(VTPMD_LIB_SRC) $(LDHARDEN) $(LIBS)

build/san/test_%: tests/unit/test_%.c $(VTPMD_LIB_SRC) src/vtpmd.h | build/san
	$(CC) $(SAN_CFLAGS) -o $@ $< $(VTPMD_LIB_SRC) $(SAN_LDFLAGS) $(LIBS) -lcmocka

build build/san:
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

check: deps
	$(MAKE) all san
	$(MAKE) unit
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
