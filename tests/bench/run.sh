#!/usr/bin/env bash
# regpress benchmark (issue 7): regpress against its peers on the same input, in the same run.
#
#   tests/bench/run.sh [REGPRESS_BINARY]        (`make bench` passes ./regpress)
#
# Builds (once, cached in $BENCH_DIR) a realistic image with umoci from files already on the machine
# (a toolchain, libraries, documentation: three layers, ~710 MB, plus a 100 KB layer for the
# small-blob test), saves it with `skopeo copy ... docker-archive:`, then measures:
#   build   regpress build vs `skopeo copy docker-archive:IN oci:OUT`, for gzip, zstd and none:
#           wall, CPU (user+sys), peak RSS, output bytes; the median of $BENCH_RUNS runs;
#           a rebuild of unchanged input into the same tree; a build of a 2 GB layer (peak RSS);
#   serve   one tree served by `regpress serve` (lighttpd) and by registry:2 (Debian
#           docker-registry, the same image pushed with skopeo, the same TLS certificate), loaded
#           with wrk over TLS on 127.0.0.1: manifest GETs/s, small-blob GETs/s, large-blob GB/s.
# Prints a table of ratios (regpress/peer) with the targets of issue 7 and PASS/MISS, and writes
# the same as JSON to $BENCH_JSON when set. Timing targets are reported, never asserted: the exit
# status is 0 whenever every measurement was made.
#
# Environment:
#   BENCH_DIR      work and cache directory (default /var/tmp/regpress-bench); inputs are kept
#                  there between runs, everything else is removed at exit
#   BENCH_RUNS     runs per build measurement (default 3; 1 with BENCH_QUICK=1); medians reported
#   BENCH_QUICK=1  small image (~30 MB, a 64 MB "big" layer, 1 s wrk runs): the same code paths,
#                  for CI (tests/e2e/90-bench-smoke.sh)
#   BENCH_JSON     also write the results as JSON to this file
#   BENCH_SECONDS  duration of each wrk run (default 5; 1 with BENCH_QUICK=1)
#   BENCH_BIG_MB   size of the big layer in MB (default 2000; 64 with BENCH_QUICK=1)
#
# Page cache: the input is read once before the runs, so every run of both peers reads it from
# memory; outputs are flushed (sync) before each timed run, so no run pays for another's writes.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-${REGPRESS:-$HERE/../../regpress}}
QUICK=${BENCH_QUICK:-0}
BENCH_DIR=${BENCH_DIR:-/var/tmp/regpress-bench}
if [ "$QUICK" = 1 ]; then
	RUNS=${BENCH_RUNS:-1} SECS=${BENCH_SECONDS:-1} BIG_MB=${BENCH_BIG_MB:-64} MODE=quick
	LAYERS=(15 10 5)
else
	RUNS=${BENCH_RUNS:-3} SECS=${BENCH_SECONDS:-5} BIG_MB=${BENCH_BIG_MB:-2000} MODE=full
	LAYERS=(340 250 120)
fi
# Where each layer's files come from: the first directories that exist, in order. A Go toolchain
# where there is one, else LLVM and JDKs; compilers and shared libraries; documentation.
SOURCES=(
	"$(printf '%s,' /usr/lib/go-* /usr/lib/go /usr/local/go /usr/lib/llvm-* /usr/lib/jvm /usr/lib/x86_64-linux-gnu /usr/lib)"
	"/usr/lib/gcc,/usr/libexec,/usr/lib/x86_64-linux-gnu,/usr/lib,/usr/bin"
	"/usr/share/doc,/usr/share/man,/usr/share/locale,/usr/share"
)
# Bump when the recipe changes: cached inputs made by another recipe are rebuilt.
RECIPE="v1 ${LAYERS[*]} ${SOURCES[*]}"

die() {
	echo "bench: $*" >&2
	exit 1
}

for tool in skopeo umoci wrk docker-registry python3 curl; do
	command -v "$tool" >/dev/null || die "$tool is not installed (make deps installs it)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time, Debian package 'time') is not installed"
[ -x "$BIN" ] || die "no regpress binary at '$BIN' (make, or pass its path)"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

IN_DIR=$BENCH_DIR/input-$MODE
mkdir -p "$IN_DIR"
W=$(mktemp -d "$BENCH_DIR/work.XXXXXX")
chmod 755 "$BENCH_DIR" "$W" # lighttpd serves as www-data when started as root
RAW=$W/raw.txt
: >"$RAW"
PIDS=()

