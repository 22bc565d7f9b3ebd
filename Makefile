# regpress — see README.md. `make` builds ./regpress; `make test` runs every test; `make demo` shows it.
PREFIX  ?= /usr/local
CC      ?= cc
CFLAGS  ?= -O2 -g
BUILD   ?= build
RP_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 -MMD -MP
LDLIBS  = -lssl -lcrypto -larchive -ljansson -lzstd -ldeflate -lpthread

# The dependency rule (README "Design"), enforced by the include path each module compiles with:
# layout/ sees only itself; builder/, media/ and serve/ see layout/ and themselves; cmd/ sees all.
INC_layout  = -Ilayout
INC_builder = -Ilayout -Ibuilder
INC_media   = -Ilayout -Imedia
INC_serve   = -Ilayout -Iserve
INC_cmd     = -Ilayout -Ibuilder -Imedia -Iserve -Icmd
INC_ALL     = $(INC_cmd)

LAYOUT_SRCS  = $(wildcard layout/*.c)
BUILDER_SRCS = $(wildcard builder/*.c)
MEDIA_SRCS   = $(wildcard media/*.c)
SERVE_SRCS   = $(wildcard serve/*.c)
CMD_SRCS     = $(wildcard cmd/*.c)
SRCS = $(LAYOUT_SRCS) $(BUILDER_SRCS) $(MEDIA_SRCS) $(SERVE_SRCS) $(CMD_SRCS)
OBJS = $(SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/regpress_lua.o
BIN  = $(if $(filter build,$(BUILD)),regpress,$(BUILD)/regpress)

# Debian package names `make deps` installs when missing (runtime, build and test).
DEPS = build-essential clang pkg-config libssl-dev libarchive-dev libjansson-dev libzstd-dev \
       zlib1g-dev libdeflate-dev libcmocka-dev lighttpd lighttpd-mod-openssl lighttpd-modules-lua \
       skopeo umoci containerd docker.io podman systemd haproxy curl jq openssl xorriso \
       signify-openbsd python3 wrk docker-registry time valgrind zstd xz-utils

.PHONY: all test test-full test-load unit e2e asan fuzz fuzz-smoke fuzz-build demo deps install clean
all: $(BIN)

$(BIN): $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(RP_CFLAGS) $(INC_$(firstword $(subst /, ,$<))) $(CFLAGS) -c -o $@ $<

# The mod_magnet script is compiled into the binary so `regpress serve` needs no data files.
$(BUILD)/gen/regpress_lua.c: serve/regpress.lua
	@mkdir -p $(dir $@)
	{ echo '/* generated from serve/regpress.lua */'; \
	  echo 'const unsigned char serve_lua_script[] = {'; \
	  od -An -v -tu1 $< | sed 's/\([0-9][0-9]*\)/\1,/g'; \
	  echo '};'; echo 'const unsigned long serve_lua_script_len = sizeof(serve_lua_script);'; } > $@

$(BUILD)/gen/regpress_lua.o: $(BUILD)/gen/regpress_lua.c
	$(CC) $(CFLAGS) -c -o $@ $<

# Unit tests: tests/unit/test_<module>.c, each linked with its own module only (layout/ is the base).
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
LAYOUT_OBJS  = $(LAYOUT_SRCS:%.c=$(BUILD)/%.o)
BUILDER_OBJS = $(BUILDER_SRCS:%.c=$(BUILD)/%.o)
MEDIA_OBJS   = $(MEDIA_SRCS:%.c=$(BUILD)/%.o)
SERVE_OBJS   = $(SERVE_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/regpress_lua.o
$(BUILD)/tests/test_layout_%: tests/unit/test_layout_%.c $(LAYOUT_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(RP_CFLAGS) $(INC_layout) -Itests/unit $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka
$(BUILD)/tests/test_builder_%: tests/unit/test_builder_%.c $(BUILDER_OBJS) $(LAYOUT_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(RP_CFLAGS) $(INC_builder) -Itests/unit $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka
$(BUILD)/tests/test_media_%: tests/unit/test_media_%.c $(MEDIA_OBJS) $(LAYOUT_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(RP_CFLAGS) $(INC_media) -Itests/unit $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka
$(BUILD)/tests/test_serve_%: tests/unit/test_serve_%.c $(SERVE_OBJS) $(LAYOUT_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(RP_CFLAGS) $(INC_serve) -Itests/unit $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)
e2e: $(BIN)

# `make test`: unit and end-to-end tests with the normal build and under ASan+UBSan+LSan, and the
# fuzz smoke, as parallel jobs (JOBS at a time, default the number of CPUs: `make test JOBS=1`).
JOBS ?=
TEST_ARGS = --bin "$(CURDIR)/regpress" --unit-dir "$(BUILD)/tests" \
	--asan-bin "$(CURDIR)/build-asan/regpress" --asan-unit-dir "build-asan/tests" \
	--fuzz-dir build-fuzz/fuzz $(if $(JOBS),--jobs $(JOBS))
test: $(BIN) $(UNIT_BINS)
	$(MAKE) asan fuzz-build
	tests/run.sh $(TEST_ARGS)

# `make test-full`: what `make test` runs, plus what is too slow for it (README "Tests").
test-full: $(BIN) $(UNIT_BINS)
	$(MAKE) asan fuzz-build
	E2E_FULL=1 FUZZ_SMOKE_SECONDS=60 tests/run.sh $(TEST_ARGS)

# `make test-load`: `make test` while two CPU-bound processes run beside it (tests/load-check.sh):
# the suite must pass on a busy machine.
test-load: $(BIN) $(UNIT_BINS)
	$(MAKE) asan fuzz-build
	tests/load-check.sh tests/run.sh $(TEST_ARGS)

# Fuzzing: libFuzzer targets tests/fuzz/fuzz_*.c (clang, ASan+UBSan) in build-fuzz/fuzz/; `make
# fuzz` runs each for FUZZ_SECONDS, `make fuzz-smoke` for 20 s (tests/fuzz/run.sh), as `make test`
# does (tests/run.sh --fuzz-dir).
FUZZ_SRCS = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS = $(FUZZ_SRCS:tests/fuzz/%.c=build-fuzz/fuzz/%)
FUZZ_SECONDS ?= 300
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(BUILDER_OBJS) $(MEDIA_OBJS) $(LAYOUT_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(RP_CFLAGS) $(INC_ALL) $(CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.c %.o,$^) $(LDLIBS)
fuzz-build:
	$(MAKE) BUILD=build-fuzz CC=clang \
		CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		$(FUZZ_BINS)
fuzz: fuzz-build
	tests/fuzz/run.sh build-fuzz/fuzz $(FUZZ_SECONDS)
fuzz-smoke: fuzz-build
	tests/fuzz/run.sh build-fuzz/fuzz 20

asan:
	$(MAKE) BUILD=build-asan CC=clang \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		build-asan/regpress $(UNIT_SRCS:tests/unit/%.c=build-asan/tests/%)

# `make bench`: regpress against skopeo (build) and registry:2 (serve) on a ~700 MB image made from
# files on this machine, in the same run; prints ratios, targets, PASS/MISS (tests/bench/run.sh:
# BENCH_RUNS, BENCH_DIR, BENCH_JSON, BENCH_QUICK=1 for the small CI variant).
.PHONY: bench
bench: $(BIN)
	tests/bench/run.sh "$(CURDIR)/$(BIN)"

# A fresh machine: install what is missing first, then build, then run the demo.
demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory $(BIN)
	examples/demo.sh "$(CURDIR)/$(BIN)"

deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "all dependencies present"; fi

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/regpress

clean:
	rm -rf build build-asan build-fuzz regpress

-include $(OBJS:.o=.d) $(FUZZ_SRCS:tests/fuzz/%.c=build-fuzz/fuzz/%.d)
