#!/usr/bin/env bash
# Trust across the gap (issue 16), with the real signify-openbsd on both sides: keys made by
# signify (with a passphrase) sign in regpress and regpress's keys sign in signify; release 1 is
# signed, shipped on ISO images and imported with --pubkey; release 2 (a retag and a new image)
# goes over as a delta and as a full set; the release-1 discs inserted again are refused (tree
# byte-identical) until --allow-downgrade; sets signed by another key, with a tampered signature,
# with a signature file missing from one volume, or unsigned over a signed tree are refused
# before anything changes; a build that keeps the snapshot id keeps the signature, one that
# changes it says so in one line.
# shellcheck disable=SC2016 # single-quoted bash -c programs take their arguments as $1...
# shellcheck disable=SC2317 # helpers run through `check`, which shellcheck cannot follow
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

command -v signify-openbsd >/dev/null || e2e_die "signify-openbsd is not installed"
e2e_tmpdir
e2e_workspace
export SOURCE_DATE_EPOCH=1700000000
K=$W/keys
mkdir -p "$K"

snap_id() { "$REGPRESS" snapshot "$1" 2>&1 >/dev/null | awk '{print $2}'; }
state() { e2e_tree_state "$1"; }
# refused TREE TEXT CMD...: CMD fails with exit 1 and one line on stderr containing TEXT, and
# TREE is byte for byte as it was.
refused() {
	local tree=$1 text=$2 before rc=0
	shift 2
	before=$(state "$tree")
	"$@" >"$W/out" 2>"$W/err" || rc=$?
	cat "$W/err"
	[ "$rc" -eq 1 ] || { echo "want exit 1, got $rc"; return 1; }
	[ "$(wc -l <"$W/err")" -eq 1 ] || { echo "want one line on stderr"; return 1; }
	grep -qF -- "$text" "$W/err" || { echo "the message does not say: $text"; return 1; }
	diff <(echo "$before") <(state "$tree") || { echo "the tree changed"; return 1; }
}
# on_tty INPUT CMD...: CMD on a terminal of its own (script(1)), INPUT typed into it.
on_tty() {
	local input=$1
	shift
	printf '%b' "$input" | script -qec "$(printf '%q ' "$@")" /dev/null
}
# With no terminal at all: signify then reads the passphrase from standard input.
notty() { setsid -w "$@"; }
# reseal SETDIR: rewrite every volume's manifest to match its files (file lines, set id).
reseal() {
	python3 - "$1" <<'EOF'
import hashlib, pathlib, re, sys
for vol in sorted(pathlib.Path(sys.argv[1]).glob("volume-*")):
    path = vol / "REGPRESS-VOLUME"
    man = path.read_text()
    def line(m):
        data = (vol / m.group(1)).read_bytes()
        return "file %s sha256:%s %d" % (m.group(1), hashlib.sha256(data).hexdigest(), len(data))
    man = re.sub(r"^file (\S+) sha256:[0-9a-f]{64} \d+$", line, man, flags=re.M)
    shared = man[: man.index("\nvolume ") + 1]
    man = re.sub(r"^set sha256:[0-9a-f]{64}$",
                 "set sha256:" + hashlib.sha256(shared.encode()).hexdigest(), man, flags=re.M)
    path.write_text(man)
EOF
}
export -f snap_id state refused on_tty notty reseal e2e_tree_state
export W K

# --- keys ----------------------------------------------------------------------------------------
printf 'release pass\nrelease pass\n' |
	notty signify-openbsd -G -c "release team" -p "$K/rel.pub" -s "$K/rel.sec" ||
	e2e_die "signify -G"
printf 'release pass\n' >"$K/rel.pass"
printf 'other pass\n' >"$K/other.pass"
"$REGPRESS" keygen --passphrase-file "$K/other.pass" "$K/other" >/dev/null || e2e_die "keygen"
printf 'hello\n' >"$W/msg"