# stop PID: SIGTERM to the session it leads, then SIGKILL after 5 s.
stop() {
	local pid=$1 i
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		stop "$pid"
	done
	PIDS=()
	[ "${KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

log() { printf '# %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# inputs (cached)

arch() {
	case $(uname -m) in
	x86_64) echo amd64 ;;
	aarch64) echo arm64 ;;
	*) uname -m ;;
	esac
}

make_input() {
	local L=$IN_DIR/layout t spec=() i
	rm -rf "$IN_DIR/layers" "$L" "$IN_DIR/in.tar" "$IN_DIR/recipe"
	for i in "${!LAYERS[@]}"; do
		spec+=("${LAYERS[$i]}:${SOURCES[$i]}")
	done
	python3 "$HERE/mkinput.py" layers "$IN_DIR/layers" "${spec[@]}" >&2
	umoci init --layout "$L"
	umoci new --image "$L:bench"
	umoci config --image "$L:bench" --os linux --architecture "$(arch)" --config.cmd /bin/sh
	for t in "$IN_DIR"/layers/layer*.tar; do
		umoci raw add-layer --image "$L:bench" "$t"
	done
	umoci gc --layout "$L"
	skopeo copy -q "oci:$L:bench" "docker-archive:$IN_DIR/in.tar.tmp:bench/app:1"
	mv "$IN_DIR/in.tar.tmp" "$IN_DIR/in.tar"
	rm -rf "$IN_DIR/layers" "$L"
	printf '%s\n' "$RECIPE" >"$IN_DIR/recipe"
}

if [ ! -s "$IN_DIR/in.tar" ] || [ "$(cat "$IN_DIR/recipe" 2>/dev/null)" != "$RECIPE" ]; then
	log "making the $MODE input image in $IN_DIR (once)"
	make_input
fi
IN=$IN_DIR/in.tar
if [ ! -s "$IN_DIR/big-$BIG_MB.tar" ]; then
	log "making a $BIG_MB MB single-layer input (once)"
	rm -f "$IN_DIR"/big-*.tar
	python3 "$HERE/mkinput.py" big "$IN_DIR/big-$BIG_MB.tar" "$BIG_MB" >&2
fi
BIG=$IN_DIR/big-$BIG_MB.tar

# ---------------------------------------------------------------------------------------------
# measuring

# put KEY VALUE: one raw measurement; report.py takes the median of each key.
put() { printf '%s %s\n' "$1" "$2" >>"$RAW"; }

# measure KEY CMD...: flush earlier writes, run CMD under GNU time, record KEY.wall (s), KEY.cpu
# (user+sys, s) and KEY.rss (peak resident set, KB).
measure() {
	local key=$1 wall user sys rss
	shift
	sync
	if ! /usr/bin/time -f '%e %U %S %M' -o "$W/time.out" "$@" >"$W/cmd.log" 2>&1; then
		cat "$W/cmd.log" >&2
		die "$key: '$*' failed"
	fi
	read -r wall user sys rss <"$W/time.out"
	put "$key.wall" "$wall"
	put "$key.cpu" "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')"
	put "$key.rss" "$rss"
}

# bytes DIR: total size of the files under DIR/blobs (layers, configs, manifests).
bytes() { find "$1/blobs" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

versions() {
	printf 'regpress %s; %s; docker-registry %s; %s; libdeflate %s, libzstd %s' \
		"$(git -C "$HERE" describe --always --dirty 2>/dev/null || echo '?')" \
		"$(skopeo --version | head -1)" \
		"$(docker-registry --version 2>/dev/null | awk '{print $NF}' | head -1)" \
		"$(wrk --version 2>&1 | head -1 | awk '{print $1, $2}')" \
		"$(dpkg-query -W -f='${Version}' libdeflate0 2>/dev/null || echo '?')" \
		"$(dpkg-query -W -f='${Version}' libzstd1 2>/dev/null || echo '?')"
}

put input.bytes "$(stat -c %s "$IN")"
put input.layers "$(tar -xOf "$IN" manifest.json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["Layers"]))')"
put big.bytes "$(stat -c %s "$BIG")"
put runs "$RUNS"
put quick "$QUICK"
put cores "$(nproc)"
printf 'versions %s\n' "$(versions)" >>"$RAW"

log "warming the page cache with the inputs"
cat "$IN" "$BIG" >/dev/null

# skopeo's flags for each compression (from docker-archive's uncompressed layers to an OCI layout;
# without a flag skopeo compresses with gzip).
skopeo_flags() {
	case $1 in
	gzip) echo "--dest-compress-format gzip" ;;
	zstd) echo "--dest-compress-format zstd" ;;
	none) echo "--dest-oci-accept-uncompressed-layers" ;;
	esac
}

