#!/usr/bin/env bash
# containerd's CRI image service (what kubelet calls to pull: runtime.v1.ImageService PullImage and
# ImageStatus, over gRPC on containerd's socket, sent with curl and tests/tools/crimsg.py) and ctr,
# configured only with the certs.d files `regpress client-config --for containerd` writes. CRI must
# first refuse the server without them; then: pull by tag and by digest, a multi-platform tag (CRI
# pulls the node's platform; ctr --platform the other), credentials as kubelet passes them from an
# imagePullSecret, a missing tag and a missing repository reported as "not found" (the top-level ca
# of the generated hosts.toml: with the CA only in [host], containerd 1.6 reports every miss as a
# certificate error, shown first), the docker.io mirror (?ns=docker.io), and a certificate made with
# `regpress certs --host 127.0.0.1` accepted at that address. The server listens on
# [::1] as regpress.test (this script's private /etc/hosts), with a certificate from `regpress
# certs`. Root only.
# shellcheck disable=SC2317,SC2016,SC2034 # helpers, eval '...' strings and the variables they use run through `check`
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
if [ "$(id -u)" != 0 ]; then
	e2e_log "containerd with CRI needs root: skipped"
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
digest_of() { cut -d' ' -f1 "$TREE/registry/repos/$1/_manifests/tags/$2"; }
config_of() { jq -r .config.digest "$TREE/blobs/sha256/${1#sha256:}"; }
child() {
	jq -r --arg a "$3" '.manifests[] | select(.platform.architecture == $a) | .digest' \
		"$TREE/blobs/sha256/$(digest_of "$1" "$2" | cut -d: -f2)"
}

# By name, as nodes name a registry: without a hosts.toml, containerd 1.6 speaks plain HTTP to a
# loopback address (127.0.0.1:PORT), so only a name shows that it checks the certificate.
printf 'alice:%s\n' "$(openssl passwd -5 -salt regpress s3cret)" >"$T/htpasswd"
chmod 644 "$T/htpasswd"
e2e_serve_named "$TREE" --access-log "$T/access.log"
REG1=$REG SERVE1=$SERVE_PID LOG1=$SERVE_LOG
e2e_serve_named "$TREE" --htpasswd "$T/htpasswd"
REG2=$REG SERVE2=$SERVE_PID LOG2=$SERVE_LOG
REG=$REG1
e2e_cri
ctr_() { ctr -a "$CRI_SOCK" "$@"; }

# says FILE TEXT...: the output in FILE has every TEXT (what the clients said is listed at the end).
says() {
	local f=$1 t
	shift
	{ tr '\n' ' ' <"$f"; echo; } >>"$T/said"
	for t in "$@"; do
		grep -qF -- "$t" "$f" || { echo "no '$t' in: $(cat "$f")"; return 1; }
	done
}
# cri_fails FILE IMAGE [USER PASS]: PullImage fails; the status and message in FILE.
cri_fails() {
	local f=$1
	shift
	if cri_pull "$@" >"$f" 2>&1; then
		echo "CRI pulled $*: $(cat "$f")"
		return 1
	fi
}
# cri_pulled IMAGE CONFIG [REPO-DIGEST]: PullImage gives the image with that config (its image_ref),
# and ImageStatus lists the manifest digest. (Explicit returns: errexit does not apply on the left
# of &&.)
cri_pulled() {
	cri_pull "$1" >"$T/p" || { cat "$T/p"; return 1; }
	grep -qx "image_ref: $2" "$T/p" || { echo "want image_ref $2:"; cat "$T/p"; return 1; }
	[ -n "${3:-}" ] || return 0
	cri_status "$1" >"$T/p" || { cat "$T/p"; return 1; }
	grep -qx "repo_digest: $3" "$T/p" || { echo "want repo_digest $3:"; cat "$T/p"; return 1; }
}

check "without hosts.toml the CRI refuses the server: unknown authority" \
	eval 'cri_fails "$T/m" "$REG/library/base:1" && says "$T/m" "x509: certificate signed by unknown authority"'

# What client-config wrote before issue 18: the CA only inside [host]. A hit works, but containerd
# tries server last with the top-level settings only, and reports the miss as a certificate error.
mkdir -p "$CRI_CERTS_D/$REG"
cp "$CERTS/ca.crt" "$CRI_CERTS_D/$REG/ca.crt"
printf 'server = "https://%s"\n\n[host."https://%s"]\n  capabilities = ["pull", "resolve"]\n  ca = "ca.crt"\n' \
	"$REG" "$REG" >"$CRI_CERTS_D/$REG/hosts.toml"
check "the CA only in [host]: a missing tag comes out as a certificate error (why the top-level ca)" \
	eval 'cri_fails "$T/m" "$REG/library/base:nope" && says "$T/m" "x509: certificate signed by unknown authority"'

apply() {
	rm -rf "${CRI_CERTS_D:?}/$1"
	"$REGPRESS" client-config --server "$1" --ca "$CERTS/ca.crt" --for containerd \
		${2:+--tree "$2"} -o "$T/cc-$1" || return 1
	cp -r "$T/cc-$1/etc/containerd/certs.d/." "$CRI_CERTS_D/"
}
check "client-config --for containerd --tree, copied into the CRI's certs.d" apply "$REG" "$TREE"