check "keygen without a terminal, a passphrase file or -n: a usage error" bash -c '
	rc=0; setsid -w "$1" keygen "$2/k0" </dev/null 2>"$2/k0.err" || rc=$?
	cat "$2/k0.err"; [ "$rc" -eq 2 ] && [ "$(wc -l <"$2/k0.err")" -eq 2 ] &&
	grep -q "no terminal to ask for a passphrase" "$2/k0.err" && [ ! -e "$2/k0.sec" ]' \
	_ "$REGPRESS" "$K"
check "keygen on a terminal asks twice; the key signs in signify-openbsd" bash -c '
	on_tty "tty pass\ntty pass\n" "$1" keygen "$2/tty" && test "$(stat -c %a "$2/tty.sec")" = 600 &&
	printf "tty pass\n" | notty signify-openbsd -S -s "$2/tty.sec" -m "$3" -x "$3.sig" &&
	signify-openbsd -V -q -p "$2/tty.pub" -m "$3" -x "$3.sig" &&
	! printf "wrong\n" | notty signify-openbsd -S -s "$2/tty.sec" -m "$3" -x "$3.sig2"' \
	_ "$REGPRESS" "$K" "$W/msg"
check "keygen on a terminal: passphrases that differ make no key" bash -c '
	! on_tty "one\ntwo\n" "$1" keygen "$2/differ" >"$2/differ.out" 2>&1;
	grep -q "the passphrases do not match" "$2/differ.out" && [ ! -e "$2/differ.sec" ]' \
	_ "$REGPRESS" "$K"
check "keygen -n: an unprotected key, as signify -G -n" bash -c '
	"$1" keygen -n "$2/plain" >/dev/null &&
	notty signify-openbsd -S -s "$2/plain.sec" -m "$3" -x "$3.psig" </dev/null &&
	signify-openbsd -V -q -p "$2/plain.pub" -m "$3" -x "$3.psig"' _ "$REGPRESS" "$K" "$W/msg"

# --- release 1 on the connected side -------------------------------------------------------------
PUB=$W/publisher
"$REGPRESS" build -q -o "$PUB" "$FX/base.tar" "$FX/app.tar" || e2e_die "build release 1"
ID1=$(snap_id "$PUB")
check "snapshot --sign: a protected key without a terminal or passphrase file" \
	refused "$PUB" "is passphrase-protected: give --passphrase-file FILE or run on a terminal" \
	setsid -w "$REGPRESS" snapshot --sign "$K/rel.sec" "$PUB"
check "snapshot --sign: a wrong passphrase is one clear line" \
	refused "$PUB" "incorrect passphrase" \
	"$REGPRESS" snapshot --sign "$K/rel.sec" --passphrase-file "$K/other.pass" "$PUB"
check "snapshot --sign with signify's key (passphrase on the terminal): release 1" bash -c '
	on_tty "release pass\n" "$1" snapshot --sign "$2/rel.sec" "$3" >"$3.out" 2>&1
	grep -q "(signed: release 1)" "$3.out" && grep -qx "release 1" "$3/registry/release" &&
	grep -qx "snapshot $4" "$3/registry/release" && grep -qx "follows none" "$3/registry/release"' \
	_ "$REGPRESS" "$K" "$PUB" "$ID1"
check "signify-openbsd verifies the snapshot and the release on the publisher's tree" bash -c '
	signify-openbsd -V -q -p "$1" -x "$2/registry/snapshot.sig" -m "$2/registry/snapshot" &&
	signify-openbsd -V -q -p "$1" -x "$2/registry/release.sig" -m "$2/registry/release"' \
	_ "$K/rel.pub" "$PUB"
check "verify --pubkey: signature good, release 1" bash -c '
	"$1" verify --progress=none --pubkey "$2" "$3" | grep -q "signature good, release 1"' \
	_ "$REGPRESS" "$K/rel.pub" "$PUB"
check "a build that leaves the snapshot id unchanged keeps the signature" bash -c '
	before=$(sha256sum "$3"/registry/snapshot.sig "$3"/registry/release*)
	"$1" build -o "$3" "$2/base.tar" >"$3.out" 2>&1 && ! grep -q signature "$3.out" &&
	[ "$(sha256sum "$3"/registry/snapshot.sig "$3"/registry/release*)" = "$before" ]' \
	_ "$REGPRESS" "$FX" "$PUB"
