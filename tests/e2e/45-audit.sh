#!/usr/bin/env bash
# Audits (issue 4): byte-identical rebuilds whatever the order, directory, umask, clock, thread
# count or temp dir; snapshot and its id; verify catching each kind of damage with its own
# message; signed snapshots checked by regpress and by OpenBSD's signify; diff between two builds.
# shellcheck disable=SC2016 # single-quoted bash -c programs take their arguments as $1...
# shellcheck disable=SC2317 # helpers run through `check`, which shellcheck cannot follow
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_workspace

# same_tree A B: diff -r and the same names, modes, mtimes and link targets.
same_tree() {
	diff -r --no-dereference "$1" "$2" && diff <(e2e_tree_state "$1") <(e2e_tree_state "$2")
}

snap_id() { "$REGPRESS" snapshot "$1" 2>&1 >/dev/null | awk '{print $2}'; }

# --- reproducible trees ------------------------------------------------------------------------
# A: inputs in one order, umask 022, one thread, from the fixtures' directory.
(cd "$FX" && umask 022 && "$REGPRESS" build -q -j 1 -o "$W/a" base.tar app.tar multi.tar) ||
	e2e_die "build a"
# B: the reverse order, umask 077, two threads, another cwd and temp dir, a second later, with
# one input read from standard input.
sleep 1
mkdir -p "$W/elsewhere" "$W/tmp"
(cd "$W/elsewhere" && umask 077 && TMPDIR=$W/tmp "$REGPRESS" build -q -j 2 -o ../b \
	"$FX/multi.tar" - "$FX/base.tar" <"$FX/app.tar") || e2e_die "build b"
check "same inputs, other order/cwd/umask/threads/clock/tmpdir: byte-identical trees" \
	same_tree "$W/a" "$W/b"
check "same inputs: the same snapshot id" test "$(snap_id "$W/a")" = "$(snap_id "$W/b")"
# C: incremental, one input per build, in yet another order: the same tree as one build.
for f in app.tar multi.tar base.tar; do
	"$REGPRESS" build -q -o "$W/c" "$FX/$f" || e2e_die "build c"
done
check "built one input at a time: the same tree as one build" same_tree "$W/a" "$W/c"

# OCI format with zstd layers: deterministic too, for any thread count.
"$REGPRESS" build -q -j 1 --format oci --compression zstd -o "$W/z1" "$FX/base.tar" "$FX/app.tar"
"$REGPRESS" build -q -j 2 --format oci --compression zstd -o "$W/z2" "$FX/app.tar" "$FX/base.tar"
check "zstd + OCI manifests: byte-identical trees across thread counts and order" \
	same_tree "$W/z1" "$W/z2"

# SOURCE_DATE_EPOCH sets every mtime; contents and the snapshot id do not depend on it.
SOURCE_DATE_EPOCH=1700000000 "$REGPRESS" build -q -o "$W/e" "$FX/base.tar" "$FX/app.tar" "$FX/multi.tar"
check "SOURCE_DATE_EPOCH: every mtime in the tree is that time" bash -c \
	'test -z "$(find "$1" -not -newermt @1699999999 -print -quit)" &&
	 test -z "$(find "$1" -newermt @1700000000 -print -quit)"' _ "$W/e"
check "default SOURCE_DATE_EPOCH is 0: every mtime in the tree is 1970-01-01" bash -c \
	'test -z "$(find "$1" -newermt @0 -print -quit)"' _ "$W/a"
check "SOURCE_DATE_EPOCH: same contents and snapshot id as with 0" bash -c \
	'diff -r "$1" "$2" && test "$3" = "$4"' _ "$W/a" "$W/e" "$(snap_id "$W/a")" "$(snap_id "$W/e")"

# --- snapshot ------------------------------------------------------------------------------------
TREE=$W/a
"$REGPRESS" snapshot "$TREE" >"$W/snap.txt" 2>"$W/snap.err" || e2e_die "snapshot"
ID=$(awk '{print $2}' "$W/snap.err")
check "snapshot id is the sha256 of the printed text" \
	test "$ID" = "sha256:$(sha256sum <"$W/snap.txt" | cut -d' ' -f1)"
