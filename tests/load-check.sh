#!/usr/bin/env bash
# Proof under load: runs a command (tests/run.sh ...) while two CPU-bound processes keep both
# cores of a small machine busy, and passes only if the command does. The load processes are
# started and stopped here, by PID, whatever the outcome.
#
#   tests/load-check.sh CMD [ARGS...]        (LOAD_PROCS=N for another count, default 2)
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
LOAD_PROCS=${LOAD_PROCS:-2}
PIDS=()
stop_load() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
}
trap stop_load EXIT
for ((i = 0; i < LOAD_PROCS; i++)); do
	sha256sum /dev/zero &
	PIDS+=("$!")
done
echo "# load: $LOAD_PROCS x 'sha256sum /dev/zero' (pids ${PIDS[*]})"
start=$(date +%s)
rc=0
"$@" || rc=$?
stop_load
echo "# under load: exit $rc after $(($(date +%s) - start)) s wall"
exit "$rc"
