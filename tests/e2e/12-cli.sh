#!/usr/bin/env bash
# The command line as a user meets it (issue 15 item 5, issue 18 item 9). Every command: --help
# on stdout with exit 0; a bad option, an option without its value and missing arguments as two
# lines on stderr ("regpress CMD: <what is wrong>", "Try 'regpress CMD --help'.") with exit 2;
# output that cannot be written (>/dev/full) as exit 1 with exactly "regpress CMD: writing
# standard output: No space left on device". Then main's own options, the lock wait line, and
# what build, rm, media, import and serve say.
# shellcheck disable=SC2016 # single-quoted bash -c programs take their arguments as $1...
# shellcheck disable=SC2317 # helpers run through `check`, which shellcheck cannot follow
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_workspace

CMDS=(build rm gc serve certs client-config snapshot verify diff keygen media import ls inspect)

# usage_form CMD FIRST ARG...: `regpress CMD ARG...` exits 2, prints nothing on stdout, and on
# stderr exactly "regpress CMD: FIRST" and the line pointing to CMD's help.
usage_form() {
	local cmd=$1 first=$2 rc=0
	shift 2
	"$REGPRESS" "$cmd" "$@" >"$W/u.out" 2>"$W/u.err" </dev/null || rc=$?
	printf "regpress %s: %s\nTry 'regpress %s --help'.\n" "$cmd" "$first" "$cmd" >"$W/u.want"
	cat "$W/u.err"
	[ "$rc" -eq 2 ] || { echo "exit $rc, want 2"; return 1; }
	[ ! -s "$W/u.out" ] || { echo "something on stdout:"; cat "$W/u.out"; return 1; }
	diff "$W/u.want" "$W/u.err"
}

# help_ok ARG...: exit 0, the usage on stdout, nothing on stderr.
help_ok() {
	local rc=0
	"$REGPRESS" "$@" >"$W/h.out" 2>"$W/h.err" || rc=$?
	[ "$rc" -eq 0 ] || { echo "exit $rc"; cat "$W/h.err"; return 1; }
	[ ! -s "$W/h.err" ] || { echo "something on stderr:"; cat "$W/h.err"; return 1; }
	head -1 "$W/h.out" | grep -q "^usage: regpress" || { head -3 "$W/h.out"; return 1; }
}

# --- help ----------------------------------------------------------------------------------------
for c in "${CMDS[@]}"; do
	check "$c --help: exit 0, usage on stdout, nothing on stderr" help_ok "$c" --help
	check "$c -h: the same" help_ok "$c" -h
	check "help $c: the same text as $c --help" \
		bash -c 'cmp <("$1" help "$2") <("$1" "$2" --help)' _ "$REGPRESS" "$c"
done
check "regpress --help: exit 0 on stdout, every command and --version listed" bash -c '
	out=$("$1" --help) && for c in "${@:2}"; do grep -q "^  $c " <<<"$out" || exit 1; done &&
	grep -q -- "-V, --version" <<<"$out"' _ "$REGPRESS" "${CMDS[@]}"
check "regpress -V and --version: the version on stdout" bash -c '
	[ "$("$1" -V)" = "$("$1" --version)" ] && "$1" -V | grep -E -q "^regpress [0-9]+\.[0-9]+\.[0-9]+$"' \
	_ "$REGPRESS"
printf "regpress: 'nosuch' is not a command\nTry 'regpress --help'.\n" >"$W/n.want"
check "regpress nosuch: two lines, exit 2" bash -c '
	rc=0; "$1" nosuch 2>"$2/n.err" >/dev/null || rc=$?; [ "$rc" = 2 ] && diff "$2/n.want" "$2/n.err"' \
	_ "$REGPRESS" "$W"
check "build --help: Docker 20.10 cannot pull zstd layers" bash -c '
	out=$("$1" build --help) && grep -A1 -- "--compression ALG" <<<"$out" | grep -q "Docker 20.10"' \
	_ "$REGPRESS"
