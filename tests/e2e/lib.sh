# shellcheck shell=bash
# Shared harness for the end-to-end tests. Source it from a test script:
#
#   . "$(dirname "$0")/lib.sh"
#   e2e_tmpdir; e2e_fixtures "$T/fx"; ...; check "name" cmd args...; e2e_done
#
# Contract other scripts rely on (keep these names):
#   $REGPRESS            binary under test (default: <repo>/regpress)
#   e2e_tmpdir           creates and exports $T, removed at exit unless KEEP=1
#   e2e_certs DIR        DIR/{ca.crt,ca.key,server.crt,server.key}, plus DIR/trust/ca.crt (a directory
#                        holding only the CA, for skopeo --src-cert-dir / --cert-dir)
#   e2e_fixtures DIR     tiny docker-archive tarballs, see e2e_fixtures below
#   e2e_serve TREE [OPT] runs `regpress serve` on a free 127.0.0.1 port; exports $PORT $URL $REG
#                        $SERVE_PID $CERTS $CA_DIR
#   e2e_containerd       throwaway containerd; exports $CTR_SOCK $HOSTS (hosts.toml for 127.0.0.1:$PORT)
#   e2e_hosts NAME       $HOSTS/NAME/hosts.toml pointing at the server (NAME=docker.io: mirror mode)
#   check NAME CMD...    runs CMD, prints "ok - NAME" or "FAIL - NAME" plus the output, counts
#   check_here NAME CMD  the same, CMD in this shell (e2e_serve_stop, e2e_containerd_stop)
#   e2e_serve_stop       stops the server (status 1 if it ignored SIGTERM or logged a sanitizer error)
#   e2e_done             stops everything, removes temp dirs, prints "N passed, N failed", exits
#   fails CMD, same_file A B   small predicates for check
#   e2e_tree_state DIR   names, types, sizes, modes, mtimes, links and sha256 of a tree, to diff
#
# $E2E_CACHE (set by tests/run.sh): fixtures are made there once per run. KEEP=1 keeps $T.
# The EXIT trap is the harness's cleanup: a script must not replace it.
#
# CMD in `check` runs in a background subshell with errexit on, so a shell function used as CMD
# stops at its first failing command (inside `if`, bash would silently ignore set -e).

set -euo pipefail

# A private mount namespace for the whole script (root only): skopeo and containerd keep state in
# fixed places (/var/lib/containers/cache, temp files in /var/tmp) that would otherwise be shared
# with every other test of a parallel run and left behind on the machine. Here /var/tmp is a
# tmpfs of the script's own and /var/lib/containers too (over an overlay of /var/lib when it does
# not exist), all gone with the script's last process. The script is re-run once inside (same pid).
_e2e_private_mounts() {
	mount -t tmpfs -o mode=1777,size=4g e2e-var-tmp /var/tmp || return 1
	if [ -d /var/lib/containers ]; then
		mount -t tmpfs -o mode=0700 e2e-containers /var/lib/containers
	else
		mkdir -p /var/tmp/.e2e-var-lib/upper /var/tmp/.e2e-var-lib/work &&
			mount -t overlay e2e-var-lib -o lowerdir=/var/lib,upperdir=/var/tmp/.e2e-var-lib/upper,workdir=/var/tmp/.e2e-var-lib/work /var/lib
	fi
}
if [ "${E2E_PRIVATE_NS:-}" != "$$" ] && [ "$(id -u)" = 0 ] && [ -z "${E2E_SHARED_NS:-}" ] &&
	command -v unshare >/dev/null; then
	exec env E2E_PRIVATE_NS=$$ unshare -m --propagation private -- bash "$0" "$@"
fi
if [ "${E2E_PRIVATE_NS:-}" = "$$" ] && [ -z "${E2E_NS_READY:-}" ]; then
	_e2e_private_mounts || { echo "FAIL - harness: cannot set up the private mounts"; exit 1; }
	export E2E_NS_READY=1
fi

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_ROOT=$(cd "$E2E_DIR/../.." && pwd)

# repo: the source tree's root (where `make` puts ./regpress).
repo() { printf '%s\n' "$E2E_ROOT"; }

REGPRESS=${REGPRESS:-$E2E_ROOT/regpress}
export REGPRESS

E2E_PASSED=0
E2E_FAILED=0
E2E_PIDS=()    # process ids to stop at exit (each a session leader: see e2e_spawn)
E2E_RMDIRS=()  # directories to remove at exit
E2E_DONE=0

# Every wait in this harness is bounded; this is the default in tenths of a second.
E2E_WAIT_TENTHS=${E2E_WAIT_TENTHS:-100}

e2e_log() { printf '# %s\n' "$*"; }

# e2e_die MSG: a harness problem (not a product check): count it and stop the script.
e2e_die() {
	printf 'FAIL - harness: %s\n' "$*"
	E2E_FAILED=$((E2E_FAILED + 1))
	e2e_done
}

# ---------------------------------------------------------------------------------------------
# checks

# A check that runs longer than this is taken for a hang: it fails, and what it was waiting for
# (its processes) is shown. Far above any check's normal time; no verdict comes from speed.
E2E_CHECK_TIMEOUT=${E2E_CHECK_TIMEOUT:-600}

# check NAME CMD...: run CMD, print ok/FAIL, count. Output is shown only on failure.
check() {
	local name=$1 out pid wd rc=0
	shift
	out=$(mktemp "${T:-${TMPDIR:-/tmp}}/check.XXXXXX")
	# Background job, not `if "$@"`: keeps errexit active inside shell functions used as CMD.
	"$@" >"$out" 2>&1 </dev/null &
	pid=$!
	e2e_watchdog "$E2E_CHECK_TIMEOUT" "$pid" "$out"
	wd=$E2E_WATCHDOG
	wait "$pid" || rc=$?
	e2e_watchdog_stop "$wd"
	if [ -e "$out.hung" ]; then
		rc=124
		cat "$out.hung" >>"$out"
		rm -f "$out.hung"
	fi
	if [ "$rc" -eq 0 ]; then
		printf 'ok - %s\n' "$name"
		E2E_PASSED=$((E2E_PASSED + 1))
	else
		printf 'FAIL - %s (exit %d)\n' "$name" "$rc"
		printf '#   command: %s\n' "${E2E_SHOWN_CMD:-$*}"
		# Enough of the output to diagnose, not enough to drown the run.
		head -c 6000 "$out" | sed 's/^/#   | /'
		E2E_FAILED=$((E2E_FAILED + 1))
	fi
	rm -f "$out"
	return 0
}

