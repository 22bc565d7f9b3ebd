#!/usr/bin/env bash
# Replicas behind HAProxy (issue 20): two `regpress serve` replicas of the same tree (two copies)
# and the real HAProxy on 127.0.0.1 in front, running examples/haproxy.cfg with its addresses,
# names and paths replaced (TLS passes through, health checks GET /v2/ over TLS). 30 concurrent
# pulls of a ~100 MB image through HAProxy, 20 by skopeo and 10 by containerd's ctr (each in its
# own namespace, with content sharing off so that each downloads every byte), and one replica
# killed with SIGKILL, its whole process group, while they run. Then:
# - every pull either completed, with every blob's digest verified against the tree, or failed
#   cleanly (an exit status, no hang) and completes when retried;
# - the pulls started just after the kill, before HAProxy could notice it, all complete;
# - HAProxy marks the dead replica DOWN after exactly its `fall` count of failed checks (its
#   stats socket counts them), before the retries start;
# - no pull ever has a wrong byte.
# The example's TLS-terminating alternative passes `haproxy -c` and serves a manifest.
#
# No verdict depends on speed: the kill waits until HAProxy has sent a third of the bytes with the
# doomed replica still serving, and the DOWN state is awaited on the stats socket (bounded only
# as a hang guard). Times are printed for information. Layers are stored uncompressed
# (--compression none) so that containerd's unpacking costs no gunzip: the test shares 2 cores.
# shellcheck disable=SC2317 # helpers run through `check`
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_workspace
chmod 755 "$T"
command -v haproxy >/dev/null || e2e_die "haproxy is not installed (make deps)"
HASTAT=$(repo)/tests/tools/haproxy_stat.py
EXAMPLE=$(repo)/examples/haproxy.cfg
NSKOPEO=20
NCTR=10
# In RAM when mount is permitted (the private mount namespace of a root run): the pulls write
# about 3 GB, and each is removed once verified.
PULLS=$W/pulls
mkdir -p "$PULLS" "$T/ctrd" "$W/st" "$W/log"
mount -t tmpfs -o size=4g e2e-pulls "$PULLS" 2>/dev/null || true
mount -t tmpfs -o size=4g e2e-ctrd "$T/ctrd" 2>/dev/null || true

# ---- the image and two replicas ------------------------------------------------------------------

# Five 20 MiB layers of seeded pseudo-random bytes and a small one: ~100 MB, the same every run.
python3 "$(repo)/tests/fixtures/mkrandom.py" "$FX/big.tar" test/big:1 haproxy \
	20480 20480 20480 20480 20480 64 || e2e_die "mkrandom.py"
R1=$W/r1
R2=$W/r2
"$REGPRESS" build -q --progress=none --compression none -o "$R1" "$FX/big.tar" ||
	e2e_die "building the tree"
