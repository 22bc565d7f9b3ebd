#!/usr/bin/env bash
# Seeing what a tree holds (issue 19): `regpress ls` and `regpress inspect` on a tree with Docker
# and OCI images, a two-platform index (--merge-platforms), an index with a missing child, and an
# SBOM and a signature whose subject is an image. ls is checked line for line against an
# independent reading of the tree (tests/e2e python below: snapshot, manifests, configs), piped
# and on a terminal, with filters, --digests and --json; inspect in text, --json and --raw. Then
# the same on a read-only tree, a volume directory from `regpress media` and a snapshot file,
# and the errors: one line, exit 1 for what the tree lacks or is not, 2 for usage.
# shellcheck disable=SC2016 # single-quoted bash -c programs take their arguments as $1...
# shellcheck disable=SC2317 # helpers run through `check`, which shellcheck cannot follow
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_workspace
e2e_platform_fixtures "$T/pf" || e2e_die "platform fixtures"
HOST_ARCH=$(awk 'NR == 1 {print $2}' "$T/pf/platforms.list")
OTHER_ARCH=$(awk 'NR == 2 {print $2}' "$T/pf/platforms.list")

build() { "$REGPRESS" build -q --progress=none "$@"; }
rp_ls() { "$REGPRESS" ls "$@"; }
# digest_of TREE REPO TAG: sha256:... of the tag, from the snapshot; blob TREE DIGEST: its file.
digest_of() { awk -v r="$2" -v t="$3" '$1 == "tag" && $2 == r && $3 == t {print $4}' "$1/registry/snapshot"; }
blob() { printf '%s/blobs/sha256/%s\n' "$1" "${2#sha256:}"; }

# fails_with STATUS MSG CMD...: CMD exits STATUS with MSG in the first line of its stderr, which
# is that one line (exit 1) or that line and "Try 'regpress CMD --help'." (exit 2, usage).
fails_with() {
	local want=$1 msg=$2 out rc=0
	shift 2
	out=$("$@" 2>&1 >/dev/null) || rc=$?
	echo "exit $rc: $out"
	[ "$rc" -eq "$want" ] && [[ $(printf '%s\n' "$out" | head -1) == *"$msg"* ]] || return 1
	if [ "$want" -eq 2 ]; then
		[ "$(printf '%s\n' "$out" | wc -l)" -eq 2 ] &&
			[[ $(printf '%s\n' "$out" | tail -1) == "Try 'regpress "*" --help'." ]]
	else
		[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]
	fi
}

# --- the tree ------------------------------------------------------------------------------------
# mk_artifact LAYOUT TYPE CONTENT [NAME]: an artifact manifest of artifactType TYPE (one layer
# CONTENT) whose subject is the layout's first image, added to the layout (tagged NAME if given);
# prints its digest.
mk_artifact() {
	python3 - "$@" <<-'PY'
	import hashlib, json, os, sys
	L, atype, content = sys.argv[1], sys.argv[2], sys.argv[3].encode()
	def put(b):
	    h = hashlib.sha256(b).hexdigest()
	    with open(os.path.join(L, "blobs", "sha256", h), "wb") as f:
	        f.write(b)
	    return "sha256:" + h
	with open(os.path.join(L, "index.json")) as f:
	    idx = json.load(f)
	subject = {k: idx["manifests"][0][k] for k in ("mediaType", "digest", "size")}
	man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
	       "artifactType": atype,
	       "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": put(b"{}"), "size": 2},
	       "layers": [{"mediaType": atype, "digest": put(content), "size": len(content)}],
	       "subject": subject,
	       "annotations": {"org.opencontainers.image.created": "2024-02-03T04:05:06Z"}}
	b = json.dumps(man, separators=(",", ":")).encode()
	desc = {"mediaType": man["mediaType"], "digest": put(b), "size": len(b), "artifactType": atype}
	if len(sys.argv) > 4:
	    desc["annotations"] = {"org.opencontainers.image.ref.name": sys.argv[4]}
	idx["manifests"].append(desc)
	with open(os.path.join(L, "index.json"), "w") as f:
	    json.dump(idx, f)
	print(desc["digest"])
	PY
}

