#!/usr/bin/env bash
# The examples run as written (issue 18): the `regpress serve ... --config-dir` command quoted at
# the top of examples/lighttpd.conf writes a configuration that `lighttpd -tt` accepts and that
# starts for real as root, dropping to www-data, once its log directory is writable by www-data;
# examples/regpress.service passes `systemd-analyze verify`, and its ExecStartPre and ExecStart run
# as systemd would run them (as www-data, with only the ambient capability to bind a port below
# 1024, the key handed over as a credential) and serve. Every path of the examples is moved into
# this script's temporary directory, and port 443 to a free port of 127.0.0.1. Root only.
# shellcheck disable=SC2317,SC2016 # helpers and eval '...' strings run through `check`
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
if [ "$(id -u)" != 0 ]; then
	e2e_log "starting as root and dropping to www-data needs root: skipped"
	e2e_done
fi
id www-data >/dev/null 2>&1 || e2e_die "no www-data user"
chmod 755 "$T" # everything here is read (and partly written) by www-data
# systemd-analyze verify writes /run/systemd/systemd-units-load: a /run of the script's own.
e2e_client_sandbox || e2e_die "private /run"
e2e_workspace
EX=$E2E_ROOT/examples
check "build a tree" "$REGPRESS" build -q -o "$T/tree" "$FX/base.tar"
check "regpress certs for the examples' server" \
	"$REGPRESS" certs -o "$T/tls" --host localhost --ip 127.0.0.1
[ -s "$T/tls/server.key" ] || e2e_die "no certificates"

# low_port: a free port of 127.0.0.1 below 1024 (binding it takes root or CAP_NET_BIND_SERVICE).
low_port() {
	"$E2E_PY" - <<-'PY'
	import socket
	for p in range(900, 1000):
	    s = socket.socket()
	    try:
	        s.bind(("127.0.0.1", p))
	    except OSError:
	        continue
	    print(p)
	    break
	PY
}

# moved: the examples' paths (and port 443 on every address) moved to this script's own.
moved() {
	sed -e "s#/srv/regpress/tree#$T/tree#g" -e "s#/etc/regpress/tls#$T/tls#g" \
		-e "s#/var/log/regpress#$LOGDIR#g" -e "s#/etc/regpress/run#$T/run#g" \
		-e "s#/run/regpress#$T/unit-run#g" -e "s#0\.0\.0\.0:443#127.0.0.1:$LPORT#g" \
		-e "s#/usr/local/bin/regpress#$REGPRESS#g" -e "s#%d/#$T/creds/#g"
}

# served PORT: the server answers a manifest of the tree over TLS.
served() {
	e2e_wait_for 100 curl -fsS -o /dev/null --cacert "$T/tls/ca.crt" "https://127.0.0.1:$1/v2/" ||
		{ echo "nothing answers on 127.0.0.1:$1"; return 1; }
	curl -fsS -o /dev/null --cacert "$T/tls/ca.crt" "https://127.0.0.1:$1/v2/library/base/manifests/1"
}
# user_of PID: the user of PID's worker processes (or of PID itself without any).
workers_user() {
	local kids
	kids=$(pgrep -P "$1" | head -1)
	ps -o user= -p "${kids:-$1}" | tr -d ' '
}

# ---------------------------------------------------------------------------------------------
# examples/lighttpd.conf: its command, lighttpd -tt, a real start.

LPORT=$(e2e_free_port)
LOGDIR=$T/log
# The command quoted in the comment at the top of the file, continuation lines joined.
{ sed -n '/^#   regpress serve/,/--config-dir/p' "$EX/lighttpd.conf" | sed -e 's/^#//' -e 's/\\$//' |
	tr '\n' ' ' | moved; echo; } >"$T/cmd"
read -ra CMD <"$T/cmd"
check "examples/lighttpd.conf: its regpress serve --config-dir command is there" \
	eval '[ "${CMD[0]}" = regpress ] && [ "${CMD[1]}" = serve ] && grep -q -- "--config-dir $T/run" "$T/cmd"'
mkdir -p "$T/log"
check "examples/lighttpd.conf: the command writes the configuration" "$REGPRESS" "${CMD[@]:1}"
check "examples/lighttpd.conf: lighttpd -tt accepts it" lighttpd -tt -f "$T/run/lighttpd.conf"
# lighttpd opens the access log after dropping to www-data: a log directory only root may write
# to stops it (what the example says to prepare).
check "examples/lighttpd.conf: a log directory www-data cannot write to stops lighttpd, naming the log" \
	eval '! timeout 20 lighttpd -D -f "$T/run/lighttpd.conf" >"$T/l.out" 2>&1 && cat "$T/l.out" &&
		grep -q "opening log .*access.log. failed: Permission denied" "$T/l.out"'
