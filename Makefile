# diabridge — the two commands a person needs:
#   make demo    install what is missing, build, run the demo
#   make check   install what is missing, build, run every test (also under ASan/UBSan)
# The real build is CMake; this file only strings the steps together.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
FUZZ_SECONDS ?= 20
# A fixed seed makes `make check` explore the same inputs on every clean
# clone, so CI passes or fails on the code, not on luck.  Explore with
# `make fuzz FUZZ_SEED=0 FUZZ_SECONDS=600` (0 = a new seed each run) and add
# what it finds to fuzz/corpus/ as a regression.
FUZZ_SEED ?= 1

.PHONY: all bootstrap bootstrap-test build demo check test asan-test format format-check fuzz bench bench-short clean

all: build

# What building and running need (make demo) ...
bootstrap:
	@scripts/bootstrap.sh

# ... and what the tests need besides: test tools and the real servers.
bootstrap-test:
	@scripts/bootstrap.sh --test

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DDIA_WERROR=ON

build: bootstrap $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	$(BUILD)/diabridge demo --speed 600

test: bootstrap-test build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DDIA_WERROR=ON -DDIA_SANITIZE=ON

asan-test: bootstrap-test $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS)

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find src sim tests fuzz bench -name '*.[ch]')

format:
	clang-format -i $(FORMAT_FILES)

format-check: bootstrap-test
	@clang-format --dry-run -Werror $(FORMAT_FILES) && echo "format: ok"

$(FUZZ_BUILD)/CMakeCache.txt:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DDIA_FUZZ=ON

# Build every fuzz target; run each on its seed corpus (every file there is
# a regression input), then let it mutate for FUZZ_SECONDS.
fuzz: bootstrap-test $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@set -e; for t in $(FUZZ_BUILD)/fuzz_*; do \
	  [ -x "$$t" ] || continue; name=$$(basename $$t); \
	  corpus=fuzz/corpus/$${name#fuzz_}; mkdir -p $(FUZZ_BUILD)/corpus-$$name; \
	  echo "fuzz: $$name for $(FUZZ_SECONDS)s, seed $(FUZZ_SEED)"; \
	  $$t -seed=$(FUZZ_SEED) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 \
	    -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus-$$name \
	    $$( [ -d $$corpus ] && echo $$corpus ) >$(FUZZ_BUILD)/$$name.log 2>&1 \
	    || { tail -40 $(FUZZ_BUILD)/$$name.log; \
	         echo "fuzz: $$name failed; reproduce with $$t $(FUZZ_BUILD)/crash-*"; exit 1; }; \
	done

# `make check` is what CI runs: warnings are errors, every test runs twice
# (plain and under sanitizers), formatting is checked, fuzzers run briefly.
# The benchmark suite in its short mode: proves it still runs; never judges numbers.
bench-short: bootstrap-test build
	bench/run --short $(BUILD)

check: format-check test asan-test fuzz bench-short
	@echo "check: all passed"

# The full benchmark suite: table on stdout, bench/results/latest.json.
bench: bootstrap-test build
	bench/run $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