rm -f "$FX/big.tar"
cp -a "$R1" "$R2"
REF=test/big:1
MDIGEST=$(cut -d' ' -f1 "$R1/registry/repos/test/big/_manifests/tags/1")
MANIFEST=$R1/blobs/sha256/${MDIGEST#sha256:}
# Every blob the manifest names: config and layers.
mapfile -t BLOBS < <(jq -r '.config.digest, .layers[].digest' "$MANIFEST")
TOTAL=$(jq '[.config.size, .layers[].size] | add' "$MANIFEST")
e2e_log "image $REF: $MDIGEST, ${#BLOBS[@]} blobs, $TOTAL bytes"

# elapsed FROM TO: seconds between two `date +%s.%N` readings.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

snap_id() { { "$REGPRESS" snapshot "$1" >/dev/null; } 2>&1; }
same_snapshot() {
	local a b
	a=$(snap_id "$R1")
	b=$(snap_id "$R2")
	echo "r1: $a"
	echo "r2: $b"
	[ -n "$a" ] && [ "$a" = "$b" ]
}
check "both replicas hold the same snapshot (regpress snapshot)" same_snapshot

e2e_serve "$R1" --workers 1
P1=$PORT S1=$SERVE_PID
# Replica 2's access log shows the clients that resumed a cut download with Range (206).
e2e_serve "$R2" --workers 1 --access-log "$W/r2-access.log"
P2=$PORT
L1=$(ps -o pid= --ppid "$S1" | tr -d ' ') # replica 1's lighttpd, leader of its process group

# Both replicas give the same ETag and bytes for the manifest (etag.use-inode off).
same_answers() {
	local p h
	for p in "$P1" "$P2"; do
		curl -fsS --cacert "$CERTS/ca.crt" -D "$W/h.$p" -o "$W/m.$p" \
			-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
			"https://127.0.0.1:$p/v2/test/big/manifests/1"
		cmp "$W/m.$p" "$MANIFEST"
		h=$(tr -d '\r' <"$W/h.$p" | awk -F': ' 'tolower($1) == "etag" {print $2}')
		echo "127.0.0.1:$p ETag $h"
		[ -n "$h" ]
		echo "$h" >>"$W/etags"
	done
	[ "$(sort -u "$W/etags" | wc -l)" -eq 1 ]
}
check "both replicas serve the same manifest bytes and ETag" same_answers

# ---- HAProxy with examples/haproxy.cfg ----------------------------------------------------------

hastat() { python3 "$HASTAT" "$SOCK" "$@"; }

HAPORT=$(e2e_free_port)
HA=127.0.0.1:$HAPORT
SOCK=$W/haproxy.sock
cat "$CERTS/server.crt" "$CERTS/server.key" >"$W/regpress.pem"
# localize OUT: the example for this test's addresses, certificates and socket; nothing of the
# example's own may be left.
localize() {
	sed -e "s#bind :443#bind $HA#" -e "s#10\.0\.0\.11:443#127.0.0.1:$P1#" \
		-e "s#10\.0\.0\.12:443#127.0.0.1:$P2#" -e "s#registry\.example\.internal#localhost#g" \
		-e "s#/etc/regpress/tls/ca\.crt#$CERTS/ca.crt#g" -e "s#/run/haproxy/regpress\.sock#$SOCK#" \
		-e "s#/etc/haproxy/regpress\.pem#$W/regpress.pem#" "$EXAMPLE" >"$1"
	if grep -nE '10\.0\.0\.|example\.internal|/etc/|/run/|bind :' "$1" | grep -v '^[0-9]*: *#[^|]'; then
		echo "left unreplaced in $1 (above)"
		return 1
	fi
}
check "examples/haproxy.cfg, localized" localize "$W/haproxy.cfg"
check "haproxy -c accepts it" haproxy -c -f "$W/haproxy.cfg"
# The alternative: the live sections before `frontend registry`, then the commented ones.
alternative() {
	{
		sed -n '/^frontend registry/q;p' "$W/haproxy.cfg"
		sed -n 's/^#| \{0,1\}//p' "$W/haproxy.cfg"
	} >"$W/haproxy-alt.cfg"
	grep -q 'ssl crt' "$W/haproxy-alt.cfg" || { echo "no TLS frontend in the alternative"; return 1; }
	haproxy -c -f "$W/haproxy-alt.cfg"
}
check "haproxy -c accepts its TLS-terminating alternative" alternative

e2e_spawn "$W/haproxy.log" haproxy -db -f "$W/haproxy.cfg"
HA_PID=$E2E_SPAWNED
# Both replicas UP, their last checks passed (one process polls: this test shares 2 cores).
if ! hastat until 60 replicas/r1/check_status == L7OK replicas/r1/status == UP \
	replicas/r2/check_status == L7OK replicas/r2/status == UP >/dev/null; then
	cat "$W/haproxy.log"
	e2e_die "HAProxy did not see both replicas UP"
fi

# ---- the pulls ---------------------------------------------------------------------------------

e2e_containerd
# Content sharing off: a namespace gets a blob only by downloading it (containerd checks its
# digest), even when another namespace already has it.
e2e_containerd_stop
printf '\n[plugins."io.containerd.metadata.v1.bolt"]\n  content_sharing_policy = "isolated"\n' \
	>>"$T/ctrd/config.toml"
e2e_spawn "$CTRD_LOG" containerd -c "$T/ctrd/config.toml"
CTRD_PID=$E2E_SPAWNED
e2e_wait_for "$E2E_WAIT_TENTHS" ctr -a "$CTR_SOCK" version || e2e_die "containerd did not restart"
PORT=$HAPORT URL=https://$HA e2e_hosts "$HA"

# One pull, run as its own session (e2e_spawn) so the harness can stop it: pull.sh KIND NAME
# writes its exit status to $ST/NAME when done. A pull that hangs is stopped after 600 s (124).
cat >"$W/pull.sh" <<'EOF'
kind=$1 name=$2 rc=0
case $kind in
skopeo)
	rm -rf "${PULLS:?}/$name"
	timeout -k 5 600 skopeo copy -q --retry-times 0 --src-cert-dir "$CA_DIR" \
		"docker://$HA/$REF" "dir:$PULLS/$name" || rc=$?
	;;
