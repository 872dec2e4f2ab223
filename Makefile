# SPDX-License-Identifier: Apache-2.0
# A thin wrapper around meson: `make run` and `make test` are the two set-up
# commands of a fresh Debian 12 machine (see README.md).
#   make run | test | test-gcc | test-asan | test-tsan | conformance | install | clean
#   make fuzz [FUZZ_S=60] [FUZZ_TARGETS="fuzz_proto ..."]: every libFuzzer
#     target for FUZZ_S seconds each (clang build), coverage and crashes

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
MESON      ?= meson
PREFIX     ?= /usr/local
SUITES     ?=
FUZZ_S     ?= 60
FUZZ_TARGETS ?=

.PHONY: all deps run test test-gcc test-asan test-tsan conformance install clean fuzz bench

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
	$(MESON) test -C $(BUILD) --print-errorlogs --no-suite vm-extra --no-suite conformance-extra $(SUITES) || { scripts/test-summary $(BUILD) gcc; exit 1; }
	scripts/test-summary $(BUILD) gcc

test-asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(MESON) test -C $(ASAN_BUILD) --print-errorlogs --no-suite vm --no-suite vm-extra --no-suite conformance-extra $(SUITES) \
		|| { scripts/test-summary $(ASAN_BUILD) clang-asan-ubsan; exit 1; }
	scripts/test-summary $(ASAN_BUILD) clang-asan-ubsan

# The guest ICD under ThreadSanitizer: the threaded PV programs (user
# events set by other threads, callbacks that enqueue, waits from several
# threads) against the gcc build's server; ~4 min, not part of make test.
$(TSAN_BUILD)/build.ninja:
	CC=clang $(MESON) setup $(TSAN_BUILD) -Db_sanitize=thread -Db_lundef=false \
		-Dbuildtype=debug -Dvm_tests=false

test-tsan: deps $(BUILD)/build.ninja $(TSAN_BUILD)/build.ninja
	ninja -C $(BUILD) gpupass-pvd
	ninja -C $(TSAN_BUILD) libgpupass-icd.so tests/pv/pv_gates tests/pv/pv_wait \
		tests/pv/pv_icd_wait tests/pv/pv_threads tests/pv/pv_nonblock
	/usr/bin/python3 tests/pv/pvtsan.py $(BUILD) $(TSAN_BUILD)

# All 710 of piglit's OpenCL tests, natively and through PV (~30 min);
# make test runs a part of them (suite conformance).
conformance: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)
	$(MESON) test -C $(BUILD) --print-errorlogs --suite conformance-extra

# Every libFuzzer target (clang build, libraries instrumented) for FUZZ_S
# seconds each, one after the other, from its seed corpus fuzz/corpus/NAME:
# prints each one's final coverage, features, corpus size and any crash.
# Logs, new inputs and crash artifacts go to $(ASAN_BUILD)/fuzz-out/NAME/.
# FUZZ_TARGETS="fuzz_proto fuzz_stream" runs only those.
fuzz: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		fuzz/run-fuzz --seconds $(FUZZ_S) --out $(ASAN_BUILD)/fuzz-out \
		--list $(ASAN_BUILD)/fuzz/targets $(FUZZ_TARGETS)

install: all
	DESTDIR=$(DESTDIR) $(MESON) install -C $(BUILD) --no-rebuild

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