# mk_partial TREE INDEX ARCH OUT NAME: an OCI layout OUT naming INDEX (of TREE) NAME, with every
# child but ARCH's: an input that left one platform out, as a single-platform `ctr export` does.
mk_partial() {
	python3 - "$@" <<-'PY'
	import json, os, shutil, sys
	tree, index, arch, out, name = sys.argv[1:6]
	src = lambda d: os.path.join(tree, "blobs", "sha256", d.split(":")[1])
	os.makedirs(os.path.join(out, "blobs", "sha256"))
	take = lambda d: shutil.copyfile(src(d), os.path.join(out, "blobs", "sha256", d.split(":")[1]))
	idx = json.load(open(src(index)))
	take(index)
	for c in idx["manifests"]:
	    if c["platform"]["architecture"] == arch:
	        continue
	    take(c["digest"])
	    m = json.load(open(src(c["digest"])))
	    for d in [m["config"]] + m["layers"]:
	        take(d["digest"])
	open(os.path.join(out, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
	json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
	           "manifests": [{"mediaType": idx["mediaType"], "digest": index,
	                          "size": os.path.getsize(src(index)),
	                          "annotations": {"org.opencontainers.image.ref.name": name}}]},
	          open(os.path.join(out, "index.json"), "w"))
	PY
}

TREE=$T/tree
check "build: Docker images (base, app, multi.tar), an OCI index (--merge-platforms)" bash -c '
	"$1" build -q -o "$2" "$3/base.tar" "$3/app.tar" "$3/multi.tar" &&
	"$1" build -q -o "$2" --format oci --merge-platforms "$4"/multi-*.tar' \
	_ "$REGPRESS" "$TREE" "$FX" "$T/pf"
INDEX=$(digest_of "$TREE" example.com/team/multi 1)
[ -n "$INDEX" ] || e2e_die "no index in the tree"
skopeo copy -q "docker-archive:$FX/base.tar" "oci:$W/layout:signed:1" || e2e_die "skopeo oci: layout"
SUBJECT=$(jq -r '.manifests[0].digest' "$W/layout/index.json")
SBOM=$(mk_artifact "$W/layout" application/spdx+json '{"spdxVersion":"SPDX-2.3"}' signed:sbom) ||
	e2e_die "artifact"
SIG=$(mk_artifact "$W/layout" application/vnd.dev.cosign.artifact.sig.v1+json signature) ||
	e2e_die "artifact"
mk_partial "$TREE" "$INDEX" "$OTHER_ARCH" "$W/partial" example.com/team/partial:1 ||
	e2e_die "partial layout"
check "build: an OCI layout with an SBOM and a signature, an index missing a platform" \
	build -o "$TREE" "$W/layout" "$W/partial"
MISSING=$(jq -r --arg a "$OTHER_ARCH" '.manifests[] | select(.platform.architecture == $a) | .digest' \
	"$(blob "$TREE" "$INDEX")")
check "the tree records the left-out platform as missing" \
	grep -q "^missing example.com/team/partial $MISSING " "$TREE/registry/snapshot"