# e2e_watchdog SECONDS PID FILE: in the background, if PID is still running after SECONDS, write
# what it and its descendants are doing to FILE.hung and kill them. Sets $E2E_WATCHDOG, which
# e2e_watchdog_stop takes once PID has ended. The watchdog waits in `read -t` on a pipe of its own
# (no timer process to leak), and only `wait PID` is used on children: bash's `wait -n` can leave
# a status behind that a later child with a reused pid then reports as its own.
e2e_watchdog() {
	local secs=$1 pid=$2 file=$3 fd
	mkfifo "$file.stop"
	exec {fd}<>"$file.stop"
	rm -f "$file.stop"
	(
		read -r -t "$secs" -u "$fd" _ && exit 0
		all=$(printf '%s\n' "$pid" $(e2e_descendants "$pid") | paste -sd, -)
		{
			echo "timed out after ${secs}s; still running (what it was waiting for):"
			ps -o pid=,etime=,args= -p "$all" 2>/dev/null | sed 's/^/  /' || true
		} >"$file.hung"
		# shellcheck disable=SC2046 # pids, split on purpose
		kill -KILL $(printf '%s\n' "$all" | tr , ' ') 2>/dev/null || true
	) &
	E2E_WATCHDOG="$! $fd"
}
e2e_watchdog_stop() {
	local wd fd
	read -r wd fd <<<"$1"
	echo >&"$fd"
	wait "$wd" 2>/dev/null || true
	exec {fd}>&-
}

# check_here NAME CMD...: like check, but CMD runs in this shell, so it can change the harness's
# state (stop processes it started, export variables). errexit does not apply inside CMD: it must
# return its status explicitly.
check_here() {
	local name=$1 out rc=0
	shift
	out=$(mktemp "${T:-${TMPDIR:-/tmp}}/check.XXXXXX")
	"$@" >"$out" 2>&1 </dev/null || rc=$?
	E2E_SHOWN_CMD="$*" check "$name" _e2e_replay "$out" "$rc"
	rm -f "$out"
}
_e2e_replay() { cat "$1"; return "$2"; }

# fails CMD...: succeeds when CMD fails (for `check "rejects x" fails cmd ...`).
fails() {
	if "$@"; then
		echo "expected failure, but the command succeeded: $*"
		return 1
	fi
	return 0
}

# e2e_tree_state DIR: everything a reader of DIR could notice, as text to diff: a line per file
# or directory with type, size, mode, mtime (ns) and link target, then every file's sha256.
e2e_tree_state() {
	(
		cd "$1" || exit 1
		find . -printf '%p %y %s %m %T@ %l\n' | LC_ALL=C sort
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum
	)
}

# same_file A B: byte-identical files, with a short diff when not.
same_file() {
	if ! cmp -s "$1" "$2"; then
		echo "files differ: $1 $2"
		diff <(head -c 2000 "$1") <(head -c 2000 "$2") | head -20 || true
		return 1
	fi
}

# ---------------------------------------------------------------------------------------------
# temp dirs, processes, cleanup

e2e_tmpdir() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/regpress-e2e.XXXXXX")
	export T
	if [ "${KEEP:-0}" = 1 ]; then
		e2e_log "KEEP=1: leaving $T"
	else
		E2E_RMDIRS+=("$T")
	fi
}

# e2e_spawn LOG CMD...: start CMD in the background in its own session, so that stopping it can also
# stop whatever it forked (lighttpd, shims); prints the pid. A background child of a non-interactive
# shell is not a process group leader, so setsid(1) calls setsid() without forking: $! is CMD's pid.
e2e_spawn() {
	local log=$1
	shift
	setsid "$@" >"$log" 2>&1 </dev/null &
	E2E_PIDS+=("$!")
	E2E_SPAWNED=$!
}

# e2e_alive PID: the process exists and is not a zombie.
e2e_alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	case $st in Z*) return 1 ;; esac
}

# e2e_group_alive PGID: some process of the group is still running.
e2e_group_alive() {
	local p
	for p in $(ps -e -o pid=,pgid=,stat= | awk -v g="$1" '$2 == g && $3 !~ /^Z/ {print $1}'); do
		return 0
	done
	return 1
}

# e2e_descendants PID: the pids of PID's children, grandchildren...
e2e_descendants() {
	local c
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		echo "$c"
		e2e_descendants "$c"
	done
}

# e2e_stop PID: SIGTERM, wait (bounded), then SIGKILL the whole session it leads.
# Returns 1 if the process or one of its children had to be killed.
e2e_stop() {
	local pid=$1 i rc=0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		e2e_alive "$pid" || e2e_group_alive "$pid" || break
		sleep 0.1
	done
	if e2e_alive "$pid" || e2e_group_alive "$pid"; then
		kill -KILL -- "-$pid" 2>/dev/null || true
		kill -KILL "$pid" 2>/dev/null || true
		rc=1
	fi
	# Only the shell that started it can wait for it (and learn its status); in a subshell (inside
	# `check`) the process stays a zombie until the parent's cleanup reaps it, so its pid cannot be
	# reused meanwhile.
	E2E_STOP_STATUS=unknown
	if [ "$BASHPID" = "$$" ]; then
		E2E_STOP_STATUS=0
		wait "$pid" 2>/dev/null || E2E_STOP_STATUS=$?
	fi
	local keep=() p
	for p in "${E2E_PIDS[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	E2E_PIDS=("${keep[@]}")
	return "$rc"
}

# Unmount anything still mounted under a directory before removing it (containerd snapshots):
# rm -rf through a live overlay mount would delete files in the lower directories.
e2e_umount_under() {
	local dir=$1 m
	[ -d "$dir" ] || return 0
	awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while IFS= read -r m; do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		done
}

# _e2e_adopt PIDS: processes our children started (lighttpd under regpress serve, possibly in a
# session of its own). Cleanup kills any still running, so a crashed parent leaves no orphan; the
# start time recorded with each pid guards against a reused pid.
E2E_ADOPTED=()
_e2e_starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }
_e2e_adopt() {
	local p
	for p in $1; do
		E2E_ADOPTED+=("$p:$(_e2e_starttime "$p")")
	done
}

