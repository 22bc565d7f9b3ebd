#!/usr/bin/env bash
# Docker (Debian's docker.io: dockerd 20.10) as a client of `regpress serve`, configured only with
# the files `regpress client-config --for docker` writes. dockerd skips TLS checks for every
# 127.0.0.0/8 registry, so the server listens on [::1] under the name regpress.test (in this
# script's private /etc/hosts, with a certificate from `regpress certs`): first Docker must refuse
# it without the generated CA. Then: pull by tag and by digest, a multi-platform tag by default and
# with --platform, basic authentication with docker login, what Docker prints for a missing tag and
# a missing repository, the docker.io mirror (registry-mirrors), and zstd layers, which Docker 20.10
# cannot pull (client-config warns). Root only (dockerd, mounts).
# shellcheck disable=SC2317,SC2016,SC2034 # helpers, eval '...' strings and the variables they use run through `check`
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
if [ "$(id -u)" != 0 ]; then
	e2e_log "dockerd needs root: skipped"
	e2e_done
fi
chmod 755 "$T" # lighttpd serves as www-data
e2e_workspace
e2e_platform_fixtures "$T/pf" || e2e_die "platform fixtures"
HOST_ARCH=$(awk 'NR == 1 {print $2}' "$T/pf/platforms.list")
OTHER_ARCH=$(awk 'NR == 2 {print $2}' "$T/pf/platforms.list")
e2e_client_sandbox || e2e_die "client sandbox"

TREE=$T/tree
check "build: base:1, example.com/team/app, and team/multi:1 as a two-platform index" \
	"$REGPRESS" build -q -o "$TREE" "$FX/base.tar" "$FX/app.tar" --merge-platforms "$T"/pf/multi-*.tar
[ -s "$TREE/registry/catalog.json" ] || e2e_die "no tree"

# digest_of REPO TAG: the manifest digest the tree serves; config_of DIGEST: its config's digest
# (Docker's image ID), child_config REPO TAG ARCH: the config of an index's child for ARCH.
digest_of() { cut -d' ' -f1 "$TREE/registry/repos/$1/_manifests/tags/$2"; }
config_of() { jq -r .config.digest "$TREE/blobs/sha256/${1#sha256:}"; }
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
e2e_dockerd

# says FILE TEXT...: the command's output (in FILE) has every TEXT. What Docker said is listed
# at the end of the script's output either way.
says() {
	local f=$1 t
	shift
	echo "docker said: $(tr '\n' ' ' <"$f")" >>"$T/said"
	for t in "$@"; do
		grep -qF -- "$t" "$f" || { echo "no '$t' in: $(cat "$f")"; return 1; }
	done
}
# pull_fails FILE ARGS...: docker pull ARGS fails; its output in FILE.
pull_fails() {
	local f=$1
	shift
	if dk pull "$@" >"$f" 2>&1; then
		echo "docker pull $* succeeded"
		return 1
	fi
}

check "without the generated files Docker refuses the server: unknown authority" \
	eval 'pull_fails "$T/m" "$REG/library/base:1" && says "$T/m" "x509: certificate signed by unknown authority"'

# The product under test: the files client-config writes, copied where Docker reads them.
apply_config() {
	"$REGPRESS" client-config --server "https://$REG" --ca "$CERTS/ca.crt" --for docker \
		--tree "$TREE" -o "$T/cc" 2>"$T/cc.err"
	[ ! -s "$T/cc.err" ] || { echo "stderr: $(cat "$T/cc.err")"; return 1; }
	cp -r "$T/cc/etc/docker/." /etc/docker/
	# README.regpress: certs.d is read at every pull; registry-mirrors on SIGHUP (reload).
	kill -HUP "$DOCKERD_PID"
	e2e_wait_for 100 eval 'dk info --format "{{.RegistryConfig.Mirrors}}" | grep -qF "https://$REG/"'
}
check "client-config --for docker (no warning for a gzip tree), copied into /etc/docker, reloaded" apply_config

# pulled REF IMAGE-ID [REPO-DIGEST]: Docker has REF as the image with that config digest (and the
# manifest digest among its RepoDigests).
pulled() {
	local id digests
	id=$(dk image inspect --format '{{.Id}}' "$1")
	[ "$id" = "$2" ] || { echo "$1 is image $id, want $2"; return 1; }
	[ -z "${3:-}" ] && return 0
	digests=$(dk image inspect --format '{{json .RepoDigests}}' "$1")
	[[ $digests == *"\"$3\""* ]] || { echo "RepoDigests of $1: $digests, want $3"; return 1; }
}
arch_is() {
	local got
	got=$(dk image inspect --format '{{.Os}}/{{.Architecture}}' "$1")
	[ "$got" = "linux/$2" ] || { echo "$1 is $got, want linux/$2"; return 1; }
}

D=$(digest_of library/base 1)
check "pull by tag: $REG/library/base:1" \
	eval 'dk pull -q "$REG/library/base:1" && pulled "$REG/library/base:1" "$(config_of "$D")" "$REG/library/base@$D"'
D_APP=$(digest_of example.com/team/app 1.0)
check "pull by digest: $REG/example.com/team/app@$D_APP" \
	eval 'dk pull -q "$REG/example.com/team/app@$D_APP" &&
		pulled "$REG/example.com/team/app@$D_APP" "$(config_of "$D_APP")" "$REG/example.com/team/app@$D_APP"'
MULTI=$REG/example.com/team/multi:1
check "multi-platform tag, default platform: the $HOST_ARCH child" \
	eval 'dk pull -q "$MULTI" && arch_is "$MULTI" "$HOST_ARCH" &&
		pulled "$MULTI" "$(child_config example.com/team/multi 1 "$HOST_ARCH")"'
