#!/usr/bin/env bash
# Crash safety (issue 8). `regpress build` adding images to an existing tree is killed with SIGKILL
# at every crash point the REGPRESS_CRASH_AT hook has (layout/fsutil.h: every file write, rename
# and directory a writer makes, each staged blob, each blob and cache entry moved in, the
# publishing rename, index.json, the removal of the staging area), then at random moments. After
# each kill the tree must verify, its snapshot must be the old one (or the new one once the
# publishing rename happened), and the next build must complete and verify. A tree served by
# lighttpd meanwhile keeps serving the old manifests. The same for `rm`, `gc` and
# `snapshot --sign`; and a build that runs out of space (RLIMIT_FSIZE, a full tmpfs) fails with one
# line, no signal, and leaves the tree byte-identical.
# shellcheck disable=SC2016 # single-quoted bash -c programs take their arguments as $1...
# shellcheck disable=SC2017 # sizes rounded down to whole pages on purpose
# shellcheck disable=SC2317 # helpers run through `check`, which shellcheck cannot follow
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_workspace
# A kill tests the death of the process, not of the machine, so the file system does not matter:
# a tmpfs when mount is permitted (each build's syncfs is then free, which halves the run time).
if mount -t tmpfs -o size=256m tmpfs "$W" 2>/dev/null; then
	e2e_log "working in a tmpfs"
fi
# Megabytes rather than kilobytes, so that a small RLIMIT_FSIZE or tmpfs runs out mid-build.
python3 "$(repo)/tests/fixtures/mkrandom.py" "$FX/big.tar" big/one:1 crash 512 256 128 ||
	e2e_die "mkrandom.py"

build() { "$REGPRESS" build -q --progress=none "$@"; }
ADD=("$FX/app.tar" "$FX/big.tar")              # what every crashed build adds
ADDED=(example.com/team/app:1.0 example.com/team/app:latest big/one:1)

snap() { "$REGPRESS" snapshot "$1" 2>/dev/null; }

OLD=$W/old   # the good tree: base and multi
NEW=$W/new   # the same with app and big added
build -o "$OLD" "$FX/base.tar" "$FX/multi.tar" || e2e_die "building the good tree"
cp -a "$OLD" "$NEW"
build -o "$NEW" "${ADD[@]}" || e2e_die "adding to the good tree"
snap "$OLD" >"$W/snap.old"
snap "$NEW" >"$W/snap.new"
e2e_tree_state "$OLD" >"$W/state.old"
e2e_tree_state "$NEW" >"$W/state.new"
"$REGPRESS" verify --progress=none "$NEW" >/dev/null || e2e_die "the new tree does not verify"

# which_snapshot TREE: "old", "new" or "other" (registry/snapshot is what `snapshot` prints).
which_snapshot() {
	local s=$1/registry/snapshot
	if cmp -s "$s" "$W/snap.old"; then echo old
	elif cmp -s "$s" "$W/snap.new"; then echo new
	else echo other; fi
}

# after_kill TREE RC WANT...: the process died of SIGKILL (or finished), the tree verifies, its
# snapshot is one of WANT (old/new), and a build adding the images completes: the new tree.
after_kill() {
	local tree=$1 rc=$2 got
	shift 2
	[ "$rc" -eq 137 ] || [ "$rc" -eq 0 ] || { echo "exit $rc, want SIGKILL (137)"; cat "$W/err"; return 1; }
	"$REGPRESS" verify --progress=none "$tree" >"$W/verify" 2>&1 || { echo "verify:"; cat "$W/verify"; return 1; }
	got=$(which_snapshot "$tree")
	[[ " $* " == *" $got "* ]] || { echo "snapshot is $got, want one of: $*"; diff "$W/snap.old" "$tree/registry/snapshot" | head; return 1; }
	echo "$got" >>"$W/kinds"
	build -o "$tree" "${ADD[@]}" || { echo "the next build failed"; return 1; }
	# The same bytes as a clean build (which verifies): whatever the killed writer left is gone
	# or is exactly what the build would have written.
	diff "$W/state.new" <(e2e_tree_state "$tree") || { echo "not the tree a clean build makes"; return 1; }
}

