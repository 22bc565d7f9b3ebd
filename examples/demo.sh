#!/usr/bin/env bash
# regpress in one minute: make an image, turn its `docker save`-style tarball into a registry tree,
# serve it over TLS on 127.0.0.1, and pull it back with skopeo. Everything happens in a temp dir
# that is removed at the end; nothing touches the network beyond 127.0.0.1.
#
#   examples/demo.sh [/path/to/regpress]        (make demo runs it with the freshly built binary)
set -euo pipefail

REGPRESS=${1:-$(cd "$(dirname "$0")/.." && pwd)/regpress}
[ -x "$REGPRESS" ] || { echo "demo: no regpress binary at $REGPRESS (run make)" >&2; exit 1; }
for tool in umoci skopeo openssl curl jq lighttpd python3; do
	command -v "$tool" >/dev/null || { echo "demo: $tool is needed (make deps)" >&2; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/regpress-demo.XXXXXX")
SERVER_PID=

cleanup() {
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Bold step titles on a terminal only.
if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
show() { printf '$ %s\n' "$*"; }
run() { show "$@"; "$@"; }
indent() { sed 's/^/    /'; }

# The platform the local clients pull by default.
goarch() {
	case $(uname -m) in
	x86_64) echo amd64 ;;
	aarch64) echo arm64 ;;
	*) uname -m ;;
	esac
}

make_image() {
	step "1. Make an image from a directory (umoci), save it as a docker-archive tarball (skopeo)"
	mkdir -p "$W/rootfs/etc"
	echo "hello from a regpress demo image" >"$W/rootfs/etc/hello.txt"
	{
		umoci init --layout "$W/oci"
		umoci new --image "$W/oci:demo"
		umoci config --image "$W/oci:demo" --os linux --architecture "$(goarch)" --config.cmd /bin/true
		umoci unpack --image "$W/oci:demo" "$W/bundle"
		cp -a "$W/rootfs/." "$W/bundle/rootfs/"
		umoci repack --image "$W/oci:demo" "$W/bundle"
	} >/dev/null
	run skopeo copy -q "oci:$W/oci:demo" "docker-archive:$W/hello.tar:demo/hello:1.0" \
		--additional-tag demo/hello:latest
	echo "  $(du -h "$W/hello.tar" | cut -f1)  hello.tar, the same format as 'docker save demo/hello'"
	tar tf "$W/hello.tar" | indent
}

build_tree() {
	step "2. Build the registry tree"
	show "$REGPRESS" build -o "$W/tree" "$W/hello.tar"
	"$REGPRESS" build -o "$W/tree" "$W/hello.tar" | indent
	echo "  tree: $(du -sh "$W/tree" | cut -f1), $(find "$W/tree" -type f | wc -l) files; a few of them:"
	(cd "$W/tree" && find . -type f | sort | grep -v '/_blobs/' | head -12 | indent)
}

make_certs() {
	step "3. A throwaway CA and a server certificate for 127.0.0.1 (openssl, ECDSA P-256)"
	mkdir -p "$W/certs/trust"
	(
		cd "$W/certs"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
			-keyout ca.key -out ca.crt -subj "/CN=regpress demo CA" \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout server.key -out server.csr -subj "/CN=localhost"
		# Go clients ignore the Common Name: the address must be in subjectAltName.
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
			-extfile ext.cnf -out server.crt
		cp ca.crt trust/
	) >/dev/null 2>&1
	echo "  $(openssl x509 -in "$W/certs/server.crt" -noout -ext subjectAltName | tail -1 | sed 's/^ *//')"
}

serve() {
	step "4. Serve it (regpress serve runs lighttpd over TLS)"
	PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	REG=127.0.0.1:$PORT
	echo "\$ $REGPRESS serve $W/tree --cert server.crt --key server.key --listen $REG &"
	"$REGPRESS" serve "$W/tree" --cert "$W/certs/server.crt" --key "$W/certs/server.key" \
		--listen "$REG" >"$W/serve.log" 2>&1 &
	SERVER_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		curl -fsS -o /dev/null --cacert "$W/certs/ca.crt" "https://$REG/v2/" 2>/dev/null && break
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	if ! curl -fsS -o /dev/null --cacert "$W/certs/ca.crt" "https://$REG/v2/"; then
		echo "demo: the server did not come up; its output:" >&2
		cat "$W/serve.log" >&2
		exit 1
	fi
	echo "  listening on https://$REG"
	echo "\$ curl https://$REG/v2/_catalog"
	curl -fsS --cacert "$W/certs/ca.crt" "https://$REG/v2/_catalog" | jq -c . | indent
	echo "\$ curl https://$REG/v2/demo/hello/tags/list"
	curl -fsS --cacert "$W/certs/ca.crt" "https://$REG/v2/demo/hello/tags/list" | jq -c . | indent
	echo "\$ curl -I https://$REG/v2/demo/hello/manifests/1.0"
	curl -fsS -I --cacert "$W/certs/ca.crt" "https://$REG/v2/demo/hello/manifests/1.0" |
		grep -i -E '^(HTTP|content-type|docker-content-digest|content-length)' | tr -d '\r' | indent
}

pull_back() {
	step "5. Pull it back with a real client (skopeo)"
	show skopeo inspect --cert-dir "$W/certs/trust" "docker://$REG/demo/hello:1.0"
	skopeo inspect --cert-dir "$W/certs/trust" "docker://$REG/demo/hello:1.0" |
		jq -c '{Name, Digest, RepoTags, Architecture, Os, Layers}' | indent
	run skopeo copy -q --src-cert-dir "$W/certs/trust" "docker://$REG/demo/hello:latest" "oci:$W/pulled:hello"
	umoci unpack --image "$W/pulled:hello" "$W/check" >/dev/null
	echo "  /etc/hello.txt in the pulled image: $(cat "$W/check/rootfs/etc/hello.txt")"
}

stop_server() {
	step "6. Stop the server, clean up"
	kill -TERM "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
	echo "  server stopped; removing $W"
}

make_image
build_tree
make_certs
serve
pull_back
stop_server
echo
echo "done: containerd, Docker, podman, kubelet pull the same way (see docs/)."