# A number in a help text is the one the code checks.
check "serve --help: the workers range is the one --workers checks" bash -c '
	max=$("$1" serve --help | sed -n "s/.*worker processes, 1 to \([0-9]*\).*/\1/p") && [ -n "$max" ] &&
	ok=$("$1" serve t --cert c --key k --workers "$max" --bogus 2>&1 || true) &&
	over=$("$1" serve t --cert c --key k --workers "$((max + 1))" 2>&1 || true) &&
	grep -q "unknown option" <<<"$ok" && grep -q "wants 1 to $max$" <<<"$over"' _ "$REGPRESS"

# --- usage errors --------------------------------------------------------------------------------
for c in "${CMDS[@]}"; do
	check "$c --bogus: two lines, exit 2" usage_form "$c" "unknown option '--bogus'" --bogus
	check "$c -Z: two lines, exit 2" usage_form "$c" "unknown option '-Z'" -Z
done
# Missing arguments: each command with nothing at all.
check "build: no -o" usage_form build "no output tree (-o TREE)"
check "rm: no TREE" usage_form rm "expected TREE and at least one REF"
check "gc: no TREE" usage_form gc "expected one TREE"
check "serve: no TREE" usage_form serve "no TREE given"
check "certs: no -o" usage_form certs "-o DIR is required"
check "client-config: no --server" usage_form client-config "--server and --ca are required"
check "snapshot: no TREE" usage_form snapshot "expected one TREE"
check "verify: no TREE" usage_form verify "expected one TREE"
check "diff: no OLD and NEW" usage_form diff "expected OLD and NEW"
check "keygen: no PREFIX" usage_form keygen "expected one PREFIX"
check "media: no TREE" usage_form media "expected one TREE"
check "import: no VOLUME" usage_form import "expected at least one VOLUME"
# Options without their value (the last argument), short and long.
check "build -o: needs a value" usage_form build "option '-o' needs a value" -o
check "build --output: needs a value" usage_form build "option '--output' needs a value" --output
check "build --out (a prefix): named in full" usage_form build "option '--output' needs a value" --out
check "serve --cert: needs a value" usage_form serve "option '--cert' needs a value" t --cert
check "certs --host: needs a value" usage_form certs "option '--host' needs a value" -o d --host
check "client-config --ca: needs a value" usage_form client-config "option '--ca' needs a value" --ca
check "snapshot --sign: needs a value" usage_form snapshot "option '--sign' needs a value" t --sign
check "verify --pubkey: needs a value" usage_form verify "option '--pubkey' needs a value" t --pubkey
check "media --size: needs a value" usage_form media "option '--size' needs a value" t --size
check "import --into: needs a value" usage_form import "option '--into' needs a value" v --into
check "build --json=1: takes no value" usage_form build "option '--json' takes no value" --json=1
check "build --pr: ambiguous, the candidates named" \
	usage_form build "option '--pr' is ambiguous (--prefix, --prune-missing, --progress)" --pr x
check "build -qZ: the unknown letter of a group" usage_form build "unknown option '-Z'" -qZ
check "diff a b c: one too many" usage_form diff "expected OLD and NEW" a b c

# --- a tree and what each command prints ---------------------------------------------------------
TREE=$W/tree
"$REGPRESS" build -q -o "$TREE" "$FX/base.tar" "$FX/app.tar" || e2e_die "build"
"$REGPRESS" certs -o "$W/tls" --host localhost --ip 127.0.0.1 >/dev/null || e2e_die "certs"
"$REGPRESS" media -q "$TREE" -o "$W/vols" --size 4.7G || e2e_die "media --size 4.7G"

