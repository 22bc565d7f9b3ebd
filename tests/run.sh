#!/usr/bin/env bash
# Runs every test: unit binaries, then the end-to-end scripts, with the normal build and again with
# the ASan+UBSan+LSan build. Prints what ran, and last exactly one line "N passed, N failed".
#
#   tests/run.sh --bin BIN --unit-dir DIR [--asan-bin BIN --asan-unit-dir DIR] [--fuzz-dir DIR]
#                [--only PATTERN]
#
# --only runs the e2e scripts whose names match the shell PATTERN (e.g. '10-*'), for development.
# --fuzz-dir runs each libFuzzer target there (make fuzz-build) for FUZZ_SMOKE_SECONDS (default
# 20) after the plain pass: that they build, run and find nothing in their seeds' neighbourhood.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BIN='' UNIT_DIR='' ASAN_BIN='' ASAN_UNIT_DIR='' FUZZ_DIR='' ONLY='*'
FUZZ_SMOKE_SECONDS=${FUZZ_SMOKE_SECONDS:-20}

# e2e scripts that also run under ASan: the cheap ones (all of them so far: 10 ~30 s, 20 ~15 s,
# 30 ~60 s). Others are listed as skipped, by name.
# 35 ~25 s, 40 ~13 s, 50 ~50 s (a 256 MiB bomb), 55 ~70 s (every third crash point); not 58
# (valgrind runs the plain build).
ASAN_E2E=('10-*' '20-*' '30-*' '35-*' '40-*' '42-*' '45-*' '50-*' '55-*' '60-*')
# Per-script limit, and a budget for the whole run (it must stay under 15 minutes on 2 cores):
# a script that would start past the budget is reported as a failure, not skipped quietly.
E2E_TIMEOUT=${E2E_TIMEOUT:-300}
RUN_BUDGET=${RUN_BUDGET:-840}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-120}

PASSED=0
FAILED=0
SUMMARY=()

usage() {
	echo "usage: $0 --bin BIN --unit-dir DIR [--asan-bin BIN --asan-unit-dir DIR] [--fuzz-dir DIR]" \
		"[--only PATTERN]" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--bin) BIN=${2:?}; shift 2 ;;
	--unit-dir) UNIT_DIR=${2:?}; shift 2 ;;
	--asan-bin) ASAN_BIN=${2:?}; shift 2 ;;
	--asan-unit-dir) ASAN_UNIT_DIR=${2:?}; shift 2 ;;
	--fuzz-dir) FUZZ_DIR=${2:?}; shift 2 ;;
	--only) ONLY=${2:?}; shift 2 ;;
	*) usage ;;
	esac
done
if [ -z "$BIN" ] || [ -z "$UNIT_DIR" ]; then usage; fi

# record KIND NAME PASSED FAILED: add to the totals and to the summary table.
record() {
	PASSED=$((PASSED + $3))
	FAILED=$((FAILED + $4))
	SUMMARY+=("$(printf '%-5s %-40s %3d passed, %3d failed' "$1" "$2" "$3" "$4")")
}

# run_unit_dir LABEL DIR: every unit test binary: one per tests/unit/test_*.c (a missing one fails),
# plus any other executable test_* in DIR. A binary counts as its cmocka totals; one that crashes or
# exits nonzero without reporting a failure counts one more failure.
run_unit_dir() {
	local label=$1 dir=$2 src t name n=0
	local -A seen=()
	for src in "$HERE"/unit/test_*.c; do
		[ -f "$src" ] || continue
		name=$(basename "$src" .c)
		seen[$name]=1
		n=$((n + 1))
		if [ -x "$dir/$name" ]; then
			run_unit "$label" "$dir/$name"
		else
			echo "FAIL - $label unit: $dir/$name was not built (from $src)"
			record "$label" "unit $name (not built)" 0 1
		fi
	done
	for t in "$dir"/test_*; do
		if [ ! -f "$t" ] || [ ! -x "$t" ] || [ -n "${seen[$(basename "$t")]:-}" ]; then continue; fi
		n=$((n + 1))
		run_unit "$label" "$t"
	done
	[ "$n" -gt 0 ] || echo "# $label: no unit tests (no tests/unit/test_*.c, nothing in $dir)"
}

