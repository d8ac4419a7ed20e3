# vtpmd: `make` builds, `make check` sets up and runs every test,
# `make demo` sets up and runs the main job. See README.md.

CC      ?= cc
CFLAGS  ?= -O2 -g
WERROR  ?=
PKGS     = libtpms openssl jansson libseccomp sqlite3 tss2-esys tss2-sys tss2-mu tss2-rc tss2-tctildr \
           libsystemd
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

# The tree (docs/architecture.md): one folder per program and shared layer
# under src/, each building one archive of all its files but main.c, the
# program's entry. A program links its main.o and the archives of the
# folders it may use, in dependency order (users before what they use);
# tests, tools and benchmarks link archives too. Objects are built once per
# flavour: release (build/obj), sanitizers (build/san/obj), fuzzing
# (build/fuzz/obj).
LAYERS   = manager hwtpm ca attest vtpmctl instance tpm common
HDRS     = $(wildcard src/*/*.h)
lib_src  = $(filter-out src/$(1)/main.c,$(wildcard src/$(1)/*.c))
ALL_SRC  = $(wildcard src/*/*.c)
MAINS    = $(wildcard src/*/main.c)
OBJ      = $(ALL_SRC:src/%.c=build/obj/%.o)
SAN_OBJ  = $(ALL_SRC:src/%.c=build/san/obj/%.o)
FUZZ_OBJ = $(filter-out $(MAINS:src/%.c=build/fuzz/obj/%.o),$(ALL_SRC:src/%.c=build/fuzz/obj/%.o))
# build/lib/libNAME.a, build/san/lib/libNAME.a, build/fuzz/lib/libNAME.a
libs     = $(foreach l,$(2),$(1)/lib/lib$(l).a)
REL_ALL  = $(call libs,build,$(LAYERS))
SAN_ALL  = $(call libs,build/san,$(LAYERS))
FUZZ_ALL = $(call libs,build/fuzz,$(LAYERS))

# What each program's main may reach (the allowed arrows of the tree).
USES_vtpmd          = manager hwtpm instance tpm common
USES_vtpmd-instance = instance common
USES_vtpmctl        = vtpmctl tpm common
USES_vtpm-ca        = ca tpm common
USES_vtpm-attest    = attest tpm common
MAIN_vtpmd          = manager
MAIN_vtpmd-instance = instance
MAIN_vtpmctl        = vtpmctl
MAIN_vtpm-ca        = ca
MAIN_vtpm-attest    = attest
PROGRAM_NAMES = vtpmd vtpmd-instance vtpmctl vtpm-ca vtpm-attest
PROGRAMS = $(PROGRAM_NAMES:%=build/%)

# Test tools: tests/tools/NAME.c, release (build/NAME) or sanitizers (build/san/NAME).
TOOLS     = $(patsubst tests/tools/%.c,build/%,$(wildcard tests/tools/*.c))
# LD_PRELOAD shims for tests: tests/tools/preload/NAME.c, build/NAME.so.
PRELOADS  = $(patsubst tests/tools/preload/%.c,build/%.so,$(wildcard tests/tools/preload/*.c))
SAN_TOOLS = build/san/api-stub build/san/makecred build/san/evidence-check \
            build/san/hostattest-check
UNIT_TESTS = $(patsubst tests/unit/%.c,build/san/%,$(wildcard tests/unit/test_*.c))
BENCH_TOOLS = $(patsubst bench/%.c,build/bench_%,$(wildcard bench/*.c))

# Where `make install` puts things (DESTDIR=DIR stages the tree under DIR).
# vtpmd finds vtpmd-instance in LIBEXECDIR/vtpmd, compiled in from these
# (src/manager/manager.c, manager_find_worker_exe), so build with the
# PREFIX you install with; build/install-paths records them and rebuilds
# manager.o when they change.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
LIBEXECDIR  ?= $(PREFIX)/libexec
DATADIR     ?= $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
DOCDIR      ?= $(DATADIR)/doc/vtpmd
SYSCONFDIR  ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
SYSTEMDUNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
# vtpmd-instance's folder seen from SBINDIR (a relative path when LIBEXECDIR
# and SBINDIR share PREFIX, so that a tree staged under DESTDIR finds its own).
LIBEXEC_FROM_SBIN = $(if $(and $(filter $(PREFIX)/%,$(LIBEXECDIR)),$(filter $(PREFIX)/sbin,$(SBINDIR))),../$(patsubst $(PREFIX)/%,%,$(LIBEXECDIR))/vtpmd,$(LIBEXECDIR)/vtpmd)
PATH_DEFS = -DVTPMD_LIBEXECDIR='"$(LIBEXECDIR)/vtpmd"' \
            -DVTPMD_LIBEXEC_FROM_SBIN='"$(LIBEXEC_FROM_SBIN)"'

.PHONY: all san deps check unit integration e2e demo bench clean format fuzz-build fuzz-replay
.PHONY: install uninstall deb man-lint programs FORCE

all: $(PROGRAMS) $(TOOLS) $(PRELOADS)
san: $(PROGRAM_NAMES:%=build/san/%) $(SAN_TOOLS)

# -MMD -MP: each object records the headers it read (build/…/NAME.d).
build/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -MMD -MP -c -o $@ $<

build/san/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(SAN_CFLAGS) $(CPPFLAGS) -MMD -MP -c -o $@ $<

build/fuzz/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_BASE) $(CPPFLAGS) -fsanitize=fuzzer-no-link,address,undefined -MMD -MP \
	    -c -o $@ $<
-include $(OBJ:.o=.d) $(SAN_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d)

# The install paths compiled into manager.c: the file changes (and the
# objects that use it rebuild) only when they do.
build/install-paths: FORCE
	@mkdir -p $(@D)
	@echo '$(LIBEXECDIR)/vtpmd $(LIBEXEC_FROM_SBIN)' | cmp -s - $@ || \
	    echo '$(LIBEXECDIR)/vtpmd $(LIBEXEC_FROM_SBIN)' > $@
build/obj/manager/manager.o build/san/obj/manager/manager.o \
build/fuzz/obj/manager/manager.o: build/install-paths
build/obj/manager/manager.o build/san/obj/manager/manager.o \
build/fuzz/obj/manager/manager.o: CPPFLAGS += $(PATH_DEFS)

# One archive per folder and flavour.
define layer_rules
build/lib/lib$(1).a: $(patsubst src/%.c,build/obj/%.o,$(call lib_src,$(1)))
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^
build/san/lib/lib$(1).a: $(patsubst src/%.c,build/san/obj/%.o,$(call lib_src,$(1)))
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^
build/fuzz/lib/lib$(1).a: $(patsubst src/%.c,build/fuzz/obj/%.o,$(call lib_src,$(1)))
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach l,$(LAYERS),$(eval $(call layer_rules,$(l))))

# A program: its main.o and the archives it may use, and only those.
define program_rules
build/$(1): build/obj/$(MAIN_$(1))/main.o $(call libs,build,$(USES_$(1)))
	@mkdir -p $$(@D)
	$$(CC) $$(ALL_CFLAGS) -o $$@ $$^ $$(LDHARDEN) $$(LDGC) $$(LDFLAGS) $$(LIBS)
build/san/$(1): build/san/obj/$(MAIN_$(1))/main.o $(call libs,build/san,$(USES_$(1)))
	@mkdir -p $$(@D)
	$$(CC) $$(SAN_CFLAGS) -o $$@ $$^ $$(SAN_LDFLAGS) $$(LIBS)
endef
$(foreach p,$(PROGRAM_NAMES),$(eval $(call program_rules,$(p))))

LINK = $(CC) $(ALL_CFLAGS) -o $@ $(filter %.o %.c,$^) $(REL_ALL) $(LDHARDEN) $(LDGC) $(LDFLAGS) $(LIBS)
SAN_LINK = $(CC) $(SAN_CFLAGS) -o $@ $(filter %.o %.c,$^) $(SAN_ALL) $(SAN_LDFLAGS) $(LIBS)

$(TOOLS): build/%: tests/tools/%.c $(REL_ALL) $(HDRS)
	@mkdir -p $(@D)
	$(LINK)

$(PRELOADS): build/%.so: tests/tools/preload/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -shared -o $@ $< $(LDFLAGS) -ldl

$(SAN_TOOLS): build/san/%: tests/tools/%.c $(SAN_ALL) $(HDRS)
	@mkdir -p $(@D)
	$(SAN_LINK)

build/bench_%: bench/%.c $(REL_ALL) $(HDRS)
	@mkdir -p $(@D)
	$(LINK)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_ALL) $(HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_BASE) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_ALL) $(LIBS)

# A unit test's link-time fakes (-Wl,--wrap=SYMBOL), in WRAP_test_NAME.
WRAP_test_store = -Wl,--wrap=fdatasync -Wl,--wrap=fsync -Wl,--wrap=renameat
WRAP_test_credential = -Wl,--wrap=EVP_PKEY_generate
WRAP_test_ca_parent = -Wl,--wrap=ca_random
WRAP_test_manager = -Wl,--wrap=posix_spawn -Wl,--wrap=policy_current_cached \
                    -Wl,--wrap=policy_find -Wl,--wrap=hwtpm_unseal -Wl,--wrap=hwtpm_sealed_name \
                    -Wl,--wrap=hwtpm_flush_pending -Wl,--wrap=hwtpm_available \
                    -Wl,--wrap=realloc -Wl,--wrap=fresh_check
WRAP_test_instance = -Wl,--wrap=poll -Wl,--wrap=mono_ms -Wl,--wrap=engine_process
WRAP_test_budget = -Wl,--wrap=mono_ms -Wl,--wrap=kill
WRAP_test_policy = -Wl,--wrap=hwtpm_pcr_read -Wl,--wrap=hwtpm_recover
WRAP_test_httpc = -Wl,--wrap=realloc
WRAP_test_workerlog = -Wl,--wrap=mono_ms
WRAP_test_cacheck = -Wl,--wrap=guesttpm_open -Wl,--wrap=guesttpm_close \
                    -Wl,--wrap=guesttpm_create_ek -Wl,--wrap=guesttpm_write_ek_cert \
                    -Wl,--wrap=guesttpm_write_chain -Wl,--wrap=hwtpm_sealed_public \
                    -Wl,--wrap=hwtpm_certify_sealed -Wl,--wrap=hwtpm_quote \
                    -Wl,--wrap=policy_approved_now \
                    -Wl,--wrap=caclient_post -Wl,--wrap=caclient_step \
                    -Wl,--wrap=caclient_result -Wl,--wrap=caclient_free

build/san/test_%: tests/unit/test_%.c $(SAN_ALL) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(SAN_CFLAGS) -o $@ $< $(SAN_ALL) $(SAN_LDFLAGS) $(WRAP_test_$*) $(LIBS) -lcmocka

# Install (README.md, "Install"): the programs, vtpmd-instance under
# LIBEXECDIR/vtpmd, man pages, systemd units, bash completion, the example
# configuration and the documentation, under DESTDIR. vtpmd.conf goes to
# SYSCONFDIR/vtpmd only where none is: an administrator's is never replaced.
MAN_PAGES = $(wildcard man/*.[158])
DOCS      = README.md $(wildcard docs/*.md)
INSTALL  ?= install
UNIT_PATHS = -e 's|/usr/sbin/|$(SBINDIR)/|g' -e 's|/etc/vtpmd/|$(SYSCONFDIR)/vtpmd/|g' \
             -e 's|/etc/vtpm-ca/|$(SYSCONFDIR)/vtpm-ca/|g' \
             -e 's|/usr/share/doc/vtpmd/|$(DOCDIR)/|g'

# The programs alone (what the Debian package builds).
programs: $(PROGRAMS)

install: $(PROGRAMS)
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR)/vtpmd
	$(INSTALL) -m 0755 build/vtpmd build/vtpm-ca $(DESTDIR)$(SBINDIR)/
	$(INSTALL) -m 0755 build/vtpmctl build/vtpm-attest $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 0755 build/vtpmd-instance $(DESTDIR)$(LIBEXECDIR)/vtpmd/
	for page in $(MAN_PAGES); do \
	    sec=$${page##*.}; $(INSTALL) -d $(DESTDIR)$(MANDIR)/man$$sec && \
	    $(INSTALL) -m 0644 $$page $(DESTDIR)$(MANDIR)/man$$sec/ || exit 1; \
	done
	$(INSTALL) -d $(DESTDIR)$(SYSTEMDUNITDIR)
	for unit in vtpmd.service vtpm-ca.service; do \
	    sed $(UNIT_PATHS) contrib/$$unit > $(DESTDIR)$(SYSTEMDUNITDIR)/$$unit && \
	    chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$unit || exit 1; \
	done
	$(INSTALL) -d $(DESTDIR)$(BASHCOMPDIR)
	$(INSTALL) -m 0644 contrib/vtpmctl.bash-completion $(DESTDIR)$(BASHCOMPDIR)/vtpmctl
	$(INSTALL) -d $(DESTDIR)$(DOCDIR)/examples
	$(INSTALL) -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 0644 contrib/vtpmd.conf contrib/vtpm-ca-serve.json $(DESTDIR)$(DOCDIR)/examples/
	$(INSTALL) -d $(DESTDIR)$(SYSCONFDIR)/vtpmd
	[ -e $(DESTDIR)$(SYSCONFDIR)/vtpmd/vtpmd.conf ] || \
	    $(INSTALL) -m 0644 contrib/vtpmd.conf $(DESTDIR)$(SYSCONFDIR)/vtpmd/vtpmd.conf

# Removes what install put there; vtpmd.conf only while it is the example
# unchanged. State (/var/lib/vtpmd) is never touched.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/vtpmd $(DESTDIR)$(SBINDIR)/vtpm-ca
	rm -f $(DESTDIR)$(BINDIR)/vtpmctl $(DESTDIR)$(BINDIR)/vtpm-attest
	rm -f $(DESTDIR)$(LIBEXECDIR)/vtpmd/vtpmd-instance
	-rmdir $(DESTDIR)$(LIBEXECDIR)/vtpmd
	for page in $(MAN_PAGES); do \
	    rm -f $(DESTDIR)$(MANDIR)/man$${page##*.}/$${page#man/}; done
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/vtpmd.service $(DESTDIR)$(SYSTEMDUNITDIR)/vtpm-ca.service
	rm -f $(DESTDIR)$(BASHCOMPDIR)/vtpmctl
	rm -rf $(DESTDIR)$(DOCDIR)
	if cmp -s contrib/vtpmd.conf $(DESTDIR)$(SYSCONFDIR)/vtpmd/vtpmd.conf; then \
	    rm -f $(DESTDIR)$(SYSCONFDIR)/vtpmd/vtpmd.conf; \
	    rmdir $(DESTDIR)$(SYSCONFDIR)/vtpmd 2>/dev/null || true; fi

# The Debian packages (debian/), from this tree and its build: build/deb/*.deb.
# Objects already built are reused (manager.o rebuilds for PREFIX=/usr);
# dpkg-checkbuilddeps says which build dependencies are missing.
deb:
	dpkg-checkbuilddeps
	rm -rf build/deb && mkdir -p build/deb
	debian/rules binary
	dh_clean
	@ls build/deb/*.deb

# mandoc -Tlint on every page (make check); any message fails.
man-lint:
	@scripts/man-lint.sh $(MAN_PAGES)

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
ANALYZE_SRC    = $(wildcard src/*/*.c tests/tools/*.c tests/tools/preload/*.c bench/*.c)
ANALYZE_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(filter-out -Wno-format-truncation,$(WARN)) \
                 $(PKG_CFLAGS) -Isrc
ANALYZE_JOBS  ?= 2
.PHONY: analyze analyze-objs hardening layers
analyze:
	@ANALYZE_CFLAGS='$(ANALYZE_CFLAGS)' ANALYZE_JOBS='$(ANALYZE_JOBS)' \
	    scripts/analyze.sh $(ANALYZE_SRC)

# What scan-build watches being compiled (scripts/analyze.sh runs it); -w:
# the compiler's warnings are clang-tidy's to report (clang-diagnostic-*).
analyze-objs: $(ANALYZE_SRC:%.c=build/analyze/obj/%.o)
build/analyze/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ANALYZE_CFLAGS) -w -c -o $@ $<

# Checks the tree's shape (scripts/check-layers.sh, docs/architecture.md):
# includes and calls follow the allowed arrows between folders, no circles.
layers: $(PROGRAMS)
	@scripts/check-layers.sh

# Checks every program's ELF for PIE, full RELRO, a non-executable stack,
# the stack protector, FORTIFY_SOURCE and the libraries it loads (`make
# check` runs it).
hardening: $(PROGRAMS)
	@scripts/check-hardening.sh $(PROGRAMS)

check: deps
	$(MAKE) all san
	$(MAKE) man-lint
	$(MAKE) layers
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
	@bench/fresh.sh
	@bench/commit-flood.sh

# Load and soak (bench/soak.sh): SOAK_N vTPMs through the service for
# SOAK_SECONDS, then ASan and valgrind runs; tests/integration/soak.sh is
# the short version `make check` runs.
SOAK_SECONDS ?= 60
SOAK_N ?= 100
.PHONY: soak
soak: deps
	$(MAKE) all san
	@SOAK_SECONDS=$(SOAK_SECONDS) SOAK_N=$(SOAK_N) bench/soak.sh

# Freshness under 1,000 SIGKILLs of workers and vtpmd during a stream of
# guest NV writes (tests/integration/freshness-crash.sh runs 30 in make check).
FRESH_KILLS ?= 1000
.PHONY: soak-fresh
soak-fresh: deps
	$(MAKE) all san
	@FRESH_KILLS=$(FRESH_KILLS) bash tests/integration/freshness-crash.sh

format:
	clang-format -i src/*/*.c src/*/*.h tests/unit/*.c tests/tools/*.c \
	    tests/tools/preload/*.c

clean:
	rm -rf build