# full PREFIX ARG...: `regpress ARG... >/dev/full` exits 1 with exactly "PREFIX: writing
# standard output: No space left on device" on stderr.
full() {
	local prefix=$1 rc=0
	shift
	"$REGPRESS" "$@" >/dev/full 2>"$W/f.err" </dev/null || rc=$?
	echo "$prefix: writing standard output: No space left on device" >"$W/f.want"
	cat "$W/f.err"
	[ "$rc" -eq 1 ] || { echo "exit $rc, want 1"; return 1; }
	diff "$W/f.want" "$W/f.err"
}
if [ -w /dev/full ]; then
	cp -a "$TREE" "$W/t-rm"
	check "build >/dev/full: exit 1, one line" full "regpress build" build -o "$W/t-full" "$FX/base.tar"
	check "build -q >/dev/full: nothing to write, exit 0" "$REGPRESS" build -q -o "$W/t-full" "$FX/base.tar"
	check "snapshot >/dev/full: exit 1, one line (no id line)" full "regpress snapshot" snapshot "$TREE"
	check "snapshot --json >/dev/full" full "regpress snapshot" snapshot --json "$TREE"
	check "diff >/dev/full" full "regpress diff" diff "$TREE" "$TREE"
	check "verify >/dev/full" full "regpress verify" verify "$TREE"
	check "rm >/dev/full" full "regpress rm" rm "$W/t-rm" library/base:1
	check "gc >/dev/full" full "regpress gc" gc "$W/t-rm"
	check "media >/dev/full" full "regpress media" media "$TREE" -o "$W/vols-full" --size dvd
	check "import >/dev/full" full "regpress import" import "$W/vols/volume-01" --into "$W/t-import"
	check "import --check >/dev/full" full "regpress import" import --check "$W/vols/volume-01"
	check "keygen >/dev/full" full "regpress keygen" keygen -n "$W/key"
	check "certs >/dev/full" full "regpress certs" certs -o "$W/tls-full" --host localhost
	check "client-config >/dev/full" full "regpress client-config" \
		client-config --server localhost:5000 --ca "$W/tls/ca.crt" -o "$W/cc-full"
	check "build --help >/dev/full" full "regpress build" build --help
	check "--version >/dev/full" full "regpress" --version
	check "a failed command keeps its own message and status" bash -c '
		rc=0; "$1" snapshot "$2/nosuch" >/dev/full 2>"$2/k.err" || rc=$?; cat "$2/k.err"
		[ "$rc" = 1 ] && [ "$(wc -l <"$2/k.err")" = 1 ] && ! grep -q "standard output" "$2/k.err"' \
		_ "$REGPRESS" "$W"
else
	e2e_log "/dev/full is not writable here: the standard output checks are skipped"
fi

# --- what the commands say -----------------------------------------------------------------------
digest_of() { "$REGPRESS" snapshot "$1" 2>/dev/null | awk -v r="$2" -v t="$3" '$1 == "tag" && $2 == r && $3 == t { print $4 }'; }

rm_says() {
	local t=$W/t-says base app out
	rm -rf "$t"
	cp -a "$TREE" "$t"
	base=$(digest_of "$t" library/base 1)
	app=$(digest_of "$t" example.com/team/app 1.0)
	out=$("$REGPRESS" rm "$t" base:1 "example.com/team/app@$app")
	echo "$out"
	diff <(printf 'removed library/base:1 (%s)\nremoved example.com/team/app@%s\n' "$base" "$app") \
		<(head -2 <<<"$out")
	[ "$(sed -n 3p <<<"$out")" = "snapshot $("$REGPRESS" snapshot "$t" 2>&1 >/dev/null | awk '{print $2}')" ]
}
check "rm: one line per REF saying what it removed, then the snapshot" rm_says

retag_says() {
	local t=$W/t-retag old new out
	rm -rf "$t"
	cp -a "$TREE" "$t"
	old=$(digest_of "$t" library/base 1)
	# The same image as OCI with zstd layers: another manifest under the same tag.
	out=$("$REGPRESS" build -o "$t" --compression zstd "$FX/base.tar")
	echo "$out"
	new=$(digest_of "$t" library/base 1)
	[ "$old" != "$new" ] && grep -qx "library/base:1 $new (was $old)" <<<"$out"
	out=$("$REGPRESS" build --json -o "$t" --compression zstd "$FX/base.tar")
	jq -e '.images[0].ref == "library/base:1" and .images[0].was == null' <<<"$out" >/dev/null
	out=$("$REGPRESS" build --json -o "$t" "$FX/base.tar")
	jq -e --arg old "$new" --arg new "$old" \
		'.images[0].was == $old and .images[0].digest == $new' <<<"$out" >/dev/null
}
check "build: a retag says what the tag named (was ...), in --json too" retag_says

