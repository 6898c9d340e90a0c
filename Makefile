# Makefile -- builds and runs reloc: the IOC (bin/relocioc), the command-line tools (bin/reloc-*), the
# simulators (bin/reloc-sim-*), unit tests, fuzzers, benchmarks and demos.
#
# Where sources go (nothing needs listing here; new files are picked up by these rules):
#   src/<tier>/<concern>/*.c         library code of one concern, all archived into libreloc.a
#   src/core/ioc/main.c              main() of the IOC                        -> bin/relocioc
#   src/<tier>/<concern>/tool_<x>.c  main() of a command-line tool            -> bin/reloc-<x>
#   sim/<x>/*.c                a simulator (one program per folder)     -> bin/reloc-sim-<x>
#   tests/unit/test_<x>.c      a cmocka unit test                       -> build/<variant>/tests/test_<x>
#   tests/fuzz/fuzz_<x>.c      a libFuzzer harness                      -> build/fuzz/fuzz_<x>
#   tests/**/test_*.py         pytest tests (real clients through pyepics, comparisons with numpy/scipy/skimage)
#   bench/bench_*.py           benchmarks run by 'make bench'; demo/demo_*.py run by 'make demo'
#
# Variants: VARIANT=release (default; programs in bin/) and VARIANT=asan (AddressSanitizer + UBSan;
# programs in build/asan/bin/). 'make test' builds both and runs every test against the asan build.

include configure/CONFIG_SITE
-include configure/CONFIG_SITE.local

PYTHON  := /usr/bin/python3
# Quiet by default, one line per step as Redis does; V=1 shows the full commands.
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '    %-6s %s\n' $(1) $(2)
endif
VARIANT ?= release
OBJDIR  := build/$(VARIANT)
BINDIR  := $(if $(filter release,$(VARIANT)),bin,$(OBJDIR)/bin)
PREFIX  ?= /usr/local

HAVE_DEPS := $(shell pkg-config --exists $(PKG_MODULES) $(TEST_PKG) 2>/dev/null && echo yes)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKG_MODULES) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKG_MODULES) 2>/dev/null)

CFLAGS  := $(STD_FLAGS) $(WARN_FLAGS) $(OPT_$(VARIANT)) -Isrc $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS := $(OPT_$(VARIANT))
LDLIBS  := $(PKG_LIBS) $(EXTRA_LIBS)

ENTRY_SRCS := src/core/ioc/main.c $(wildcard src/*/*/tool_*.c)
LIB_SRCS   := $(filter-out $(ENTRY_SRCS),$(wildcard src/*/*/*.c))
LIB_OBJS   := $(LIB_SRCS:%.c=$(OBJDIR)/%.o)
LIBRELOC   := $(OBJDIR)/libreloc.a

