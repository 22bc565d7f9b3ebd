#!/usr/bin/env bash
# regpress build + serve, read back by skopeo (containers/image, an independent client):
# every tag of every fixture pulls with the source's exact config and layer contents, for each
# compression and manifest format; the tree is an OCI layout; bad inputs fail cleanly and atomically.
# shellcheck disable=SC2317 # helpers run through `check`, which shellcheck cannot follow
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_fixtures "$T/fx" || e2e_die "fixtures"
FX=$T/fx
INPUTS=("$FX/base.tar" "$FX/app.tar" "$FX/multi.tar")
# Distinct layers (by diff_id) over all fixture images: base, app, tool, other.
DISTINCT_LAYERS=4
DOCKER_M=application/vnd.docker.distribution.manifest.v2+json
OCI_M=application/vnd.oci.image.manifest.v1+json

# ---------------------------------------------------------------------------------------------
# helpers (each used as a check command: errexit is on inside, see lib.sh)

# oci_manifest DIR REF: the manifest file of REF in the OCI layout DIR.
oci_manifest() {
	local d
	d=$(jq -r --arg r "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $r)
		| .digest' "$1/index.json")
	[ -n "$d" ] || { echo "no $2 in $1/index.json"; return 1; }
	printf '%s/blobs/sha256/%s\n' "$1" "${d#sha256:}"
}

# decompressor MEDIATYPE: the command that turns a layer of that media type into its tar.
decompressor() {
	case $1 in
	*gzip) echo "gzip -dc" ;;
	*zstd) echo "zstd -dcq" ;;
	*.tar) echo cat ;; # OCI .tar and Docker rootfs.diff.tar
	*) echo "unknown layer media type $1" >&2; return 1 ;;
	esac
}

# layers_match_diff_ids DIR MANIFEST CONFIG: every layer, decompressed, hashes to its diff_id.
layers_match_diff_ids() {
	local dir=$1 manifest=$2 config=$3 mt d dec i=0 got want
	local -a mts digests diffs
	mapfile -t mts < <(jq -r '.layers[].mediaType' "$manifest")
	mapfile -t digests < <(jq -r '.layers[].digest' "$manifest")
	mapfile -t diffs < <(jq -r '.rootfs.diff_ids[]' "$config")
	[ "${#digests[@]}" -eq "${#diffs[@]}" ] ||
		{ echo "${#digests[@]} layers but ${#diffs[@]} diff_ids"; return 1; }
	for d in "${digests[@]}"; do
		mt=${mts[$i]}
		dec=$(decompressor "$mt")
		got=sha256:$($dec <"$dir/blobs/sha256/${d#sha256:}" | sha256sum | cut -d' ' -f1)
		want=${diffs[$i]}
		[ "$got" = "$want" ] || { echo "layer $i ($d, $mt): content $got, diff_id $want"; return 1; }
		i=$((i + 1))
	done
}

# pull_and_compare VARIANT FILE REF REPO TAG: skopeo copies REPO:TAG from the server into an OCI
# directory. The served config is byte-identical to the source's (same config digest); the pulled
# image has the source's diff_ids and its layers decompress to them. (Copying a Docker schema2 image
# to oci: makes containers/image re-serialize the config, so the pulled copy's config bytes can
# differ from the served ones: compare the served bytes.)
pull_and_compare() {
	local variant=$1 file=$2 ref=$3 repo=$4 tag=$5 dst manifest
	dst=$T/pull/$variant/$repo/$tag
	mkdir -p "$dst"
	skopeo copy -q --src-cert-dir "$CA_DIR" "docker://$REG/$repo:$tag" "oci:$dst:x"
	skopeo inspect --config --raw "docker-archive:$FX/$file:$ref" >"$dst.src-config"
	skopeo inspect --config --raw --cert-dir "$CA_DIR" "docker://$REG/$repo:$tag" >"$dst.served-config"
	skopeo inspect --config --raw "oci:$dst:x" >"$dst.config"
	echo "source config sha256:$(sha256sum <"$dst.src-config" | cut -d' ' -f1)"
	echo "served config sha256:$(sha256sum <"$dst.served-config" | cut -d' ' -f1)"
	same_file "$dst.src-config" "$dst.served-config"
	diff <(jq -c .rootfs.diff_ids "$dst.src-config") <(jq -c .rootfs.diff_ids "$dst.config")
	manifest=$(oci_manifest "$dst" x)
	layers_match_diff_ids "$dst" "$manifest" "$dst.config"
}

