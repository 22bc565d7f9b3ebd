#!/usr/bin/env bash
# Runs every test: the unit binaries and the end-to-end scripts with the normal build, the same
# again with the ASan+UBSan+LSan build, and the fuzz smoke, as independent jobs, JOBS at a time
# (default: the number of CPUs). Each job's output is kept and printed whole, in the order of the
# job list (not the order jobs finish), then a table with every job's result and time, and last
# exactly one line "N passed, N failed".
#
#   tests/run.sh --bin BIN --unit-dir DIR [--asan-bin BIN --asan-unit-dir DIR] [--fuzz-dir DIR]
#                [--only PATTERN] [--jobs N]
#
# --only runs the e2e scripts whose names match the shell PATTERN (e.g. '10-*'), for development.
# --fuzz-dir runs each libFuzzer target there (make fuzz-build) for FUZZ_SMOKE_SECONDS (default
# 10): that they build, run and find nothing in their seeds' neighbourhood.
#
# No verdict comes from the clock: a job is only stopped when it runs past E2E_TIMEOUT (or
# UNIT_TIMEOUT), a limit far above its normal time that catches hangs; it then fails, and what it
# was waiting for (its processes) is printed. Every job gets its own TMPDIR; e2e scripts share
# fixtures made once per run ($E2E_CACHE, read-only to them).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BIN='' UNIT_DIR='' ASAN_BIN='' ASAN_UNIT_DIR='' FUZZ_DIR='' ONLY='*'
JOBS=${JOBS:-}
FUZZ_SMOKE_SECONDS=${FUZZ_SMOKE_SECONDS:-10}
E2E_TIMEOUT=${E2E_TIMEOUT:-1200}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-300}

# e2e scripts that also run under ASan: all but valgrind (it runs the plain build) and the
# benchmark smoke (it measures peers; the plain pass covers its code).
ASAN_SKIP=('58-*' '90-*')

usage() {
	echo "usage: $0 --bin BIN --unit-dir DIR [--asan-bin BIN --asan-unit-dir DIR] [--fuzz-dir DIR]" \
		"[--only PATTERN] [--jobs N]" >&2
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
	--jobs) JOBS=${2:?}; shift 2 ;;
	*) usage ;;
	esac
done
if [ -z "$BIN" ] || [ -z "$UNIT_DIR" ]; then usage; fi
[ -n "$JOBS" ] || JOBS=$(nproc 2>/dev/null || echo 2)
case $JOBS in '' | *[!0-9]* | 0) echo "$0: --jobs wants a positive number, not '$JOBS'" >&2; exit 2 ;; esac

# ---- the job list: parallel arrays, one entry per job, in the order results are printed ----
J_LABEL=() # plain | asan | fuzz
J_NAME=()  # "unit test_x", "e2e 10-x.sh", "fuzz_tar"
J_KIND=()  # unit | e2e | fuzz | fail (a job that only reports a problem found while listing)
J_ARG=()   # the binary, the script, or the target
J_BIN=()   # REGPRESS for e2e
J_WHY=()   # kind fail: the message

add_job() { # LABEL NAME KIND ARG BIN WHY
	J_LABEL+=("$1") J_NAME+=("$2") J_KIND+=("$3") J_ARG+=("$4") J_BIN+=("$5") J_WHY+=("${6:-}")
}

matches() { # NAME PATTERN...: NAME matches one of the shell patterns
	local name=$1 pat
	shift
	for pat in "$@"; do
		# shellcheck disable=SC2053 # a pattern on purpose
		[[ $name == $pat ]] && return 0
	done
	return 1
}

# add_units LABEL DIR: one job per tests/unit/test_*.c (a missing binary fails), plus any other
# executable test_* in DIR.
add_units() {
	local label=$1 dir=$2 src t name
	local -A seen=()
	for src in "$HERE"/unit/test_*.c; do
		[ -f "$src" ] || continue
		name=$(basename "$src" .c)
		seen[$name]=1
		if [ -x "$dir/$name" ]; then
			add_job "$label" "unit $name" unit "$dir/$name" ""
		else
			add_job "$label" "unit $name (not built)" fail "" "" "$dir/$name was not built (from $src)"
		fi
	done
	for t in "$dir"/test_*; do
		if [ ! -f "$t" ] || [ ! -x "$t" ] || [ -n "${seen[$(basename "$t")]:-}" ]; then continue; fi
		add_job "$label" "unit $(basename "$t")" unit "$t" ""
	done
}

