#!/usr/bin/env bash
# Mirror routing with real containerd, configured only by `regpress client-config`, served with
# certificates from `regpress certs`: containerd sends pulls of docker.io/... and of another
# registry host to regpress with ?ns=<registry> and the host stripped from the path; regpress
# serves the tree's library/NAME and HOST/NAME. Also pulls direct (HOST:PORT/repo) with the same
# generated certs.d, and checks the other clients' files for what they must contain.
# shellcheck disable=SC2317,SC2016 # helpers and eval '...' strings run through `check`
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_fixtures "$T/fx" || e2e_die "fixtures"
FX=$T/fx
export FX
APP=registry.example.com/team/app

ctr_() { ctr -a "$CTR_SOCK" "$@"; }

# digest_of REPO TAG: the digest the tree serves for REPO:TAG.
digest_of() { cut -d' ' -f1 "$T/tree/registry/repos/$1/_manifests/tags/$2"; }

# pulled REF DIGEST: ctr pull through the generated certs.d, then `ctr images ls` has REF at DIGEST
# and `ctr images check` reports it complete and unpacked.
pulled() {
	local got
	ctr_ images pull --hosts-dir "$GEN/etc/containerd/certs.d" "$1"
	got=$(ctr_ images ls | awk -v r="$1" '$1 == r {print $3}')
	echo "ctr images ls: $1 -> ${got:-<absent>}, want $2"
	[ "$got" = "$2" ]
	ctr_ images check "name==$1" | awk 'NR > 1 { ok = ($4 == "complete" && $NF == "true") } END { exit !ok }'
}

# logged REGEX: the access log has a line matching REGEX (lighttpd flushes it within seconds).
logged() {
	e2e_wait_for 50 grep -Eq "$1" "$T/access.log" ||
		{ echo "no line matching $1 in the access log:"; tail -20 "$T/access.log"; return 1; }
}

# routed NS PATH: containerd asked for PATH with ?ns=NS (HEAD to resolve, or GET).
routed() { logged "\"(GET|HEAD) $2\\?ns=$1 HTTP"; }

# ---------------------------------------------------------------------------------------------

check "build: base:1 (docker.io) and $APP:1 (another registry host)" \
	eval '"$REGPRESS" build -q -o "$T/tree" "$FX/base.tar" &&
		"$REGPRESS" build -q -o "$T/tree" --tag "$APP:1" "$FX/app.tar" &&
		"$REGPRESS" build -q -o "$T/tree" "$FX/multi.tar"'
[ -f "$T/tree/registry/repos/$APP/_tags.json" ] || e2e_die "no tree with $APP"

# Certificates from regpress certs (curl, containerd and the harness all use them).
CERTS=$T/certs
check "regpress certs for 127.0.0.1 and localhost" \
	"$REGPRESS" certs -o "$CERTS" --ip 127.0.0.1 --host localhost
mkdir -p "$CERTS/trust" && cp "$CERTS/ca.crt" "$CERTS/trust/ca.crt"
export CERTS

# An access log, to see the ?ns= requests.
e2e_serve "$T/tree" --access-log "$T/access.log"

GEN=$T/client
check "client-config --for containerd --tree: direct and one mirror per registry" \
	"$REGPRESS" client-config --server "$REG" --ca "$CERTS/ca.crt" --for containerd --tree "$T/tree" -o "$GEN"
check "client-config: hosts.toml for the server, docker.io and registry.example.com, nothing else" \
	eval 'diff <(cd "$GEN/etc/containerd/certs.d" && ls) <(printf "%s\n" "$REG" docker.io registry.example.com | sort) &&
		grep -q "^server = \"https://$REG\"" "$GEN/etc/containerd/certs.d/$REG/hosts.toml" &&
		grep -q "^\[host.\"https://$REG\"\]" "$GEN/etc/containerd/certs.d/docker.io/hosts.toml" &&
		cmp "$CERTS/ca.crt" "$GEN/etc/containerd/certs.d/registry.example.com/ca.crt" &&
		[ ! -e "$GEN/etc/docker" ]'

e2e_containerd
check "mirror: ctr pull docker.io/library/base:1 (tree library/base)" \
	pulled docker.io/library/base:1 "$(digest_of library/base 1)"
check "mirror: containerd asked /v2/library/base/manifests/1?ns=docker.io" \
	routed docker.io /v2/library/base/manifests/1
check "mirror: ctr pull docker.io/user/tool:1.0 (tree user/tool)" \
	pulled docker.io/user/tool:1.0 "$(digest_of user/tool 1.0)"
check "mirror: ctr pull $APP:1 (tree $APP)" pulled "$APP:1" "$(digest_of "$APP" 1)"
check "mirror: containerd asked /v2/team/app/manifests/1?ns=registry.example.com" \
	routed registry.example.com /v2/team/app/manifests/1
check "mirror: blobs too went through ?ns= routing" \
	logged "GET /v2/team/app/blobs/sha256:[0-9a-f]{64}\\?ns=registry\\.example\\.com HTTP/[0-9.]+\" 200 "
check "mirror: a registry the tree does not mirror is not sent to regpress" \
	eval '! timeout 20 ctr -a "$CTR_SOCK" images pull --hosts-dir "$GEN/etc/containerd/certs.d" quay.io/nope/nope:1 &&
		! grep -q "quay.io" "$T/access.log"'