# served_types TREE REPO TAG MANIFEST_TYPE LAYER_TYPE: the served manifest (raw, as the server sends
# it) has the expected media types, and its digest is the tag pointer's. index.json lists the same
# manifest for OCI trees; for Docker trees it lists an OCI twin (layout/view.c) with the same config
# and layers.
served_types() {
	local tree=$1 repo=$2 tag=$3 mtype=$4 ltype=$5 raw got pointer twin
	raw=$T/raw-$RANDOM.json
	skopeo inspect --raw --cert-dir "$CA_DIR" "docker://$REG/$repo:$tag" >"$raw"
	jq -e --arg m "$mtype" '.mediaType == $m' "$raw" >/dev/null ||
		{ echo "manifest media type $(jq -r .mediaType "$raw"), want $mtype"; return 1; }
	jq -e --arg l "$ltype" '[.layers[].mediaType] | all(. == $l)' "$raw" >/dev/null ||
		{ echo "layer media types $(jq -c '[.layers[].mediaType]' "$raw"), want $ltype"; return 1; }
	got=sha256:$(sha256sum <"$raw" | cut -d' ' -f1)
	pointer=$(cut -d' ' -f1 "$tree/registry/repos/$repo/_manifests/tags/$tag")
	[ "$got" = "$pointer" ] || { echo "served manifest $got, tag pointer says $pointer"; return 1; }
	twin=$(oci_manifest "$tree" "$repo:$tag")
	if [ "$mtype" = "$OCI_M" ]; then
		[ "$twin" = "$tree/blobs/sha256/${got#sha256:}" ] ||
			{ echo "index.json lists $twin, served $got"; return 1; }
	fi
	diff <(jq -c '[.config.digest, (.layers[] | .digest, .size)]' "$raw") \
		<(jq -c '[.config.digest, (.layers[] | .digest, .size)]' "$twin")
}

# ref_names TREE: index.json names exactly the fixture tags, sorted by reference.
ref_names() {
	local want got
	want=$(awk '{print $3 ":" $4}' "$FX/images.list" | LC_ALL=C sort)
	got=$(jq -r '.manifests[].annotations["org.opencontainers.image.ref.name"]' "$1/index.json")
	diff <(echo "$want") <(echo "$got")
	jq -e '.schemaVersion == 2 and .mediaType == "application/vnd.oci.image.index.v1+json"' \
		"$1/index.json" >/dev/null
	jq -e '.imageLayoutVersion == "1.0.0"' "$1/oci-layout" >/dev/null
}

# referenced_blobs TREE: every digest the served view (registry/snapshot) or index.json (walked
# through indexes and manifests) refers to.
referenced_blobs() {
	local tree=$1
	{
		awk '$1 == "blob" || $1 == "manifest" {print $3}' "$tree/registry/snapshot"
		walk_index "$tree" "$tree/index.json"
	} | LC_ALL=C sort -u
}

# walk_index TREE FILE: the digests an index refers to, recursively, with the manifests' blobs.
walk_index() {
	local tree=$1 mt d
	jq -r '.manifests[] | .mediaType + " " + .digest' "$2" | while read -r mt d; do
		echo "$d"
		case $mt in
		*index* | *manifest.list*) walk_index "$tree" "$tree/blobs/sha256/${d#sha256:}" ;;
		*) jq -r '.config.digest, .layers[].digest' "$tree/blobs/sha256/${d#sha256:}" ;;
		esac
	done
}