check "snapshot: the printed text is the one stored in the tree at build time" \
	same_file "$W/snap.txt" "$TREE/registry/snapshot"
check "snapshot: records are sorted (C locale)" bash -c 'tail -n +2 "$1" | LC_ALL=C sort -c' _ "$W/snap.txt"
check "snapshot: every tag, manifest and blob is listed" bash -c '
	test "$(grep -c "^tag " "$1")" = 6 &&
	grep -q "^tag example.com/team/app latest sha256:" "$1" &&
	grep -q "^manifest library/base sha256:[0-9a-f]\{64\} [0-9]* application/" "$1" &&
	grep -q "^blob user/tool sha256:[0-9a-f]\{64\} [0-9]* application/" "$1"' _ "$W/snap.txt"
check "snapshot --json: same id, same tags" bash -c '
	j=$("$1" snapshot --json "$2" 2>/dev/null) &&
	test "$(jq -r .snapshot <<<"$j")" = "$3" &&
	test "$(jq ".tags | length" <<<"$j")" = 6' _ "$REGPRESS" "$TREE" "$ID"

# --- verify --------------------------------------------------------------------------------------
check "verify: a fresh tree is clean" "$REGPRESS" verify --progress=none "$TREE"
check "verify --quick: clean" "$REGPRESS" verify --quick --progress=none "$TREE"
check "verify --json: ok, no findings, every blob hashed" bash -c '
	j=$("$1" verify --json --progress=none "$2") &&
	test "$(jq -r .ok <<<"$j")" = true && test "$(jq ".findings | length" <<<"$j")" = 0 &&
	test "$(jq -r .blobs_hashed <<<"$j")" = "$(ls "$2/blobs/sha256" | wc -l)"' _ "$REGPRESS" "$TREE"

# base's layer: every image of the tree has it.
LAYER=$(awk '$1 == "blob" && $2 == "library/base" && $5 ~ /rootfs/ {print substr($3, 8); exit}' "$W/snap.txt")
[ -n "$LAYER" ] || e2e_die "no layer in the snapshot"