# expected TREE text|json: what ls must say, worked out here from the snapshot and the blobs
# without regpress: the kinds, platforms, sizes (each blob once) and dates of issue 19.
expected() {
	python3 - "$@" <<-'PY'
	import datetime, json, os, re, sys
	tree, mode = sys.argv[1], sys.argv[2]
	recs = [l.split(" ") for l in open(os.path.join(tree, "registry", "snapshot")).read().splitlines()[1:]]
	present = {(r[1], r[2]) for r in recs if r[0] == "manifest"}
	load = lambda d: open(os.path.join(tree, "blobs", "sha256", d.split(":")[1]), "rb").read()
	image_cfg = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")
	def plat(p):
	    if not p or not p.get("os") or not p.get("architecture"):
	        return None
	    return "/".join([p["os"], p["architecture"]] + ([p["variant"]] if p.get("variant") else []))
	def when(s):
	    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", s or "")
	    if not m:
	        return None
	    t = datetime.datetime.fromisoformat(m[1] + ("+00:00" if m[3] == "Z" else m[3]))
	    return (int(t.timestamp()), int((m[2] or "0")[:9].ljust(9, "0")))
	def kind(m):
	    if "manifests" in m:
	        return "index"
	    if "artifactType" in m or "subject" in m or m.get("config", {}).get("mediaType") not in image_cfg:
	        return "artifact"
	    return "image"
	def walk(repo, d, dplat, show, a):
	    raw = load(d)
	    m = json.loads(raw)
	    for b, size in [(d, len(raw))] + [(x["digest"], x["size"]) for x in
	                                      ([m["config"]] if "config" in m else []) + m.get("layers", [])]:
	        if b not in a["seen"]:
	            a["seen"].add(b)
	            a["size"] += size
	    k = kind(m)
	    created = None
	    if k == "image":
	        cfg = json.loads(load(m["config"]["digest"]))
	        created = cfg.get("created")
	        if show and (dplat or plat(cfg)):
	            a["platforms"].append((dplat or plat(cfg), False))
	    elif k == "artifact":
	        created = m.get("annotations", {}).get("org.opencontainers.image.created")
	    for c in m.get("manifests", []):
	        att = c.get("annotations", {}).get("vnd.docker.reference.type") == "attestation-manifest"
	        if (repo, c["digest"]) in present:
	            walk(repo, c["digest"], plat(c.get("platform")), show and not att, a)
	        else:
	            a["missing"].append(c["digest"])
	            if show and not att and plat(c.get("platform")):
	                a["platforms"].append((plat(c.get("platform")), True))
	    if when(created) and (not a["when"] or when(created) > a["when"]):
	        a["when"], a["created"] = when(created), created
	    return k
	def human(n):
	    v, u = float(n), 0
	    while v >= 1024 and u < 4:
	        v, u = v / 1024, u + 1
	    return "%d B" % n if u == 0 else "%.1f %s" % (v, ["B", "KiB", "MiB", "GiB", "TiB"][u])
	out = []
	for r in recs:
	    if r[0] != "tag":
	        continue
	    a = {"seen": set(), "size": 0, "platforms": [], "missing": [], "when": None, "created": None}
	    k = walk(r[1], r[3], None, True, a)
	    if mode == "json":
	        out.append({"repository": r[1], "tag": r[2], "digest": r[3], "kind": k,
	                    "platforms": [p for p, _ in a["platforms"]], "missing": a["missing"],
	                    "size": a["size"], "created": a["created"]})
	        continue
	    plats = ",".join(p + (" (missing)" if miss else "") for p, miss in a["platforms"]) or "-"
	    date = datetime.datetime.fromtimestamp(a["when"][0], datetime.timezone.utc).strftime("%Y-%m-%d") if a["when"] else "-"
	    print("\t".join([r[1], r[2], r[3][7:19], k, plats, human(a["size"]), date]))
	if mode == "json":
	    print(json.dumps(out, indent=1, sort_keys=True))
	PY
}

# --- ls ------------------------------------------------------------------------------------------
same_output() { diff <("$@") <(cat "$EXPECT"); }
expected "$TREE" text >"$W/expected.txt" || e2e_die "expected ls output"
EXPECT=$W/expected.txt
check "ls piped: every tag, tab-separated, no header, as read independently from the tree" \
	same_output rp_ls "$TREE"
check "ls: sorted by repository then tag, byte order; one line per snapshot tag" bash -c '
	"$1" ls "$2" | cut -f1,2 | LC_ALL=C sort -c &&
	[ "$("$1" ls "$2" | wc -l)" -eq "$(grep -c "^tag " "$2/registry/snapshot")" ] &&
	[ "$("$1" ls "$2" | awk -F "\t" "NF != 7" | wc -l)" -eq 0 ]' _ "$REGPRESS" "$TREE"