# Under ASan (several times slower) every third crash point is tried, and every point around the
# publishing rename and at the end; the plain pass tries them all, and so does the ASan pass of
# `make test-full` (E2E_FULL=1).
STRIDE=1
if grep -q -a __asan_init "$REGPRESS" && [ -z "${E2E_FULL:-}" ]; then STRIDE=3; fi

# crash_copy N: a fresh copy of the good tree in $W/c, and a build into it killed at crash point
# N; prints the exit status.
crash_copy() {
	local rc=0
	rm -rf "$W/c"
	cp -a "$OLD" "$W/c"
	REGPRESS_CRASH_AT=$1 build -o "$W/c" "${ADD[@]}" 2>"$W/err" || rc=$?
	echo "$rc"
}

# point N: kill the build at crash point N and check the tree; status 1 if the build completed
# (N is past the last crash point).
point() {
	local n=$1 rc
	rc=$(crash_copy "$n")
	[ "$rc" -ne 0 ] || return 1
	if [ "$(which_snapshot "$W/c")" = new ] && { [ "$FIRST_NEW" = 0 ] || [ "$n" -lt "$FIRST_NEW" ]; }; then
		FIRST_NEW=$n
	fi
	check "build killed at crash point $n: verifies, old or new snapshot, next build completes" \
		after_kill "$W/c" "$rc" old new
}

# ---------------------------------------------------------------------------------------------
# 1. Every crash point of a build that adds images (on copies of the good tree).
e2e_log "phase 1 at ${SECONDS} s"
: >"$W/kinds"
FIRST_NEW=0
LAST=0 # the last point tried
n=1
while :; do
	if ! point "$n"; then
		# Past the end: try the points the stride skipped since the last one.
		for ((m = LAST + 1; m < n; m++)); do point "$m" || break; done
		POINTS=$((m - 1))
		break
	fi
	if [ "$FIRST_NEW" = "$n" ]; then
		# The first kill after the publishing rename: try the points skipped before it.
		for ((m = LAST + 1; m < n; m++)); do point "$m"; done
	fi
	LAST=$n
	n=$((n + STRIDE))
	[ "$n" -lt 1000 ] || e2e_die "REGPRESS_CRASH_AT=$n still kills the build"
done
e2e_log "build: $POINTS crash points, the first after the publishing rename: $FIRST_NEW (checked: every $STRIDE)"
check "build: $POINTS crash points, before and after the publishing rename" \
	test "$POINTS" -gt 20 -a "$FIRST_NEW" -gt 1 -a "$(grep -c old "$W/kinds")" -gt 0 \
	-a "$(grep -c new "$W/kinds")" -gt 0

# ---------------------------------------------------------------------------------------------
# 2. A served tree: killed builds around the publishing rename and mid-way; lighttpd keeps
# serving the old manifest throughout, and the new one once published.
e2e_log "phase 2 at ${SECONDS} s"
TREE=$W/tree
cp -a "$OLD" "$TREE"
e2e_serve "$TREE"
ACCEPT='Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json'

# served REPO REF: status, Docker-Content-Digest and the body's sha256 of the manifest.
served() {
	local h=$W/served.h b=$W/served.b code
	code=$(curl -sS --cacert "$CERTS/ca.crt" -H "$ACCEPT" -D "$h" -o "$b" -w '%{http_code}' \
		"$URL/v2/$1/manifests/$2") || return 1
	printf '%s %s %s\n' "$code" "$(grep -i '^docker-content-digest:' "$h" | tr -d '\r' | cut -d' ' -f2)" \
		"$(sha256sum <"$b" | cut -d' ' -f1)"
}
served library/base 1 >"$W/base.served" || e2e_die "curl"
grep -q '^200 sha256:' "$W/base.served" || e2e_die "base:1 not served: $(cat "$W/base.served")"

