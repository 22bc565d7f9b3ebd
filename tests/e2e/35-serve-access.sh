#!/usr/bin/env bash
# Access control and hardening of `regpress serve`, checked with real clients: HTTP basic
# authentication (--htpasswd: curl, skopeo with and without --creds, wrong password), mutual TLS
# (--client-ca: good, foreign and missing client certificates; skopeo and containerd with client
# certificates), both together, TLS versions and ciphers (openssl s_client), the switch to an
# unprivileged user when started as root, symlinks planted in a tree, and a read-only tree.
# Certificates come from `regpress certs`.
# shellcheck disable=SC2317,SC2016 # helpers and eval '...' strings run through `check`
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
# The unprivileged user lighttpd switches to must reach the tree (mktemp -d makes $T 0700).
chmod 755 "$T"
e2e_fixtures "$T/fx" || e2e_die "fixtures"
TREE=$T/tree
check "build a tree" "$REGPRESS" build -q -o "$TREE" "$T/fx/base.tar" "$T/fx/app.tar"
[ -s "$TREE/registry/catalog.json" ] || e2e_die "no tree built"
MHEX=$(cut -d' ' -f1 "$TREE/registry/repos/library/base/_manifests/tags/1")
MHEX=${MHEX#sha256:}

CERTS=$T/certs
check "regpress certs: CA, server and a client certificate" \
	"$REGPRESS" certs -o "$CERTS" --ip 127.0.0.1 --host localhost --client ci
check "regpress certs: a foreign CA with its own client certificate" \
	"$REGPRESS" certs -o "$T/foreign" --ip 127.0.0.1 --client intruder
[ -s "$CERTS/client.crt" ] || e2e_die "no certificates"

# skopeo --cert-dir / --src-cert-dir: the CA as *.crt, a client certificate as NAME.cert + NAME.key.
mkdir -p "$T/trust" "$T/trust-client" "$T/trust-foreign"
cp "$CERTS/ca.crt" "$T/trust/ca.crt"
cp "$CERTS/ca.crt" "$T/trust-client/ca.crt"
cp "$CERTS/client.crt" "$T/trust-client/client.cert"
cp "$CERTS/client.key" "$T/trust-client/client.key"
cp "$CERTS/ca.crt" "$T/trust-foreign/ca.crt"
cp "$T/foreign/client.crt" "$T/trust-foreign/client.cert"
cp "$T/foreign/client.key" "$T/trust-foreign/client.key"

# htpasswd: SHA-256 crypt for alice, APR1 MD5 for bob; readable by lighttpd's user only.
printf 'alice:%s\nbob:%s\n' "$(openssl passwd -5 -salt regpress s3cret)" \
	"$(openssl passwd -apr1 -salt regpress hunter2)" >"$T/htpasswd"
chmod 640 "$T/htpasswd"
chgrp www-data "$T/htpasswd" 2>/dev/null || chmod 644 "$T/htpasswd"

# ---------------------------------------------------------------------------------------------
# helpers

# serve TREE [SERVE OPTIONS...]: e2e_serve, up as soon as it answers anything over TLS (a 401, or
# a refused client certificate, counts as up).
tls_up() {
	echo | timeout 2 openssl s_client -connect "127.0.0.1:$PORT" >/dev/null 2>&1 ||
		grep -q 'server started' "$SERVE_LOG"
}
serve() { E2E_SERVE_PROBE=tls_up e2e_serve "$@"; }

# req [CURL ARGS...] PATH: status in $T/s, headers in $T/h, body in $T/b; curl's exit status is
# returned (35/56: the TLS handshake was refused).
req() {
	local path=${*: -1} rc=0
	: >"$T/h"
	: >"$T/b"
	curl -sS --max-time 10 --cacert "$CERTS/ca.crt" -D "$T/h" -o "$T/b" -w '%{http_code}' \
		"${@:1:$#-1}" "$URL$path" >"$T/s" 2>"$T/curl.err" || rc=$?
	return "$rc"
}
hdr() { grep -i "^$1:" "$T/h" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//' || true; }
expect() {
	[ "$2" = "$3" ] || { echo "$1: got '$2', want '$3'"; cat "$T/h"; head -c 400 "$T/b"; echo; return 1; }
}
status_is() { expect status "$(cat "$T/s")" "$1"; }

# unauthorized [CURL ARGS...] PATH: 401, Basic challenge for realm regpress, OCI error body.
unauthorized() {
	req "$@"
	status_is 401
	[[ $(hdr www-authenticate) == 'Basic realm="regpress"'* ]] ||
		{ echo "WWW-Authenticate: $(hdr www-authenticate)"; return 1; }
	expect "Content-Type" "$(hdr content-type)" application/json
	expect "error code" "$(jq -r '.errors[0].code' "$T/b")" UNAUTHORIZED
	expect "API version" "$(hdr docker-distribution-api-version)" registry/2.0
	! grep -q "$MHEX" "$T/b"
}

# refused [CURL ARGS...] PATH: the TLS handshake fails (no HTTP response at all).
refused() {
	if req "$@"; then
		echo "request succeeded with status $(cat "$T/s")"
		return 1
	fi
	cat "$T/curl.err"
	expect status "$(cat "$T/s")" 000
}

skopeo_raw() { skopeo inspect --raw --tls-verify=true "$@"; }

# lighttpd_user: the user lighttpd (the child of regpress serve) runs as.
lighttpd_user() { ps -o user= -p "$(pgrep -P "$SERVE_PID" lighttpd)" | tr -d ' '; }

tls_refused() { # VERSION-FLAG
	local out
	if out=$(echo | openssl s_client "$1" -cipher 'DEFAULT:@SECLEVEL=0' -connect "127.0.0.1:$PORT" 2>&1); then
		echo "handshake with $1 succeeded"
		echo "$out"
		return 1
	fi
	grep -Eq 'alert protocol version|no protocols available|unsupported protocol' <<<"$out" || { echo "$out"; return 1; }
}

# ---------------------------------------------------------------------------------------------
# 1. --htpasswd, started as root: lighttpd serves as www-data.

serve "$TREE" --htpasswd "$T/htpasswd"
check "root start: lighttpd serves as www-data" eval '[ "$(lighttpd_user)" = www-data ]'
check "no credentials: 401 Basic realm=regpress, UNAUTHORIZED body" unauthorized /v2/
check "no credentials: manifests, blobs, tags and catalog are 401 too" \
	eval 'unauthorized "/v2/library/base/manifests/1" && unauthorized "/v2/library/base/manifests/sha256:$MHEX" &&
		unauthorized /v2/library/base/tags/list && unauthorized /v2/_catalog &&
		req -I /v2/library/base/manifests/1 && status_is 401 && [ -z "$(hdr docker-content-digest)" ]'
check "wrong password: 401" unauthorized -u alice:wrong /v2/
check "unknown user: 401" unauthorized -u mallory:s3cret /v2/library/base/manifests/1
check "alice (SHA-256 crypt): 200 with the manifest" \
	eval 'req -u alice:s3cret /v2/library/base/manifests/1 && status_is 200 &&
		expect digest "$(hdr docker-content-digest)" "sha256:$MHEX"'
check "bob (APR1): 200" eval 'req -u bob:hunter2 /v2/ && status_is 200'
check "authenticated: outside /v2 is still 404" eval 'req -u alice:s3cret /registry/snapshot; status_is 404'
check "skopeo without --creds is refused" \
	eval '! skopeo_raw --cert-dir "$T/trust" "docker://$REG/library/base:1" 2>"$T/e" && cat "$T/e" &&
		grep -Eqi "unauthorized|authentication required|401" "$T/e"'
check "skopeo --creds alice:s3cret reads the manifest" \
	eval 'skopeo_raw --cert-dir "$T/trust" --creds alice:s3cret "docker://$REG/library/base:1" >"$T/raw" &&
		[ "$(sha256sum <"$T/raw" | cut -d" " -f1)" = "$MHEX" ]'
check "skopeo --creds with a wrong password is refused" \
	eval '! skopeo_raw --cert-dir "$T/trust" --creds alice:nope "docker://$REG/library/base:1"'
check "skopeo copy --src-creds pulls the whole image" \
	skopeo copy -q --src-cert-dir "$T/trust" --src-creds bob:hunter2 \
	"docker://$REG/example.com/team/app:1.0" "oci:$T/pulled:app"
check "skopeo login + inspect (the docker login flow)" \
	eval 'skopeo login --cert-dir "$T/trust" --authfile "$T/auth.json" -u alice -p s3cret "$REG" &&
		skopeo inspect --raw --cert-dir "$T/trust" --authfile "$T/auth.json" "docker://$REG/library/base:1" >/dev/null'
check "htpasswd is re-read: a user added while serving gets in" \
	eval 'printf "carol:%s\n" "$(openssl passwd -5 -salt x pw)" >>"$T/htpasswd" &&
		req -u carol:pw /v2/ && status_is 200'
check_here "server with --htpasswd stops" e2e_serve_stop

# ---------------------------------------------------------------------------------------------
# 2. --client-ca: mutual TLS.

serve "$TREE" --client-ca "$CERTS/ca.crt"
CLI=(--cert "$CERTS/client.crt" --key "$CERTS/client.key")
check "mTLS: a client certificate of the CA gets 200" \
	eval 'req "${CLI[@]}" /v2/library/base/manifests/1 && status_is 200'
check "mTLS: no client certificate: handshake refused" refused /v2/
check "mTLS: a certificate of another CA: handshake refused" \
	refused --cert "$T/foreign/client.crt" --key "$T/foreign/client.key" /v2/
check "mTLS: the server certificate is not a client certificate (serverAuth only): refused" \
	refused --cert "$CERTS/server.crt" --key "$CERTS/server.key" /v2/
check "mTLS: skopeo with a client certificate (NAME.cert/NAME.key in --cert-dir)" \
	eval 'skopeo_raw --cert-dir "$T/trust-client" "docker://$REG/library/base:1" >"$T/raw" &&
		[ "$(sha256sum <"$T/raw" | cut -d" " -f1)" = "$MHEX" ]'
check "mTLS: skopeo without one fails" eval '! skopeo_raw --cert-dir "$T/trust" "docker://$REG/library/base:1"'
check "mTLS: skopeo with a foreign one fails" eval '! skopeo_raw --cert-dir "$T/trust-foreign" "docker://$REG/library/base:1"'
e2e_containerd
mtls_ctr_pull() {
	mkdir -p "$HOSTS/$REG"
	cat >"$HOSTS/$REG/hosts.toml" <<-EOF2
		server = "$URL"
		[host."$URL"]
		  capabilities = ["pull", "resolve"]
		  ca = "$CERTS/ca.crt"
		  client = [["$CERTS/client.crt", "$CERTS/client.key"]]
	EOF2
	ctr -a "$CTR_SOCK" images pull --hosts-dir "$HOSTS" "$REG/example.com/team/app:1.0"
}
check "mTLS: containerd with client = [[crt, key]] pulls" mtls_ctr_pull
check_here "containerd stops" e2e_containerd_stop
check_here "server with --client-ca stops" e2e_serve_stop

# ---------------------------------------------------------------------------------------------
# 3. Both: a client certificate and a password.

serve "$TREE" --client-ca "$CERTS/ca.crt" --htpasswd "$T/htpasswd"
check "both: certificate and password: 200" eval 'req "${CLI[@]}" -u alice:s3cret /v2/ && status_is 200'
check "both: certificate without password: 401" unauthorized "${CLI[@]}" /v2/library/base/manifests/1
check "both: certificate, wrong password: 401" unauthorized "${CLI[@]}" -u alice:x /v2/
check "both: password without certificate: refused" refused -u alice:s3cret /v2/
check "both: skopeo with client certificate and --creds" \
	skopeo_raw --cert-dir "$T/trust-client" --creds alice:s3cret "docker://$REG/library/base:1"
check_here "server with both stops" e2e_serve_stop

# ---------------------------------------------------------------------------------------------
# 4. TLS versions and ciphers, access log, no writes, symlinks, read-only tree, user switch.

# A tree copy with a planted symlink: a blob of the tree replaced by a link to a file outside.
cp -a "$TREE" "$T/tree-link"
LHEX=$(find "$T/tree-link/registry/repos/library/base/_blobs" -type f | head -1)
LHEX=${LHEX##*/}
ln -sf /etc/passwd "$T/tree-link/blobs/sha256/$LHEX"
# ...and a pointer of a new tag whose target blob is a link.
cp "$T/tree-link/registry/repos/library/base/_manifests/tags/1" "$T/tree-link/registry/repos/library/base/_manifests/tags/linked"
MFILE=$T/tree-link/blobs/sha256/$MHEX
mv "$MFILE" "$T/outside-manifest"
ln -s "$T/outside-manifest" "$MFILE"
# Links to files outside the tree where the script reads files itself (issue 17): the tag list and
# the catalog it paginates, a tag pointer (naming an intact manifest, app's), a directory of
# pointers, and a referrers index it filters. The outside files say OUTSIDE-SECRET.
LB=$T/tree-link/registry/repos/library/base
LAPP=$T/tree-link/registry/repos/example.com/team/app
APPHEX=$(cut -d' ' -f1 "$LAPP/_manifests/tags/1.0")
APPHEX=${APPHEX#sha256:}
echo '{"name":"library/base","tags":["OUTSIDE-SECRET"],"repositories":["OUTSIDE-SECRET"],"manifests":[{"artifactType":"x","digest":"OUTSIDE-SECRET"}]}' >"$T/outside.json"
ln -sf "$T/outside.json" "$LB/_tags.json"
ln -sf "$T/outside.json" "$T/tree-link/registry/catalog.json"
cp "$LAPP/_manifests/tags/1.0" "$T/outside-pointer"
ln -s "$T/outside-pointer" "$LB/_manifests/tags/ptrlink"
mv "$LAPP/_manifests/sha256" "$T/outside-pointers"
ln -s "$T/outside-pointers" "$LAPP/_manifests/sha256"
mkdir -p "$LB/_referrers"
ln -s "$T/outside.json" "$LB/_referrers/$MHEX"
find "$TREE" -printf '%P %s %T@ %m %y\n' | sort >"$T/tree.before"
# One worker, so the second request for the linked manifest meets the same script state.
serve "$T/tree-link" --access-log "$T/access.log" --workers 1
check "TLS 1.0 refused" tls_refused -tls1
check "TLS 1.1 refused" tls_refused -tls1_1
check "TLS 1.3 is what a client gets by default" \
	eval 'echo | openssl s_client -CAfile "$CERTS/ca.crt" -verify_return_error -connect "$REG" 2>&1 | grep -Eq "New, TLSv1.3,|Protocol *: TLSv1.3"'
check "TLS 1.2: ECDHE with AEAD" \
	eval 'echo | openssl s_client -tls1_2 -CAfile "$CERTS/ca.crt" -connect "$REG" 2>&1 | grep -Eq "Cipher *: ECDHE-ECDSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)"'
# The server's order decides: AES-128-GCM (cheapest per byte with AES instructions) although
# OpenSSL clients list AES-256 first; a client that prefers ChaCha20 (no AES instructions) gets it.
check "the server picks AES-128-GCM in TLS 1.3 and 1.2" \
	eval 'echo | openssl s_client -CAfile "$CERTS/ca.crt" -connect "$REG" 2>&1 | grep -Eq "Cipher is TLS_AES_128_GCM_SHA256" &&
		echo | openssl s_client -tls1_2 -CAfile "$CERTS/ca.crt" -connect "$REG" 2>&1 | grep -Eq "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"'
check "TLS 1.2: each ECDHE AEAD suite is still accepted when a client offers only it" \
	eval 'for c in ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305; do
		echo | openssl s_client -tls1_2 -cipher "$c" -CAfile "$CERTS/ca.crt" -connect "$REG" 2>&1 |
			grep -q "Cipher is $c" || { echo "$c refused"; return 1; }; done'
check "a client preferring ChaCha20 gets it" \
	eval 'echo | openssl s_client -ciphersuites TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256 -CAfile "$CERTS/ca.crt" -connect "$REG" 2>&1 | grep -Eq "Cipher is TLS_CHACHA20_POLY1305_SHA256"'
check "TLS 1.2: CBC and non-ECDHE ciphers refused" \
	eval '! echo | openssl s_client -tls1_2 -cipher "AES128-SHA:ECDHE-ECDSA-AES128-SHA:AES256-GCM-SHA384" -connect "$REG" >"$T/o" 2>&1 || { cat "$T/o"; false; }'
check "symlinked blob (to /etc/passwd) is not served" \
	eval 'req "/v2/library/base/blobs/sha256:$LHEX"; [ "$(cat "$T/s")" != 200 ] && ! grep -q "root:" "$T/b"'
# Twice: a manifest lighttpd refused to send never enters the script's manifest cache.
check "manifest whose blob is a symlink out of the tree is not served, twice" \
	eval 'for i in 1 2; do req /v2/library/base/manifests/linked; [ "$(cat "$T/s")" != 200 ] &&
		[ ! -s "$T/b" -o "$(jq -r ".errors[0].code" "$T/b")" != null ] || return 1; done'
check "the rest of the copy is served" eval 'req /v2/example.com/team/app/manifests/1.0 && status_is 200'
# denied PATH: 403 DENIED, as lighttpd's static handler answers a link, and nothing of outside.
# Explicit returns: it runs on the left of && too, where errexit does not apply.
denied() {
	req "$1" || return 1
	status_is 403 || return 1
	expect "error code" "$(jq -r '.errors[0].code' "$T/b")" DENIED || return 1
	if grep -q -e OUTSIDE-SECRET -e "$APPHEX" "$T/b" "$T/h"; then
		echo "$1: outside content or app's manifest in the answer:"
		cat "$T/h" "$T/b"
		return 1
	fi
}
check "symlinked _tags.json: tags/list is refused" denied /v2/library/base/tags/list
check "symlinked _tags.json: tags/list?n=5 (read by the script) is refused too" denied "/v2/library/base/tags/list?n=5"
check "symlinked _tags.json: also through ?ns=docker.io and with last=" \
	eval 'denied "/v2/base/tags/list?n=5&ns=docker.io" && denied "/v2/library/base/tags/list?last=a"'
check "symlinked catalog.json: _catalog and _catalog?n=5 are refused" \
	eval 'denied /v2/_catalog && denied "/v2/_catalog?n=5"'
# After the check above, app's manifest is in the worker's cache: the refusal must not depend on
# whether the manifest itself would come from a file.
check "symlinked tag pointer (to an intact manifest) is refused, twice" \
	eval 'denied /v2/library/base/manifests/ptrlink && denied /v2/library/base/manifests/ptrlink'
check "a pointer under a symlinked directory is refused" \
	eval 'denied "/v2/example.com/team/app/manifests/sha256:$APPHEX"'
check "symlinked referrers index: refused, filtered (read by the script) or not" \
	eval 'denied "/v2/library/base/referrers/sha256:$MHEX?artifactType=x" && denied "/v2/library/base/referrers/sha256:$MHEX"'
check "the rest is still served: app's tag list, paginated" \
	eval 'req "/v2/example.com/team/app/tags/list?n=1" && status_is 200 && expect tags "$(jq -c .tags "$T/b")" "[\"1.0\"]"'
check "access log written to the file" \
	eval 'e2e_wait_for 50 grep -q "GET /v2/example.com/team/app/manifests/1.0 " "$T/access.log"'
check_here "server stops" e2e_serve_stop

# A read-only tree: a read-only bind mount when this machine allows mounts (root), else only the
# proof that serving never wrote anything.
RO=$T/ro
mkdir -p "$RO"
if mount --bind "$TREE" "$RO" 2>/dev/null && mount -o remount,bind,ro "$RO" 2>/dev/null; then
	check "read-only bind mount is read-only" eval '! touch "$RO/x" 2>/dev/null'
else
	umount "$RO" 2>/dev/null || true
	e2e_log "no bind mounts here: serving the tree itself read-only by permissions"
	RO=$TREE
fi
serve "$RO"
check "read-only tree: skopeo pulls an image" \
	skopeo copy -q --src-cert-dir "$T/trust" "docker://$REG/example.com/team/app:1.0" "oci:$T/pulled-ro:app"
check_here "server on the read-only tree stops" e2e_serve_stop
[ "$RO" = "$TREE" ] || umount "$RO" 2>/dev/null || umount -l "$RO" || true
check "serving never wrote into the tree (names, sizes, mtimes, modes unchanged)" \
	eval 'find "$TREE" -printf "%P %s %T@ %m %y\n" | sort | diff "$T/tree.before" -'

# The user switch: an explicit --user that cannot read the tree is an error naming the
# directory; the default user falls back to root with a warning; --user root keeps root.
mkdir -m 700 "$T/private"
cp -a "$TREE" "$T/private/tree"
check "--user nobody with a tree under a 0700 directory: error naming it" \
	eval '! "$REGPRESS" serve "$T/private/tree" --cert "$CERTS/server.crt" --key "$CERTS/server.key" \
		--listen 127.0.0.1:1 --user nobody 2>"$T/e" && cat "$T/e" && grep -q "$T/private" "$T/e" &&
		[ "$(wc -l <"$T/e")" -eq 1 ]'
serve "$T/private/tree"
check "default user cannot read the tree: warning, lighttpd stays root" \
	eval '[ "$(lighttpd_user)" = root ] && grep -q "warning: www-data cannot read" "$SERVE_LOG"'
check_here "server stops" e2e_serve_stop
serve "$TREE" --user nobody --group nogroup
check "--user nobody --group nogroup" \
	eval '[ "$(lighttpd_user)" = nobody ] && req /v2/library/base/manifests/1 && status_is 200'
check_here "server stops" e2e_serve_stop

check "serve --htpasswd refuses a plain-text password line, naming the file" \
	eval 'printf "eve:plaintext\n" >"$T/bad.htpasswd" &&
		! "$REGPRESS" serve "$TREE" --cert "$CERTS/server.crt" --key "$CERTS/server.key" --htpasswd "$T/bad.htpasswd" 2>"$T/e" &&
		grep -q bad.htpasswd "$T/e"'
check "serve --client-ca refuses a file without a certificate" \
	eval '! "$REGPRESS" serve "$TREE" --cert "$CERTS/server.crt" --key "$CERTS/server.key" --client-ca "$T/htpasswd" 2>"$T/e" &&
		grep -q htpasswd "$T/e"'
check "serve --group without --user is a usage error" \
	eval 'rc=0; "$REGPRESS" serve "$TREE" --cert x --key y --group nogroup 2>/dev/null || rc=$?; [ "$rc" = 2 ]'

e2e_done