check "gc and an rm of nothing new keep the signature; a key by signify -G -n signs too" bash -c '
	cp -a "$3" "$3-gc" && before=$(sha256sum "$3-gc"/registry/*.sig "$3-gc"/registry/release)
	"$1" gc "$3-gc" >/dev/null && [ "$(sha256sum "$3-gc"/registry/*.sig "$3-gc"/registry/release)" = "$before" ] &&
	notty signify-openbsd -G -n -p "$2/sn.pub" -s "$2/sn.sec" </dev/null &&
	"$1" snapshot --sign "$2/sn.sec" "$3-gc" >/dev/null 2>&1 &&
	"$1" verify --progress=none --pubkey "$2/sn.pub" "$3-gc" | grep -q "release 1"' \
	_ "$REGPRESS" "$K" "$PUB"
check "rm on a signed tree removes the signature and says so in one line" bash -c '
	cp -a "$2" "$2-rm" && "$1" rm "$2-rm" library/base:1 >/dev/null 2>"$2-rm.err"; cat "$2-rm.err"
	[ "$(grep -c . "$2-rm.err")" -eq 1 ] && grep -q "signature of release 1 was removed" "$2-rm.err" &&
	[ ! -e "$2-rm/registry/snapshot.sig" ] && grep -qx "release 1" "$2-rm/registry/release" &&
	"$1" verify --progress=none "$2-rm" >/dev/null' _ "$REGPRESS" "$PUB"
"$REGPRESS" snapshot "$PUB" >"$W/release1.snapshot" 2>/dev/null
# Release 1 on discs: ISO images, three volumes.
"$REGPRESS" media -q "$PUB" -o "$W/r1-iso" --size 150K --iso || e2e_die "media release 1"
"$REGPRESS" media -q "$PUB" -o "$W/r1" --size 150K || e2e_die "media release 1 (dirs)"
check "every volume carries the signed files, listed in REGPRESS-VOLUME" bash -c '
	n=0; for v in "$1"/volume-*; do n=$((n + 1))
		for f in snapshot.sig release release.sig; do
			cmp "$v/$f" "$2/registry/$f" &&
			grep -qx "file $f sha256:$(sha256sum <"$v/$f" | cut -c1-64) $(stat -c %s "$v/$f")" \
				"$v/REGPRESS-VOLUME" || exit 1
		done; done; [ "$n" -ge 2 ]' _ "$W/r1" "$PUB"
check "import --check --pubkey: each disc on its own, signed, release 1" bash -c '
	for v in "$2"/volume-*.iso; do "$1" import --check --pubkey "$3" "$v" |
		grep -q ", signed, release 1$" || exit 1; done' _ "$REGPRESS" "$W/r1-iso" "$K/rel.pub"
check "import --check --pubkey: another key is refused" \
	refused "$W/r1" "signed by a different key than" \
	"$REGPRESS" import --check --pubkey "$K/other.pub" "$W/r1/volume-01"

# --- the enclave ---------------------------------------------------------------------------------
ENC=$W/enclave
check "import --pubkey (any of two keys): the ISO images, one disc per run" bash -c '
	for v in "$2"/volume-*.iso; do
		"$1" import -q --pubkey "$3" --pubkey "$4" "$v" --into "$5" || exit 1; done
	[ "$(snap_id "$5")" = "$6" ]' _ "$REGPRESS" "$W/r1-iso" "$K/other.pub" "$K/rel.pub" "$ENC" "$ID1"
check "the enclave tree: verify --pubkey, and signify-openbsd -V as in the README" bash -c '
	"$1" verify --progress=none --pubkey "$2" "$3" | grep -q "signature good, release 1" &&
	signify-openbsd -V -q -p "$2" -x "$3/registry/snapshot.sig" -m "$3/registry/snapshot" &&
	signify-openbsd -V -q -p "$2" -x "$3/registry/release.sig" -m "$3/registry/release"' \
	_ "$REGPRESS" "$K/rel.pub" "$ENC"
cp -a "$ENC" "$W/enclave-r1"

# --- release 2: a retag and a new image ----------------------------------------------------------
skopeo copy -q "docker-archive:$FX/app.tar:example.com/team/app:1.0" \
	"docker-archive:$W/retag.tar:docker.io/library/base:1" || e2e_die "retag tarball"
check "a build that changes the snapshot removes the signature, in one line" bash -c '
	"$1" build -q -o "$2" "$3/multi.tar" "$4" 2>"$2.err"; cat "$2.err"
	[ "$(grep -c . "$2.err")" -eq 1 ] &&
	grep -q "so its signature of release 1 was removed" "$2.err" &&
	[ ! -e "$2/registry/snapshot.sig" ] && [ ! -e "$2/registry/release.sig" ]' \
	_ "$REGPRESS" "$PUB" "$FX" "$W/retag.tar"
ID2=$(snap_id "$PUB")
check "build over a tag, sign, verify --pubkey: no gc needed; release 2 follows release 1" bash -c '
	"$1" snapshot --sign "$2/rel.sec" --passphrase-file "$2/rel.pass" "$3" >/dev/null 2>&1 &&
	"$1" verify --progress=none --pubkey "$2/rel.pub" "$3" | grep -q "release 2" &&
	grep -qx "follows $4" "$3/registry/release"' _ "$REGPRESS" "$K" "$PUB" "$ID1"
"$REGPRESS" media -q "$PUB" -o "$W/r2-delta" --since "$W/release1.snapshot" --size 170K ||
	e2e_die "media delta"
"$REGPRESS" media -q "$PUB" -o "$W/r2-full" --size 170K || e2e_die "media full"
check "release 2 as a delta, signed and checked" bash -c '
	"$1" import -q --pubkey "$2" "$3"/volume-* --into "$4" &&
	[ "$(snap_id "$4")" = "$5" ] &&
	"$1" verify --progress=none --pubkey "$2" "$4" | grep -q "release 2"' \
	_ "$REGPRESS" "$K/rel.pub" "$W/r2-delta" "$ENC" "$ID2"
check "release 2 as a full set over release 1" bash -c '
	cp -a "$6" "$4" && "$1" import -q --pubkey "$2" "$3"/volume-* --into "$4" &&
	[ "$(snap_id "$4")" = "$5" ] && "$1" verify --progress=none --pubkey "$2" "$4" >/dev/null' \
	_ "$REGPRESS" "$K/rel.pub" "$W/r2-full" "$W/enclave-full" "$ID2" "$W/enclave-r1"

# --- no rollback ---------------------------------------------------------------------------------
check "the release-1 discs again: refused, naming both releases, tree byte-identical" \
	refused "$ENC" "release 1 (snapshot $ID1) is older than release 2 (snapshot $ID2)" \
	"$REGPRESS" import --pubkey "$K/rel.pub" "$W"/r1-iso/volume-*.iso --into "$ENC"
check "the release-1 discs without --pubkey: refused the same" \
	refused "$ENC" "is older than release 2" "$REGPRESS" import "$W"/r1/volume-* --into "$ENC"
check "--allow-downgrade takes release 1 back, saying what it replaced" bash -c '
	cp -a "$4" "$4-down"
	"$1" import --pubkey "$2" --allow-downgrade "$3"/volume-* --into "$4-down" 2>"$4.err" &&
	grep -q "replaced release 2 (snapshot $6)" "$4.err" &&
	[ "$(snap_id "$4-down")" = "$5" ] &&
	"$1" verify --progress=none --pubkey "$2" "$4-down" | grep -q "release 1"' \
	_ "$REGPRESS" "$K/rel.pub" "$W/r1" "$ENC" "$ID1" "$ID2"

# --- sets that do not come from the release team -------------------------------------------------
# A later snapshot (release 3), signed with another key, or not signed at all.
OTHER=$W/other-publisher
cp -a "$PUB" "$OTHER"
"$REGPRESS" rm "$OTHER" user/tool:1.0 >/dev/null 2>&1 || e2e_die "rm"
"$REGPRESS" media -q "$OTHER" -o "$W/unsigned" --size 170K || e2e_die "media unsigned"
"$REGPRESS" snapshot --sign "$K/other.sec" --passphrase-file "$K/other.pass" "$OTHER" \
	>/dev/null 2>&1 || e2e_die "sign other"
"$REGPRESS" media -q "$OTHER" -o "$W/other-key" --size 170K || e2e_die "media other key"
check "a set signed by another key: refused" \
	refused "$ENC" "signed by a different key than" \
	"$REGPRESS" import --pubkey "$K/rel.pub" "$W"/other-key/volume-* --into "$ENC"
check "an unsigned set with --pubkey: refused" \
	refused "$ENC" "the volume set is not signed" \
	"$REGPRESS" import --pubkey "$K/rel.pub" "$W"/unsigned/volume-* --into "$ENC"
check "an unsigned set over a signed tree: refused without --allow-unsigned" \
	refused "$ENC" "a set without a signed release" \
	"$REGPRESS" import "$W"/unsigned/volume-* --into "$ENC"
check "--allow-unsigned imports it; the tree keeps its last release" bash -c '
	cp -a "$2" "$2-u" && "$1" import -q --allow-unsigned "$3"/volume-* --into "$2-u" &&
	grep -qx "release 2" "$2-u/registry/release" && [ ! -e "$2-u/registry/snapshot.sig" ] &&
	"$1" verify --progress=none "$2-u" >/dev/null' _ "$REGPRESS" "$ENC" "$W/unsigned"
# A tampered signature, with the volume manifests rewritten to match (a set id is only a
# digest: anyone can make a consistent set; only the signatures tell).
cp -a "$W/r2-full" "$W/tampered"
python3 - "$W/tampered/volume-01/snapshot.sig" <<'EOF' || e2e_die "tampering"
import base64, pathlib, sys
sig = pathlib.Path(sys.argv[1])
comment, b64 = sig.read_text().splitlines()
raw = bytearray(base64.b64decode(b64))
raw[-1] ^= 1
sig.write_text(comment + "\n" + base64.b64encode(bytes(raw)).decode() + "\n")
EOF
for v in "$W"/tampered/volume-0[2-9]; do cp "$W/tampered/volume-01/snapshot.sig" "$v/"; done
reseal "$W/tampered" || e2e_die "reseal"
check "a tampered signature (manifest rewritten to match): refused" \
	refused "$W/enclave-r1" "volume-01/snapshot.sig': signature verification failed" \
	"$REGPRESS" import --pubkey "$K/rel.pub" "$W"/tampered/volume-* --into "$W/enclave-r1"
check "a tampered signature, manifest left alone: refused as damaged" bash -c '
	cp -a "$2" "$2-b" && printf x >>"$2-b/volume-02/release.sig" &&
	refused "$3" "$5" "$1" import --pubkey "$4" "$2-b"/volume-* --into "$3"' \
	_ "$REGPRESS" "$W/r2-full" "$W/enclave-r1" "$K/rel.pub" "volume-02/release.sig': damaged"
check "a signature file removed from one volume: refused" bash -c '
	cp -a "$2" "$2-m" && rm "$2-m/volume-02/snapshot.sig" &&
	refused "$3" "$5" "$1" import --pubkey "$4" "$2-m"/volume-* --into "$3" &&
	refused "$3" "$5" "$1" import --check "$2-m/volume-02"' \
	_ "$REGPRESS" "$W/r2-full" "$W/enclave-r1" "$K/rel.pub" "volume-02/snapshot.sig': missing"
check "a set whose release is of another snapshot (manifests rewritten): refused" bash -c '
	cp -a "$2" "$2-r" && for v in "$2-r"/volume-*; do cp "$5/registry/release" "$v/"; done &&
	reseal "$2-r" &&
	refused "$3" "release 1 is of snapshot $6, not of the set" \
		"$1" import --pubkey "$4" "$2-r"/volume-* --into "$3"' \
	_ "$REGPRESS" "$W/r2-full" "$W/enclave-r1" "$K/rel.pub" "$W/enclave-r1" "$ID1"

e2e_done
