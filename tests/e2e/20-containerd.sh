#!/usr/bin/env bash
# containerd (ctr) as a second, independent client: pulls and unpacks every tag from a regpress tree
# by tag and by digest, for gzip and zstd layers, directly and in mirror mode (?ns=<registry>).
# shellcheck disable=SC2317 # helpers run through `check`, which shellcheck cannot follow
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_fixtures "$T/fx" || e2e_die "fixtures"
FX=$T/fx
INPUTS=("$FX/base.tar" "$FX/app.tar" "$FX/multi.tar")

ctr_() { ctr -a "$CTR_SOCK" "$@"; }

# pull REF: ctr pulls and unpacks (overlayfs snapshotter) REF through $HOSTS.
pull() {
	ctr_ images pull --hosts-dir "$HOSTS" "$1"
}

# digest_of TREE REPO:TAG: the digest of the manifest served for the tag (its pointer file; for
# Docker-format trees index.json lists an OCI twin instead, see docs/tree-format.md).
digest_of() {
	local repo=${2%:*} tag=${2##*:}
	cut -d' ' -f1 "$1/registry/repos/$repo/_manifests/tags/$tag"
}

# listed REF DIGEST: `ctr images ls` has REF with that digest.
listed() {
	local got
	got=$(ctr_ images ls | awk -v r="$1" '$1 == r {print $3}')
	echo "ctr images ls: $1 -> ${got:-<absent>}, want $2"
	[ "$got" = "$2" ]
}

# unpacked REF: `ctr images check` reports REF complete and unpacked into the default snapshotter.
unpacked() {
	local out
	out=$(ctr_ images check "name==$1")
	echo "$out"
	echo "$out" | awk 'NR > 1 { ok = ($4 == "complete" && $NF == "true") } END { exit !ok }'
}

# files_in REF PATH=CONTENT...: mount REF's unpacked root file system read-only, compare files.
files_in() {
	local ref=$1 mnt rc=0 kv path want
	shift
	mnt=$(mktemp -d "$T/mnt.XXXXXX")
	ctr_ images mount "$ref" "$mnt" >/dev/null
	for kv in "$@"; do
		path=${kv%%=*}
		want=${kv#*=}
		if [ "$(cat "$mnt/$path" 2>&1)" != "$want" ]; then
			echo "$path: got '$(cat "$mnt/$path" 2>&1)', want '$want'"
			rc=1
		fi
	done
	ctr_ images unmount "$mnt" >/dev/null
	return "$rc"
}

# pull_all TREE LABEL: every tag by tag name, then every tag by digest.
pull_all() {
	local tree=$1 label=$2 file ref repo tag d
	while read -r file ref repo tag; do
		check "$label: ctr pull $REG/$repo:$tag ($file $ref)" pull "$REG/$repo:$tag"
		d=$(digest_of "$tree" "$repo:$tag")
		check "$label: ctr images ls has $repo:$tag at $d" listed "$REG/$repo:$tag" "$d"
		check "$label: $repo:$tag complete and unpacked" unpacked "$REG/$repo:$tag"
	done <"$FX/images.list"
	while read -r file ref repo tag; do
		d=$(digest_of "$tree" "$repo:$tag")
		check "$label: ctr pull by digest $repo@$d" pull "$REG/$repo@$d"
	done <"$FX/images.list"
	check "$label: unpacked files of app:1.0 (base layer + app layer)" files_in "$REG/example.com/team/app:1.0" \
		"etc/os-release=$(printf 'NAME="regpress test base"\nID=regpress')" \
		"app/hello.txt=hello from app" "app/VERSION=app 1.0"
	check "$label: unpacked files of other:2 (Docker <= 24 input)" files_in "$REG/library/other:2" \
		"bin/hello=$(printf '#!/bin/sh\necho hello from base')" \
		"srv/data.txt=$(printf 'other image payload %s\n' 1 2 3)"
}

# gzip layers, Docker schema2 manifests (the default)
check "build the tree (gzip, docker)" "$REGPRESS" build -q -o "$T/tree" "${INPUTS[@]}"
[ -f "$T/tree/index.json" ] || e2e_die "no tree to serve"
e2e_serve "$T/tree"
e2e_containerd
pull_all "$T/tree" gzip

# Mirror mode: containerd strips the registry host and adds ?ns=<registry>; the server routes by it.
e2e_hosts docker.io
e2e_hosts example.com
check "mirror: ctr pull docker.io/library/base:1 (?ns=docker.io)" pull docker.io/library/base:1
check "mirror: ctr images ls has docker.io/library/base:1" \
	listed docker.io/library/base:1 "$(digest_of "$T/tree" library/base:1)"
check "mirror: ctr pull docker.io/user/tool:1.0 (?ns=docker.io)" pull docker.io/user/tool:1.0
check "mirror: ctr pull example.com/team/app:latest (?ns=example.com)" pull example.com/team/app:latest
check "mirror: unpacked files of docker.io/user/tool:1.0" files_in docker.io/user/tool:1.0 \
	"usr/bin/tool=$(printf '#!/bin/sh\necho tool')"
check_here "regpress serve stops on SIGTERM (lighttpd too)" e2e_serve_stop

# zstd layers, OCI manifests: containerd's other decompressor; same daemon, new server and port.
check "build the tree (zstd, oci)" "$REGPRESS" build -q -o "$T/tree-zstd" --compression zstd --format oci "${INPUTS[@]}"
if [ -f "$T/tree-zstd/index.json" ]; then
	e2e_serve "$T/tree-zstd"
	e2e_hosts "127.0.0.1:$PORT"
	pull_all "$T/tree-zstd" zstd
	check_here "regpress serve (zstd tree) stops on SIGTERM" e2e_serve_stop
fi

check_here "containerd stops on SIGTERM" e2e_containerd_stop
e2e_done