TOOL_SRCS  := $(wildcard src/*/*/tool_*.c)
TOOLS      := $(foreach s,$(TOOL_SRCS),$(BINDIR)/reloc-$(patsubst tool_%.c,%,$(notdir $(s))))
SIM_DIRS   := $(patsubst %/,%,$(sort $(dir $(wildcard sim/*/*.c))))
SIMS       := $(foreach d,$(SIM_DIRS),$(BINDIR)/reloc-sim-$(notdir $(d)))
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNITS      := $(UNIT_SRCS:tests/unit/%.c=$(OBJDIR)/tests/%)
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZERS    := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)

.PHONY: all asan units deps check-deps run test bench demo fuzz install clean
.DEFAULT_GOAL := all
.SECONDARY:

all: check-deps $(BINDIR)/relocioc $(TOOLS) $(SIMS)

check-deps:
ifneq ($(HAVE_DEPS),yes)
	@configure/check-deps.sh || { echo "Run 'make deps' (as root) to install them." >&2; exit 1; }
endif

deps:
	@configure/check-deps.sh --install

units: $(UNITS)

asan:
	@$(MAKE) --no-print-directory VARIANT=asan all units

# Kernels whose vector loops take square roots: without errno, sqrt is one vector instruction (no call, no branch).
$(OBJDIR)/src/kernels/xanes/xanes.o: CFLAGS += -fno-math-errno

# Registration's refinement sums run as AVX2 and AVX-512 clones besides the baseline build; without fused
# multiply-adds every clone gives the same bits as the baseline, so a result does not depend on the CPU.
$(OBJDIR)/src/kernels/registration/phasecorr.o: CFLAGS += -ffp-contract=off

# The per-element loops of array conversion and CA byte order (a camera frame is millions of elements) are
# vectorised whatever the level: -O2 alone keeps them scalar.
$(OBJDIR)/src/core/db/db_convert.o $(OBJDIR)/src/core/ca/dbr.o: CFLAGS += -ftree-vectorize -fvect-cost-model=dynamic
# The warp's per-block coordinate and weight loop (similarity registration warps a frame per probe): the same.
$(OBJDIR)/src/kernels/registration/resample.o: CFLAGS += -ftree-vectorize -fvect-cost-model=dynamic

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIBRELOC): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)$(AR) rcs $@ $^

$(BINDIR)/relocioc: $(OBJDIR)/src/core/ioc/main.o $(LIBRELOC)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

define tool_rule
$(BINDIR)/reloc-$(patsubst tool_%.c,%,$(notdir $(1))): $(OBJDIR)/$(1:.c=.o) $(LIBRELOC)
	@mkdir -p $$(dir $$@)
	$$(call say,LINK,$$@)
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach s,$(TOOL_SRCS),$(eval $(call tool_rule,$(s))))

define sim_rule
$(BINDIR)/reloc-sim-$(notdir $(1)): $(patsubst %.c,$(OBJDIR)/%.o,$(wildcard $(1)/*.c)) $(LIBRELOC)
	@mkdir -p $$(dir $$@)
	$$(call say,LINK,$$@)
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach d,$(SIM_DIRS),$(eval $(call sim_rule,$(d))))

$(OBJDIR)/tests/%: $(OBJDIR)/tests/unit/%.o $(LIBRELOC)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs $(TEST_PKG))

# Fuzzers: clang + libFuzzer + ASan/UBSan over the same sources, in their own object tree.
FUZZ_CFLAGS := $(STD_FLAGS) $(WARN_FLAGS) -O1 -g -fsanitize=fuzzer-no-link,address,undefined -Isrc $(PKG_CFLAGS)
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<
build/fuzz/%: build/fuzz/obj/tests/fuzz/%.o $(LIB_SRCS:%.c=build/fuzz/obj/%.o)
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)
fuzz: check-deps $(FUZZERS)

# The two commands of the README.
run: deps all
	cd iocBoot/iocreloc && exec ../../bin/relocioc st.cmd

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory VARIANT=asan all units
	RELOC_TOP=$(CURDIR) RELOC_BIN=$(CURDIR)/build/$(TEST_IOC_VARIANT)/bin RELOC_UNIT_DIR=$(CURDIR)/build/asan/tests \
	  $(PYTHON) -m pytest -p no:cacheprovider -q -rfE tests

bench: deps all
	@for b in bench/bench_*.py; do echo "== $$b"; RELOC_TOP=$(CURDIR) RELOC_BIN=$(CURDIR)/bin $(PYTHON) $$b || exit 1; done

demo: deps all
	@mkdir -p demo/out
	@for d in demo/demo_*.py; do echo "== $$d"; RELOC_TOP=$(CURDIR) RELOC_BIN=$(CURDIR)/bin $(PYTHON) $$d demo/out || exit 1; done

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/reloc
	install -m 755 bin/* $(DESTDIR)$(PREFIX)/bin/
	for d in db protocols iocBoot screens sim web; do [ ! -d $$d ] || cp -r $$d $(DESTDIR)$(PREFIX)/share/reloc/; done

clean:
	rm -rf build bin demo/out

# Header dependencies of the objects this variant builds (written by -MMD next to each object).
-include $(wildcard $(OBJDIR)/src/*/*/*.d $(OBJDIR)/sim/*/*.d $(OBJDIR)/tests/unit/*.d)