check "ls: kinds of a Docker image, an index, a tagged SBOM" bash -c '
	out=$("$1" ls "$2" | cut -f1,2,4) && echo "$out" &&
	echo "$out" | grep -qx "library/base	1	image" &&
	echo "$out" | grep -qx "example.com/team/multi	1	index" &&
	echo "$out" | grep -qx "library/signed	sbom	artifact"' _ "$REGPRESS" "$TREE"
check "ls: the index has both platforms, the partial one marks the missing platform" bash -c '
	out=$("$1" ls "$2" example.com/team/multi example.com/team/partial | cut -f5) && echo "$out" &&
	[ "$(echo "$out" | head -1 | tr , "\n" | sort | paste -sd,)" = "$(printf "linux/%s\n" "$3" "$4" | sort | paste -sd,)" ] &&
	echo "$out" | tail -1 | grep -q "linux/$4 (missing)"' _ "$REGPRESS" "$TREE" "$HOST_ARCH" "$OTHER_ARCH"
check "ls: the size column is the manifest, config and layers" bash -c '
	m=$(cut -d" " -f1 "$2/registry/repos/library/base/_manifests/tags/1") && f="$2/blobs/sha256/${m#sha256:}" &&
	bytes=$(( $(stat -c %s "$f") + $(jq "[.config.size, .layers[].size] | add" "$f") )) &&
	"$1" ls --json "$2" base:1 | jq -e --argjson b "$bytes" ".tags[0].size == \$b"' _ "$REGPRESS" "$TREE"
same_json() {
	diff <(rp_ls --json "$1" | jq -S '[.tags[] | {repository, tag, digest, kind, platforms, missing, size, created}]') \
		<(expected "$1" json | jq -S .)
}
check "ls --json: every field in full, as read independently" same_json "$TREE"
check "ls --json: source, snapshot id, Docker and OCI media types, the SBOM's artifact type" bash -c '
	j=$("$1" ls --json "$2") &&
	id=$("$1" snapshot "$2" 2>&1 >/dev/null | awk "{print \$2}") &&
	echo "$j" | jq -e --arg id "$id" ".source == \"tree\" and .snapshot == \$id" &&
	echo "$j" | jq -e ".tags[] | select(.repository == \"library/base\") |
		.mediaType == \"application/vnd.docker.distribution.manifest.v2+json\" and .manifestSize > 0" &&
	echo "$j" | jq -e ".tags[] | select(.repository == \"library/signed\" and .tag == \"1\") |
		.mediaType == \"application/vnd.oci.image.manifest.v1+json\"" &&
	echo "$j" | jq -e ".tags[] | select(.tag == \"sbom\") | .artifactType == \"application/spdx+json\" and
		.platforms == [] and .created == \"2024-02-03T04:05:06Z\""' _ "$REGPRESS" "$TREE"

# lines REPO:TAG...: the expected lines of those tags (give them in the tree's order).
lines() {
	local ref
	for ref in "$@"; do
		awk -F '\t' -v r="${ref%:*}" -v t="${ref##*:}" '$1 == r && $2 == t' "$EXPECT"
	done
}
filter_is() { # FILTERS... -- REPO:TAG...
	local f=()
	while [ "$1" != -- ]; do f+=("$1"); shift; done
	shift
	diff <(rp_ls "$TREE" "${f[@]}") <(lines "$@")
}
check "ls REPO: a docker name (base is library/base)" filter_is base -- library/base:1
check "ls REPO: the tree's name, docker.io/ too" \
	filter_is library/other docker.io/user/tool -- library/other:2 library/other:latest user/tool:1.0
check "ls REPO:TAG: one tag; filters in any order, each tag once, in the tree's order" \
	filter_is example.com/team/app:latest other:2 other -- example.com/team/app:latest \
	library/other:2 library/other:latest