# served_crash N: kill at crash point N in the served tree, then check what is served, finish,
# and take the tree back to the old state with rm and gc (which must give the old tree exactly).
served_crash() {
	local n=$1 rc=0 kind
	REGPRESS_CRASH_AT=$n build -o "$TREE" "${ADD[@]}" 2>"$W/err" || rc=$?
	[ "$rc" -eq 137 ] || { echo "exit $rc, want 137"; return 1; }
	diff "$W/base.served" <(served library/base 1) || { echo "base:1 no longer served the same"; return 1; }
	kind=$(which_snapshot "$TREE")
	case $kind in
	old) served big/one 1 | grep -q '^404 ' || { echo "big/one:1 served before it was published"; return 1; } ;;
	new) served big/one 1 | grep -q '^200 sha256:' || { echo "big/one:1 not served after the publishing rename"; return 1; } ;;
	*) echo "snapshot is neither the old nor the new one"; return 1 ;;
	esac
	"$REGPRESS" verify --progress=none "$TREE" >/dev/null
	build -o "$TREE" "${ADD[@]}"
	served big/one 1 | grep -q '^200 sha256:' || { echo "big/one:1 not served after the next build"; return 1; }
	diff "$W/base.served" <(served library/base 1)
	"$REGPRESS" rm "$TREE" "${ADDED[@]}" >/dev/null
	"$REGPRESS" gc "$TREE" >/dev/null
	diff "$W/state.old" <(e2e_tree_state "$TREE") || { echo "rm + gc did not give back the old tree"; return 1; }
	served big/one 1 | grep -q '^404 ' || { echo "big/one:1 still served after rm"; return 1; }
}
for n in 1 $((FIRST_NEW / 2)) $((FIRST_NEW - 1)) "$FIRST_NEW" "$POINTS"; do
	check "served tree, build killed at crash point $n: old manifest served throughout" served_crash "$n"
done

# ---------------------------------------------------------------------------------------------
# 3. Killed at random moments (no hook): SIGKILL after a delay spread over a build's duration.
e2e_log "phase 3 at ${SECONDS} s"
start=$(date +%s%N)
cp -a "$OLD" "$W/t0"
build -o "$W/t0" "${ADD[@]}"
BUILD_MS=$((($(date +%s%N) - start) / 1000000))
random_kill() {
	local delay_ms=$1 pid rc=0
	rm -rf "$W/k"
	cp -a "$OLD" "$W/k"
	"$REGPRESS" build -q --progress=none -o "$W/k" "${ADD[@]}" 2>"$W/err" &
	pid=$!
	sleep "$(printf '0.%03d' "$delay_ms")"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" || rc=$?
	after_kill "$W/k" "$rc" old new
}
[ "$BUILD_MS" -lt 900 ] || BUILD_MS=900
for i in 1 2 3 4 5 6 7 8; do
	d=$((RANDOM % (BUILD_MS + 20)))
	check "build killed by SIGKILL after $d ms (a build takes ~$BUILD_MS ms)" random_kill "$d"
done

# ---------------------------------------------------------------------------------------------
# 4. rm, gc and snapshot --sign killed at each of their crash points.
# kill_each NAME WANT_AFTER_KILL SETUP_TREE CMD...: for N = 1, 2...: copy SETUP_TREE, run CMD
# (with @TREE@ in its arguments replaced) under REGPRESS_CRASH_AT=N until it completes; each kill
# must leave a tree that verifies with a snapshot among WANT_AFTER_KILL.
e2e_log "phase 4 at ${SECONDS} s"
kill_each() {
	local name=$1 want=$2 from=$3 n=$((1 - STRIDE)) rc
	shift 3
	while :; do
		n=$((n + STRIDE))
		rm -rf "$W/r"
		cp -a "$from" "$W/r"
		rc=0
		REGPRESS_CRASH_AT=$n "$REGPRESS" "${@//@TREE@/$W/r}" >/dev/null 2>"$W/err" || rc=$?
		[ "$rc" -ne 0 ] || break
		[ "$rc" -eq 137 ] || { echo "$name, crash point $n: exit $rc"; cat "$W/err"; return 1; }
		"$REGPRESS" verify --progress=none "$W/r" >"$W/verify" 2>&1 ||
			{ echo "$name, crash point $n: verify"; cat "$W/verify"; return 1; }
		local got
		got=$(which_snapshot "$W/r")
		[[ " $want " == *" $got "* ]] || { echo "$name, crash point $n: snapshot $got"; return 1; }
		# The command again completes, unless the kill came after it published (rm).
		if [ "$got" = new ] || [ "$name" != rm ]; then
			"$REGPRESS" "${@//@TREE@/$W/r}" >/dev/null || { echo "$name, crash point $n: rerun failed"; return 1; }
		fi
		[ "$n" -lt 500 ] || { echo "$name: no end"; return 1; }
	done
	echo "$name: fewer than $n crash points, every $STRIDE tried"
	[ "$n" -gt 1 ] || { echo "$name has no crash point"; return 1; }
}
check "rm killed at each crash point: verifies, old or new snapshot" \
	kill_each rm "new old" "$NEW" rm @TREE@ "${ADDED[@]}"