for ((run = 1; run <= RUNS; run++)); do
	for comp in gzip zstd none; do
		log "run $run/$RUNS: build $comp: regpress, then skopeo"
		rm -rf "$W/rp" "$W/sk"
		measure "build.$comp.regpress" "$BIN" build -q --compression "$comp" -o "$W/rp" "$IN"
		put "build.$comp.regpress.bytes" "$(bytes "$W/rp")"
		if [ "$comp" = gzip ]; then
			measure build.rebuild.regpress "$BIN" build -q -o "$W/rp" "$IN"
			rm -rf "$W/serve-tree"
			mv "$W/rp" "$W/serve-tree"
		fi
		# shellcheck disable=SC2046 # flags are words
		measure "build.$comp.skopeo" skopeo copy -q $(skopeo_flags "$comp") \
			"docker-archive:$IN" "oci:$W/sk:bench"
		put "build.$comp.skopeo.bytes" "$(bytes "$W/sk")"
		rm -rf "$W/rp" "$W/sk"
	done
done

for comp in gzip zstd; do
	log "build of one $BIG_MB MB layer ($comp)"
	measure "big.$comp.regpress" "$BIN" build -q --compression "$comp" -o "$W/big" "$BIG"
	rm -rf "$W/big"
done

# ---------------------------------------------------------------------------------------------
# serving

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# spawn LOG CMD...: CMD in its own session, in the background; sets SPAWNED.
spawn() {
	local log=$1
	shift
	setsid "$@" >"$log" 2>&1 </dev/null &
	SPAWNED=$!
	PIDS+=("$SPAWNED")
}

# wait_up URL PID LOG: until URL answers over TLS (10 s at most).
wait_up() {
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "server for $1 exited"; }
		curl -fsS -o /dev/null --max-time 2 --cacert "$CERTS/ca.crt" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	cat "$3" >&2
	die "$1 did not answer"
}

CERTS=$BENCH_DIR/certs
if [ ! -s "$CERTS/server.key" ]; then
	rm -rf "$CERTS"
	"$BIN" certs -o "$CERTS" --ip 127.0.0.1 --host localhost >/dev/null
fi
mkdir -p "$W/trust"
cp "$CERTS/ca.crt" "$W/trust/ca.crt" # skopeo --*-cert-dir: only the CA

P1=$(free_port)
spawn "$W/serve.log" "$BIN" serve "$W/serve-tree" --cert "$CERTS/server.crt" \
	--key "$CERTS/server.key" --listen "127.0.0.1:$P1"
RP_PID=$SPAWNED
wait_up "https://127.0.0.1:$P1/v2/" "$RP_PID" "$W/serve.log"

P2=$(free_port)
mkdir -p "$W/registry"
cat >"$W/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $W/registry
http:
  addr: 127.0.0.1:$P2
  tls:
    certificate: $CERTS/server.crt
    key: $CERTS/server.key
EOF
spawn "$W/registry.log" docker-registry serve "$W/registry.yml"
REG_PID=$SPAWNED
wait_up "https://127.0.0.1:$P2/v2/" "$REG_PID" "$W/registry.log"

log "pushing the image from regpress serve to registry:2 with skopeo"
skopeo copy -q --src-cert-dir "$W/trust" --dest-cert-dir "$W/trust" \
	"docker://127.0.0.1:$P1/bench/app:1" "docker://127.0.0.1:$P2/bench/app:1"

ACCEPT="Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
MANIFEST=$W/manifest.json
curl -fsS --cacert "$CERTS/ca.crt" -H "$ACCEPT" -o "$MANIFEST" \
	"https://127.0.0.1:$P1/v2/bench/app/manifests/1"