# add_e2e LABEL BIN ASAN: one job per tests/e2e/NN-*.sh matching --only.
add_e2e() {
	local label=$1 bin=$2 asan=$3 s name
	if [ ! -x "$bin" ]; then
		add_job "$label" "binary $bin" fail "" "" "binary $bin is missing; its e2e tests cannot run"
		return
	fi
	# A wrong path must not pass for an ASan run: the binary has to carry the sanitizer runtime.
	if [ "$asan" = 1 ] && ! grep -q -a __asan_init "$bin"; then
		add_job "$label" "binary $bin (no ASan)" fail "" "" "$bin is not built with -fsanitize=address"
		return
	fi
	for s in "$HERE"/e2e/[0-9][0-9]-*.sh; do
		[ -f "$s" ] || continue
		name=$(basename "$s")
		matches "$name" "$ONLY" || continue
		[ "$asan" = 1 ] && matches "$name" "${ASAN_SKIP[@]}" && continue
		add_job "$label" "e2e $name" e2e "$s" "$bin"
	done
}

add_fuzz() {
	local dir=$1 t n=0
	for t in "$dir"/fuzz_*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		add_job fuzz "$(basename "$t") (${FUZZ_SMOKE_SECONDS}s)" fuzz "$(basename "$t")" ""
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || add_job fuzz "fuzz targets" fail "" "" "no fuzz targets in $dir (make fuzz-build)"
}

add_units plain "$UNIT_DIR"
add_e2e plain "$BIN" 0
[ -z "$FUZZ_DIR" ] || add_fuzz "$FUZZ_DIR"
if [ -n "$ASAN_BIN" ] || [ -n "$ASAN_UNIT_DIR" ]; then
	add_units asan "${ASAN_UNIT_DIR:-/nonexistent}"
	add_e2e asan "${ASAN_BIN:-/nonexistent}" 1
fi
NJOBS=${#J_NAME[@]}

# ---- running one job ----
RUN=$(mktemp -d "${TMPDIR:-/tmp}/regpress-tests.XXXXXX")
# Searchable, like /tmp: a server started as root drops to another user, who must reach the
# files a test gives it under its TMPDIR.
chmod 0755 "$RUN"
E2E_CACHE=$RUN/cache # fixture tarballs, made once per run and shared (see e2e_fixtures)
mkdir -p "$E2E_CACHE"
export E2E_CACHE

# job_cmd I: the command line of job I (run with its own TMPDIR, in its own session).
job_cmd() {
	local i=$1
	case ${J_KIND[$i]} in
	unit) printf '%s\n' "${J_ARG[$i]}" ;;
	e2e) printf '%s\n' env "REGPRESS=${J_BIN[$i]}" bash "${J_ARG[$i]}" ;;
	fuzz) printf '%s\n' env "FUZZ_WORK=$RUN/job-$i/fuzz" "$HERE/fuzz/run.sh" "$FUZZ_DIR" \
		"$FUZZ_SMOKE_SECONDS" "${J_ARG[$i]}" ;;
	esac
}

