#!/usr/bin/env bash
# Every docker save there is (issue 3): Docker >= 25 saves and their 25.0.x bugs, containerd
# image-store exports with missing platforms, OCI archives and layout directories, compressed and
# piped inputs, naming options, and incremental atomic trees. Everything is pulled back through
# lighttpd with skopeo and ctr; digest-preserving inputs are pulled by their original digest.
# shellcheck disable=SC2016 # single-quoted bash -c programs take their arguments as $1...
# shellcheck disable=SC2317 # helpers run through `check`, which shellcheck cannot follow
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_workspace
MKSAVE=$(repo)/tests/fixtures/mksave.py

build() { "$REGPRESS" build -q --progress=none "$@"; }
snap_id() { "$REGPRESS" snapshot "$1" 2>&1 >/dev/null | awk '{print $2}'; }
verify_ok() { "$REGPRESS" verify --progress=none "$1"; }

# ptr TREE REPO TAG: the digest the tree serves for the tag.
ptr() { cut -d' ' -f1 "$1/registry/repos/$2/_manifests/tags/$3"; }

# same_image SRC_REF PULLED_REF: same config digest and diff_ids (skopeo inspect --config).
same_image() {
	local a b
	a=$(skopeo inspect --config "$1" | jq -c '.rootfs.diff_ids')
	b=$(skopeo inspect --config --cert-dir "$CA_DIR" "$2" | jq -c '.rootfs.diff_ids')
	echo "source $a"
	echo "pulled $b"
	[ "$a" = "$b" ] && [ -n "$a" ] && [ "$a" != null ]
}

# fails_with MSG CMD...: CMD fails, and its stderr is one line containing MSG.
fails_with() {
	local msg=$1 out rc=0
	shift
	out=$("$@" 2>&1 >/dev/null) || rc=$?
	echo "exit $rc: $out"
	[ "$rc" -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ $out == *"$msg"* ]]
}

# --- Docker >= 25 graphdriver saves, written to formats.md by tests/fixtures/mksave.py ---------
python3 "$MKSAVE" docker25 "$W/d25.tar" "$FX/app.tar" "$FX/base.tar"
python3 "$MKSAVE" docker25 "$W/d25bug.tar" --bug-order --bug-untagged \
	"$FX/app.tar=example.com/team/app:bug" "$FX/base.tar="
python3 "$MKSAVE" legacy "$W/legacy.tar" "$FX/app.tar" "$FX/base.tar"

TREE=$T/tree
check "docker25: build" build -o "$TREE" "$W/d25.tar"
check "docker25: same manifests as the skopeo-written archives" bash -c '
	"$1" build -q --progress=none -o "$2/ref" "$3" "$4" &&
	diff <("$1" snapshot "$2/ref") <("$1" snapshot "$5")' _ "$REGPRESS" "$W" "$FX/app.tar" "$FX/base.tar" "$TREE"
check "docker25 25.0.x bugs: unnamed image is an error naming --untagged-repo" \
	fails_with "--untagged-repo" "$REGPRESS" build -q -o "$W/nope" "$W/d25bug.tar"
check "docker25 25.0.x bugs: wrong layer order and untagged image kept by digest" \
	build -o "$TREE" --untagged-repo kept "$W/d25bug.tar"
check "legacy (Docker <= 24 layout written by mksave.py): build" build -o "$TREE" "$W/legacy.tar"
check "verify after docker25 + legacy" verify_ok "$TREE"

# --- OCI archive and OCI layout directory: compressed registry blobs are kept byte for byte ----
skopeo copy -q "docker-archive:$FX/app.tar" "oci-archive:$W/app-oci.tar:example.com/oci/app:2"
skopeo copy -q "docker-archive:$FX/base.tar" "oci:$W/layout:registry.k8s.io/pause:3.9"
OCI_DIGEST=$(skopeo inspect "oci-archive:$W/app-oci.tar:example.com/oci/app:2" | jq -r .Digest)
DIR_DIGEST=$(skopeo inspect "oci:$W/layout:registry.k8s.io/pause:3.9" | jq -r .Digest)
check "oci-archive and oci layout dir: build" build -o "$TREE" "$W/app-oci.tar" "$W/layout"
check "oci-archive: tag keeps the input's manifest digest" \
	test "$(ptr "$TREE" example.com/oci/app 2)" = "$OCI_DIGEST"
check "oci layout dir: tag keeps the input's manifest digest" \
	test "$(ptr "$TREE" registry.k8s.io/pause 3.9)" = "$DIR_DIGEST"