ctr)
	timeout -k 5 600 ctr -a "$CTR_SOCK" -n "$name" images pull --hosts-dir "$HOSTS" \
		"$HA/$REF" || rc=$?
	;;
esac
echo "$rc" >"$ST/$name.tmp" && mv "$ST/$name.tmp" "$ST/$name"
EOF
export PULLS CA_DIR HA REF CTR_SOCK HOSTS
export ST=$W/st
declare -A PULL_PID=()
start_pull() { # KIND NAME
	rm -f "$ST/$2"
	e2e_spawn "$W/log/$2" bash "$W/pull.sh" "$1" "$2"
	PULL_PID[$2]=$E2E_SPAWNED
}
# finished NAME...: every one has written its status.
finished() {
	local n
	for n in "$@"; do [ -e "$ST/$n" ] || return 1; done
}
# reap NAME...: wait (bounded) until they have finished, then collect their processes.
reap() {
	local n
	e2e_wait_for 6500 finished "$@" || echo "# pulls still running after 650 s: stopping them"
	for n in "$@"; do
		e2e_stop "${PULL_PID[$n]}" || true
		[ -e "$ST/$n" ] || echo hung >"$ST/$n"
	done
}

# verify NAME: the pull's content is the tree's, byte for byte. skopeo: manifest.json is the
# tree's manifest, and there is one file per blob, named by its digest, that hashes to it.
# ctr: its namespace's image names the tree's manifest and holds every blob (containerd checks
# a blob's digest before committing it, and every layer's diff_id as it unpacks).
verify() {
	local n=$1 b files
	case $n in
	s*)
		cmp -s "$PULLS/$n/manifest.json" "$MANIFEST" || { echo "$n: another manifest"; return 1; }
		files=$(find "$PULLS/$n" -type f ! -name manifest.json ! -name version | wc -l)
		[ "$files" -eq "${#BLOBS[@]}" ] || { echo "$n: $files blob files, want ${#BLOBS[@]}"; return 1; }
		for b in "${BLOBS[@]}"; do
			[ "$(sha256sum <"$PULLS/$n/${b#sha256:}" | cut -d' ' -f1)" = "${b#sha256:}" ] ||
				{ echo "$n: $b has other bytes"; return 1; }
		done
		rm -rf "${PULLS:?}/$n"
		;;
	c*)
		ctr -a "$CTR_SOCK" -n "$n" images ls | awk -v r="$HA/$REF" -v d="$MDIGEST" \
			'$1 == r && $3 == d {ok = 1} END {exit !ok}' ||
			{ echo "$n: no image $HA/$REF with $MDIGEST"; return 1; }
		ctr -a "$CTR_SOCK" -n "$n" content ls -q >"$W/content.$n" || return 1
		for b in "${BLOBS[@]}" "$MDIGEST"; do
			grep -qxF "$b" "$W/content.$n" || { echo "$n: no blob $b"; return 1; }
		done
		;;
	esac
}