# run_job I: runs job I to its end (in the background of the main loop); writes
# $RUN/job-I/{log,rc,time}, then the number I to the main loop's pipe. The job runs in a session
# of its own so that a hung job is stopped with everything it started; its processes are listed
# first, to show what it was waiting for. The timer is a `read -t` on a pipe (see e2e_watchdog in
# tests/e2e/lib.sh): no `wait -n`, whose leftover statuses can be misread after pid reuse.
run_job() {
	local i=$1
	local d=$RUN/job-$i limit=$E2E_TIMEOUT pid wd fd rc=0 t0 t1 cmd=()
	mkdir -p "$d/tmp"
	chmod 0755 "$d"
	chmod 1777 "$d/tmp"
	[ "${J_KIND[$i]}" = unit ] && limit=$UNIT_TIMEOUT
	[ "${J_KIND[$i]}" = fuzz ] && limit=$((FUZZ_SMOKE_SECONDS * 3 + 120))
	mapfile -t cmd < <(job_cmd "$i")
	if [ "${J_LABEL[$i]}" = asan ]; then
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
		export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	fi
	t0=$(date +%s%N)
	TMPDIR=$d/tmp setsid "${cmd[@]}" >"$d/log" 2>&1 </dev/null {DONE_FD}>&- &
	pid=$!
	echo "$pid" >"$d/pid"
	mkfifo "$d/stop"
	exec {fd}<>"$d/stop"
	rm -f "$d/stop"
	(
		read -r -t "$limit" -u "$fd" _ && exit 0
		{
			echo "FAIL - ${J_NAME[$i]} still running after ${limit}s: stopped. Its processes (what it was waiting for):"
			ps -s "$pid" -o pid=,etime=,args= --forest 2>/dev/null | sed 's/^/#   | /' || true
		} >>"$d/log"
		touch "$d/hung"
		kill -TERM -- "-$pid" 2>/dev/null || true
		read -r -t 15 -u "$fd" _ && exit 0
		kill -KILL -- "-$pid" 2>/dev/null || true
	) &
	wd=$!
	wait "$pid" || rc=$?
	echo >&"$fd"
	wait "$wd" || true
	exec {fd}>&-
	# Whatever the job left running in its session (it should have stopped all of it).
	kill -KILL -- "-$pid" 2>/dev/null || true
	[ ! -e "$d/hung" ] || rc=124
	t1=$(date +%s%N)
	echo "$rc" >"$d/rc"
	echo $(((t1 - t0) / 1000000)) >"$d/time"
	echo "$i" >&"$DONE_FD"
}

# ---- results ----
PASSED=0
FAILED=0
SUMMARY=()
R_PASS=() R_FAIL=() R_NOTE=()

# collect I: parse job I's log into its pass/fail counts (counted once, in list order).
collect() {
	local i=$1
	local d=$RUN/job-$i rc p=0 f=0 line='' note=''
	if [ "${J_KIND[$i]}" = fail ]; then
		R_PASS[i]=0 R_FAIL[i]=1 R_NOTE[i]="FAIL - ${J_WHY[$i]}"
		return
	fi
	rc=$(cat "$d/rc")
	case ${J_KIND[$i]} in
	unit)
		# cmocka: "[  PASSED  ] 3 test(s)." and "[  FAILED  ] 1 test(s), listed below:"
		p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$d/log" | tail -1)
		f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$d/log" | tail -1)
		p=${p:-0} f=${f:-0}
		if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then p=1; fi # not cmocka: by status
		;;
	*)
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$d/log" | tail -1 || true)
		if [ -n "$line" ]; then
			p=${line%% passed*}
			f=${line#*passed, }
			f=${f%% failed}
		fi
		;;
	esac
	if [ "$rc" -eq 124 ]; then
		f=$((f + 1)) note="FAIL - ${J_NAME[$i]} timed out (see its processes above)"
	elif [ "${J_KIND[$i]}" != unit ] && [ -z "$line" ]; then
		f=$((f + 1)) note="FAIL - ${J_NAME[$i]} ended (status $rc) without its 'N passed, N failed' line"
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 note="FAIL - ${J_NAME[$i]} exited with status $rc but reported no failure"
	fi
	R_PASS[i]=$p R_FAIL[i]=$f R_NOTE[i]=$note
}

# show I: print job I's output whole, then its result line.
show() {
	local i=$1
	local d=$RUN/job-$i secs='-'
	[ -f "$d/time" ] && secs=$(awk '{printf "%.1f", $1 / 1000}' "$d/time")
	echo "== ${J_LABEL[$i]} ${J_NAME[$i]}"
	[ -f "$d/log" ] && cat "$d/log"
	[ -z "${R_NOTE[$i]}" ] || echo "${R_NOTE[$i]}"
	echo "-- ${J_LABEL[$i]} ${J_NAME[$i]}: ${R_PASS[$i]} passed, ${R_FAIL[$i]} failed in ${secs} s"
	PASSED=$((PASSED + R_PASS[i]))
	FAILED=$((FAILED + R_FAIL[i]))
	SUMMARY+=("$(printf '%-5s %-40s %4d passed, %3d failed %7s s' "${J_LABEL[$i]}" \
		"${J_NAME[$i]}" "${R_PASS[$i]}" "${R_FAIL[$i]}" "$secs")")
}