e2e_cleanup() {
	local pid d a
	for pid in "${E2E_PIDS[@]}"; do
		[ -n "$pid" ] && { e2e_stop "$pid" || true; }
	done
	E2E_PIDS=()
	for a in "${E2E_ADOPTED[@]}"; do
		pid=${a%%:*}
		if [ -n "${a#*:}" ] && [ "$(_e2e_starttime "$pid")" = "${a#*:}" ] && e2e_alive "$pid"; then
			echo "# cleanup: killing leftover $(ps -o args= -p "$pid")"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	E2E_ADOPTED=()
	for d in "${E2E_RMDIRS[@]}"; do
		e2e_umount_under "$d"
		rm -rf "$d"
	done
	E2E_RMDIRS=()
}
trap e2e_cleanup EXIT
trap 'echo "# interrupted"; exit 130' INT TERM

# e2e_done: stop and remove everything, print the totals, exit 1 if any check failed.
e2e_done() {
	[ "$E2E_DONE" = 1 ] && exit 1
	E2E_DONE=1
	e2e_cleanup
	printf '%d passed, %d failed\n' "$E2E_PASSED" "$E2E_FAILED"
	[ "$E2E_FAILED" -eq 0 ] || exit 1
	exit 0
}

# e2e_free_port: an unused TCP port on 127.0.0.1 (the kernel picks; tiny race until it is bound).
e2e_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# e2e_wait_for TENTHS CMD...: poll CMD every 0.1 s, at most TENTHS times.
e2e_wait_for() {
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# ---------------------------------------------------------------------------------------------
# certificates

# e2e_certs DIR: a CA and a server certificate for 127.0.0.1/localhost, ECDSA P-256. Go clients
# need the name in subjectAltName and a CA with basicConstraints CA:TRUE and keyCertSign.
e2e_certs() {
	local d=$1
	mkdir -p "$d/trust"
	[ -s "$d/server.crt" ] && return 0
	cat >"$d/ca.cnf" <<-'EOF'
		[req]
		distinguished_name = dn
		prompt = no
		[dn]
		CN = regpress test CA
		[ext]
		basicConstraints = critical, CA:TRUE
		keyUsage = critical, keyCertSign, cRLSign
		subjectKeyIdentifier = hash
	EOF
	cat >"$d/server.cnf" <<-'EOF'
		[req]
		distinguished_name = dn
		prompt = no
		[dn]
		CN = localhost
		[ext]
		basicConstraints = critical, CA:FALSE
		keyUsage = critical, digitalSignature
		extendedKeyUsage = serverAuth
		subjectAltName = IP:127.0.0.1, DNS:localhost
		subjectKeyIdentifier = hash
		authorityKeyIdentifier = keyid
	EOF
	(
		cd "$d"
		openssl ecparam -name prime256v1 -genkey -noout -out ca.key
		openssl req -new -x509 -key ca.key -sha256 -days 3650 -config ca.cnf -extensions ext -out ca.crt
		openssl ecparam -name prime256v1 -genkey -noout -out server.key
		openssl req -new -key server.key -config server.cnf -out server.csr
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 825 \
			-extfile server.cnf -extensions ext -out server.crt
		rm -f server.csr ca.srl
		chmod 600 ca.key server.key
		cp ca.crt trust/ca.crt
	) >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log"; return 1; }
}

# ---------------------------------------------------------------------------------------------
# fixtures

# The architecture the host's clients pull by default (containerd matches the config's platform).
e2e_goarch() {
	case $(uname -m) in
	x86_64) echo amd64 ;;
	aarch64 | arm64) echo arm64 ;;
	armv7l) echo arm ;;
	ppc64le) echo ppc64le ;;
	s390x) echo s390x ;;
	riscv64) echo riscv64 ;;
	*) uname -m ;;
	esac
}

# _e2e_umoci_image LAYOUT FROM TAG DIR: tag TAG = FROM (or a new empty image when FROM is "-") plus
# one layer holding DIR's files. unpack + repack, not `umoci insert`: umoci 0.4.7's insert writes
# layer tars without the end-of-archive blocks (and without the last file's padding).
_e2e_umoci_image() {
	local layout=$1 from=$2 tag=$3 dir=$4 bundle
	if [ "$from" = - ]; then
		umoci new --image "$layout:$tag"
		umoci config --image "$layout:$tag" --os linux --architecture "$(e2e_goarch)" \
			--config.cmd /bin/hello --config.env PATH=/bin
	else
		umoci tag --image "$layout:$from" "$tag"
	fi
	bundle=$layout.bundle-$tag
	umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
	cp -a "$dir/." "$bundle/rootfs/"
	umoci repack --image "$layout:$tag" "$bundle"
	rm -rf "$bundle"
}

