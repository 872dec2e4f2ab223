# SPDX-License-Identifier: Apache-2.0
# A thin wrapper around meson: `make run` and `make test` are the two set-up
# commands of a fresh Debian 12 machine (see README.md).

BUILD      ?= build
ASAN_BUILD ?= build-asan
MESON      ?= meson
PREFIX     ?= /usr/local
SUITES     ?=

.PHONY: all deps run test test-gcc test-asan install clean fuzz bench

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	CC=gcc $(MESON) setup $(BUILD) --prefix=$(PREFIX)

$(ASAN_BUILD)/build.ninja:
	CC=clang $(MESON) setup $(ASAN_BUILD) -Db_sanitize=address,undefined \
		-Db_lundef=false -Dbuildtype=debug -Dvm_tests=false

deps:
	scripts/setup-deps

# The main job: what this host can do, then serve PV guests.
run: deps all
	scripts/run

# Every suite, twice: gcc (with the vm suite), then clang with ASan + UBSan.
test: deps
	$(MAKE) test-gcc
	$(MAKE) test-asan

test-gcc: $(BUILD)/build.ninja
	ninja -C $(BUILD)
	tests/vm/prepare || echo "make: tests/vm/prepare failed (see above): the vm suite will fail"
	$(MESON) test -C $(BUILD) --print-errorlogs --no-suite vm-extra $(SUITES) || { scripts/test-summary $(BUILD) gcc; exit 1; }
	scripts/test-summary $(BUILD) gcc

test-asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(MESON) test -C $(ASAN_BUILD) --print-errorlogs --no-suite vm --no-suite vm-extra $(SUITES) \
		|| { scripts/test-summary $(ASAN_BUILD) clang-asan-ubsan; exit 1; }
	scripts/test-summary $(ASAN_BUILD) clang-asan-ubsan

install: all
	DESTDIR=$(DESTDIR) $(MESON) install -C $(BUILD) --no-rebuild

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