# The new tree with the tags removed, its blobs not yet collected.
cp -a "$NEW" "$W/removed"
"$REGPRESS" rm "$W/removed" "${ADDED[@]}" >/dev/null || e2e_die "rm"
check "gc killed at each crash point: verifies, same snapshot" kill_each gc old "$W/removed" gc @TREE@
check "after rm and gc: the old tree, byte for byte" bash -c \
	'cp -a "$1" "$2/g" && "$3" gc "$2/g" >/dev/null && diff "$4" <(cd "$2/g" && find . -printf "%p %y %s %m %T@ %l\n" | LC_ALL=C sort; find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)' \
	_ "$W/removed" "$W" "$REGPRESS" "$W/state.old"
"$REGPRESS" keygen -n "$W/key" >/dev/null 2>&1 || e2e_die "keygen"
check "snapshot --sign killed at each crash point: verifies, no stray file" \
	kill_each sign old "$OLD" snapshot --sign "$W/key.sec" @TREE@
check "snapshot --sign after the kills: verify --pubkey" bash -c \
	'cp -a "$1" "$2/s" && "$3" snapshot --sign "$4.sec" "$2/s" >/dev/null 2>&1 &&
	 "$3" verify --progress=none --pubkey "$4.pub" "$2/s"' _ "$OLD" "$W" "$REGPRESS" "$W/key"

# ---------------------------------------------------------------------------------------------
# 5. Out of space: a clean failure (one line, exit 1, no signal) and the tree byte-identical.
# no_space TREE KIND CMD...: CMD fails cleanly for lack of space (KIND: the strerror text).
e2e_log "phase 5 at ${SECONDS} s"
no_space() {
	local tree=$1 kind=$2 rc=0 before
	shift 2
	before=$(e2e_tree_state "$tree")
	"$@" >"$W/out" 2>"$W/err" || rc=$?
	echo "exit $rc: $(cat "$W/err")"
	if [ "$rc" -eq 0 ]; then
		"$REGPRESS" verify --progress=none "$tree" >/dev/null && [ "$(which_snapshot "$tree")" = new ]
		return
	fi
	[ "$rc" -eq 1 ] || { echo "want exit 1 (not a signal)"; return 1; }
	[ "$(wc -l <"$W/err")" -eq 1 ] || { echo "want one line on stderr"; return 1; }
	grep -q "$kind" "$W/err" || { echo "the message does not say '$kind'"; return 1; }
	diff <(echo "$before") <(e2e_tree_state "$tree") || { echo "the tree changed"; return 1; }
	"$REGPRESS" verify --progress=none "$tree" >/dev/null
}
cp -a "$OLD" "$W/f"
check "RLIMIT_FSIZE 256 KiB: the build fails with EFBIG, tree unchanged" \
	no_space "$W/f" "File too large" bash -c 'ulimit -f 256 && exec "$@"' _ \
	"$REGPRESS" build -q --progress=none -o "$W/f" "${ADD[@]}"
# That failure is in a layer: the line names the input and the entry, and the file it was writing.
names_input_and_file() {
	local q="'"
	cat "$W/err"
	grep -Eq "^regpress build: ${q}[^${q}]*/(app|big)\.tar${q}: ${q}[^${q}]+${q}: cannot write ${q}[^${q}]+/\.regpress-tmp/" "$W/err"
}
check "RLIMIT_FSIZE 256 KiB: the message names the input, the layer and the file written" \
	names_input_and_file
