#!/usr/bin/env bash
# podman (Debian's podman 4.3, containers/image) as a client of `regpress serve`, configured only
# with the files `regpress client-config --for podman` writes, copied into /etc/containers (a
# private copy in this script's mount namespace, which podman reads like on any host). The server
# listens on [::1] as regpress.test with a certificate from `regpress certs`. podman must first
# refuse it without the generated CA; then: pull by tag and by digest, a multi-platform tag by
# default and with --platform, basic authentication with podman login, what podman prints for a
# missing tag and a missing repository, the docker.io mirror, short names through
# unqualified-search-registries (docker.io first, then the tree's other registries), and images
# written by `podman save` (docker-archive and oci-archive) built into a tree by `regpress build`
# and pulled back. Root only (mounts).
# shellcheck disable=SC2317,SC2016,SC2034 # helpers, eval '...' strings and the variables they use run through `check`
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
if [ "$(id -u)" != 0 ]; then
	e2e_log "the private /etc/containers needs root: skipped"
	e2e_done
fi
chmod 755 "$T" # lighttpd serves as www-data
e2e_workspace
e2e_platform_fixtures "$T/pf" || e2e_die "platform fixtures"
HOST_ARCH=$(awk 'NR == 1 {print $2}' "$T/pf/platforms.list")
OTHER_ARCH=$(awk 'NR == 2 {print $2}' "$T/pf/platforms.list")
e2e_client_sandbox || e2e_die "client sandbox"
e2e_podman

TREE=$T/tree
check "build: base:1, example.com/team/app, and team/multi:1 as a two-platform index" \
	"$REGPRESS" build -q -o "$TREE" "$FX/base.tar" "$FX/app.tar" --merge-platforms "$T"/pf/multi-*.tar
[ -s "$TREE/registry/catalog.json" ] || e2e_die "no tree"