# --- compressed and piped inputs give the same tree ---------------------------------------------
gzip -c "$FX/base.tar" >"$W/base.tar.gz"
zstd -q -c "$FX/base.tar" >"$W/base.tar.zst"
xz -c "$FX/base.tar" >"$W/base.tar.xz"
build -o "$W/plain" "$FX/base.tar"
for f in base.tar.gz base.tar.zst base.tar.xz; do
	check "compressed input $f: same snapshot as plain" bash -c \
		'"$1" build -q -o "$2" "$3" && [ "$("$1" snapshot "$2" 2>/dev/null | sha256sum)" = "$("$1" snapshot "$4" 2>/dev/null | sha256sum)" ]' \
		_ "$REGPRESS" "$W/t-$f" "$W/$f" "$W/plain"
done
check "standard input (docker save | regpress build -): same snapshot as plain" bash -c \
	'cat "$3" | "$1" build -q -o "$2" - && [ "$("$1" snapshot "$2" 2>/dev/null | sha256sum)" = "$("$1" snapshot "$4" 2>/dev/null | sha256sum)" ]' \
	_ "$REGPRESS" "$W/t-stdin" "$FX/base.tar" "$W/plain"

# --- names ------------------------------------------------------------------------------------
check "--prefix puts repositories under PATH/" bash -c \
	'"$1" build -q -o "$2" --prefix release/v1 "$3" && test -f "$2/registry/repos/release/v1/library/base/_tags.json"' \
	_ "$REGPRESS" "$W/t-prefix" "$FX/base.tar"
check "--strip-registry drops the host" bash -c \
	'"$1" build -q -o "$2" --strip-registry "$3" && test -f "$2/registry/repos/team/app/_tags.json"' \
	_ "$REGPRESS" "$W/t-strip" "$FX/app.tar"
skopeo copy -q "docker-archive:$FX/base.tar" "docker-archive:$W/k8s-app.tar:registry.k8s.io/team/app:1.0"
check "--strip-registry: a collision is an error naming both" fails_with "team/app" \
	"$REGPRESS" build -q -o "$W/t-coll" --strip-registry "$FX/app.tar" "$W/k8s-app.tar"
skopeo copy -q "docker-archive:$FX/base.tar" "docker-archive:$W/pause.tar:registry.k8s.io/pause:3.9"
check "--strip-registry of a one-part name: registry.k8s.io/pause is pause, not library/pause" \
	bash -c '"$1" build -q -o "$2" --strip-registry "$3" "$4" &&
		grep -q "^tag pause 3.9 " "$2/registry/snapshot" && "$1" verify -q "$2" >/dev/null' \
	_ "$REGPRESS" "$W/t-pause" "$W/pause.tar" "$FX/app.tar"
skopeo copy -q "docker-archive:$FX/base.tar" "docker-archive:$W/conflict.tar:example.com/team/app:1.0"
check "same name:tag, different content: error naming both inputs" fails_with "conflict.tar" \
	"$REGPRESS" build -q -o "$W/t-conf" "$FX/app.tar" "$W/conflict.tar"
skopeo copy -q "docker-archive:$FX/base.tar" "docker-archive:$W/port.tar:localhost:5000/team/x:1"
check "a host with a port: stored as localhost+5000" bash -c \
	'"$1" build -q -o "$2" "$3" && test -f "$2/registry/repos/localhost+5000/team/x/_manifests/tags/1"' \
	_ "$REGPRESS" "$TREE" "$W/port.tar"

# --- multi-platform: --merge-platforms, then a containerd export with a missing platform -------
L=$W/mp
umoci init --layout "$L"
umoci new --image "$L:arm"
umoci config --image "$L:arm" --os linux --architecture arm64 --config.cmd /bin/true
skopeo copy -q "oci:$L:arm" "docker-archive:$W/arm.tar:example.com/multi:1"
skopeo copy -q "docker-archive:$FX/base.tar" "docker-archive:$W/amd.tar:example.com/multi:1"
check "--merge-platforms: two platforms become one index" \
	build -o "$W/mp-tree" --format oci --merge-platforms "$W/amd.tar" "$W/arm.tar"
build -o "$W/mp-tree2" --format oci --merge-platforms "$W/arm.tar" "$W/amd.tar"
check "--merge-platforms: the index does not depend on input order" \
	test "$(ptr "$W/mp-tree" example.com/multi 1)" = "$(ptr "$W/mp-tree2" example.com/multi 1)"
INDEX=$(ptr "$W/mp-tree" example.com/multi 1)

e2e_serve "$W/mp-tree"
e2e_containerd
ctr_() { ctr -a "$CTR_SOCK" "$@"; }
check "ctr pull the index for linux/$(e2e_goarch) only" \
	ctr_ images pull --hosts-dir "$HOSTS" --platform "linux/$(e2e_goarch)" "$REG/example.com/multi:1"
check "ctr images export (the containerd image-store archive)" \
	ctr_ images export --platform "linux/$(e2e_goarch)" "$W/ctr-export.tar" "$REG/example.com/multi:1"