# failed_clean NAME: a failed pull said so: an exit status, not a hang, and an error message.
failed_clean() {
	local st
	st=$(cat "$ST/$1")
	case $st in
	hung | 124 | 137) echo "$1: hung (status $st)"; return 1 ;;
	esac
	grep -qiE 'error|fail|EOF|reset|refused' "$W/log/$1" ||
		{ echo "$1: exit $st without a message:"; tail -5 "$W/log/$1"; return 1; }
}

FIRST=()
for ((i = 1; i <= NSKOPEO; i++)); do FIRST+=("s$i"); done
for ((i = 1; i <= NCTR; i++)); do FIRST+=("c$i"); done
chkfail0=$(hastat stat replicas r1 chkfail)
chkdown0=$(hastat stat replicas r1 chkdown)
T0=$(date +%s.%N)
for n in "${FIRST[@]}"; do
	case $n in s*) start_pull skopeo "$n" ;; c*) start_pull ctr "$n" ;; esac
done

# In the middle: a third of all the bytes sent, replica 1 serving some of the pulls.
read -r BOUT scur1 scur2 _ < <(hastat until 600 replicas/BACKEND/bout '>=' $((${#FIRST[@]} * TOTAL / 3)) \
	replicas/r1/scur '>' 0 replicas/r2/scur '>=' 0 || echo "0 0 0")
[ "$BOUT" -gt 0 ] || e2e_log "the pulls never reached the middle with replica 1 serving"
# Watch for replica 1 going DOWN from before the kill, so the time seen is HAProxy's.
e2e_spawn "$W/down.txt" python3 "$HASTAT" "$SOCK" until 120 replicas/r1/status == DOWN
DOWN_PID=$E2E_SPAWNED
# Quietly: bash would report the SIGKILL of regpress serve, which is collected here at once.
{
	kill -KILL -- "-$S1" "-$L1" || true
	TK=$(date +%s.%N)
	e2e_stop "$S1" || true
} 2>/dev/null
e2e_log "killed replica 1 (regpress serve $S1 and lighttpd $L1, both process groups, SIGKILL)" \
	"$(elapsed "$T0" "$TK") s in, after $((BOUT / 1000000)) MB of $((${#FIRST[@]} * TOTAL / 1000000));" \
	"sessions on r1: $scur1, on r2: $scur2"

# Pulls started after the kill, before HAProxy noticed it: connections refused by the dead
# replica are retried on the other one (retries + redispatch).
AFTER=(s21 s22 c11)
for n in "${AFTER[@]}"; do
	case $n in s*) start_pull skopeo "$n" ;; c*) start_pull ctr "$n" ;; esac
done

down_seen() { [ -s "$W/down.txt" ] || ! e2e_alive "$DOWN_PID"; }
marked_down() {
	local chkfail chkdown status
	e2e_wait_for 1300 down_seen
	e2e_stop "$DOWN_PID" || true
	read -r _ TD <"$W/down.txt" || { echo "r1 is not marked DOWN: $(hastat stat replicas r1 status)"; return 1; }
	read -r chkfail chkdown status < <(hastat stat replicas r1 chkfail chkdown check_status)
	echo "DOWN after $((chkfail - chkfail0)) failed checks ($status), $((chkdown - chkdown0)) UP->DOWN transition"
	[ $((chkfail - chkfail0)) -eq 2 ] && [ $((chkdown - chkdown0)) -eq 1 ] && return 0
	return 1
}
check_here "HAProxy marks the killed replica DOWN after fall (2) failed checks" marked_down
e2e_log "replica 1 DOWN $(elapsed "$TK" "${TD:-$TK}") s after the kill (information; inter 1s, fastinter 250ms, fall 2)"
grep -m1 -E 'r1 is DOWN' "$W/haproxy.log" | sed 's/^/# haproxy: /' || true

reap "${FIRST[@]}" "${AFTER[@]}"

# Every pull of the first wave: complete and verified, or failed cleanly (then retried below).
FAILED=()
first_wave() {
	local n rc=0
	for n in "${FIRST[@]}"; do
		if [ "$(cat "$ST/$n")" = 0 ]; then
			verify "$n" || rc=1
		else
			failed_clean "$n" || rc=1
			echo "$n failed: $(grep -m1 -iE 'error|fail|EOF|reset' "$W/log/$n" | cut -c1-200)"
		fi
	done
	return "$rc"
}
check "the first 30 pulls: verified, or failed cleanly" first_wave
for n in "${FIRST[@]}"; do [ "$(cat "$ST/$n")" = 0 ] || FAILED+=("$n"); done
e2e_log "first wave: $((${#FIRST[@]} - ${#FAILED[@]})) of ${#FIRST[@]} complete, ${#FAILED[@]} failed: ${FAILED[*]:-none}"

after_kill() {
	local n rc=0
	for n in "${AFTER[@]}"; do
		[ "$(cat "$ST/$n")" = 0 ] || { echo "$n: status $(cat "$ST/$n")"; tail -5 "$W/log/$n"; rc=1; continue; }
		verify "$n" || rc=1
	done
	return "$rc"
}
check "the ${#AFTER[@]} pulls started after the kill all complete, verified" after_kill

# The failed ones, retried once replica 1 is DOWN: all complete.
for n in "${FAILED[@]}"; do
	mv "$W/log/$n" "$W/log/$n.first"
	case $n in s*) start_pull skopeo "$n" ;; c*) start_pull ctr "$n" ;; esac
