#!/usr/bin/env bash
# Connection limits under load (issue 20). `regpress serve` with 2 workers, started with the soft
# open files limit systemd gives a service (1024), must raise it and configure lighttpd from the
# hard limit (serve.c's serve_limits). Then tests/tools/loadtool.py holds 3,000 idle connections
# (1,500 TLS connections that trickle an unfinished request, opened first, then 1,500 TCP
# connections that send nothing) and checks that a new client (TCP + TLS + GET /v2/, from a
# separate process) is served while every one of them is still held open: a server locked out
# would answer only after dropping some (or never). Meanwhile 500 clients mix manifest, blob,
# Range, HEAD and bad requests for 10 s: no 5xx, no reset, no unexpected status, and the sha256
# of every body is its digest. lighttpd's memory (all its processes) is reported and must stay
# within a generous bound. Last, a control: the same server with the limits taken out of its
# configuration is locked out by 800 idle connections, as issue 20 found.
#
# Only structure is judged, never speed: probe latencies are printed for information (the issue
# asks for "within a second"); every timeout here is a hang guard. Everything binds 127.0.0.1.
# shellcheck disable=SC2317 # helpers run through `check`
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_workspace
# lighttpd switches to www-data (as under the systemd unit): it must reach the tree.
chmod 755 "$T"
LOADTOOL=$(repo)/tests/tools/loadtool.py
IDLE=3000
CLIENTS=500

# The load tool holds IDLE + CLIENTS connections and a few files.
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ] && [ "$HARD" -lt 8192 ]; then
	ulimit -Hn 65535 2>/dev/null || e2e_die "open files hard limit $HARD: this test needs 8192"
	HARD=$(ulimit -Hn)
fi
ulimit -Sn "$HARD"

# want_fds HARD: the server.max-fds regpress should choose under hard limit HARD (as root it
# first tries to raise the hard limit to 65535, which takes CAP_SYS_RESOURCE).
want_fds() {
	if [ "$1" = unlimited ] || [ "$1" -ge 65535 ] || (ulimit -Hn 65535) 2>/dev/null; then
		echo 65535
	else
		echo "$1"
	fi
}

python3 "$(repo)/tests/fixtures/mkrandom.py" "$FX/mixed.tar" test/mixed:1 load 4096 200 ||
	e2e_die "mkrandom.py"
TREE=$W/tree
"$REGPRESS" build -q --progress=none -o "$TREE" "$FX/base.tar" "$FX/app.tar" "$FX/multi.tar" \
	"$FX/mixed.tar" || e2e_die "building the tree"
e2e_certs "$T/certs" || e2e_die "certificates"
CERTS=$T/certs

# config_has HARD LINE...: --print-config under hard limit HARD has every LINE.
config_has() {
	local hard=$1 conf
	shift
	conf=$(ulimit -n "$hard" && "$REGPRESS" serve "$TREE" --cert "$CERTS/server.crt" \
		--key "$CERTS/server.key" --workers 2 --print-config)
	for line in "$@"; do
		grep -qxF "$line" <<<"$conf" || { echo "no line '$line' in:"; echo "$conf"; return 1; }
	done
}
F=$( (ulimit -n 4096 && want_fds 4096))
C=$((F / 4))
SOMAXCONN=$(cat /proc/sys/net/core/somaxconn)
check "--print-config: limits from a hard limit of 4096" config_has 4096 \
	"server.max-fds = $F" "server.max-connections = $C" \
	"server.listen-backlog = $((C < SOMAXCONN ? C : SOMAXCONN))" \
	"server.max-read-idle = 15" "server.max-keep-alive-idle = 5" "server.max-write-idle = 120"

# The server starts with systemd's soft limit; the load tool raises its own.
F=$(want_fds "$HARD")
ulimit -Sn 1024
e2e_serve "$TREE" --workers 2
ulimit -Sn "$HARD"

lighttpd_pids() {
	local p
	for p in $(e2e_descendants "$SERVE_PID"); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = lighttpd ] && echo "$p"
	done
	return 0
}

# Every lighttpd process (master and 2 workers) may open F files, though serve started at 1024.
fd_limits() {
	local p n=0 soft
	for p in $(lighttpd_pids); do
		soft=$(awk '/^Max open files/ {print $4}' "/proc/$p/limits")
		echo "lighttpd $p: open files $soft"
		[ "$soft" = "$F" ] || { echo "want $F"; return 1; }
		n=$((n + 1))
	done
	[ "$n" -eq 3 ] || { echo "$n lighttpd processes, want 3"; return 1; }
}
check "lighttpd runs with max-fds ($F) open files, not the 1024 serve started with" fd_limits

# The configuration lighttpd runs (-f FILE on its command line) has the derived limits.
running_config() {
	local master conf
	master=$(ps -o pid= --ppid "$SERVE_PID" | tr -d ' ')
	conf=$(tr '\0' '\n' <"/proc/$master/cmdline" | sed -n '/^-f$/{n;p}')
	grep -qxF "server.max-fds = $F" "$conf"
	grep -qxF "server.max-connections = $((F / 4))" "$conf"
	grep -qxF "server.max-read-idle = 15" "$conf"
}
check "the running configuration: max-fds $F, max-connections $((F / 4))" running_config