D=$(digest_of library/base 1)
check "CRI pull by tag: $REG/library/base:1" cri_pulled "$REG/library/base:1" "$(config_of "$D")" "$REG/library/base@$D"
D_APP=$(digest_of example.com/team/app 1.0)
check "CRI pull by digest: $REG/example.com/team/app@$D_APP" \
	cri_pulled "$REG/example.com/team/app@$D_APP" "$(config_of "$D_APP")" "$REG/example.com/team/app@$D_APP"
MULTI=$REG/example.com/team/multi:1
check "CRI pull of a multi-platform tag: the node's ($HOST_ARCH) child" \
	cri_pulled "$MULTI" "$(config_of "$(child example.com/team/multi 1 "$HOST_ARCH")")" \
	"$REG/example.com/team/multi@$(digest_of example.com/team/multi 1)"
# PullImage has no platform (kubelet pulls the node's); ctr --platform, same certs.d, own namespace.
other_platform() {
	local cfg
	cfg=$(config_of "$(child example.com/team/multi 1 "$OTHER_ARCH")")
	ctr_ -n e2e images pull --platform "linux/$OTHER_ARCH" --hosts-dir "$CRI_CERTS_D" "$MULTI"
	ctr_ -n e2e content get "$cfg" | jq -e --arg a "$OTHER_ARCH" '.architecture == $a'
}
check "ctr pull --platform linux/$OTHER_ARCH of the same tag: that child" other_platform

check "CRI missing tag: NotFound (grpc-status 5), not found, naming it" \
	eval 'cri_fails "$T/m" "$REG/library/base:nope" && says "$T/m" "grpc-status: 5" "$REG/library/base:nope: not found"'
check "CRI missing repository: NotFound, naming it" \
	eval 'cri_fails "$T/m" "$REG/nosuch/repo:1" && says "$T/m" "grpc-status: 5" "$REG/nosuch/repo:1: not found"'
check "ctr missing tag: not found" \
	eval '! ctr_ -n e2e images pull --hosts-dir "$CRI_CERTS_D" "$REG/library/base:nope" >"$T/m" 2>&1 &&
		says "$T/m" "ctr: failed to resolve reference \"$REG/library/base:nope\": $REG/library/base:nope: not found"'
check "ctr missing repository: not found" \
	eval '! ctr_ -n e2e images pull --hosts-dir "$CRI_CERTS_D" "$REG/nosuch/repo:1" >"$T/m" 2>&1 &&
		says "$T/m" "$REG/nosuch/repo:1: not found"'

# Credentials: kubelet passes an imagePullSecret's user and password in PullImage's auth.
check "auth: client-config for the basic-auth server" apply "$REG2"
check "auth: CRI pull without credentials is refused (401)" \
	eval 'cri_fails "$T/m" "$REG2/library/base:1" && says "$T/m" "401 Unauthorized"'
check "auth: CRI pull with the credentials" \
	eval 'cri_pull "$REG2/example.com/team/app:1.0" alice s3cret | grep -qx "image_ref: $(config_of "$D_APP")"'

# The docker.io mirror: certs.d/docker.io/hosts.toml from client-config; containerd sends
# ?ns=docker.io with the host stripped, and short names are docker.io's.
routed() {
	e2e_wait_for 50 grep -Eq "\"(GET|HEAD) $1\\?ns=docker.io HTTP" "$T/access.log" ||
		{ echo "no $1?ns=docker.io in the access log:"; tail -5 "$T/access.log"; return 1; }
}
check "mirror: CRI pull docker.io/library/base:1 comes from regpress (?ns=docker.io)" \
	eval 'cri_pulled docker.io/library/base:1 "$(config_of "$D")" "docker.io/library/base@$D" &&
		routed /v2/library/base/manifests/1'
check "mirror: CRI pull of the short name base:1 too" \
	eval 'cri_pull base:1 | grep -qx "image_ref: $(config_of "$D")"'

# An address given to regpress certs --host is an IP entry, which Go clients need to accept a
# server they reach by that address (issue 18: it was DNS:127.0.0.1).
NAMED_CERTS=$CERTS CERTS=$T/certs-ip
"$REGPRESS" certs -o "$CERTS" --host 127.0.0.1 >/dev/null || e2e_die "regpress certs --host 127.0.0.1"
e2e_serve "$TREE"
check "certs --host 127.0.0.1: containerd accepts the server at that address (an IP entry)" \
	eval 'apply "$REG" && cri_pulled "$REG/library/base:1" "$(config_of "$D")" "$REG/library/base@$D"'
check_here "server with the --host 127.0.0.1 certificate stops" e2e_serve_stop
CERTS=$NAMED_CERTS

check_here "containerd (CRI) stops on SIGTERM" e2e_stop_named "$CRI_PID"
SERVE_PID=$SERVE2 SERVE_LOG=$LOG2
check_here "auth server stops" e2e_serve_stop
SERVE_PID=$SERVE1 SERVE_LOG=$LOG1
check_here "server stops" e2e_serve_stop
[ ! -s "$T/said" ] || sed 's/^/# said: /' "$T/said"
e2e_done