# damaged NAME SHELL-CODE MESSAGE [VERIFY-OPTIONS...]: on a copy of the tree, run the code (in
# the copy's directory), then verify must exit 1 and say MESSAGE on a line naming the copy.
damaged() {
	local code=$2 msg=$3 copy=$W/damaged-$1 out rc=0
	shift 3
	rm -rf "$copy"
	cp -a "$TREE" "$copy"
	(cd "$copy" && eval "$code")
	out=$("$REGPRESS" verify --progress=none "$@" "$copy" 2>&1) || rc=$?
	echo "exit $rc:"
	echo "$out"
	[ "$rc" -eq 1 ] && grep -F "$copy/" <<<"$out" | grep -qF -- "$msg"
}
flip_byte() { printf 'X' | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

check "verify: one flipped byte in a blob" damaged flip \
	"flip_byte blobs/sha256/$LAYER 20" "blobs/sha256/$LAYER: content has digest sha256:"
check "verify --quick: a truncated blob" damaged trunc \
	"truncate -s 10 blobs/sha256/$LAYER" "blobs/sha256/$LAYER: " --quick
check "verify: a deleted blob" damaged deleted \
	"rm blobs/sha256/$LAYER" "blobs/sha256/$LAYER: missing blob"
check "verify --quick: a deleted blob" damaged deleted-quick \
	"rm blobs/sha256/$LAYER" "blobs/sha256/$LAYER: missing blob" --quick
check "verify: a stray file in the served view" damaged stray \
	"echo x >registry/repos/library/base/_manifests/extra" \
	"registry/repos/library/base/_manifests/extra: stray file"
check "verify: a stray file among the blobs" damaged stray-blob \
	"echo x >blobs/sha256/0000" "blobs/sha256/0000: stray file"
# An unused blob is what `rm` leaves for `gc`: a warning, unless the tree must match a signature.
UNUSED=$(echo unused | sha256sum | cut -d' ' -f1)
check "verify: an unused blob is a warning, exit 0" bash -c '
	rm -rf "$2" && cp -a "$3" "$2" && echo unused >"$2/blobs/sha256/$4" &&
	out=$("$1" verify --progress=none "$2") && echo "$out" &&
	grep -q "$2/blobs/sha256/$4: warning: blob not in the snapshot" <<<"$out"' \
	_ "$REGPRESS" "$W/unused" "$TREE" "$UNUSED"
check "verify: a changed tag file" damaged tag \
	"cp registry/repos/library/other/_manifests/tags/2 registry/repos/library/base/_manifests/tags/1" \
	"registry/repos/library/base/_manifests/tags/1: differs from what the snapshot implies"
check "verify: a changed tag list" damaged tags-json \
	"echo '{\"name\":\"library/base\",\"tags\":[\"1\",\"2\"]}' >registry/repos/library/base/_tags.json" \
	"registry/repos/library/base/_tags.json: differs"
check "verify: a changed OCI index" damaged index \
	"echo '{}' >index.json" "index.json: differs from what the snapshot implies"
check "verify: a changed catalog" damaged catalog \
	"echo '{\"repositories\":[]}' >registry/catalog.json" "registry/catalog.json: differs"
check "verify: a wrong mode" damaged mode \
	"chmod 0600 registry/catalog.json" "registry/catalog.json: mode 0600, want 0644"
check "verify: a blob link missing from a repository's view" damaged view \
	"rm registry/repos/user/tool/_blobs/$LAYER" "registry/repos/user/tool/_blobs/$LAYER: missing"

# --- signed snapshots ----------------------------------------------------------------------------
"$REGPRESS" keygen -n "$W/release" >/dev/null || e2e_die "keygen"
"$REGPRESS" keygen -n "$W/other" >/dev/null || e2e_die "keygen other"
check "keygen: the secret key is mode 0600" test "$(stat -c %a "$W/release.sec")" = 600
check "keygen never overwrites a key" fails "$REGPRESS" keygen -n "$W/release"
check "snapshot --sign stores registry/snapshot.sig" bash -c \
	'"$1" snapshot --sign "$2" "$3" >/dev/null 2>&1 && test -s "$3/registry/snapshot.sig"' \
	_ "$REGPRESS" "$W/release.sec" "$TREE"
check "verify --pubkey: the signed tree is exactly the signed snapshot" \
	"$REGPRESS" verify --progress=none --pubkey "$W/release.pub" "$TREE"
check "signify-openbsd verifies the snapshot signature independently" \
	signify-openbsd -V -q -p "$W/release.pub" -x "$TREE/registry/snapshot.sig" -m "$TREE/registry/snapshot"
check "signing keeps the snapshot id" test "$(snap_id "$TREE")" = "$ID"
check "verify --pubkey: a changed signature byte" damaged sig \
	"sed -i '2s/^\\(.\\{40\\}\\)A/\\1B/;t;2s/^\\(.\\{40\\}\\)./\\1A/' registry/snapshot.sig; ! cmp -s registry/snapshot.sig '$TREE/registry/snapshot.sig'" \
	"registry/snapshot.sig: signature verification failed" --pubkey "$W/release.pub"
check "verify --pubkey: signed by another key" damaged sig-other \
	"\"\$REGPRESS\" snapshot --sign '$W/other.sec' . >/dev/null 2>&1" \
	"registry/snapshot.sig: signed by a different key than" --pubkey "$W/release.pub"
check "verify --pubkey: a changed snapshot" damaged sig-snap \
	"sed -i 's/^tag library\\/base 1 /tag library\\/base 9 /' registry/snapshot" \
	"registry/snapshot.sig: signature verification failed" --pubkey "$W/release.pub"
check "verify --pubkey: an added file" damaged sig-added \
	"echo x >registry/repos/library/base/_blobs/README" \
	"registry/repos/library/base/_blobs/README: stray file" --pubkey "$W/release.pub"
check "verify --pubkey: an unused blob" damaged sig-unused \
	"echo unused >blobs/sha256/$UNUSED" "blobs/sha256/$UNUSED: blob not in the snapshot" \
	--pubkey "$W/release.pub"
check "verify --pubkey: an unsigned tree" damaged unsigned \
	"rm registry/snapshot.sig" "registry/snapshot.sig: missing" --pubkey "$W/release.pub"
check "signify-openbsd rejects a changed snapshot" bash -c '
	cp "$1/registry/snapshot" "$2/snap" && echo >>"$2/snap" &&
	! signify-openbsd -V -q -p "$3" -x "$1/registry/snapshot.sig" -m "$2/snap"' \
	_ "$TREE" "$W" "$W/release.pub"

# --- diff ----------------------------------------------------------------------------------------
# NEW = OLD + one image (a new layer on top of base's): diff lists that image's tag and exactly
# the blobs OLD lacks (its manifest, config and new layer, not the shared base layer).
L=$W/layout
mkdir -p "$W/extra-root"
echo "extra payload" >"$W/extra-root/extra.txt"
{
	skopeo copy -q "docker-archive:$FX/base.tar" "oci:$L:base" &&
		umoci insert --image "$L:base" --tag extra "$W/extra-root/extra.txt" /extra.txt &&
		skopeo copy -q "oci:$L:extra" "docker-archive:$W/extra.tar:example.com/extra:1"
} >/dev/null || e2e_die "making the extra image"
"$REGPRESS" build -q -o "$W/old" "$FX/base.tar" "$FX/app.tar" || e2e_die "build old"
"$REGPRESS" build -q -o "$W/new" "$FX/base.tar" "$FX/app.tar" "$W/extra.tar" || e2e_die "build new"
"$REGPRESS" build -q -o "$W/extra-only" "$W/extra.tar" || e2e_die "build extra-only"
blobs_of() { awk '$1 == "blob" || $1 == "manifest" {print $3}' "$1/registry/snapshot" | LC_ALL=C sort -u; }
EXPECTED=$(LC_ALL=C comm -23 <(blobs_of "$W/extra-only") <(blobs_of "$W/old"))
"$REGPRESS" diff "$W/old" "$W/new" >"$W/diff.txt" || e2e_die "diff"
cat "$W/diff.txt"
check "diff: exactly one tag added, the new image's" bash -c '
	test "$(grep -c "^tag " "$1")" = 1 && grep -q "^tag added *example.com/extra:1 sha256:" "$1"' \
	_ "$W/diff.txt"
check "diff: the added blobs are exactly the new image's blobs the old tree lacks" bash -c '
	diff <(awk "\$1 == \"blob\" && \$2 == \"added\" {print \$3}" "$1" | LC_ALL=C sort) <(printf "%s\n" "$2") &&
	test "$(printf "%s\n" "$2" | wc -l)" = 3' _ "$W/diff.txt" "$EXPECTED"
check "diff: nothing removed" bash -c '! grep -q "removed *sha256" "$1" && grep -q "0 removed (0 B)" "$1"' \
	_ "$W/diff.txt"
check "diff --json: the added bytes are the sum of the added blobs' sizes" bash -c '
	j=$("$1" diff --json "$2" "$3") &&
	sum=$(jq "[.blobs.added[].size] | add" <<<"$j") &&
	want=$(for d in $4; do stat -c %s "$3/blobs/sha256/${d#sha256:}"; done | awk "{ s += \$1 } END { print s }") &&
	echo "sum $sum want $want" && test "$sum" = "$want"' _ "$REGPRESS" "$W/old" "$W/new" "$EXPECTED"
check "diff of snapshot files = diff of trees" bash -c \
	'diff <("$1" diff "$2/registry/snapshot" "$3/registry/snapshot") <("$1" diff "$2" "$3")' \
	_ "$REGPRESS" "$W/old" "$W/new"
check "diff: the reverse lists the image and its blobs as removed" bash -c '
	out=$("$1" diff "$3" "$2") && grep -q "^tag removed *example.com/extra:1" <<<"$out" &&
	test "$(grep -c "^blob removed" <<<"$out")" = 3' _ "$REGPRESS" "$W/old" "$W/new"
check "diff: a tree against itself is empty" bash -c \
	'test -z "$("$1" diff "$2" "$2" | grep -v "^tags: 0 added, 0 removed, 0 changed; blobs: 0 added")"' \
	_ "$REGPRESS" "$W/old"

e2e_done