# digest_of [TREE] REPO TAG: the manifest digest served; config_of DIGEST [TREE]: its config.
digest_of() {
	local tree=$TREE
	[ $# = 3 ] && { tree=$1; shift; }
	cut -d' ' -f1 "$tree/registry/repos/$1/_manifests/tags/$2"
}
config_of() { jq -r .config.digest "${2:-$TREE}/blobs/sha256/${1#sha256:}"; }
child_config() {
	config_of "$(jq -r --arg a "$3" '.manifests[] | select(.platform.architecture == $a) | .digest' \
		"$TREE/blobs/sha256/$(digest_of "$1" "$2" | cut -d: -f2)")"
}

printf 'alice:%s\n' "$(openssl passwd -5 -salt regpress s3cret)" >"$T/htpasswd"
chmod 644 "$T/htpasswd"
e2e_serve_named "$TREE" --access-log "$T/access.log"
REG1=$REG SERVE1=$SERVE_PID LOG1=$SERVE_LOG
e2e_serve_named "$TREE" --htpasswd "$T/htpasswd"
REG2=$REG SERVE2=$SERVE_PID LOG2=$SERVE_LOG
REG=$REG1

# says FILE TEXT...: the output in FILE has every TEXT (what podman said is listed at the end).
says() {
	local f=$1 t
	shift
	echo "podman said: $(grep -v '^Trying to pull' "$f" | tr '\n' ' ')" >>"$T/said"
	for t in "$@"; do
		grep -qF -- "$t" "$f" || { echo "no '$t' in: $(cat "$f")"; return 1; }
	done
}
pull_fails() {
	local f=$1
	shift
	if pm pull -q "$@" >"$f" 2>&1; then
		echo "podman pull $* succeeded"
		return 1
	fi
}
# pulled REF CONFIG-DIGEST [MANIFEST-DIGEST]: podman has REF as that image (podman's image ID is
# the config digest's hex; .Digest the manifest digest it was pulled by).
pulled() {
	local id digest
	id=$(pm image inspect --format '{{.Id}}' "$1")
	[ "sha256:$id" = "$2" ] || { echo "$1 is image $id, want $2"; return 1; }
	[ -z "${3:-}" ] && return 0
	digest=$(pm image inspect --format '{{.Digest}}' "$1")
	[ "$digest" = "$3" ] || { echo "$1 was pulled as $digest, want $3"; return 1; }
}
arch_is() {
	local got
	got=$(pm image inspect --format '{{.Os}}/{{.Architecture}}' "$1")
	[ "$got" = "linux/$2" ] || { echo "$1 is $got, want linux/$2"; return 1; }
}
# apply REG [TREE]: client-config --for podman for REG, copied into /etc/containers (with TREE,
# the mirror drop-in too; without, only the CA: another server's drop-in would replace it).
apply() {
	"$REGPRESS" client-config --server "$1" --ca "$CERTS/ca.crt" --for podman \
		${2:+--tree "$2"} -o "$T/cc-$1" || return 1
	if [ -n "${2:-}" ]; then
		cp -r "$T/cc-$1/etc/containers/." /etc/containers/
	else
		cp -r "$T/cc-$1/etc/containers/certs.d/." /etc/containers/certs.d/
	fi
}

check "without the generated files podman refuses the server: unknown authority" \
	eval 'pull_fails "$T/m" "$REG/library/base:1" && says "$T/m" "x509: certificate signed by unknown authority"'
check "client-config --for podman --tree, copied into /etc/containers" apply "$REG" "$TREE"

D=$(digest_of library/base 1)
check "pull by tag: $REG/library/base:1" \
	eval 'pm pull -q "$REG/library/base:1" && pulled "$REG/library/base:1" "$(config_of "$D")" "$D"'
D_APP=$(digest_of example.com/team/app 1.0)
check "pull by digest: $REG/example.com/team/app@$D_APP" \
	eval 'pm pull -q "$REG/example.com/team/app@$D_APP" &&
		pulled "$REG/example.com/team/app@$D_APP" "$(config_of "$D_APP")" "$D_APP"'
MULTI=$REG/example.com/team/multi:1
check "multi-platform tag, default platform: the $HOST_ARCH child" \
	eval 'pm pull -q "$MULTI" && arch_is "$MULTI" "$HOST_ARCH" &&
		pulled "$MULTI" "$(child_config example.com/team/multi 1 "$HOST_ARCH")"'
check "multi-platform tag, --platform linux/$OTHER_ARCH: that child" \
	eval 'pm pull -q --platform "linux/$OTHER_ARCH" "$MULTI" && arch_is "$MULTI" "$OTHER_ARCH" &&
		pulled "$MULTI" "$(child_config example.com/team/multi 1 "$OTHER_ARCH")"'

check "missing tag: podman prints the server's message, naming the tag" \
	eval 'pull_fails "$T/m" "$REG/library/base:nope" &&
		says "$T/m" "manifest unknown: manifest library/base:nope unknown to registry"'
check "missing repository: podman prints the server's message, naming the repository" \
	eval 'pull_fails "$T/m" "$REG/nosuch/repo:1" &&
		says "$T/m" "name unknown: repository nosuch/repo not known to registry (manifest 1)"'

login_flow() {
	apply "$REG2"
	pull_fails "$T/m" "$REG2/library/base:1"
	says "$T/m" "unauthorized"
	if echo wrong | pm login -u alice --password-stdin "$REG2" >"$T/m" 2>&1; then
		echo "podman login with a wrong password succeeded"
		return 1
	fi
	says "$T/m" "invalid username/password"
	echo s3cret | pm login -u alice --password-stdin "$REG2" >"$T/m" 2>&1
	says "$T/m" "Login Succeeded"
	pm pull -q "$REG2/example.com/team/app:1.0"
	pulled "$REG2/example.com/team/app:1.0" "$(config_of "$D_APP")" "$D_APP"
	pm logout "$REG2" >"$T/m"
	says "$T/m" "Removed login credentials for $REG2"
}
check "basic auth: refused without login, wrong password refused, podman login, pull, logout" login_flow

# The mirrors and the search list of the generated drop-in. podman resolves a short name to a
# local image of that name first: remove every image before each.
asked() {
	e2e_wait_for 50 grep -Eq "\"GET $1 HTTP" "$T/access.log" ||
		{ echo "regpress was not asked for $1:"; tail -5 "$T/access.log"; return 1; }
}
check "mirror: podman pull docker.io/library/base:1 comes from regpress" \
	eval 'pm rmi -af >/dev/null && pm pull -q docker.io/library/base:1 &&
		pulled docker.io/library/base:1 "$(config_of "$D")" "$D" && asked /v2/library/base/manifests/1'
check "short name: podman pull base:1 is docker.io/library/base:1, through the mirror" \
	eval 'pm rmi -af >/dev/null && pm pull -q base:1 && pulled docker.io/library/base:1 "$(config_of "$D")" "$D"'
# docker.io is searched first (a miss there: regpress's NAME_UNKNOWN, then Docker Hub, which is
# ::1 here and refuses), then the tree's other registry, example.com.
check "short name of another registry: podman pull team/app:1.0 finds example.com/team/app:1.0" \
	eval 'pm rmi -af >/dev/null && pm pull -q team/app:1.0 >"$T/m" 2>&1 &&
		pulled example.com/team/app:1.0 "$(config_of "$D_APP")" "$D_APP" &&
		asked "/v2/example.com/team/app/manifests/1.0"'

# podman save, both formats, into a new tree with regpress build, pulled back from it.
save_and_build() {
	pm pull -q "$REG/example.com/team/app:1.0" >/dev/null
	pm save -q -o "$T/pm-docker.tar" "$REG/example.com/team/app:1.0"
	pm save -q --format oci-archive -o "$T/pm-oci.tar" "$REG/example.com/team/app:1.0"
	"$REGPRESS" build -q -o "$T/tree2" --tag saved/docker-archive:1 "$T/pm-docker.tar"
	"$REGPRESS" build -q -o "$T/tree2" --tag saved/oci-archive:1 "$T/pm-oci.tar"
	"$REGPRESS" verify "$T/tree2"
}
check "podman save (docker-archive, oci-archive) -> regpress build -> verify" save_and_build
# A docker-archive holds no manifest: regpress makes the same one the first tree had (the same
# deterministic gzip). podman's oci-archive carries its own manifest (and an OCI config of its
# own, so another image ID), kept byte for byte.
check "docker-archive save: the tree serves the original manifest digest" \
	eval '[ "$(digest_of "$T/tree2" saved/docker-archive 1)" = "$D_APP" ]'
check "oci-archive save: the tree serves podman's manifest as it is" \
	eval '[ "$(digest_of "$T/tree2" saved/oci-archive 1)" = "$(tar xOf "$T/pm-oci.tar" index.json | jq -r ".manifests[0].digest")" ]'
if [ -s "$T/tree2/registry/catalog.json" ]; then
	e2e_serve_named "$T/tree2"
	check "pull both back: the docker-archive as the original image, the oci-archive as podman saved it" \
		eval 'apply "$REG" && pm rmi -af >/dev/null &&
			pm pull -q "$REG/saved/docker-archive:1" && pulled "$REG/saved/docker-archive:1" "$(config_of "$D_APP")" &&
			pm pull -q "$REG/saved/oci-archive:1" &&
			pulled "$REG/saved/oci-archive:1" "$(config_of "$(digest_of "$T/tree2" saved/oci-archive 1)" "$T/tree2")"'
	check_here "server of the saved images stops" e2e_serve_stop
fi

SERVE_PID=$SERVE2 SERVE_LOG=$LOG2
check_here "auth server stops" e2e_serve_stop
SERVE_PID=$SERVE1 SERVE_LOG=$LOG1
check_here "server stops" e2e_serve_stop
[ ! -s "$T/said" ] || sed 's/^/# /' "$T/said"
e2e_done