lock_wait() {
	local rc=0
	rm -f "$W/held"
	flock -x "$TREE" -c "touch '$W/held'; sleep 2" &
	e2e_wait_for 50 test -e "$W/held"
	"$REGPRESS" build -q -o "$TREE" "$FX/base.tar" 2>"$W/lock.err" || rc=$?
	wait
	cat "$W/lock.err"
	[ "$rc" -eq 0 ] && diff <(echo "regpress build: waiting for another writer on $TREE") "$W/lock.err"
}
if command -v flock >/dev/null; then
	check "build waiting for the tree's lock: one line saying so" lock_wait
else
	e2e_log "flock(1) is not installed: the lock wait line is not checked"
fi

check "media --size 4.7G: 4.7 GiB volumes" \
	bash -c '"$1" media "$2" -o "$3/vols-47" --size 4.7G | grep -q " of 4.7 GiB "' _ "$REGPRESS" "$TREE" "$W"
check "media --size 4.7: bytes are whole" usage_form media \
	"--size '4.7': not a medium size (dvd, dvd-dl, bd, bd-dl, or bytes with an optional K, M or G: 300K, 4480M, 4.7G)" \
	"$TREE" -o "$W/x" --size 4.7

delta_check() {
	local out
	cp -a "$TREE" "$W/t-new"
	"$REGPRESS" build -q -o "$W/t-new" "$FX/multi.tar"
	"$REGPRESS" media -q "$W/t-new" -o "$W/delta" --size dvd --since "$TREE"
	out=$("$REGPRESS" import --check "$W/delta/volume-01")
	echo "$out"
	grep -E -q "^$W/delta/volume-01: ok: volume 1 of 1 of snapshot sha256:[0-9a-f]{64} \(delta from sha256:[0-9a-f]{64}\), [0-9]+ files?, " <<<"$out"
}
check "import --check on a delta: the parenthesis closed" delta_check

# not_a_volume FILE WHAT: import (and import --check) say what FILE is instead of a volume.
not_a_volume() {
	local rc=0
	"$REGPRESS" import "$1" --into "$W/t-none" 2>"$W/nv.err" || rc=$?
	cat "$W/nv.err"
	[ "$rc" -eq 1 ] &&
		diff <(echo "regpress import: '$1': not a volume directory or ISO image: $2") "$W/nv.err" &&
		[ ! -e "$W/t-none" ] || return 1
	rc=0
	"$REGPRESS" import --check "$1" 2>"$W/nv.err" || rc=$?
	[ "$rc" -eq 1 ] && grep -q -F "'$1': not a volume directory or ISO image: $2" "$W/nv.err"
}
python3 -c 'import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z: z.writestr("REGPRESS-VOLUME", "x")' "$W/vol.zip"
check "import of a ZIP file: named as one" not_a_volume "$W/vol.zip" "a ZIP archive"
check "import of a tarball: named as one, pointing to build" not_a_volume "$FX/base.tar" \
	"a tar archive (regpress import takes volumes written by regpress media; a tarball goes to regpress build)"
gzip -c "$FX/base.tar" >"$W/base.tar.gz"
check "import of a gzipped tarball: named as compressed" not_a_volume "$W/base.tar.gz" \
	"a gzip-compressed file (regpress import takes volumes written by regpress media; a compressed tarball goes to regpress build)"

check "certs: one line per file written" bash -c '
	out=$("$1" certs -o "$2/tls2" --host localhost --client ci) && echo "$out" &&
	[ "$(wc -l <<<"$out")" = 6 ] && grep -q "^CA certificate *$2/tls2/ca.crt" <<<"$out" &&
	grep -q "^client key *$2/tls2/client.key$" <<<"$out"' _ "$REGPRESS" "$W"
check "client-config: says where the files are" bash -c '
	"$1" client-config --server localhost:5000 --ca "$2/tls/ca.crt" -o "$2/cc" |
	grep -qx "client configuration in $2/cc (see $2/cc/README.regpress)"' _ "$REGPRESS" "$W"

# serve: one line on stderr saying where it serves, before lighttpd runs.
CERTS=$W/tls
e2e_serve "$TREE"
check "serve: says where it serves and as whom lighttpd runs" bash -c '
	grep -E -q "^regpress serve: serving $2 at https://127\.0\.0\.1:$3/v2/ \(lighttpd as [^ )]+\)$" "$1"' \
	_ "$SERVE_LOG" "$TREE" "$PORT"
check_here "serve stops on SIGTERM" e2e_serve_stop

e2e_done