chown www-data: "$T/log"
e2e_spawn "$T/lighttpd.log" lighttpd -D -f "$T/run/lighttpd.conf"
LPID=$E2E_SPAWNED
check "examples/lighttpd.conf: started as root with the log directory www-data's, it serves" served "$LPORT"
check "examples/lighttpd.conf: its workers run as www-data" eval '[ "$(workers_user "$LPID")" = www-data ]'
check "examples/lighttpd.conf: the access log has the request" \
	eval 'e2e_wait_for 50 grep -q "GET /v2/library/base/manifests/1 " "$T/log/access.log"'
check_here "examples/lighttpd.conf: lighttpd stops on SIGTERM" e2e_stop_named "$LPID"

# ---------------------------------------------------------------------------------------------
# examples/regpress.service: systemd-analyze verify, and its commands run as systemd runs them.

LPORT=$(low_port)
[ -n "$LPORT" ] || e2e_die "no free port below 1024 on 127.0.0.1"
LOGDIR=$T/unit-log
moved <"$EX/regpress.service" >"$T/regpress.service"
if command -v systemd-analyze >/dev/null; then
	# Only the installed binary differs from a real host (regpress is not in /usr/local/bin here).
	mkdir -p "$T/verify"
	sed "s#/usr/local/bin/regpress#$REGPRESS#g" "$EX/regpress.service" >"$T/verify/regpress.service"
	check "examples/regpress.service: systemd-analyze verify" \
		eval 'systemd-analyze verify "$T/verify/regpress.service" >"$T/v.out" 2>&1; cat "$T/v.out"; [ ! -s "$T/v.out" ]'
else
	e2e_log "systemd-analyze is not installed (Debian: systemd): the unit is not verified"
fi

# unit_cmd KEY: the value of KEY= in the (moved) unit, continuation lines joined.
unit_cmd() {
	awk -v k="$1=" 'index($0, k) == 1 { v = substr($0, length(k) + 1)
		while (v ~ /\\$/) { sub(/\\$/, "", v); getline l; v = v l } print v }' "$T/regpress.service"
}
# What systemd prepares: the credentials (copies of the files LoadCredential names, readable by
# the service user only), RuntimeDirectory and LogsDirectory owned by User=.
mkdir -p "$T/creds" "$T/unit-run" "$T/unit-log"
cp "$T/tls/server.crt" "$T/tls/server.key" "$T/creds/"
chown -R www-data: "$T/creds" "$T/unit-run"
chmod 0400 "$T/creds"/*
chown www-data: "$T/unit-log"
# AS_UNIT CMD...: as User=www-data with AmbientCapabilities=CAP_NET_BIND_SERVICE and nothing else.
AS_UNIT=(setpriv --reuid=www-data --regid=www-data --init-groups "--inh-caps=-all,+net_bind_service"
	"--ambient-caps=-all,+net_bind_service" "--bounding-set=-all,+net_bind_service" --)
read -ra PRE <<<"$(unit_cmd ExecStartPre)"
read -ra START <<<"$(unit_cmd ExecStart)"
check "examples/regpress.service: User=, AmbientCapabilities=, LoadCredential= are what is emulated" \
	eval 'grep -qx "User=www-data" "$T/regpress.service" && grep -qx "AmbientCapabilities=CAP_NET_BIND_SERVICE" "$T/regpress.service" &&
		[ "$(grep -c "^LoadCredential=server\.\(crt\|key\):" "$T/regpress.service")" = 2 ] &&
		[ "${#PRE[@]}" -gt 2 ] && [ "${START[0]}" = /usr/sbin/lighttpd ]'
check "examples/regpress.service: ExecStartPre (regpress serve --config-dir) as www-data" "${AS_UNIT[@]}" "${PRE[@]}"
if [ -s "$T/unit-run/lighttpd.conf" ]; then
	e2e_spawn "$T/unit.log" "${AS_UNIT[@]}" "${START[@]}"
	UPID=$E2E_SPAWNED
	check "examples/regpress.service: ExecStart serves on port $LPORT (below 1024) as www-data" served "$LPORT"
	check "examples/regpress.service: no process of it runs as root" \
		eval 'p=$(pgrep -d, -f "lighttpd -D -f $T/unit-run/") && u=$(ps -o user= -p "$p" | sort -u | tr -d " ") &&
			echo "$p: $u" && [ "$u" = www-data ]'
	check "examples/regpress.service: the access log in LogsDirectory has the request" \
		eval 'e2e_wait_for 50 grep -q "GET /v2/library/base/manifests/1 " "$T/unit-log/access.log"'
	check_here "examples/regpress.service: lighttpd stops on SIGTERM (KillSignal)" e2e_stop_named "$UPID"
fi
e2e_done