check "ls REPO@sha256:...: the tags naming that manifest" \
	filter_is "example.com/team/app@$(digest_of "$TREE" example.com/team/app 1.0)" -- \
	example.com/team/app:1.0 example.com/team/app:latest
check "ls --digests: the whole digest" bash -c '
	[ "$("$1" ls --digests "$2" example.com/team/multi:1 | cut -f3)" = "$3" ]' _ "$REGPRESS" "$TREE" "$INDEX"

# On a terminal (script(1) gives ls a pty): a header, and every column starts where its header
# does, on every line.
aligned() {
	script -qec "$REGPRESS ls $TREE" /dev/null | tr -d '\r' >"$W/tty.txt"
	cat "$W/tty.txt"
	python3 - "$W/tty.txt" "$(wc -l <"$EXPECT")" <<-'PY'
	import re, sys
	lines = open(sys.argv[1]).read().splitlines()
	head = lines[0]
	assert head.split() == ["REPOSITORY", "TAG", "DIGEST", "KIND", "PLATFORMS", "SIZE", "CREATED"], head
	assert len(lines) == int(sys.argv[2]) + 1, "a line per tag and the header"
	starts = [m.start() for m in re.finditer(r"\S+", head)]
	for l in lines[1:]:
	    for s in starts:
	        assert l[s] != " " and (s == 0 or l[s - 2:s] == "  "), "column at %d: %r" % (s, l)
	PY
}
if command -v script >/dev/null; then
	check "ls on a terminal: a header, aligned columns" aligned
else
	e2e_log "no script(1): the terminal layout is not checked"
fi

# --- inspect -------------------------------------------------------------------------------------
inspect_index() {
	local out
	out=$("$REGPRESS" inspect "$TREE" example.com/team/multi:1)
	echo "$out"
	grep -qx "digest      $INDEX" <<<"$out"
	grep -qx "media type  application/vnd.oci.image.index.v1+json" <<<"$out"
	grep -qx "kind        index" <<<"$out"
	grep -qx "platform linux/$HOST_ARCH" <<<"$out"
	grep -qx "platform linux/$OTHER_ARCH" <<<"$out"
	grep -qx '  cmd         \["/bin/arch"\]' <<<"$out"
	# every layer of every child, with its media type and size
	for c in $(jq -r '.manifests[].digest' "$(blob "$TREE" "$INDEX")"); do
		while read -r l; do
			grep -qF "    $l  " <<<"$out"
		done < <(jq -r '.layers[] | "\(.digest)  \(.mediaType)"' "$(blob "$TREE" "$c")")
	done
}
check "inspect an index: each platform's config and layers" inspect_index
check "inspect --json: platforms, config summary, layers, as the blobs say" bash -c '
	j=$("$1" inspect --json "$2" base:1) && echo "$j" &&
	m="$2/blobs/sha256/$(echo "$j" | jq -r ".digest" | cut -d: -f2)" &&
	c="$2/blobs/sha256/$(jq -r ".config.digest" "$m" | cut -d: -f2)" &&
	echo "$j" | jq -e --slurpfile m "$m" --slurpfile c "$c" "
		.kind == \"image\" and .tags == [\"1\"] and .repository == \"library/base\" and
		(.platforms | length) == 1 and
		.platforms[0].platform == \"\(\$c[0].os)/\(\$c[0].architecture)\" and
		.platforms[0].config.cmd == \$c[0].config.Cmd and
		.platforms[0].config.env == (\$c[0].config.Env | length) and
		.platforms[0].config.created == \$c[0].created and
		.platforms[0].layers == [\$m[0].layers[] | {mediaType, digest, size}]"' _ "$REGPRESS" "$TREE"
