#!/usr/bin/env bash
# The benchmark (`make bench`, tests/bench/run.sh) in its quick mode: a ~30 MB image, one run, 1 s
# wrk runs, through the same code paths as the full benchmark (umoci + skopeo input, regpress vs
# skopeo builds for gzip/zstd/none, rebuild, big layer, regpress serve vs registry:2 under wrk).
# Checks that it completes, prints the table and writes JSON in which every ratio is a number.
# No timing is asserted: timing targets are the benchmark's report, never a test.
# shellcheck disable=SC2317 # helpers run through `check`, which shellcheck cannot follow
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
BENCH=$(repo)/tests/bench/run.sh
# Inputs are cached per test run (E2E_CACHE) or in $T; the work directory is the benchmark's own.
export BENCH_DIR=${E2E_CACHE:-$T}/bench
export BENCH_QUICK=1 BENCH_JSON=$T/bench.json

run_bench() {
	"$BENCH" "$REGPRESS" >"$T/bench.out" 2>"$T/bench.err" || {
		cat "$T/bench.err" "$T/bench.out"
		return 1
	}
	cat "$T/bench.out"
}
check "bench: quick mode runs to the end" run_bench

table() {
	local out=$T/bench.out
	grep -q "^regpress benchmark: input [0-9.]* MB (4 layers), 1 run(s)" "$out"
	grep -E -q '^ +metric +regpress +peer +peer +ratio +target +result$' "$out"
	# Every group of the issue is there, each target row with PASS or MISS.
	for g in "build gzip" "build zstd" "build none" rebuild "big layer" serve; do
		grep -q "^$g " "$out" || { echo "no rows for $g"; return 1; }
	done
	[ "$(grep -c -E '^[a-z].* (PASS|MISS)$' "$out")" -eq 12 ]
	grep -E -q '^12 targets: [0-9]+ PASS, [0-9]+ MISS$' "$out"
	# Whether large blobs went through kernel TLS, and how busy the client was.
	grep -E -q '^kTLS: (absent: |loaded during the run|[0-9]+ kernel TLS send contexts)' "$out"
	grep -E -q '^serve +large blob: wrk client CPU \(% core\) +[0-9.]+ +[0-9.]+ ' "$out"
}
check "bench: the table has every group, a PASS/MISS for each of the 12 targets, and kTLS use" table

json_ok() {
	# jq refuses NaN/Infinity, which Python would write for a ratio that is not a number.
	jq -e '(.rows | length) >= 20 and all(.rows[]; (.ratio | type) == "number"
		and (.regpress | type) == "number" and (.peer | type) == "number")
		and ([.rows[] | select(.target != null) | .pass | type] | all(. == "boolean"))
		and .quick == true and (.ktls | length) > 0' "$BENCH_JSON"
}
check "bench: JSON results, every ratio a number" json_ok

leftovers() {
	local left
	left=$(find "$BENCH_DIR" -maxdepth 1 -name 'work.*' | head -5)
	[ -z "$left" ] || { echo "work directories left: $left"; return 1; }
	left=$(pgrep -a -f "$BENCH_DIR/work\." || true)
	[ -z "$left" ] || { echo "processes left: $left"; return 1; }
}
check "bench: stops every server it started and removes its work directory" leftovers

e2e_done
