# vtpmd: `make` builds, `make check` sets up and runs every test,
# `make demo` sets up and runs the main job. See README.md.

CC      ?= cc
CFLAGS  ?= -O2 -g
WERROR  ?=
PKGS     = libtpms openssl jansson libseccomp sqlite3 tss2-esys tss2-sys tss2-mu tss2-rc tss2-tctildr
# -Wno-format-truncation: cutting a message to its buffer with snprintf is
# intended wherever it happens.
WARN     = -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
           -Wimplicit-fallthrough -Wformat=2 -Wpointer-arith -Wvla -Wundef \
           -Wcast-align -Wwrite-strings -Wno-unused-parameter \
           -Wno-format-truncation
HARDEN   = -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE \
           -fstack-clash-protection -fcf-protection
LDHARDEN = -pie -Wl,-z,relro,-z,now,-z,noexecstack
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
# Each program keeps only the modules and libraries it uses: a vTPM worker
# maps no SQLite, a CLI no libtpms.
LIBS    := -Wl,--as-needed $(shell pkg-config --libs $(PKGS)) -lhttp_parser
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(WERROR) $(HARDEN) $(CFLAGS) \
             -ffunction-sections -fdata-sections $(PKG_CFLAGS) -Isrc
LDGC     = -Wl,--gc-sections

SAN_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(WERROR) -O1 -g -fno-omit-frame-pointer \
             -fsanitize=address,undefined -fno-sanitize-recover=undefined \
             $(PKG_CFLAGS) -Isrc
SAN_LDFLAGS = -fsanitize=address,undefined

# libFuzzer targets (clang): tests/fuzz/fuzz_NAME.c, corpus tests/fuzz/corpus/NAME/.
FUZZ_CC     = clang
FUZZ_BASE   = -std=gnu11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined $(PKG_CFLAGS) -Isrc
FUZZ_TARGETS = $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