done
reap "${FAILED[@]}"
retried() {
	local n rc=0
	for n in "${FAILED[@]}"; do
		[ "$(cat "$ST/$n")" = 0 ] || { echo "$n: status $(cat "$ST/$n")"; tail -5 "$W/log/$n"; rc=1; continue; }
		verify "$n" || rc=1
	done
	return "$rc"
}
check "the ${#FAILED[@]} failed pulls complete when retried, verified" retried

# containerd's own store, once: every blob file hashes to its name.
ctr_store() {
	local b f
	for b in "${BLOBS[@]}" "$MDIGEST"; do
		f=$T/ctrd/root/io.containerd.content.v1.content/blobs/sha256/${b#sha256:}
		[ "$(sha256sum <"$f" | cut -d' ' -f1)" = "${b#sha256:}" ] || { echo "$f: other bytes"; return 1; }
	done
}
check "containerd's content store holds the tree's bytes" ctr_store
e2e_log "Range requests (206) answered by replica 2: containerd $(grep -c '" 206 .*containerd' "$W/r2-access.log" || true)," \
	"skopeo $(grep -c '" 206 .*skopeo' "$W/r2-access.log" || true) (a client resuming a download cut by the kill)"
e2e_log "all pulls done $(elapsed "$T0" "$(date +%s.%N)") s after the first started (information)"

# ---- the TLS-terminating alternative serves too ------------------------------------------------

ALTPORT=$(e2e_free_port)
sed -i -e "s#bind $HA #bind 127.0.0.1:$ALTPORT #" -e "s#$SOCK#$W/haproxy-alt.sock#" "$W/haproxy-alt.cfg"
e2e_spawn "$W/haproxy-alt.log" haproxy -db -f "$W/haproxy-alt.cfg"
ALT_PID=$E2E_SPAWNED
alt_serves() {
	e2e_wait_for 100 curl -fsS -o /dev/null --cacert "$CERTS/ca.crt" "https://127.0.0.1:$ALTPORT/v2/"
	curl -fsS --cacert "$CERTS/ca.crt" -o "$W/alt.m" \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		"https://127.0.0.1:$ALTPORT/v2/test/big/manifests/1"
	cmp "$W/alt.m" "$MANIFEST"
}
check "the TLS-terminating alternative serves the manifest (replica 2 only)" alt_serves

check_here "HAProxy stops on SIGTERM" e2e_stop "$HA_PID"
check_here "its alternative stops on SIGTERM" e2e_stop "$ALT_PID"
check_here "containerd stops" e2e_containerd_stop
check_here "replica 2 stops on SIGTERM" e2e_serve_stop
e2e_done