# The load: IDLE idle connections held 20 s (the server drops the silent TCP ones after its
# max-read-idle of 15 s; they are reopened), CLIENTS clients for 10 s meanwhile.
load() {
	python3 "$LOADTOOL" --port "$PORT" --cacert "$CERTS/ca.crt" --sni localhost \
		--idle "$IDLE" --idle-mix trickle:1,tcp:1 --hold 20 --with-idle \
		--clients "$CLIENTS" --duration 10 --server-pid "$SERVE_PID" --json "$W/load.json"
}
check "$IDLE idle connections held, a new client served meanwhile; $CLIENTS clients: no 5xx, no reset, right bytes" \
	load

if [ -s "$W/load.json" ]; then
	jq -r '"# idle: \(.idle.opened) connections opened (reopens included) in \(.idle.open_s) s; probes answered while all \(.idle.target) were held: \(.idle.probes_counted) of \(.idle.probes_made), failed: \(.idle.probes_failed); the server closed \(.idle.server_closed_idle) idle ones (max-read-idle)",
		"# a new client was served in \(.idle.first_counted_probe_s) s while \(.idle.target) idle connections were held (issue 20 asks within a second; information, not a verdict); counted probes: \(.idle.counted_probe_latency)",
		"# mixed: \(.mixed.requests) requests on \(.mixed.connections) connections, \(.mixed.bytes) bytes, statuses \(.mixed.status | tostring), failures \(.mixed.failures | tostring)",
		"# lighttpd RSS (master + 2 workers): \(.rss_start_kib / 1024 | floor) MiB at start, \([.idle.peak_rss_kib, .mixed.peak_rss_kib] | max / 1024 | floor) MiB peak with the idle set and the clients"' \
		"$W/load.json" || true
fi

# Bounded memory: per process its base and the script's manifest cache (at most 32 MiB), and
# per connection at most 64 KiB (~48 KiB measured for an idle one). Not a tight bound: a leak
# per request or per connection would pass it within seconds.
rss_bounded() {
	local peak bound
	peak=$(jq '[.idle.peak_rss_kib, .mixed.peak_rss_kib] | max' "$W/load.json")
	bound=$((3 * 48 * 1024 + (IDLE + CLIENTS) * 64))
	echo "peak $peak KiB, bound $bound KiB"
	[ "$peak" -gt 0 ] && [ "$peak" -le "$bound" ]
}
check "lighttpd's memory stays bounded" rss_bounded

check_here "regpress serve stops on SIGTERM" e2e_serve_stop

# Control: the same configuration without the limits (what serve wrote before issue 20), the same
# soft limit of 1024 and 2 workers: 2 x 1024/3 connections, then lighttpd stops accepting.
old_lockout() {
	local port log rc=0
	port=$(e2e_free_port)
	"$REGPRESS" serve "$TREE" --cert "$CERTS/server.crt" --key "$CERTS/server.key" \
		--listen "127.0.0.1:$port" --workers 2 --config-dir "$W/old" || return 1
	sed -i -E '/^server\.(max-fds|max-connections|listen-backlog|max-read-idle|max-keep-alive-idle|max-write-idle) /d' \
		"$W/old/lighttpd.conf" || return 1
	if grep -q '^server.max-fds' "$W/old/lighttpd.conf"; then echo "limits left in"; return 1; fi
	log=$W/old.log
	ulimit -Sn 1024
	e2e_spawn "$log" lighttpd -D -f "$W/old/lighttpd.conf"
	ulimit -Sn "$HARD"
	OLD_PID=$E2E_SPAWNED
	e2e_wait_for "$E2E_WAIT_TENTHS" curl -fsS -o /dev/null --cacert "$CERTS/ca.crt" \
		"https://127.0.0.1:$port/v2/" ||
		{ echo "the old configuration did not come up:"; cat "$log"; return 1; }
	# A probe that waits 4 s is enough to see it: lighttpd has stopped accepting (it says so)
	# and the probe's connection sits in the kernel's accept queue.
	python3 "$LOADTOOL" --port "$port" --cacert "$CERTS/ca.crt" --sni localhost --phases idle \
		--idle 800 --idle-mix tcp:1 --hold 3 --probe-timeout 4 --server-pid "$OLD_PID" \
		--json "$W/old.json" >"$W/old.out" 2>&1 || rc=$?
	e2e_stop "$OLD_PID" || true
	if [ "$rc" -ne 1 ]; then
		echo "load tool exit $rc, want 1 (a probe not served):"
		cat "$W/old.out"
		return 1
	fi
	grep -q 'sockets disabled, connection limit reached' "$log" ||
		{ echo "lighttpd did not report reaching its connection limit:"; cat "$log"; return 1; }
	jq -e '.idle.probes[0].accept_queue > 0' "$W/old.json" >/dev/null ||
		{ echo "no connection waited in the accept queue"; return 1; }
}
check_here "control: without the limits, 800 idle connections lock new clients out" old_lockout
if [ -s "$W/old.json" ]; then
	jq -r '.idle.probes[0] | "# control: \(.server_established - .accept_queue) connections accepted by lighttpd, \(.accept_queue) waiting in the kernel; the probe: \(.error // .status)"' \
		"$W/old.json" || true
fi

e2e_done