# e2e_fixtures DIR: small docker-archive tarballs made by real tools (umoci, skopeo) plus a
# hand-made Docker <= 24 archive. Built once per run when $E2E_CACHE is set, then copied.
#   DIR/base.tar        skopeo layout, one image: base:1 (RepoTags docker.io/library/base:1)
#   DIR/app.tar         skopeo layout, one image, two tags: example.com/team/app:1.0 and :latest;
#                       its first layer is base's layer (shared)
#   DIR/multi.tar       Docker <= 24 layout (<v1id>/layer.tar, VERSION, json, symlinked duplicate
#                       layer), two images: user/tool:1.0 and other:2 (+ other:latest), both on
#                       base's layer
#   DIR/truncated.tar   multi.tar cut in the middle of a layer
#   DIR/badlayer.tar    app.tar with one byte of file content in the app layer changed (the tar
#                       still parses, the diff_id no longer matches)
#   DIR/badlayer-legacy.tar  multi.tar with the same kind of change in user/tool's own layer
#   DIR/images.list     one line per tag: "<file> <archive ref> <tree repository> <tag>"
e2e_fixtures() {
	local out=$1 cache
	mkdir -p "$out"
	if [ -n "${E2E_CACHE:-}" ]; then
		cache=$E2E_CACHE/fixtures
		mkdir -p "$cache"
		# flock: two scripts of one run may ask at once.
		(
			flock 9
			[ -e "$cache/.done" ] || { _e2e_make_fixtures "$cache" && touch "$cache/.done"; }
		) 9>"$E2E_CACHE/fixtures.lock" || return 1
		cp "$cache"/*.tar "$cache/images.list" "$out/"
	else
		_e2e_make_fixtures "$out"
	fi
}

# e2e_workspace: the fixtures in $FX ($T/fx, see e2e_fixtures) and an empty work directory $W
# ($T/work). Call after e2e_tmpdir.
e2e_workspace() {
	FX=$T/fx
	W=$T/work
	e2e_fixtures "$FX" || e2e_die "fixtures"
	mkdir -p "$W"
}

_e2e_make_fixtures() {
	local out=$1 w
	w=$(mktemp -d "${TMPDIR:-/tmp}/regpress-fx.XXXXXX")
	local rc=0
	# In the background so errexit stays on inside (see check).
	_e2e_make_fixtures_in "$out" "$w" >"$w.log" 2>&1 &
	wait "$!" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "making fixtures failed:"
		cat "$w.log"
		rm -rf "$w" "$w.log"
		return 1
	fi
	rm -rf "$w" "$w.log"
}

_e2e_make_fixtures_in() {
	local out=$1 w=$2 L=$2/layout
	# A few tiny files per image; distinct contents so every layer differs.
	mkdir -p "$w/base/etc" "$w/base/bin" "$w/app/app" "$w/tool/usr/bin" "$w/other/srv"
	printf 'NAME="regpress test base"\nID=regpress\n' >"$w/base/etc/os-release"
	printf '#!/bin/sh\necho hello from base\n' >"$w/base/bin/hello"
	chmod 755 "$w/base/bin/hello"
	printf 'app 1.0\n' >"$w/app/app/VERSION"
	printf 'hello from app\n' >"$w/app/app/hello.txt"
	printf '#!/bin/sh\necho tool\n' >"$w/tool/usr/bin/tool"
	chmod 755 "$w/tool/usr/bin/tool"
	printf 'other image payload %s\n' 1 2 3 >"$w/other/srv/data.txt"

	umoci init --layout "$L"
	_e2e_umoci_image "$L" - base "$w/base"
	_e2e_umoci_image "$L" base app "$w/app"
	_e2e_umoci_image "$L" base tool "$w/tool"
	_e2e_umoci_image "$L" base other "$w/other"
	umoci gc --layout "$L"

	skopeo copy -q "oci:$L:base" "docker-archive:$out/base.tar:base:1"
	skopeo copy -q "oci:$L:app" "docker-archive:$out/app.tar:example.com/team/app:1.0" \
		--additional-tag example.com/team/app:latest
	python3 - "$L" "$out" <<-'PY'
	import gzip, hashlib, io, json, os, sys, tarfile

	layout, out = sys.argv[1], sys.argv[2]

	def blob(d):
	    with open(os.path.join(layout, "blobs", *d.split(":")), "rb") as f:
	        return f.read()

	def image(tag):
	    idx = json.loads(blob_path_bytes("index.json"))
	    for m in idx["manifests"]:
	        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
	            man = json.loads(blob(m["digest"]))
	            cfg = blob(man["config"]["digest"])
	            layers = [gzip.decompress(blob(l["digest"])) for l in man["layers"]]
	            return cfg, layers
	    raise SystemExit("no tag " + tag)

	def blob_path_bytes(name):
	    with open(os.path.join(layout, name), "rb") as f:
	        return f.read()

	def sha(b):
	    return hashlib.sha256(b).hexdigest()

	def add(tf, name, data=None, link=None, mode=0o644):
	    ti = tarfile.TarInfo(name)
	    ti.mtime = 0
	    ti.uid = ti.gid = 0
	    if link is not None:
	        ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, link, 0o777
	        tf.addfile(ti)
	    elif data is None:
	        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
	        tf.addfile(ti)
	    else:
	        ti.size, ti.mode = len(data), mode
	        tf.addfile(ti, io.BytesIO(data))

	def legacy(images, salt):
	    """Entries of a Docker <= 24 `docker save` of images [(repotags, cfg, layers)], as moby's
	    tarexport writes them: a directory per layer and image, a symlink for a layer already saved."""
	    entries = {}          # name -> (data, link)
	    saved = {}            # diff_id -> v1id that holds the real layer.tar
	    manifest, repos = [], {}
	    for tags, cfg, layers in images:
	        cfg_hex = sha(cfg)
	        created = json.loads(cfg)["created"]
	        parent, ids = "", []
	        for i, layer in enumerate(layers):
	            diff = sha(layer)
	            top = i == len(layers) - 1
	            # moby derives v1 ids from the chain and the image (so a shared layer gets a new
	            # directory per image); the exact recipe does not matter to readers.
	            v1id = cfg_hex if top else sha(("%s %s %s %s" % (salt, cfg_hex, parent, diff)).encode())
	            v1 = {"id": v1id, "created": created, "container_config": {"Cmd": None}, "os": "linux"}
	            if parent:
	                v1["parent"] = parent
	            entries[v1id + "/"] = (None, None)
	            entries[v1id + "/VERSION"] = (b"1.0", None)
	            entries[v1id + "/json"] = (json.dumps(v1, separators=(",", ":")).encode(), None)
	            if diff in saved:
	                entries[v1id + "/layer.tar"] = (None, "../%s/layer.tar" % saved[diff])
	            else:
	                saved[diff] = v1id
	                entries[v1id + "/layer.tar"] = (layer, None)
	            ids.append(v1id)
	            parent = v1id
	        entries[cfg_hex + ".json"] = (cfg, None)
	        manifest.append({"Config": cfg_hex + ".json", "RepoTags": tags,
	                         "Layers": [i + "/layer.tar" for i in ids]})
	        for t in tags:
	            name, tag = t.rsplit(":", 1)
	            repos.setdefault(name, {})[tag] = ids[-1]
	    entries["manifest.json"] = (json.dumps(manifest, separators=(",", ":")).encode() + b"\n", None)
	    entries["repositories"] = (json.dumps(repos, separators=(",", ":")).encode() + b"\n", None)
	    return entries

	def write(path, entries):
	    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
	        for name in sorted(entries):      # moby walks its temp dir: lexical order
	            data, link = entries[name]
	            add(tf, name.rstrip("/") + ("/" if data is None and link is None else ""), data, link)

	tool_cfg, tool_layers = image("tool")
	other_cfg, other_layers = image("other")
	imgs = [(["user/tool:1.0"], tool_cfg, tool_layers), (["other:2", "other:latest"], other_cfg, other_layers)]

	# Pick v1 ids so that the symlinked duplicate sorts *before* its target: a reader meets the link
	# first (it happens with real saves: v1 ids are hashes).
	for salt in range(1000):
	    entries = legacy(imgs, salt)
	    links = [(n, l) for n, (d, l) in entries.items() if l]
	    if links and all(n < os.path.normpath(os.path.join(os.path.dirname(n), l)) for n, l in links):
	        break
	else:
	    raise SystemExit("no v1 ids put the symlinked layer before its target")
	write(os.path.join(out, "multi.tar"), entries)

	# The same archive with one content byte of user/tool's own layer changed.
	bad = dict(entries)
	top = sha(tool_cfg) + "/layer.tar"
	layer = bytearray(bad[top][0])
	with tarfile.open(fileobj=io.BytesIO(bytes(layer))) as lt:
	    m = next(m for m in lt.getmembers() if m.isfile() and m.size > 0)
	layer[m.offset_data] ^= 0x20
	bad[top] = (bytes(layer), None)
	write(os.path.join(out, "badlayer-legacy.tar"), bad)

	# multi.tar cut in the middle of its largest layer.
	with tarfile.open(os.path.join(out, "multi.tar")) as tf:
	    big = max((m for m in tf.getmembers() if m.isfile()), key=lambda m: m.size)
	with open(os.path.join(out, "multi.tar"), "rb") as f:
	    data = f.read()
	with open(os.path.join(out, "truncated.tar"), "wb") as f:
	    f.write(data[: big.offset_data + big.size // 2])

	# app.tar (skopeo layout) with one content byte of the app layer changed, in place.
	data = bytearray(open(os.path.join(out, "app.tar"), "rb").read())
	man = None
	with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tf:
	    man = json.load(tf.extractfile("manifest.json"))
	    m = tf.getmember(man[0]["Layers"][-1])
	    while m.issym():
	        m = tf.getmember(os.path.normpath(os.path.join(os.path.dirname(m.name), m.linkname)))
	    start = m.offset_data
	    with tarfile.open(fileobj=io.BytesIO(bytes(data[start:start + m.size]))) as lt:
	        f = next(f for f in lt.getmembers() if f.isfile() and f.size > 0)
	data[start + f.offset_data] ^= 0x20
	with open(os.path.join(out, "badlayer.tar"), "wb") as fo:
	    fo.write(data)
	PY

	# What every test pulls and compares: file, archive reference, tree repository, tag.
	cat >"$out/images.list" <<-'EOF'
		base.tar docker.io/library/base:1 library/base 1
		app.tar example.com/team/app:1.0 example.com/team/app 1.0
		app.tar example.com/team/app:latest example.com/team/app latest
		multi.tar user/tool:1.0 user/tool 1.0
		multi.tar other:2 library/other 2
		multi.tar other:latest library/other latest
	EOF
}

# ---------------------------------------------------------------------------------------------
# server

# e2e_serve TREE [OPTION...]: `regpress serve` in the background on a free port of 127.0.0.1 with
# certificates from $CERTS (made in $T/certs when unset), plus any further serve OPTIONs (e.g.
# --access-log FILE); waits until /v2/ answers over TLS, or until the function named by
# $E2E_SERVE_PROBE succeeds (for servers that answer /v2/ with 401 or refuse our client).
e2e_serve() {
	local tree=$1 _
	shift
	: "${T:?e2e_tmpdir first}"
	CERTS=${CERTS:-$T/certs}
	CA_DIR=$CERTS/trust
	export CERTS CA_DIR
	e2e_certs "$CERTS" || e2e_die "could not make certificates"
	# The free port can be taken between probing and binding: try a few.
	for _ in 1 2 3; do
		PORT=$(e2e_free_port)
		SERVE_LOG=$T/serve-$PORT.log
		e2e_spawn "$SERVE_LOG" "$REGPRESS" serve "$tree" --cert "$CERTS/server.crt" \
			--key "$CERTS/server.key" --listen "127.0.0.1:$PORT" "$@"
		SERVE_PID=$E2E_SPAWNED
		if _e2e_wait_served; then
			_e2e_adopt "$(e2e_descendants "$SERVE_PID")"
			REG=127.0.0.1:$PORT
			URL=https://$REG
			export PORT URL REG SERVE_PID SERVE_LOG
			return 0
		fi
		e2e_stop "$SERVE_PID" || true
		grep -qi 'address already in use' "$SERVE_LOG" || break
	done
	echo "regpress serve did not come up within $((E2E_WAIT_TENTHS / 10)) s; its output:"
	sed 's/^/#   | /' "$SERVE_LOG"
	e2e_die "regpress serve $tree"
}

_e2e_v2_answers() {
	curl -fsS -o /dev/null --max-time 2 --cacert "$CERTS/ca.crt" "https://127.0.0.1:$PORT/v2/" 2>/dev/null
}

_e2e_wait_served() {
	local i
	for ((i = 0; i < E2E_WAIT_TENTHS; i++)); do
		e2e_alive "$SERVE_PID" || return 1
		"${E2E_SERVE_PROBE:-_e2e_v2_answers}" && return 0
		sleep 0.1
	done
	return 1
}

# e2e_serve_stop: stop the server started by e2e_serve (use `check_here`: only this shell can
# learn its exit status); fails if it (or a child) ignored SIGTERM,
# died of a signal other than SIGTERM (an ASan abort is SIGABRT) or logged a sanitizer report.
e2e_serve_stop() {
	local rc=0 kids p
	if ! e2e_alive "$SERVE_PID"; then
		echo "regpress serve (pid $SERVE_PID) had already exited before SIGTERM; its output:"
		cat "$SERVE_LOG"
		rc=1
	fi
	# lighttpd may run in a session of its own: remember the descendants to check they go too.
	kids=$(e2e_descendants "$SERVE_PID")
	e2e_stop "$SERVE_PID" || { echo "regpress serve or a child ignored SIGTERM: killed"; rc=1; }
	for p in $kids; do
		if e2e_alive "$p"; then
			echo "left running after regpress serve exited: $(ps -o pid=,args= -p "$p")"
			kill -KILL "$p" 2>/dev/null || true
			rc=1
		fi
	done
	echo "regpress serve exit status after SIGTERM: $E2E_STOP_STATUS"
	if [ "$E2E_STOP_STATUS" != unknown ] && [ "$E2E_STOP_STATUS" -gt 128 ] &&
		[ "$E2E_STOP_STATUS" -ne 143 ]; then
		echo "died of signal $((E2E_STOP_STATUS - 128))"
		rc=1
	fi
	if grep -E -q 'Sanitizer|runtime error:' "$SERVE_LOG"; then
		echo "sanitizer report in $SERVE_LOG:"
		cat "$SERVE_LOG"
		rc=1
	fi
	return "$rc"
}

# ---------------------------------------------------------------------------------------------
# containerd

# e2e_containerd: a throwaway containerd rooted in $T/ctrd. Exports $CTR_SOCK, $CTRD_PID and
# $HOSTS; when e2e_serve ran, $HOSTS/127.0.0.1:$PORT/hosts.toml trusts our CA.
e2e_containerd() {
	: "${T:?e2e_tmpdir first}"
	local d=$T/ctrd
	mkdir -p "$d/hosts"
	cat >"$d/config.toml" <<-EOF
		version = 2
		root = "$d/root"
		state = "$d/state"
		disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
		  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.zfs",
		  "io.containerd.snapshotter.v1.devmapper"]
		[grpc]
		  address = "$d/containerd.sock"
		[ttrpc]
		  address = "$d/containerd.sock.ttrpc"
		[plugins."io.containerd.internal.v1.opt"]
		  path = "$d/opt"
	EOF
	CTR_SOCK=$d/containerd.sock
	HOSTS=$d/hosts
	CTRD_LOG=$d/containerd.log
	e2e_spawn "$CTRD_LOG" containerd -c "$d/config.toml"
	CTRD_PID=$E2E_SPAWNED
	export CTR_SOCK HOSTS CTRD_PID CTRD_LOG
	if ! e2e_wait_for "$E2E_WAIT_TENTHS" ctr -a "$CTR_SOCK" version; then
		tail -20 "$CTRD_LOG" | sed 's/^/#   | /'
		e2e_die "containerd did not come up"
	fi
	if [ -n "${PORT:-}" ]; then
		e2e_hosts "127.0.0.1:$PORT"
	fi
}

# e2e_hosts NAME: $HOSTS/NAME/hosts.toml sending NAME's pulls to our server with our CA. NAME is
# 127.0.0.1:$PORT for direct pulls, or a registry such as docker.io to make our server its mirror.
e2e_hosts() {
	local name=$1
	mkdir -p "$HOSTS/$name"
	if [ "$name" = "127.0.0.1:$PORT" ]; then
		# The CA at the top level too: containerd tries server last with only these settings,
		# and without it reports every miss as a certificate error (issue 18).
		printf 'server = "%s"\nca = "%s"\n\n' "$URL" "$CERTS/ca.crt" >"$HOSTS/$name/hosts.toml"
	else
		: >"$HOSTS/$name/hosts.toml"
	fi
	cat >>"$HOSTS/$name/hosts.toml" <<-EOF
		[host."$URL"]
		  capabilities = ["pull", "resolve"]
		  ca = "$CERTS/ca.crt"
	EOF
}

# e2e_containerd_stop: stop the daemon; fails if it ignored SIGTERM.
e2e_containerd_stop() {
	e2e_stop "$CTRD_PID" || { echo "containerd ignored SIGTERM: killed"; return 1; }
}

# ---------------------------------------------------------------------------------------------
# Docker, podman and containerd's CRI as clients (22-docker.sh, 24-podman.sh, 26-cri.sh)
#
#   e2e_client_sandbox      in this script's private mount namespace: a tmpfs over /run, a private
#                           /etc/hosts naming regpress.test (and Docker Hub, so that nothing ever
#                           leaves the machine) as ::1, private copies of /etc/docker and
#                           /etc/containers; needs root
#   e2e_platform_fixtures D D/multi-<arch>.tar: example.com/team/multi:1 for the host's
#                           architecture and for arm64 (amd64 on an arm64 host), to merge into an
#                           index; D/platforms.list: "<file> <arch>" lines
#   e2e_serve_named TREE [OPT]  e2e_serve on [::1] with a certificate from `regpress certs` for
#                           regpress.test: $REG is regpress.test:$PORT (dockerd treats every
#                           127.0.0.0/8 registry as insecure and skips TLS checks there)
#   e2e_dockerd             a private dockerd with its own containerd; `dk` runs Docker's CLI
#   e2e_podman              podman with every file of its own under $T/podman; `pm` runs it
#   e2e_cri                 containerd with its CRI plugin, registry config in $CRI_CERTS_D;
#                           `cri_pull IMAGE [USER PASS]` and `cri_status IMAGE` call it
#   e2e_stop_named PID      stop one of the daemons above (fails if it ignored SIGTERM)

E2E_TOOLS=$E2E_ROOT/tests/tools
# Debian's Docker CLI: another one earlier in PATH (a newer release) would talk another API.
E2E_DOCKER=${E2E_DOCKER:-/usr/bin/docker}
E2E_PY=$(command -v /usr/bin/python3 || command -v python3)

# _e2e_private: this shell runs in the script's own mount namespace (see the top of this file).
_e2e_private() {
	[ "${E2E_PRIVATE_NS:-}" = "$$" ] && [ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/1/ns/mnt)" ]
}

# _e2e_bind_copy DIR: a copy of DIR (made in $T) mounted over it, so a client may write there.
_e2e_bind_copy() {
	local dir=$1 copy
	copy=$T/sandbox$(echo "$dir" | tr / _)
	mkdir -p "$copy"
	if [ -d "$dir" ]; then
		cp -a "$dir/." "$copy/"
		mount --bind "$copy" "$dir"
	fi
}

# _e2e_covered DIR: DIR is a mount point of this namespace (a private copy or tmpfs over it).
_e2e_covered() {
	_e2e_private && awk -v d="$1" '$5 == d {f = 1} END {exit !f}' /proc/self/mountinfo
}

e2e_client_sandbox() {
	: "${T:?e2e_tmpdir first}"
	[ "$(id -u)" = 0 ] || return 1
	# Every mount below must stay in this script's namespace: refuse anywhere else.
	_e2e_private || { echo "not in a private mount namespace: refusing to mount"; return 1; }
	mount -t tmpfs -o mode=0755,size=64m e2e-run /run
	{ cat /etc/hosts; echo '::1 regpress.test registry-1.docker.io index.docker.io'; } >"$T/hosts"
	mount --bind "$T/hosts" /etc/hosts
	_e2e_bind_copy /etc/docker
	_e2e_bind_copy /etc/containers
	[ ! -d /var/cache/containers ] || mount -t tmpfs -o mode=0700 e2e-cache /var/cache/containers
}

# e2e_platform_fixtures DIR: see above. umoci images (the file each holds says which platform
# it is: /etc/arch) written by skopeo as docker-archive; cached per run like e2e_fixtures.
e2e_platform_fixtures() {
	local out=$1 cache
	mkdir -p "$out"
	if [ -n "${E2E_CACHE:-}" ]; then
		cache=$E2E_CACHE/platforms
		mkdir -p "$cache"
		(
			flock 9
			[ -e "$cache/.done" ] || { _e2e_make_platforms "$cache" && touch "$cache/.done"; }
		) 9>"$E2E_CACHE/platforms.lock" || return 1
		cp "$cache"/*.tar "$cache/platforms.list" "$out/"
	else
		_e2e_make_platforms "$out"
	fi
}

_e2e_make_platforms() {
	local out=$1 w rc=0
	w=$(mktemp -d "${TMPDIR:-/tmp}/regpress-pf.XXXXXX")
	_e2e_make_platforms_in "$out" "$w" >"$w.log" 2>&1 &
	wait "$!" || rc=$?
	[ "$rc" -eq 0 ] || { echo "making the platform fixtures failed:"; cat "$w.log"; }
	rm -rf "$w" "$w.log"
	return "$rc"
}

_e2e_make_platforms_in() {
	local out=$1 w=$2 L=$2/layout host other arch b
	host=$(e2e_goarch)
	other=arm64
	[ "$host" != arm64 ] || other=amd64
	umoci init --layout "$L"
	for arch in "$host" "$other"; do
		umoci new --image "$L:$arch"
		umoci config --image "$L:$arch" --os linux --architecture "$arch" --config.cmd /bin/arch
		b=$w/bundle-$arch
		umoci unpack --image "$L:$arch" "$b" >/dev/null
		mkdir -p "$b/rootfs/etc"
		printf 'multi %s\n' "$arch" >"$b/rootfs/etc/arch"
		umoci repack --image "$L:$arch" "$b"
		rm -rf "$b"
	done
	umoci gc --layout "$L"
	: >"$out/platforms.list"
	for arch in "$host" "$other"; do
		skopeo --tmpdir "$w" copy -q "oci:$L:$arch" "docker-archive:$out/multi-$arch.tar:example.com/team/multi:1"
		echo "multi-$arch.tar $arch" >>"$out/platforms.list"
	done
}

# e2e_free_port6: an unused TCP port on ::1.
e2e_free_port6() {
	"$E2E_PY" -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0)); print(s.getsockname()[1])'
}

_e2e_named_answers() {
	curl -sS -o /dev/null --max-time 2 --cacert "$CERTS/ca.crt" \
		--resolve "regpress.test:$PORT:[::1]" "https://regpress.test:$PORT/v2/" 2>/dev/null
}

e2e_serve_named() {
	local tree=$1 _
	shift
	: "${T:?e2e_tmpdir first}"
	CERTS=${CERTS:-$T/certs-named}
	if [ ! -s "$CERTS/server.crt" ]; then
		"$REGPRESS" certs -o "$CERTS" --host regpress.test --host localhost --ip ::1 \
			--ip 127.0.0.1 >/dev/null || e2e_die "regpress certs for regpress.test"
	fi
	export CERTS
	for _ in 1 2 3; do
		PORT=$(e2e_free_port6)
		SERVE_LOG=$T/serve-$PORT.log
		e2e_spawn "$SERVE_LOG" "$REGPRESS" serve "$tree" --cert "$CERTS/server.crt" \
			--key "$CERTS/server.key" --listen "[::1]:$PORT" "$@"
		SERVE_PID=$E2E_SPAWNED
		if E2E_SERVE_PROBE=_e2e_named_answers _e2e_wait_served; then
			_e2e_adopt "$(e2e_descendants "$SERVE_PID")"
			REG=regpress.test:$PORT
			URL=https://$REG
			export PORT URL REG SERVE_PID SERVE_LOG
			return 0
		fi
		e2e_stop "$SERVE_PID" || true
		grep -qi 'address already in use' "$SERVE_LOG" || break
	done
	sed 's/^/#   | /' "$SERVE_LOG"
	e2e_die "regpress serve $tree on [::1]"
}

# _e2e_containerd_at DIR CRI [EXTRA-TOML]: start a containerd rooted in DIR, the CRI plugin on
# when CRI is 1 (EXTRA-TOML then holds its settings); sets $E2E_SPAWNED.
_e2e_containerd_at() {
	local d=$1 cri=$2 extra=${3:-} off='"io.containerd.grpc.v1.cri", '
	[ "$cri" = 1 ] && off=
	mkdir -p "$d"
	cat >"$d/config.toml" <<-EOF
		version = 2
		root = "$d/root"
		state = "$d/state"
		disabled_plugins = [${off}"io.containerd.snapshotter.v1.btrfs",
		  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.zfs",
		  "io.containerd.snapshotter.v1.devmapper"]
		[grpc]
		  address = "$d/containerd.sock"
		[ttrpc]
		  address = "$d/containerd.sock.ttrpc"
		[plugins."io.containerd.internal.v1.opt"]
		  path = "$d/opt"
	EOF
	[ -z "$extra" ] || cat "$extra" >>"$d/config.toml"
	e2e_spawn "$d/containerd.log" containerd -c "$d/config.toml"
	if ! e2e_wait_for "$E2E_WAIT_TENTHS" ctr -a "$d/containerd.sock" version; then
		tail -20 "$d/containerd.log" | sed 's/^/#   | /'
		e2e_die "containerd in $d did not come up"
	fi
}

# e2e_dockerd: needs e2e_client_sandbox (dockerd reads CAs only from /etc/docker/certs.d, and
# writes /etc/docker/key.json and /run/docker). No iptables rules, no bridge, vfs storage.
e2e_dockerd() {
	local d=$T/docker
	_e2e_covered /etc/docker || e2e_die "e2e_dockerd: /etc/docker is not a private copy (e2e_client_sandbox)"
	mkdir -p "$d" "$T/docker-cli"
	_e2e_containerd_at "$T/docker-ctrd" 0
	DOCKERD_CTRD_PID=$E2E_SPAWNED
	[ -f /etc/docker/daemon.json ] || echo '{}' >/etc/docker/daemon.json
	DOCKERD_LOG=$d/dockerd.log
	e2e_spawn "$DOCKERD_LOG" dockerd --data-root "$d/data" --exec-root "$d/exec" \
		--pidfile "$d/docker.pid" -H "unix://$d/docker.sock" --storage-driver vfs \
		--iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
		--containerd "$T/docker-ctrd/containerd.sock" \
		--containerd-namespace e2e-docker --containerd-plugins-namespace e2e-docker-plugins
	DOCKERD_PID=$E2E_SPAWNED
	# The CLI's config (docker login writes the credentials there) is ours too.
	export DOCKER_HOST=unix://$d/docker.sock DOCKER_CONFIG=$T/docker-cli DOCKERD_PID DOCKERD_LOG \
		DOCKERD_CTRD_PID
	if ! e2e_wait_for 300 "$E2E_DOCKER" version; then
		tail -20 "$DOCKERD_LOG" | sed 's/^/#   | /'
		e2e_die "dockerd did not come up"
	fi
}
dk() { "$E2E_DOCKER" "$@"; }

# e2e_stop_named PID: stop one daemon; fails if it (or a child) ignored SIGTERM. dockerd first,
# then its containerd.
e2e_stop_named() {
	e2e_stop "$1" || { echo "pid $1 ignored SIGTERM: killed"; return 1; }
}

# e2e_podman: podman's storage, run and temp directories, auth file and network state under
# $T/podman; it reads /etc/containers (a private copy: e2e_client_sandbox), like on any host.
e2e_podman() {
	_e2e_covered /etc/containers || e2e_die "e2e_podman: /etc/containers is not a private copy (e2e_client_sandbox)"
	P=$T/podman
	mkdir -p "$P/home" "$P/run" "$P/tmp" "$P/net"
	chmod 700 "$P/run"
	cat >/etc/containers/storage.conf <<-EOF
		[storage]
		driver = "vfs"
		graphroot = "$P/root"
		runroot = "$P/runroot"
	EOF
	cat >/etc/containers/containers.conf <<-EOF
		[network]
		network_config_dir = "$P/net"
		[engine]
		cgroup_manager = "cgroupfs"
		events_logger = "none"
		tmp_dir = "$P/libpod-tmp"
		static_dir = "$P/root/libpod"
		volume_path = "$P/root/volumes"
	EOF
	# podman 4.3 refuses to pull when REGISTRY_AUTH_FILE names a missing file.
	echo '{"auths": {}}' >"$P/auth.json"
	export HOME=$P/home XDG_CONFIG_HOME=$P/home/.config XDG_RUNTIME_DIR=$P/run \
		XDG_DATA_HOME=$P/home/.local/share XDG_CACHE_HOME=$P/home/.cache TMPDIR=$P/tmp \
		REGISTRY_AUTH_FILE=$P/auth.json
}
pm() { podman "$@"; }

# e2e_cri: containerd with the CRI plugin (what kubelet pulls through). Nothing of CNI is needed
# for image calls (the plugin logs that CNI is not set up and goes on). Hosts files are read
# from $CRI_CERTS_D at every pull.
e2e_cri() {
	local d=$T/cri
	CRI_CERTS_D=$T/cri-certs.d
	mkdir -p "$d/cni/bin" "$d/cni/conf" "$CRI_CERTS_D"
	cat >"$T/cri.toml" <<-EOF
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "regpress.invalid/pause:none"
		  stream_server_address = "127.0.0.1"
		  stream_server_port = "0"
		  disable_apparmor = true
		  netns_mounts_under_state_dir = true
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "$d/cni/bin"
		    conf_dir = "$d/cni/conf"
		  [plugins."io.containerd.grpc.v1.cri".containerd]
		    snapshotter = "native"
		  [plugins."io.containerd.grpc.v1.cri".registry]
		    config_path = "$CRI_CERTS_D"
	EOF
	_e2e_containerd_at "$d" 1 "$T/cri.toml"
	CRI_PID=$E2E_SPAWNED
	CRI_SOCK=$d/containerd.sock
	CRI_LOG=$d/containerd.log
	export CRI_CERTS_D CRI_PID CRI_SOCK CRI_LOG
}

# _cri_call METHOD REQUEST OUT: one unary gRPC call with curl over HTTP/2 on the socket; prints
# grpc-status and grpc-message (from the trailers curl writes into the -D file).
_cri_call() {
	curl -sS --http2-prior-knowledge --unix-socket "$CRI_SOCK" --max-time 120 \
		-H 'content-type: application/grpc' -H 'te: trailers' --data-binary @"$2" \
		-D "$3.hdr" -o "$3.body" "http://localhost/runtime.v1.ImageService/$1"
	"$E2E_PY" "$E2E_TOOLS/crimsg.py" trailers <"$3.hdr"
}

# cri_pull IMAGE [USER PASS]: PullImage (with credentials, as kubelet passes an imagePullSecret);
# prints the status, the message and image_ref; 0 only for grpc-status 0.
cri_pull() {
	local o rc=0
	o=$(mktemp "$T/cri.XXXXXX")
	"$E2E_PY" "$E2E_TOOLS/crimsg.py" pull "$@" >"$o.req"
	_cri_call PullImage "$o.req" "$o" || rc=$?
	"$E2E_PY" "$E2E_TOOLS/crimsg.py" decode pull <"$o.body"
	rm -f "$o" "$o".*
	return "$rc"
}

# cri_status IMAGE: ImageStatus (id, repo_tag, repo_digest, size), or "image: (none)".
cri_status() {
	local o rc=0
	o=$(mktemp "$T/cri.XXXXXX")
	"$E2E_PY" "$E2E_TOOLS/crimsg.py" status "$1" >"$o.req"
	_cri_call ImageStatus "$o.req" "$o" || rc=$?
	"$E2E_PY" "$E2E_TOOLS/crimsg.py" decode status <"$o.body"
	rm -f "$o" "$o".*
	return "$rc"
}