e2e_serve_stop || true
check "containerd export: build reports the missing platform" bash -c \
	'"$1" build -o "$2" "$3" | grep -q "^missing "' _ "$REGPRESS" "$W/ctr-tree" "$W/ctr-export.tar"
check "containerd export: the index keeps its digest" \
	test "$(ptr "$W/ctr-tree" "127.0.0.1+$PORT/example.com/multi" 1)" = "$INDEX"
check "containerd export: verify passes, warns about the absent entry" bash -c \
	'out=$("$1" verify --progress=none "$2") && echo "$out" && echo "$out" | grep -q "absent, as recorded"' \
	_ "$REGPRESS" "$W/ctr-tree"
check "--prune-missing writes a new index" bash -c \
	'"$1" build -q -o "$2" --prune-missing "$3" && ! grep -q "$4" "$2/registry/repos/127.0.0.1+$5/example.com/multi/_manifests/tags/1"' \
	_ "$REGPRESS" "$W/ctr-pruned" "$W/ctr-export.tar" "$INDEX" "$PORT"

# Pull the export back by its original index digest through the mirror route (?ns=127.0.0.1:PORT).
OLDREG=$REG
e2e_serve "$W/ctr-tree"
e2e_hosts "$OLDREG"
check "ctr pull by the original index digest, through ?ns= routing" \
	ctr_ images pull --hosts-dir "$HOSTS" --platform "linux/$(e2e_goarch)" "$OLDREG/example.com/multi@$INDEX"
e2e_serve_stop || true

# --- pull everything back from the main tree ---------------------------------------------------
e2e_serve "$TREE"
e2e_hosts "$REG"
check "skopeo: docker25 app:1.0 = source" same_image "docker-archive:$FX/app.tar" \
	"docker://$REG/example.com/team/app:1.0"
check "skopeo: 25.0.x wrong-order image = source" same_image "docker-archive:$FX/app.tar" \
	"docker://$REG/example.com/team/app:bug"
KEPT=$(awk '$1 == "manifest" && $2 == "library/kept" {print $3}' "$TREE/registry/snapshot")
check "skopeo: untagged image pulled by digest from --untagged-repo" \
	skopeo inspect --cert-dir "$CA_DIR" "docker://$REG/library/kept@$KEPT"
check "skopeo: oci-archive image pulled by its original digest" \
	skopeo copy -q --src-cert-dir "$CA_DIR" "docker://$REG/example.com/oci/app@$OCI_DIGEST" "oci:$W/p1:x"
check "ctr: oci layout dir image pulled by its original digest" \
	ctr_ images pull --hosts-dir "$HOSTS" "$REG/registry.k8s.io/pause@$DIR_DIGEST"
check "curl: localhost:5000/team/x by its name with the port" \
	curl -fsS --cacert "$CERTS/ca.crt" -o /dev/null "$URL/v2/localhost:5000/team/x/manifests/1"

# --- incremental and atomic ----------------------------------------------------------------------
BEFORE=$(ptr "$TREE" library/base 1)
skopeo copy -q "docker-archive:$FX/app.tar" "docker-archive:$W/retag.tar:base:1"
# A reader polls the tag while writers retag it back and forth: every answer is one of the two.
reader() {
	local i got bad=0
	for i in $(seq 1 150); do
		got=$(curl -fsS --cacert "$CERTS/ca.crt" -I "$URL/v2/library/base/manifests/1" |
			tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}') || bad=1
		case $got in "$BEFORE" | "$AFTER") ;; *) echo "read $i: '$got'"; bad=1 ;; esac
	done
	return "$bad"
}
AFTER=$("$REGPRESS" build -q --progress=none -o "$W/probe" "$W/retag.tar" >/dev/null &&
	ptr "$W/probe" library/base 1)
# Writers retag in the background while the reader polls.
(for _ in 1 2 3 4; do
	build -o "$TREE" "$W/retag.tar"
	build -o "$TREE" "$FX/base.tar"
done) &
WRITERS=$!
check "a reader during retagging sees the old or the new manifest, never a mix or an error" reader
wait "$WRITERS"
# Two writers at once: the second waits for the first's lock.
build -o "$TREE" "$W/retag.tar" &
W1=$!
build -o "$TREE" "$FX/base.tar" &
W2=$!
R1=0 R2=0
wait "$W1" || R1=$?
wait "$W2" || R2=$?
check "two writers at once: both builds succeed" test "$R1.$R2" = 0.0
check "two writers at once: the tree still verifies" verify_ok "$TREE"
check "rm untags; gc deletes what nothing uses; verify passes" bash -c \
	'"$1" rm "$2" example.com/oci/app:2 && "$1" gc "$2" && "$1" verify --progress=none "$2" &&
	 ! test -e "$2/registry/repos/example.com/oci/app"' _ "$REGPRESS" "$TREE"
e2e_serve_stop || true

e2e_done