check "mirror: an image of docker.io the tree lacks is 404 NAME_UNKNOWN, not a wrong image" \
	eval '! timeout 20 ctr -a "$CTR_SOCK" images pull --hosts-dir "$GEN/etc/containerd/certs.d" docker.io/library/nope:1 &&
		logged "HEAD /v2/library/nope/manifests/1\\?ns=docker\\.io HTTP/[0-9.]+\" 404 "'
check "direct: ctr pull $REG/$APP:1 with the same certs.d" \
	pulled "$REG/$APP:1" "$(digest_of "$APP" 1)"
check "direct: ctr pull $REG/library/other:2" pulled "$REG/library/other:2" "$(digest_of library/other 2)"

# Docker's registry-mirrors style: docker.io only, no ns, the plain path (what dockerd sends).
check "docker registry-mirrors style: /v2/library/base/manifests/1 without ns" \
	eval 'curl -fsS --cacert "$CERTS/ca.crt" -o /dev/null -H "Accept: application/vnd.docker.distribution.manifest.v2+json" \
		"$URL/v2/library/base/manifests/1"'

# The other clients' files, checked for what each client needs.
check "client-config --for docker: certs.d CA and a registry-mirrors snippet" \
	eval '"$REGPRESS" client-config --server "$REG" --ca "$CERTS/ca.crt" --for docker -o "$T/gd" &&
		cmp "$CERTS/ca.crt" "$T/gd/etc/docker/certs.d/$REG/ca.crt" &&
		[ "$(jq -c .\"registry-mirrors\" "$T/gd/etc/docker/daemon.json")" = "[\"https://$REG\"]" ]'
check "client-config --for podman: mirror locations name the tree's repositories" \
	eval '"$REGPRESS" client-config --server "$REG" --ca "$CERTS/ca.crt" --for podman --tree "$T/tree" -o "$T/gp" &&
		grep -q "^location = \"$REG/registry.example.com\"" "$T/gp/etc/containers/registries.conf.d/50-regpress.conf" &&
		grep -q "^location = \"$REG\"" "$T/gp/etc/containers/registries.conf.d/50-regpress.conf" &&
		cmp "$CERTS/ca.crt" "$T/gp/etc/containers/certs.d/$REG/ca.crt"'
# skopeo reads registries.conf(.d): pull docker.io/library/base:1 through the podman mirror file.
podman_mirror_pull() {
	skopeo --registries-conf "$T/gp/etc/containers/registries.conf.d/50-regpress.conf" inspect --raw \
		--cert-dir "$T/gp/etc/containers/certs.d/$REG" "docker://registry.example.com/team/app:1" >"$T/raw"
	[ "sha256:$(sha256sum <"$T/raw" | cut -d" " -f1)" = "$(digest_of "$APP" 1)" ]
	skopeo --registries-conf "$T/gp/etc/containers/registries.conf.d/50-regpress.conf" inspect --raw \
		--cert-dir "$T/gp/etc/containers/certs.d/$REG" "docker://docker.io/library/base:1" >"$T/raw"
	[ "sha256:$(sha256sum <"$T/raw" | cut -d" " -f1)" = "$(digest_of library/base 1)" ]
}
check "podman file used for real: skopeo reads registry.example.com/team/app:1 and docker.io/library/base:1 via the mirrors" podman_mirror_pull
check "client-config --for k3s and talos: YAML naming every mirror" \
	eval '"$REGPRESS" client-config --server "$REG" --ca "$CERTS/ca.crt" --for k3s --for talos --tree "$T/tree" -o "$T/gk" &&
		python3 -c "
import sys, yaml, base64
k = yaml.safe_load(open(sys.argv[1]))
assert set(k[\"mirrors\"]) == {sys.argv[3], \"docker.io\", \"registry.example.com\"}, k
assert k[\"configs\"][sys.argv[3]][\"tls\"][\"ca_file\"] == \"/etc/rancher/k3s/regpress-ca.crt\"
t = yaml.safe_load(open(sys.argv[2]))[\"machine\"][\"registries\"]
assert t[\"mirrors\"][\"docker.io\"][\"endpoints\"] == [\"https://\" + sys.argv[3]]
assert base64.b64decode(t[\"config\"][sys.argv[3]][\"tls\"][\"ca\"]) == open(sys.argv[4], \"rb\").read()
" "$T/gk/etc/rancher/k3s/registries.yaml" "$T/gk/talos/regpress-registries.yaml" "$REG" "$CERTS/ca.crt"'
check "client-config usage errors exit 2" \
	eval 'rc=0; "$REGPRESS" client-config --ca x 2>/dev/null || rc=$?; [ "$rc" = 2 ] &&
		rc=0; "$REGPRESS" client-config --server "$REG" --ca x --for nerdctl 2>/dev/null || rc=$?; [ "$rc" = 2 ] &&
		"$REGPRESS" client-config --help | grep -q "^usage: regpress client-config"'
check "client-config refuses a CA that is not a certificate, naming it" \
	eval '! "$REGPRESS" client-config --server "$REG" --ca "$CERTS/server.key" -o "$T/gx" 2>"$T/e" &&
		grep -q server.key "$T/e"'

check_here "containerd stops on SIGTERM" e2e_containerd_stop
check_here "regpress serve stops on SIGTERM" e2e_serve_stop
e2e_done