# blobs_exact TREE: blobs/sha256 holds exactly the referenced blobs, each named by its own hash, and
# the shared base layer once: there are as many layer blobs as distinct diff_ids.
blobs_exact() {
	local tree=$1 layers
	diff <(referenced_blobs "$tree") <(find "$tree/blobs/sha256" -type f -printf 'sha256:%f\n' |
		LC_ALL=C sort)
	(cd "$tree/blobs/sha256" && sha256sum ./* | awk '{ sub("./", "", $2); if ($1 != $2) { print "bad blob " $2; bad = 1 } }
		END { exit bad }')
	layers=$(for m in $(jq -r '.manifests[].digest' "$tree/index.json" | sort -u); do
		jq -r '.layers[].digest' "$tree/blobs/sha256/${m#sha256:}"
	done | sort -u | wc -l)
	[ "$layers" -eq "$DISTINCT_LAYERS" ] ||
		{ echo "$layers distinct layer blobs, want $DISTINCT_LAYERS (shared layers stored once)"; return 1; }
}

# tree_rules TREE: documented invariants: no links, modes 0644/0755, mtimes SOURCE_DATE_EPOCH (0),
# no scratch directory left.
tree_rules() {
	local tree=$1 bad
	bad=$(find "$tree" -mindepth 1 \( -type l -o \( -type f -links +1 \) -o \
		\( ! -type f ! -type d \) \) -printf '%p %y %n\n')
	[ -z "$bad" ] || { echo "links or special files:"; echo "$bad"; return 1; }
	bad=$(find "$tree" -mindepth 1 \( \( -type f ! -perm 0644 \) -o \( -type d ! -perm 0755 \) \) \
		-printf '%p %m\n')
	[ -z "$bad" ] || { echo "wrong modes:"; echo "$bad" | head; return 1; }
	bad=$(find "$tree" -mindepth 1 -printf '%T@ %p\n' | awk -v e="${SOURCE_DATE_EPOCH:-0}" '$1 + 0 != e + 0')
	[ -z "$bad" ] || { echo "mtimes not ${SOURCE_DATE_EPOCH:-0}:"; echo "$bad" | head; return 1; }
	[ ! -e "$tree/.regpress-tmp" ] || { echo ".regpress-tmp left behind"; return 1; }
}

# oci_inspect TREE: the tree root is an OCI layout skopeo reads; same digest as served.
oci_inspect() {
	local tree=$1 a b
	a=$(skopeo inspect --format '{{.Digest}}' "oci:$tree:library/base:1")
	b=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] ==
		"library/base:1") | .digest' "$tree/index.json")
	echo "skopeo: $a index.json: $b"
	[ "$a" = "$b" ]
	skopeo inspect --config --raw "oci:$tree:library/base:1" | jq -e .rootfs.diff_ids >/dev/null
}

# state TREE: every path with size, mode and mtime, and every file's hash: equal states mean a
# byte-identical tree.
state() {
	(cd "$1" && find . -printf '%p %s %m %T@ %y\n' | LC_ALL=C sort &&
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

same_trees() {
	diff <(state "$1") <(state "$2")
}

# ---------------------------------------------------------------------------------------------

# variant NAME MANIFEST_TYPE LAYER_TYPE BUILD_OPTION...: build all fixtures, check the tree, serve
# it, pull every tag with skopeo.
variant() {
	local name=$1 mtype=$2 ltype=$3 tree=$T/tree-$1 file ref repo tag
	shift 3
	check "$name: regpress build $*" "$REGPRESS" build -q -o "$tree" "$@" "${INPUTS[@]}"
	[ -f "$tree/index.json" ] || { echo "# $name: no tree, skipping its other checks"; return 0; }
	check "$name: index.json names every tag" ref_names "$tree"
	check "$name: blobs/sha256 = referenced blobs, shared layers once" blobs_exact "$tree"
	check "$name: no links, modes 0644/0755, mtime 0" tree_rules "$tree"
	check "$name: skopeo inspect oci:TREE:library/base:1" oci_inspect "$tree"
	e2e_serve "$tree"
	while read -r file ref repo tag; do
		check "$name: skopeo pull $repo:$tag = $file $ref" pull_and_compare "$name" "$file" "$ref" "$repo" "$tag"
		check "$name: served $repo:$tag types and digest" served_types "$tree" "$repo" "$tag" "$mtype" "$ltype"
	done <"$FX/images.list"
	check_here "$name: regpress serve stops on SIGTERM (lighttpd too)" e2e_serve_stop
}


variant gzip "$DOCKER_M" application/vnd.docker.image.rootfs.diff.tar.gzip --compression gzip
variant zstd "$OCI_M" application/vnd.oci.image.layer.v1.tar+zstd --compression zstd --format oci
variant none "$DOCKER_M" application/vnd.docker.image.rootfs.diff.tar --compression none
variant oci "$OCI_M" application/vnd.oci.image.layer.v1.tar+gzip --format oci

# Reproducible: the same inputs give the same bytes, whatever the umask, thread count or input order.
if [ -f "$T/tree-gzip/index.json" ]; then
	(umask 077 && "$REGPRESS" build -q -j 1 -o "$T/tree-again" "$FX/multi.tar" "$FX/app.tar" \
		"$FX/base.tar") >"$T/again.log" 2>&1 || cat "$T/again.log"
	check "rebuild (umask 077, -j 1, other input order) is byte-identical" same_trees "$T/tree-gzip" "$T/tree-again"

	# A tree grows one build at a time to the same state as one build of everything; adding
	# images that are already there changes nothing.
	incremental() {
		"$REGPRESS" build -q -o "$T/tree-inc" "$FX/base.tar"
		"$REGPRESS" build -q -o "$T/tree-inc" "$FX/app.tar"
		"$REGPRESS" build -q -o "$T/tree-inc" "$FX/multi.tar" "$FX/base.tar"
		same_trees "$T/tree-gzip" "$T/tree-inc"
		"$REGPRESS" build -q -o "$T/tree-inc" "$FX/app.tar"
		same_trees "$T/tree-gzip" "$T/tree-inc"
	}
	check "incremental builds reach the one-build tree; re-adding is a no-op" incremental

	# Standard input (not seekable) and compressed tarballs (docker save | gzip, | zstd).
	other_inputs() {
		gzip -c "$FX/multi.tar" >"$T/multi.tar.gz"
		zstd -q -c "$FX/app.tar" >"$T/app.tar.zst"
		"$REGPRESS" build -q -o "$T/tree-in" - <"$FX/base.tar"
		"$REGPRESS" build -q -o "$T/tree-in" "$T/multi.tar.gz" "$T/app.tar.zst"
		same_trees "$T/tree-gzip" "$T/tree-in"
	}
	check "stdin '-', .tar.gz and .tar.zst inputs give the same tree" other_inputs
fi

# ---------------------------------------------------------------------------------------------
# failures: exit 1, one line naming the file, the existing tree untouched

# fails_cleanly TREE FILE...: build fails with status 1 and one stderr line naming the bad (last) file;
# TREE is byte-identical afterwards.
fails_cleanly() {
	local tree=$1 rc=0 bad
	shift
	bad=${*: -1}
	state "$tree" >"$T/before"
	"$REGPRESS" build -q -o "$tree" "$@" >"$T/out" 2>"$T/err" || rc=$?
	echo "exit $rc; stderr:"
	cat "$T/err"
	[ "$rc" -eq 1 ] || { echo "want exit 1"; return 1; }
	[ "$(wc -l <"$T/err")" -eq 1 ] || { echo "want exactly one line on stderr"; return 1; }
	grep -q "^regpress build: '$bad': ." "$T/err" || { echo "want \"regpress build: '$bad': ...\""; return 1; }
	state "$tree" >"$T/after"
	diff "$T/before" "$T/after" || { echo "the tree changed"; return 1; }
}

if [ -f "$T/tree-gzip/index.json" ]; then
	check "truncated tarball: exit 1, one line, tree unchanged" \
		fails_cleanly "$T/tree-gzip" "$FX/truncated.tar"
	check "altered layer (containers/image layout): exit 1, one line, tree unchanged" \
		fails_cleanly "$T/tree-gzip" "$FX/badlayer.tar"
	check "altered layer (Docker <= 24 layout): exit 1, one line, tree unchanged" \
		fails_cleanly "$T/tree-gzip" "$FX/badlayer-legacy.tar"
	check "good + bad inputs: all or nothing, tree unchanged" \
		fails_cleanly "$T/tree-gzip" "$FX/base.tar" "$FX/badlayer.tar"
	check "missing input: exit 1, one line, tree unchanged" \
		fails_cleanly "$T/tree-gzip" "$T/no-such-file.tar"
fi

usage_exit() {
	local rc=0
	"$REGPRESS" build "$@" >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 2 ] || { echo "exit $rc, want 2"; return 1; }
}
check "build without -o: usage error (exit 2)" usage_exit "$FX/base.tar"
check "build --compression lz4: usage error (exit 2)" usage_exit -o "$T/x" --compression lz4 "$FX/base.tar"
for n in 0 257 2x '' -1; do
	check "build -j '$n': usage error (exit 2)" usage_exit -o "$T/x" -j "$n" "$FX/base.tar"
done
check "usage errors write no tree" test ! -e "$T/x"

e2e_done