check "RLIMIT_FSIZE 256 KiB: then without the limit, the build completes" \
	bash -c 'build() { "$1" build -q --progress=none -o "$2" "${@:3}"; }; build "$@" && "$1" verify --progress=none "$2" >/dev/null' \
	_ "$REGPRESS" "$W/f" "${ADD[@]}"

# A full file system at every stage of a build: a tmpfs of each size between "the old tree fits"
# and "the build succeeds" (coarse steps, then every page below the smallest that succeeds, where
# the commit writes the view (into the spare view it swaps in), index.json and the cache). Needs
# root (mount); skipped otherwise.
M=$W/mnt
mkdir -p "$M"
if mount -t tmpfs -o size=64m tmpfs "$M" 2>/dev/null; then
	umount "$M"
	# full_at KIB: prints ok/fail (and the outcome); 0 if the build succeeded.
	full_at() {
		local kib=$1 rc=0
		mount -t tmpfs -o "size=${kib}k" tmpfs "$M" || return 2
		cp -a "$OLD" "$M/t" 2>/dev/null || { umount "$M"; return 3; }
		no_space "$M/t" "No space left on device" \
			"$REGPRESS" build -q --progress=none -o "$M/t" "${ADD[@]}" >"$W/full.out" || rc=1
		grep -q '^exit 0' "$W/full.out" && [ "$rc" = 0 ] && rc=10
		umount "$M"
		cat "$W/full.out"
		return "$rc"
	}
	# The smallest size that fits the old tree, and the smallest where the build succeeds.
	fails=0
	lo=$(($(du -sk "$OLD" | cut -f1) + 64))
	hi=$(((2 * $(du -sk "$NEW" | cut -f1) + 512) / 4 * 4))
	while :; do
		rc=0
		full_at "$hi" >/dev/null || rc=$?
		[ "$rc" != 10 ] || break
		[ "$hi" -lt 65536 ] || e2e_die "the build fails in a tmpfs of ${hi} KiB: $(cat "$W/full.out")"
		hi=$((hi * 2))
	done
	while [ $((hi - lo)) -gt 4 ]; do
		mid=$(((lo + hi) / 8 * 4))
		rc=0
		full_at "$mid" >/dev/null || rc=$?
		case $rc in
		10) hi=$mid ;;
		0 | 3) lo=$mid ;;
		*) lo=$mid; fails=$((fails + 1)); echo "# tmpfs ${mid}k:"; sed 's/^/#   /' "$W/full.out" ;;
		esac
	done
	e2e_log "tmpfs: the build succeeds from ${hi} KiB"
	for kib in $(seq $((hi - 4 * 36)) $((4 * STRIDE)) $((hi - 4))) $(seq $((hi / 3 / 4 * 4)) $((hi / 8 / 4 * 4)) $((hi - 200))); do
		rc=0
		full_at "$kib" >"$W/full.log" || rc=$?
		case $rc in
		0 | 10) ;;
		3) ;; # the old tree itself does not fit: nothing to test
		*) fails=$((fails + 1)); echo "# tmpfs ${kib}k:"; sed 's/^/#   /' "$W/full.log" ;;
		esac
		grep -o "cannot [a-z]* '[^']*'" "$W/full.log" | sed "s|$M/t/||; s|blob-[0-9]*|blob-N|; s|-[0-9a-f]\{64\}|-ID|; s|/[0-9a-f]\{64\}|/HEX|" >>"$W/full.where" || true
	done
	e2e_log "where the full disk stopped the build: $(sort -u "$W/full.where" | sed 's|/[^/]*/[^/]*/_|/R/_|' | sort -u | tr '\n' ' ')"
	check "full tmpfs at every stage of a build: each failure clean, the tree unchanged" test "$fails" -eq 0
	if [ "$STRIDE" = 1 ]; then
		check "full tmpfs: failures while staging blobs, the view, index.json and cache entries" bash -c \
			'grep -q scratch/blob "$1" && grep -q .regpress-spare/ "$1" && grep -q index.json "$1" && grep -q cache/ "$1"' \
			_ "$W/full.where"
	fi
else
	e2e_log "mount -t tmpfs is not permitted here: the full-file-system checks are skipped"
fi

e2e_done