# run_unit LABEL BINARY
run_unit() {
	local label=$1 t=$2 out rc=0 p f
	echo "== $label unit: $t"
	out=$(mktemp)
	timeout -k 5 "$UNIT_TIMEOUT" "$t" >"$out" 2>&1 || rc=$?
	cat "$out"
	# cmocka: "[  PASSED  ] 3 test(s)." and "[  FAILED  ] 1 test(s), listed below:"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
	p=${p:-0} f=${f:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL - $t exited with status $rc"
		f=1
	elif [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		p=1 # not cmocka output; passed by exit status
	fi
	record "$label" "unit $(basename "$t")" "$p" "$f"
	rm -f "$out"
}

# matches NAME PATTERN...: NAME matches one of the shell patterns.
matches() {
	local name=$1 pat
	shift
	for pat in "$@"; do
		# shellcheck disable=SC2053 # a pattern on purpose
		[[ $name == $pat ]] && return 0
	done
	return 1
}

# run_e2e LABEL BIN SCRIPT: run one script with REGPRESS=BIN; parse its "N passed, N failed" line.
run_e2e() {
	local label=$1 bin=$2 s=$3 name out rc p f line start limit
	name=$(basename "$s")
	limit=$((RUN_BUDGET - SECONDS))
	if [ "$limit" -lt 20 ]; then
		echo "FAIL - $label e2e: $name not run: the run's ${RUN_BUDGET}s budget is spent"
		record "$label" "e2e $name (no time left)" 0 1
		return
	fi
	[ "$limit" -le "$E2E_TIMEOUT" ] || limit=$E2E_TIMEOUT
	echo "== $label e2e: $name (REGPRESS=$bin, limit ${limit}s)"
	out=$(mktemp)
	start=$SECONDS
	rc=0
	REGPRESS=$bin timeout -k 10 "$limit" bash "$s" 2>&1 | tee "$out" || rc=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1 || true)
	if [ -n "$line" ]; then
		p=${line%% passed*}
		f=${line#*passed, }
		f=${f%% failed}
	else
		p=0 f=0
	fi
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "FAIL - $name timed out after ${limit}s"
		f=$((f + 1))
	elif [ -z "$line" ]; then
		echo "FAIL - $name ended (status $rc) without its 'N passed, N failed' line"
		f=$((f + 1))
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL - $name exited with status $rc but reported no failure"
		f=1
	fi
	echo "-- $name: $p passed, $f failed in $((SECONDS - start)) s"
	record "$label" "e2e $name" "$p" "$f"
	rm -f "$out"
}

# run_pass LABEL BIN UNITDIR ASAN: the unit tests, then the e2e scripts (under ASan only the cheap ones).
run_pass() {
	local label=$1 bin=$2 udir=$3 asan=$4 s name
	run_unit_dir "$label" "$udir"
	if [ ! -x "$bin" ]; then
		echo "FAIL - $label: binary $bin is missing; its e2e tests cannot run"
		record "$label" "binary $bin" 0 1
		return
	fi
	# A wrong path must not pass for an ASan run: the binary has to carry the sanitizer runtime.
	if [ "$asan" = 1 ] && ! grep -q -a __asan_init "$bin"; then
		echo "FAIL - $label: $bin is not built with -fsanitize=address"
		record "$label" "binary $bin (no ASan)" 0 1
		return
	fi
	for s in "$HERE"/e2e/[0-9][0-9]-*.sh; do
		[ -f "$s" ] || continue
		name=$(basename "$s")
		matches "$name" "$ONLY" || continue
		if [ "$asan" = 1 ] && ! matches "$name" "${ASAN_E2E[@]}"; then
			echo "== $label e2e: $name skipped (not in the ASan set: ${ASAN_E2E[*]})"
			SUMMARY+=("$(printf '%-5s %-40s skipped under ASan' "$label" "e2e $name")")
			continue
		fi
		run_e2e "$label" "$bin" "$s"
	done
}

# run_fuzz DIR: the fuzz smoke (tests/fuzz/run.sh), one result per target.
run_fuzz() {
	local dir=$1 out work rc=0 line p f
	echo "== fuzz: each target in $dir for ${FUZZ_SMOKE_SECONDS}s"
	out=$(mktemp)
	work=$(mktemp -d "${TMPDIR:-/tmp}/regpress-fuzz.XXXXXX")
	FUZZ_WORK=$work "$HERE/fuzz/run.sh" "$dir" "$FUZZ_SMOKE_SECONDS" 2>&1 | tee "$out" ||
		rc=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1 || true)
	p=${line%% passed*} f=${line#*passed, } f=${f%% failed}
	[ -n "$line" ] || { p=0 f=1; }
	[ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=1
	record fuzz "fuzz smoke (${FUZZ_SMOKE_SECONDS}s a target)" "$p" "$f"
	# Keep what a failing target found (the reproducers are printed above).
	if [ "$f" -eq 0 ]; then rm -rf "$work"; else echo "# fuzz corpora and crashes kept in $work"; fi
	rm -f "$out"
}

main() {
	local start=$SECONDS
	# Fixture tarballs are made once per run and shared by every script (see e2e_fixtures).
	E2E_CACHE=$(mktemp -d "${TMPDIR:-/tmp}/regpress-e2e-cache.XXXXXX")
	export E2E_CACHE
	trap 'rm -rf "$E2E_CACHE"' EXIT

	run_pass plain "$BIN" "$UNIT_DIR" 0
	[ -z "$FUZZ_DIR" ] || run_fuzz "$FUZZ_DIR"

	if [ -n "$ASAN_BIN" ] || [ -n "$ASAN_UNIT_DIR" ]; then
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
		export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
		run_pass asan "${ASAN_BIN:-/nonexistent}" "${ASAN_UNIT_DIR:-/nonexistent}" 1
		unset ASAN_OPTIONS UBSAN_OPTIONS
	else
		echo "# no --asan-bin/--asan-unit-dir given: ASan pass not run"
		SUMMARY+=("asan  (not run: no --asan-bin given)")
	fi

	echo
	echo "== summary ($((SECONDS - start)) s)"
	printf '%s\n' "${SUMMARY[@]}"
	printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
	[ "$FAILED" -eq 0 ]
}

main