d1=$(curl -fsS --cacert "$CERTS/ca.crt" -H "$ACCEPT" "https://127.0.0.1:$P1/v2/bench/app/manifests/1" | sha256sum | cut -d' ' -f1)
d2=$(curl -fsS --cacert "$CERTS/ca.crt" -H "$ACCEPT" "https://127.0.0.1:$P2/v2/bench/app/manifests/1" | sha256sum | cut -d' ' -f1)
[ "$d1" = "$d2" ] || die "the two servers serve different manifests ($d1, $d2)"
# The blobs: config; the smallest layer (the 100 KB one); the largest layer.
CONFIG=$(python3 -c 'import json,sys; m = json.load(open(sys.argv[1])); print(m["config"]["digest"], m["config"]["size"])' "$MANIFEST")
SMALL=$(python3 -c 'import json,sys; m = json.load(open(sys.argv[1])); l = min(m["layers"], key=lambda l: l["size"]); print(l["digest"], l["size"])' "$MANIFEST")
LARGE=$(python3 -c 'import json,sys; m = json.load(open(sys.argv[1])); l = max(m["layers"], key=lambda l: l["size"]); print(l["digest"], l["size"])' "$MANIFEST")
put serve.manifest.size "$(stat -c %s "$MANIFEST")"
put serve.config.size "${CONFIG#* }"
put serve.small.size "${SMALL#* }"
put serve.large.size "${LARGE#* }"

# load KEY URL CONNECTIONS [HEADER]: wrk over TLS for $SECS seconds; records KEY (requests/s)
# and KEY.client_cpu (wrk's CPU use, % of one core: near 100, the client is the limit).
# Every response must be 2xx: a benchmark of error pages would be meaningless.
load() {
	local key=$1 url=$2 conns=$3 out rate
	shift 3
	out=$(/usr/bin/time -f '%P' -o "$W/wrk.time" \
		wrk -t1 -c"$conns" -d"${SECS}s" --timeout 30s ${1:+-H "$1"} "$url") ||
		die "wrk $url failed"
	put "$key.client_cpu" "$(tr -d '%' <"$W/wrk.time")"
	if grep -q -E 'Non-2xx or 3xx|Socket errors' <<<"$out"; then
		printf '%s\n' "$out" >&2
		die "$key: errors from $url"
	fi
	rate=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
	[ -n "$rate" ] || { printf '%s\n' "$out" >&2; die "$key: no rate from wrk"; }
	put "$key" "$rate"
}

# ktls_sends: how many TLS send contexts the kernel has set up (/proc/net/tls_stat: TlsTxSw and
# TlsTxDevice), or "absent" when the kernel has no tls module. lighttpd with OpenSSL 3 sends
# files with SSL_sendfile once the kernel takes the TLS send path; otherwise it encrypts in
# user space, 16 KB at a time.
ktls_sends() {
	if [ -r /proc/net/tls_stat ]; then
		awk '$1 == "TlsTxSw" || $1 == "TlsTxDevice" { n += $2 } END { print n + 0 }' /proc/net/tls_stat
	else
		echo absent
	fi
}
KTLS_BEFORE=$(ktls_sends)

# The peers alternate, test by test, for $RUNS rounds: a change in the machine's load hits both.
for ((run = 1; run <= RUNS; run++)); do
	log "run $run/$RUNS: serve: wrk, ${SECS} s per test, regpress and registry:2 in turn"
	for test in manifest config small large; do
		for peer in regpress registry; do
			if [ $peer = regpress ]; then port=$P1; else port=$P2; fi
			base=https://127.0.0.1:$port/v2/bench/app
			case $test in
			manifest) load "serve.manifest.$peer" "$base/manifests/1" 16 "$ACCEPT" ;;
			config) load "serve.config.$peer" "$base/blobs/${CONFIG% *}" 16 ;;
			small) load "serve.small.$peer" "$base/blobs/${SMALL% *}" 16 ;;
			large) load "serve.large.$peer" "$base/blobs/${LARGE% *}" 2 ;;
			esac
		done
	done
done
KTLS_AFTER=$(ktls_sends)
if [ "$KTLS_AFTER" = absent ]; then
	ktls="absent: this kernel has no tls module, so lighttpd encrypted in user space"
elif [ "$KTLS_BEFORE" = absent ]; then
	ktls="loaded during the run ($KTLS_AFTER kernel TLS send contexts)"
else
	ktls="$((KTLS_AFTER - KTLS_BEFORE)) kernel TLS send contexts during the serve tests"
fi
printf 'serve.ktls %s\n' "$ktls" >>"$RAW"
stop "$RP_PID"
stop "$REG_PID"
PIDS=()

python3 "$HERE/report.py" "$RAW" "${BENCH_JSON:-}"