# ---- the scheduler: longest jobs first (by the last run's times, kept in $RUN's parent when
# writable, else by kind), at most JOBS at once; output printed in list order as it completes ----
TIMES=${TEST_TIMES_FILE:-$UNIT_DIR/../.test-times}
declare -A LAST=()
if [ -r "$TIMES" ]; then
	while read -r ms name; do LAST[$name]=$ms; done <"$TIMES" || true
fi
guess() { # I: expected milliseconds
	local key="${J_LABEL[$1]} ${J_NAME[$1]}"
	if [ -n "${LAST[$key]:-}" ]; then echo "${LAST[$key]}"; return; fi
	case ${J_LABEL[$1]}:${J_KIND[$1]} in
	asan:e2e) echo 40000 ;; plain:e2e) echo 20000 ;; fuzz:*) echo $((FUZZ_SMOKE_SECONDS * 1000)) ;;
	*) echo 1000 ;;
	esac
}
mapfile -t ORDER < <(for ((i = 0; i < NJOBS; i++)); do echo "$(guess "$i") $i"; done | sort -k1,1nr -k2,2n |
	awk '{print $2}')

cleanup() {
	local i
	for i in "${!JOB_PID[@]}"; do
		[ -z "${DONE[$i]:-}" ] && [ -s "$RUN/job-$i/pid" ] || continue
		kill -TERM -- "-$(cat "$RUN/job-$i/pid")" 2>/dev/null || true
	done
	for i in "${!JOB_PID[@]}"; do wait "${JOB_PID[$i]}" 2>/dev/null || true; done
	rm -rf "$RUN"
}
JOB_PID=()
DONE=()
trap cleanup EXIT
trap 'echo "# interrupted"; exit 130' INT TERM

START=$(date +%s)
echo "# $NJOBS jobs, $JOBS at a time: a line as each ends; each job's whole output follows, in list order"
mkfifo "$RUN/done"
exec {DONE_FD}<>"$RUN/done"
JOB_PID=()
DONE=()
next=0 running=0 shown=0 finished=0
while [ "$shown" -lt "$NJOBS" ]; do
	while [ "$running" -lt "$JOBS" ] && [ "$next" -lt "$NJOBS" ]; do
		i=${ORDER[$next]}
		next=$((next + 1))
		if [ "${J_KIND[$i]}" = fail ]; then
			DONE[i]=1
			continue
		fi
		run_job "$i" &
		JOB_PID[i]=$!
		running=$((running + 1))
	done
	if [ "$running" -gt 0 ]; then
		read -r i <&"$DONE_FD"
		wait "${JOB_PID[$i]}" || true
		DONE[i]=1
		running=$((running - 1))
		finished=$((finished + 1))
		collect "$i"
		printf '# [%d/%d] %s %s: %d passed, %d failed (%s s)\n' "$finished" "$NJOBS" \
			"${J_LABEL[$i]}" "${J_NAME[$i]}" "${R_PASS[$i]}" "${R_FAIL[$i]}" \
			"$(awk '{printf "%.1f", $1 / 1000}' "$RUN/job-$i/time")"
	fi
	while [ "$shown" -lt "$NJOBS" ] && [ -n "${DONE[$shown]:-}" ]; do
		[ -n "${R_PASS[$shown]:-}" ] || collect "$shown"
		show "$shown"
		shown=$((shown + 1))
	done
done

if [ -w "$(dirname "$TIMES")" ]; then
	for ((i = 0; i < NJOBS; i++)); do
		[ -f "$RUN/job-$i/time" ] && echo "$(cat "$RUN/job-$i/time") ${J_LABEL[$i]} ${J_NAME[$i]}"
	done >"$TIMES.new" && mv "$TIMES.new" "$TIMES"
fi

echo
echo "== summary ($(($(date +%s) - START)) s wall, $JOBS jobs at a time)"
printf '%s\n' "${SUMMARY[@]}"
printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
[ "$FAILED" -eq 0 ]