# Modules: every src/*.c but the programs' own files (src/vtpmd.h,
# src/vtpmctl.h, src/ca.h … are the maps). Objects are built once per
# flavour: release (build/obj), sanitizers (build/san/obj), fuzzing.
MAINS    = src/vtpmd.c src/vtpmd_instance.c
VTPMCTL_SRC = $(wildcard src/vtpmctl*.c)
CA_SRC   = $(wildcard src/ca.c src/ca_*.c)
ATTEST_SRC = $(wildcard src/attest.c src/attest_*.c)
LIB_SRC  = $(filter-out $(MAINS) $(VTPMCTL_SRC) $(CA_SRC) $(ATTEST_SRC),$(wildcard src/*.c))
HDRS     = $(wildcard src/*.h)
OBJ      = $(LIB_SRC:src/%.c=build/obj/%.o)
SAN_OBJ  = $(LIB_SRC:src/%.c=build/san/obj/%.o)
FUZZ_OBJ = $(LIB_SRC:src/%.c=build/fuzz/obj/%.o)
# The modules as archives: a program links only the objects it needs, and
# --as-needed then drops the libraries nothing of it uses.
LIB      = build/libvtpmd.a
SAN_LIB  = build/san/libvtpmd.a
FUZZ_LIB = build/fuzz/libvtpmd.a
PROGRAMS = build/vtpmd build/vtpmd-instance build/vtpmctl $(if $(CA_SRC),build/vtpm-ca) \
           $(if $(ATTEST_SRC),build/vtpm-attest)

# Test tools: tests/tools/NAME.c, release (build/NAME) or sanitizers (build/san/NAME).
TOOLS     = $(patsubst tests/tools/%.c,build/%,$(wildcard tests/tools/*.c))
SAN_TOOLS = build/san/api-stub build/san/makecred build/san/evidence-check \
            build/san/hostattest-check
UNIT_TESTS = $(patsubst tests/unit/%.c,build/san/%,$(wildcard tests/unit/test_*.c))
BENCH_TOOLS = $(patsubst bench/%.c,build/bench_%,$(wildcard bench/*.c))

.PHONY: all san deps check unit integration e2e demo bench clean format fuzz-build fuzz-replay

all: $(PROGRAMS) $(TOOLS)
san: build/san/vtpmd build/san/vtpmd-instance $(SAN_TOOLS) $(if $(ATTEST_SRC),build/san/vtpm-attest) \
     $(if $(CA_SRC),build/san/vtpm-ca)

build/obj/%.o: src/%.c $(HDRS) | build/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/san/obj/%.o: src/%.c $(HDRS) | build/san/obj
	$(CC) $(SAN_CFLAGS) -c -o $@ $<

build/fuzz/obj/%.o: src/%.c $(HDRS) | build/fuzz/obj
	$(FUZZ_CC) $(FUZZ_BASE) -fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

$(LIB): $(OBJ)
	rm -f $@ && ar rcs $@ $^

$(SAN_LIB): $(SAN_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_LIB): $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

LINK = $(CC) $(ALL_CFLAGS) -o $@ $(filter %.o %.c,$^) $(LIB) $(LDHARDEN) $(LDGC) $(LDFLAGS) $(LIBS)
SAN_LINK = $(CC) $(SAN_CFLAGS) -o $@ $(filter %.o %.c,$^) $(SAN_LIB) $(SAN_LDFLAGS) $(LIBS)

build/vtpmd: build/obj/vtpmd.o $(LIB) | build
	$(LINK)

# The worker's executable: the instance alone, without the manager's
# libraries (host TPM, JSON, HTTP), so each vTPM starts and sits lighter.
build/vtpmd-instance: build/obj/vtpmd_instance.o $(LIB) | build
	$(LINK)

build/vtpmctl: $(VTPMCTL_SRC:src/%.c=build/obj/%.o) $(LIB) | build
	$(LINK)

build/vtpm-ca: $(CA_SRC:src/%.c=build/obj/%.o) $(LIB) | build
	$(LINK)

build/vtpm-attest: $(ATTEST_SRC:src/%.c=build/obj/%.o) $(LIB) | build
	$(LINK)

build/san/vtpmd: build/san/obj/vtpmd.o $(SAN_LIB) | build/san
	$(SAN_LINK)

build/san/vtpmd-instance: build/san/obj/vtpmd_instance.o $(SAN_LIB) | build/san
	$(SAN_LINK)

build/san/vtpm-attest: $(ATTEST_SRC:src/%.c=build/san/obj/%.o) $(SAN_LIB) | build/san
	$(SAN_LINK)

build/san/vtpm-ca: $(CA_SRC:src/%.c=build/san/obj/%.o) $(SAN_LIB) | build/san
	$(SAN_LINK)

$(TOOLS): build/%: tests/tools/%.c $(LIB) $(HDRS) | build
	$(LINK)

$(SAN_TOOLS): build/san/%: tests/tools/%.c $(SAN_LIB) $(HDRS) | build/san
	$(SAN_LINK)

build/bench_%: bench/%.c $(LIB) $(HDRS) | build
	$(LINK)

# The chain-of-trust benchmarks call vtpm-attest's modules (attest_verify_quote,
# attest_tpm_activate): its objects but attest.o (main); --gc-sections drops
# the commands that would need it.
BENCH_ATTEST_OBJ = $(patsubst src/%.c,build/obj/%.o,$(filter-out src/attest.c,$(ATTEST_SRC)))
build/bench_verify build/bench_caload: $(BENCH_ATTEST_OBJ)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB) $(HDRS) | build/fuzz
	$(FUZZ_CC) $(FUZZ_BASE) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_LIB) $(LIBS)

# Tests of vtpm-attest's parsers compile src/attest_bundle.c into themselves.
build/san/test_attest_bundle build/fuzz/fuzz_attest: src/attest_bundle.c
# vtpm-ca's records and request decoders, likewise.
build/san/test_ca_db: src/ca_db.c
build/fuzz/fuzz_ca: src/ca_parse.c

# A unit test's link-time fakes (-Wl,--wrap=SYMBOL), in WRAP_test_NAME.
WRAP_test_store = -Wl,--wrap=fdatasync -Wl,--wrap=fsync -Wl,--wrap=renameat
WRAP_test_credential = -Wl,--wrap=EVP_PKEY_generate

build/san/test_%: tests/unit/test_%.c $(SAN_LIB) $(HDRS) | build/san
	$(CC) $(SAN_CFLAGS) -o $@ $< $(SAN_LIB) $(SAN_LDFLAGS) $(WRAP_test_$*) $(LIBS) -lcmocka

build build/obj build/san build/san/obj build/fuzz build/fuzz/obj:
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

# Replays every fuzz target's corpus and regression inputs once (what
# `make check` runs).
fuzz-replay:
	@tests/fuzz/replay.sh

# A campaign: every fuzz target for FUZZ_SECONDS each (FUZZ_NAMES="data
# config" for some), with CPU time, executions, coverage and crashes per
# target (each built first); crash inputs go to tests/fuzz/regressions/NAME/.
FUZZ_SECONDS ?= 60
FUZZ_NAMES ?=
.PHONY: fuzz
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/campaign.sh $(FUZZ_NAMES)

# Static analysis (scripts/analyze.sh; `make check` runs it): cppcheck,
# clang-tidy and scan-build over the programs, the test tools and bench/,
# with the build's warnings and pkg-config flags (less the one clang lacks);
# any finding fails. Configuration: .clang-tidy, tests/cppcheck.supp and
# tests/cppcheck.cfg. scan-build compiles into build/analyze, not build/obj.
ANALYZE_SRC    = $(wildcard src/*.c tests/tools/*.c bench/*.c)
ANALYZE_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(filter-out -Wno-format-truncation,$(WARN)) \
                 $(PKG_CFLAGS) -Isrc
ANALYZE_JOBS  ?= 2
.PHONY: analyze analyze-objs hardening
analyze:
	@ANALYZE_CFLAGS='$(ANALYZE_CFLAGS)' ANALYZE_JOBS='$(ANALYZE_JOBS)' \
	    scripts/analyze.sh $(ANALYZE_SRC)

# What scan-build watches being compiled (scripts/analyze.sh runs it); -w:
# the compiler's warnings are clang-tidy's to report (clang-diagnostic-*).
analyze-objs: $(ANALYZE_SRC:%.c=build/analyze/obj/%.o)
build/analyze/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ANALYZE_CFLAGS) -w -c -o $@ $<

# Checks every program's ELF for PIE, full RELRO, a non-executable stack,
# the stack protector and FORTIFY_SOURCE (`make check` runs it).
hardening: $(PROGRAMS)
	@scripts/check-hardening.sh $(PROGRAMS)

check: deps
	$(MAKE) all san
	$(MAKE) analyze
	$(MAKE) hardening
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
	@bench/service.sh
	@bench/provision.sh
	@bench/chain.sh

# Load and soak (bench/soak.sh): SOAK_N vTPMs through the service for
# SOAK_SECONDS, then ASan and valgrind runs; tests/integration/soak.sh is
# the short version `make check` runs.
SOAK_SECONDS ?= 60
SOAK_N ?= 100
.PHONY: soak
soak: deps
	$(MAKE) all san
	@SOAK_SECONDS=$(SOAK_SECONDS) SOAK_N=$(SOAK_N) bench/soak.sh

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c tests/tools/*.c

clean:
	rm -rf build