check "multi-platform tag, --platform linux/$OTHER_ARCH: that child" \
	eval 'dk pull -q --platform "linux/$OTHER_ARCH" "$MULTI" && arch_is "$MULTI" "$OTHER_ARCH" &&
		pulled "$MULTI" "$(child_config example.com/team/multi 1 "$OTHER_ARCH")"'

# Misses: the message names the repository and the reference.
check "missing tag: Docker says the manifest is not found, with the server's message" \
	eval 'pull_fails "$T/m" "$REG/library/base:nope" &&
		says "$T/m" "manifest for $REG/library/base:nope not found" "manifest library/base:nope unknown to registry"'
check "missing repository: Docker says the repository is not found, naming it" \
	eval 'pull_fails "$T/m" "$REG/nosuch/repo:1" &&
		says "$T/m" "repository $REG/nosuch/repo not found" "repository nosuch/repo not known to registry (manifest 1)"'
check "missing digest: not found, naming it" \
	eval 'pull_fails "$T/m" "$REG/library/base@sha256:$(printf "0%.0s" {1..64})" &&
		says "$T/m" "manifest library/base@sha256:0000" "unknown to registry"'

# Basic authentication: the second server, its CA file from client-config as well.
login_flow() {
	"$REGPRESS" client-config --server "$REG2" --ca "$CERTS/ca.crt" --for docker -o "$T/cc2"
	cp -r "$T/cc2/etc/docker/certs.d/." /etc/docker/certs.d/
	pull_fails "$T/m" "$REG2/library/base:1"
	says "$T/m" "no basic auth credentials"
	if echo wrong | dk login -u alice --password-stdin "$REG2" >"$T/m" 2>&1; then
		echo "docker login with a wrong password succeeded"
		return 1
	fi
	says "$T/m" "401 Unauthorized"
	echo s3cret | dk login -u alice --password-stdin "$REG2" >"$T/m" 2>&1
	says "$T/m" "Login Succeeded"
	dk pull -q "$REG2/example.com/team/app:1.0"
	pulled "$REG2/example.com/team/app:1.0" "$(config_of "$D_APP")"
	dk logout "$REG2" >/dev/null
	pull_fails "$T/m" "$REG2/example.com/team/app:latest"
	says "$T/m" "no basic auth credentials"
}
check "basic auth: refused without login, wrong password 401, docker login, pull, logout" login_flow

# The docker.io mirror: registry-mirrors from the generated daemon.json. Docker keeps the path
# (/v2/library/base, no ?ns=); Docker Hub itself is ::1 here, so nothing can come from it.
# Every image removed first: dockerd skips the download of an image it has (by config digest).
mirror_pull() {
	dk image prune -af >/dev/null
	dk pull -q base:1
	pulled docker.io/library/base:1 "$(config_of "$D")" "base@$D"
	if ! e2e_wait_for 50 grep -Eq '"(GET|HEAD) /v2/library/base/manifests/1 HTTP' "$T/access.log" ||
		! e2e_wait_for 50 grep -Eq '"GET /v2/library/base/blobs/sha256:[0-9a-f]{64} HTTP' "$T/access.log"; then
		echo "the mirror was not asked:"
		tail -5 "$T/access.log"
		return 1
	fi
}
check "mirror: docker pull base:1 comes from regpress (registry-mirrors)" mirror_pull

# zstd layers: client-config warns (one line naming the tree); Docker 20.10 indeed fails on them.
check "build a zstd tree" "$REGPRESS" build -q -o "$T/tree-zstd" --compression zstd "$FX/base.tar"
check "client-config --for docker --tree (zstd): one warning line naming the tree" \
	eval '"$REGPRESS" client-config --server "$REG" --ca "$CERTS/ca.crt" --for docker --tree "$T/tree-zstd" \
		-o "$T/cc3" 2>"$T/w" && cat "$T/w" && [ "$(wc -l <"$T/w")" = 1 ] &&
		grep -q "warning: $T/tree-zstd has zstd layers (library/base, maybe more), which Docker 20.10 cannot pull" "$T/w"'
check "client-config --for podman --tree (zstd): no warning" \
	eval '"$REGPRESS" client-config --server "$REG" --ca "$CERTS/ca.crt" --for podman --tree "$T/tree-zstd" \
		-o "$T/cc4" 2>"$T/w" && [ ! -s "$T/w" ]'
case $(dk version --format '{{.Server.Version}}') in
20.*)
	e2e_serve_named "$T/tree-zstd"
	"$REGPRESS" client-config --server "$REG" --ca "$CERTS/ca.crt" --for docker -o "$T/cc5" >/dev/null &&
		cp -r "$T/cc5/etc/docker/certs.d/." /etc/docker/certs.d/
	# It downloads the layer, then fails to unpack it (the message depends on the layer).
	check "Docker 20.10 cannot pull zstd layers (what the warning says)" \
		eval 'dk image prune -af >/dev/null && pull_fails "$T/m" "$REG/library/base:1" && says "$T/m" &&
			grep -Eq "failed to register layer|invalid tar header" "$T/m"'
	check_here "zstd server stops" e2e_serve_stop
	;;
*) e2e_log "Docker $(dk version --format '{{.Server.Version}}'): the zstd pull is not checked" ;;
esac

check_here "dockerd stops on SIGTERM" e2e_stop_named "$DOCKERD_PID"
check_here "dockerd's containerd stops on SIGTERM" e2e_stop_named "$DOCKERD_CTRD_PID"
SERVE_PID=$SERVE2 SERVE_LOG=$LOG2
check_here "auth server stops" e2e_serve_stop
SERVE_PID=$SERVE1 SERVE_LOG=$LOG1
check_here "server stops" e2e_serve_stop
[ ! -s "$T/said" ] || sed 's/^/# /' "$T/said"
e2e_done
