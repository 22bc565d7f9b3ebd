#!/usr/bin/env bash
# Runs every libFuzzer target in DIR (built by `make fuzz-build`) for SECONDS each, starting from
# the seeds in tests/fuzz/corpus/<target>/ plus what earlier runs found (kept in WORK, default
# DIR/../work). A target that crashes, leaks, trips a sanitizer or an invariant, or times out on
# one input fails, with the path of the input that reproduces it. Last line: "N passed, N failed".
#
#   tests/fuzz/run.sh DIR [SECONDS [TARGET]]   (FUZZ_WORK=dir to keep the corpora elsewhere)
#
# With TARGET (e.g. fuzz_tar) only that one runs: tests/run.sh runs the targets as separate jobs.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${1:?usage: $0 DIR [SECONDS]}
SECONDS_EACH=${2:-300}
ONLY_TARGET=${3:-}
WORK=${FUZZ_WORK:-$DIR/../work}
PASSED=0
FAILED=0

# Larger inputs for archives; JSON and names need less.
max_len() {
	case $1 in
	fuzz_tar) echo 32768 ;;
	fuzz_iso) echo 131072 ;; # an ISO 9660 image starts with a 32 KiB system area
	*) echo 8192 ;;
	esac
}

for t in "$DIR"/fuzz_*; do
	if [ ! -f "$t" ] || [ ! -x "$t" ]; then continue; fi
	name=$(basename "$t")
	[ -z "$ONLY_TARGET" ] || [ "$name" = "$ONLY_TARGET" ] || continue
	seeds=$HERE/corpus/$name
	corpus=$WORK/corpus/$name
	crashes=$WORK/crashes
	log=$WORK/$name.log
	mkdir -p "$corpus" "$crashes"
	dict=()
	[ -f "$HERE/$name.dict" ] && dict=(-dict="$HERE/$name.dict")
	echo "== $name: ${SECONDS_EACH}s (seeds $seeds, corpus $corpus)"
	rc=0
	# -fork=0: one process; -timeout: one input may take at most 20 s; leaks count as failures.
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
		"$t" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=2048 \
		-max_len="$(max_len "$name")" -artifact_prefix="$crashes/$name-" -print_final_stats=1 \
		"${dict[@]}" "$corpus" "$seeds" >"$log" 2>&1 || rc=$?
	grep -E '^(stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb)' "$log" |
		sed 's/^/   /' || true
	if [ "$rc" -eq 0 ]; then
		echo "ok - $name"
		PASSED=$((PASSED + 1))
	else
		echo "FAIL - $name (exit $rc); its log: $log"
		grep -E 'ERROR|SUMMARY|invariant failed|==[0-9]+==' "$log" | head -20 | sed 's/^/#   | /'
		art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
		[ -z "$art" ] || echo "#   reproduce: $t $art"
		FAILED=$((FAILED + 1))
	fi
done
[ $((PASSED + FAILED)) -gt 0 ] || { echo "no fuzz targets in $DIR (make fuzz-build)"; FAILED=1; }
printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
[ "$FAILED" -eq 0 ]
