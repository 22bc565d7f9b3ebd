#!/usr/bin/env bash
# valgrind (issue 8): a representative run of the plain build under memcheck, which sees what
# the ASan pass cannot (uninitialised reads; the real allocator; libraries not built with ASan):
# build a new tree, add to it, verify, snapshot, diff, rm, gc, a bad input, and the recovery of a
# tree left by a killed writer. Any memcheck error or leak fails the command (exit 99).
# shellcheck disable=SC2016 # single-quoted bash -c programs take their arguments as $1...
# shellcheck disable=SC2317 # helpers run through `check`, which shellcheck cannot follow
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
if ! command -v valgrind >/dev/null; then
	echo "FAIL - valgrind is not installed (make deps)"
	E2E_FAILED=1
	e2e_done
fi
if grep -q -a __asan_init "$REGPRESS"; then
	e2e_log "$REGPRESS is built with ASan, which valgrind cannot run: nothing to do"
	e2e_done
fi
e2e_workspace

# valgrind 3.19 does not know openat2: the file access beneath a tree takes its other path, a
# walk component by component with O_NOFOLLOW (layout/fsat.c), which this covers too.
export REGPRESS_RESOLVE=walk

# vg NAME CMD...: regpress under memcheck; definite and indirect leaks count as errors (OpenSSL
# and libarchive keep some memory reachable at exit, which is not a leak).
vg() {
	local name=$1 rc=0
	shift
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--show-leak-kinds=definite,indirect --track-origins=yes --log-file="$W/vg-$name.log" \
		"$REGPRESS" "$@" >"$W/out-$name" 2>"$W/err-$name" || rc=$?
	if [ "$rc" -eq 99 ] || [ -s "$W/vg-$name.log" ]; then
		echo "memcheck errors (exit $rc):"
		head -c 6000 "$W/vg-$name.log"
		return 1
	fi
	return "$rc"
}
vg_fails() {
	local rc=0
	vg "$@" || rc=$?
	[ "$rc" -eq 1 ] || { echo "want exit 1, got $rc"; cat "$W/err-$1"; return 1; }
}

check "valgrind: build a new tree" vg build1 build -q --progress=none -j 2 -o "$W/tree" "$FX/base.tar"
check "valgrind: add a legacy archive and a skopeo one (two threads)" \
	vg build2 build -q --progress=none -j 2 -o "$W/tree" "$FX/multi.tar" "$FX/app.tar"
check "valgrind: rebuild with the cache (zstd, OCI manifests)" \
	vg build3 build -q --progress=none --format oci --compression zstd -o "$W/z" "$FX/app.tar"
check "valgrind: verify" vg verify verify --progress=none "$W/tree"
check "valgrind: snapshot" vg snapshot snapshot "$W/tree"
check "valgrind: diff" vg diff diff "$W/z" "$W/tree"
check "valgrind: a bad input fails cleanly" vg_fails bad build -q --progress=none -o "$W/tree" "$FX/badlayer.tar"
check "valgrind: a truncated input fails cleanly" vg_fails trunc build -q --progress=none -o "$W/tree" "$FX/truncated.tar"
# A tree whose writer was killed right after its publishing rename (the first crash point that
# changes the snapshot): the next writer puts index.json in place (layout/tree.c recover).
"$REGPRESS" rm "$W/tree" example.com/team/app:latest >/dev/null || e2e_die "rm"
killed_build() { REGPRESS_CRASH_AT=$1 "$REGPRESS" build -q --progress=none -o "$W/killed" "$FX/app.tar"; }
for ((n = 1; n < 300; n++)); do
	rm -rf "$W/killed"
	cp -a "$W/tree" "$W/killed"
	rc=0
	killed_build "$n" 2>/dev/null || rc=$?
	[ "$rc" -eq 137 ] || e2e_die "crash point $n: exit $rc"
	cmp -s "$W/tree/registry/snapshot" "$W/killed/registry/snapshot" || break
done
check "a build killed after its publishing rename (crash point $n): index.json still to install" \
	bash -c 'cmp "$1/index.json" "$2/index.json" && ls "$2"/.regpress-tmp/index.json-*' _ \
	"$W/tree" "$W/killed"
check "valgrind: verify a tree left by a killed writer" vg verify2 verify --progress=none "$W/killed"
check "valgrind: the next build recovers the killed writer's tree" \
	vg recover build -q --progress=none -o "$W/killed" "$FX/app.tar"
check "valgrind: ... and it verifies" vg verify3 verify --progress=none "$W/killed"
check "valgrind: rm" vg rm rm "$W/tree" user/tool:1.0
check "valgrind: gc" vg gc gc "$W/tree"

e2e_done