check "inspect: the image's referrers, SBOM and signature, with artifact types" bash -c '
	j=$("$1" inspect --json "$2" signed:1) &&
	echo "$j" | jq -e --arg s "$3" --arg g "$4" --arg d "$5" ".digest == \$d and
		([.referrers[] | \"\(.digest) \(.artifactType)\"] | sort) ==
		([\"\(\$s) application/spdx+json\", \"\(\$g) application/vnd.dev.cosign.artifact.sig.v1+json\"] | sort)" &&
	out=$("$1" inspect "$2" signed:1) && echo "$out" &&
	echo "$out" | grep -q "^  $3  application/spdx+json  " &&
	echo "$out" | grep -q "^  $4  application/vnd.dev.cosign.artifact.sig.v1+json  "' \
	_ "$REGPRESS" "$TREE" "$SBOM" "$SIG" "$SUBJECT"
check "inspect an artifact by digest: its subject, type and layer" bash -c '
	out=$("$1" inspect "$2" "library/signed@$3") && echo "$out" &&
	echo "$out" | grep -qx "kind        artifact (application/vnd.dev.cosign.artifact.sig.v1+json)" &&
	echo "$out" | grep -qx "subject     $4" && echo "$out" | grep -qx "tags        -"' \
	_ "$REGPRESS" "$TREE" "$SIG" "$SUBJECT"
check "inspect: the missing child shown as missing" bash -c '
	out=$("$1" inspect "$2" example.com/team/partial:1) && echo "$out" &&
	echo "$out" | grep -A2 -x "platform linux/$3" | grep -q "^  missing " &&
	"$1" inspect --json "$2" example.com/team/partial:1 |
		jq -e --arg d "$4" "[.platforms[] | select(.missing) | .digest] == [\$d]"' \
	_ "$REGPRESS" "$TREE" "$OTHER_ARCH" "$MISSING"
check "inspect --raw: exactly the manifest's bytes (a Docker image, an index)" bash -c '
	"$1" inspect --raw "$2" base:1 | cmp - "$2/blobs/sha256/$(cut -d" " -f1 "$2/registry/repos/library/base/_manifests/tags/1" | cut -d: -f2)" &&
	"$1" inspect --raw "$2" "example.com/team/multi@$3" | cmp - "$2/blobs/sha256/${3#sha256:}"' \
	_ "$REGPRESS" "$TREE" "$INDEX"

# --- a read-only tree, a volume, a snapshot file ----------------------------------------------------
RO=$W/ro
cp -a "$TREE" "$W/ro-src"
if [ "$(id -u)" = 0 ] && [ "${E2E_PRIVATE_NS:-}" = "$$" ]; then
	# lib.sh runs the script in a private mount namespace: the mount goes with it
	mkdir "$RO"
	{ mount --bind "$W/ro-src" "$RO" && mount -o remount,bind,ro "$RO"; } || e2e_die "read-only bind mount"
	RO_HOW="a read-only bind mount"
else
	chmod -R a-w "$W/ro-src"
	RO=$W/ro-src
	RO_HOW="chmod -R a-w"
fi
e2e_tree_state "$RO" >"$W/ro-before"
check "a read-only tree ($RO_HOW): nothing can be written there" fails touch "$RO/x"
check "a read-only tree: ls and ls --json say what they say of the tree" bash -c '
	diff <("$1" ls "$2") <("$1" ls "$3") &&
	diff <("$1" ls --json "$2") <("$1" ls --json "$3")' _ "$REGPRESS" "$RO" "$TREE"
check "a read-only tree: inspect, --json, --raw" bash -c '
	diff <("$1" inspect "$2" example.com/team/partial:1) <("$1" inspect "$3" example.com/team/partial:1) &&
	diff <("$1" inspect --json "$2" signed:1) <("$1" inspect --json "$3" signed:1) &&
	diff <("$1" inspect --raw "$2" base:1) <("$1" inspect --raw "$3" base:1)' _ "$REGPRESS" "$RO" "$TREE"
ro_unchanged() { diff "$W/ro-before" <(e2e_tree_state "$RO"); }
check "a read-only tree: unchanged" ro_unchanged

"$REGPRESS" media "$TREE" -o "$W/vols" --size 64M -q >/dev/null || e2e_die "regpress media"
"$REGPRESS" snapshot "$TREE" >"$W/snapshot" 2>/dev/null || e2e_die "regpress snapshot"
check "ls VOLUME_DIR: repository, tag, digest from its snapshot, - for the rest" bash -c '
	diff <("$1" ls "$2") <(cut -f1-3 "$3" | sed "s/\$/\t-\t-\t-\t-/")' _ "$REGPRESS" "$W/vols/volume-01" "$EXPECT"
check "ls --json VOLUME_DIR: source volume, the tree's snapshot id, null for what needs blobs" bash -c '
	"$1" ls --json "$2" | jq -e --arg id "$("$1" ls --json "$3" | jq -r .snapshot)" "
		.source == \"volume\" and .snapshot == \$id and
		all(.tags[]; .kind == null and .size == null and .platforms == null and .created == null) and
		([.tags[] | .digest] | length) > 0"' _ "$REGPRESS" "$W/vols/volume-01" "$TREE"
check "ls SNAPSHOT_FILE, with a filter" bash -c '
	diff <("$1" ls "$2" base example.com/team/multi:1) <(grep -P "^(library/base\t|example.com/team/multi\t1\t)" "$3" | cut -f1-3 | sed "s/\$/\t-\t-\t-\t-/") &&
	[ "$("$1" ls --json "$2" | jq -r .source)" = snapshot ]' _ "$REGPRESS" "$W/snapshot" "$EXPECT"

# --- a repository the tree names "pause" (what --strip-registry means to make of
# registry.k8s.io/pause) is found by that name, not only as library/pause. Written as a snapshot
# file: builder/tags.c re-normalises such a name to library/pause today. ------------------------
H=$(printf 'pause' | sha256sum | cut -d' ' -f1)
printf 'regpress-snapshot 1\nmanifest library/pause sha256:%s 5 %s\nmanifest pause sha256:%s 5 %s\ntag library/pause 1 sha256:%s\ntag pause 3.9 sha256:%s\n' \
	"$H" application/vnd.oci.image.manifest.v1+json "$H" application/vnd.oci.image.manifest.v1+json \
	"$H" "$H" >"$W/pause.snapshot"
check "ls: the tree's own name 'pause', and the docker name pause = library/pause" bash -c '
	[ "$("$1" ls "$2" pause:3.9 | cut -f1,2)" = "pause	3.9" ] &&
	[ "$("$1" ls "$2" pause | cut -f1,2 | paste -sd" ")" = "library/pause	1 pause	3.9" ] &&
	[ "$("$1" ls "$2" library/pause | cut -f1,2)" = "library/pause	1" ]' _ "$REGPRESS" "$W/pause.snapshot"

# --- text from an image is escaped: a label that would drive the terminal, a variant with a tab --
# mk_evil LAYOUT: an OCI layout with one image, evil:1, whose config holds what a terminal would
# act on (umoci 0.4.7 cannot set a variant, so the layout is written here).
mk_evil() {
	python3 - "$1" <<-'PY'
	import gzip, hashlib, io, json, os, sys, tarfile
	L = sys.argv[1]
	os.makedirs(os.path.join(L, "blobs", "sha256"))
	def put(b):
	    h = hashlib.sha256(b).hexdigest()
	    open(os.path.join(L, "blobs", "sha256", h), "wb").write(b)
	    return {"digest": "sha256:" + h, "size": len(b)}
	raw = io.BytesIO()
	with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as t:
	    ti = tarfile.TarInfo("hello")
	    ti.size = 3
	    t.addfile(ti, io.BytesIO(b"hi\n"))
	layer = gzip.compress(raw.getvalue(), mtime=0)
	cfg = {"architecture": "amd64", "os": "linux", "variant": "v\t9", "created": "2024-01-01T00:00:00Z",
	       "config": {"Cmd": ["a\nb"], "Labels": {"note": "\x1b[31mred\x1b[0m"}},
	       "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()]}}
	man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
	       "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **put(json.dumps(cfg).encode())),
	       "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **put(layer))]}
	d = put(json.dumps(man).encode())
	open(os.path.join(L, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
	json.dump({"schemaVersion": 2, "manifests": [dict(mediaType=man["mediaType"], annotations={
	    "org.opencontainers.image.ref.name": "evil:1"}, **d)]}, open(os.path.join(L, "index.json"), "w"))
	PY
}
mk_evil "$W/evil" || e2e_die "hostile config fixture"
check "text from the image is escaped: no raw control byte, one line each" bash -c '
	"$1" build -q -o "$2" "$3" &&
	out=$("$1" inspect "$2" evil:1; "$1" ls "$2") && printf "%s\n" "$out" &&
	! printf "%s" "$out" | grep -q "$(printf "\033")" &&
	printf "%s\n" "$out" | grep -qF "note=\x1b[31mred\x1b[0m" &&
	printf "%s\n" "$out" | grep -qF "[\"a\\nb\"]" &&
	"$1" ls "$2" | awk -F "\t" "NF != 7 {exit 1}" && "$1" ls "$2" | grep -qF "v\x099"' \
	_ "$REGPRESS" "$W/evil-tree" "$W/evil"

# --- errors ---------------------------------------------------------------------------------------
check "ls: a filter matching nothing: one line, exit 1" \
	fails_with 1 "regpress ls: 'example.com/team/app:2': no such repository or tag in '$TREE'" \
	"$REGPRESS" ls "$TREE" base example.com/team/app:2
check "inspect: an unknown tag: one line, exit 1" \
	fails_with 1 "regpress inspect: 'base:2': no such tag in '$TREE'" "$REGPRESS" inspect "$TREE" base:2
check "inspect: an unknown digest: one line, exit 1" \
	fails_with 1 "no such manifest" "$REGPRESS" inspect "$TREE" "base@sha256:$(printf '0%.0s' {1..64})"
check "inspect: the missing child by digest: one line, exit 1" \
	fails_with 1 "recorded as missing" "$REGPRESS" inspect "$TREE" "example.com/team/partial@$MISSING"
check "inspect: a bad REF is a usage error" \
	fails_with 2 "regpress inspect: invalid" "$REGPRESS" inspect "$TREE" "Not A/Ref"
check "ls: a bad filter is a usage error" \
	fails_with 2 "regpress ls: invalid repository name" "$REGPRESS" ls "$TREE" UPPER/Case
check "ls: a directory that is not a tree: one line, exit 1" \
	fails_with 1 "regpress ls: '$FX': not a regpress tree" "$REGPRESS" ls "$FX"
check "ls: a file that is not a snapshot: one line, exit 1" \
	fails_with 1 "not a regpress snapshot" "$REGPRESS" ls "$FX/base.tar"
check "inspect: a volume is no tree: one line, exit 1" \
	fails_with 1 "not a regpress tree" "$REGPRESS" inspect "$W/vols/volume-01" base:1
check "inspect: a missing TREE: one line, exit 1" \
	fails_with 1 "$W/nope" "$REGPRESS" inspect "$W/nope" base:1
check "usage: --json with --raw, no REF, no TREE, an unknown option" bash -c '
	for args in "inspect --json --raw $2 base:1" "inspect $2" "ls" "ls --bogus $2" "inspect -x $2 base:1"; do
		out=$($1 $args 2>&1 >/dev/null); rc=$?; echo "$args: $rc: $out"
		[ "$rc" -eq 2 ] && [ "$(echo "$out" | wc -l)" -eq 2 ] || exit 1
	done' _ "$REGPRESS" "$TREE"
check "--help: on standard output, exit 0" bash -c '
	"$1" ls --help | grep -q "^usage: regpress ls" && "$1" inspect -h | grep -q "^usage: regpress inspect" &&
	[ -z "$("$1" ls --help 2>&1 >/dev/null)" ]' _ "$REGPRESS"

if [ "$RO" = "$W/ro-src" ]; then
	chmod -R u+w "$W/ro-src" # for the cleanup
fi
e2e_done
