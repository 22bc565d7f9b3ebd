#!/usr/bin/env bash
# Carrying trees across the air gap (issue 6): `regpress media` splits a tree into small volumes,
# one blob larger than a volume cut into parts; `regpress import` takes them back in a shuffled
# order, one per run, reporting what is still missing, and publishes the original snapshot; ISO
# images are byte-identical across runs, extract (xorriso -osirrox) to the volumes, and import as
# they are (damaged or hostile images refused);
# a delta between two builds carries exactly the new blobs, imports onto the old tree only, and a
# lost delta volume is remade identical; damaged volumes are refused with the tree unchanged.
# shellcheck disable=SC2317 # helpers run through `check`, which shellcheck cannot follow
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_workspace
export SOURCE_DATE_EPOCH=1700000000

# random_image OUT.tar REF KIB SEED: an image whose one layer is KIB KiB of incompressible
# (seeded) bytes, made by umoci and written by skopeo like the other fixtures.
random_image() {
	local out=$1 ref=$2 kib=$3 seed=$4 L=$W/layout-$4
	umoci init --layout "$L"
	umoci new --image "$L:x"
	umoci config --image "$L:x" --os linux --architecture "$(e2e_goarch)" --config.cmd /bin/true
	umoci unpack --image "$L:x" "$L.bundle" >/dev/null
	python3 -c 'import random, sys
sys.stdout.buffer.write(random.Random(sys.argv[1]).randbytes(int(sys.argv[2]) * 1024))' \
		"$seed" "$kib" >"$L.bundle/rootfs/$seed.bin"
	umoci repack --image "$L:x" "$L.bundle"
	skopeo copy -q "oci:$L:x" "docker-archive:$out:$ref"
	rm -rf "$L" "$L.bundle"
}
random_image "$FX/big.tar" big/blob:1 2300 big >"$W/big.log" 2>&1 ||
	{ cat "$W/big.log"; e2e_die "making the big image"; }
random_image "$FX/extra.tar" extra/img:2 420 extra >"$W/extra.log" 2>&1 ||
	{ cat "$W/extra.log"; e2e_die "making the extra image"; }

same_state() { diff <(e2e_tree_state "$1") <(e2e_tree_state "$2"); }
snap_id() { "$REGPRESS" snapshot "$1" 2>&1 >/dev/null | awk '{print $2}'; }
# carried VOLDIR...: the blob digests the volumes carry (whole or in parts), sorted.
carried() {
	local v
	for v in "$@"; do
		awk -v n="$(awk '$1 == "volume" { print $2 }' "$v/REGPRESS-VOLUME")" \
			'$1 == "blob" && $2 == n { print $3 } $1 == "part" && $2 == n { print $5 }' \
			"$v/REGPRESS-VOLUME"
	done | LC_ALL=C sort -u
}

A=$W/a
B=$W/b
"$REGPRESS" build -q -o "$A" "$FX/base.tar" "$FX/app.tar" "$FX/multi.tar" "$FX/big.tar" ||
	e2e_die "build a"
cp -a "$A" "$B"
"$REGPRESS" build -q -o "$B" "$FX/extra.tar" || e2e_die "build b"
ID_A=$(snap_id "$A")
ID_B=$(snap_id "$B")
BIG=$(find "$A/blobs/sha256" -type f -size +1024k -printf '%f\n')

# --- a full set of tiny volumes ------------------------------------------------------------------
V=$W/vols
"$REGPRESS" media "$A" -o "$V" --size 1M --json >"$W/media.json" || e2e_die "media"
N=$(jq '.volumes | length' "$W/media.json")
mapfile -t VOLS < <(jq -r '.volumes[].path' "$W/media.json")
e2e_log "$N volumes, fill $(jq .fill "$W/media.json"), at least $(jq .min_volumes "$W/media.json") needed"

plan_ok() {
	[ "$N" -ge 3 ] || { echo "$N volumes, want at least 3"; return 1; }
	[ -n "$BIG" ] || { echo "no blob above 1 MiB in the tree"; return 1; }
	jq -e '.split_blobs == 1 and .parts >= 3 and .capacity == 1048576' "$W/media.json" >/dev/null
	jq -e '.volumes | map(.cost) | all(. <= 1048576)' "$W/media.json" >/dev/null
	jq -e '(.volumes | length) <= .min_volumes + 1' "$W/media.json" >/dev/null
	# the big blob is carried in parts named by their own digests, which the files have
	grep -c "^part [0-9]* sha256:[0-9a-f]* [0-9]* sha256:$BIG " "${VOLS[0]}/REGPRESS-VOLUME"
	for v in "${VOLS[@]}"; do
		(cd "$v" && for f in parts/sha256/* blobs/sha256/*; do
			[ -e "$f" ] || continue
			[ "$(sha256sum <"$f" | cut -d' ' -f1)" = "${f##*/}" ] || { echo "bad $v/$f"; exit 1; }
		done)
	done
	# every volume: the same set, its own number, the whole snapshot
	for v in "${VOLS[@]}"; do
		same_file "$v/snapshot" "$A/registry/snapshot"
		diff <(grep -v '^volume ' "$v/REGPRESS-VOLUME") <(grep -v '^volume ' "${VOLS[0]}/REGPRESS-VOLUME")
	done
	diff <(carried "${VOLS[@]}") <(awk '$1 == "blob" || $1 == "manifest" { print $3 }' \
		"$A/registry/snapshot" | LC_ALL=C sort -u)
}
check "media --size 1M: >= 3 volumes near the minimum, the big blob in parts, every blob once" plan_ok
check "import --check: every volume verifies on its own" "$REGPRESS" import --check "${VOLS[@]}"

volume_rules() {
	local bad
	bad=$(find "$V" -mindepth 1 \( \( -type f ! -perm 0644 \) -o \( -type d ! -perm 0755 \) -o \
		\( ! -type f ! -type d \) \) -printf '%p %m\n')
	[ -z "$bad" ] || { echo "wrong modes or types:"; echo "$bad"; return 1; }
	bad=$(find "$V" -mindepth 1 -printf '%T@ %p\n' | awk -v e="$SOURCE_DATE_EPOCH" '$1 + 0 != e + 0')
	[ -z "$bad" ] || { echo "mtimes not $SOURCE_DATE_EPOCH:"; echo "$bad" | head; return 1; }
}
check "volumes: modes 0644/0755, mtimes SOURCE_DATE_EPOCH, no links" volume_rules

again() {
	(umask 077 && cd "$W" && "$REGPRESS" media a -o vols-again --size 1M -q)
	diff -r "$V" "$W/vols-again"
	same_state "$V" "$W/vols-again"
}
check "media again (umask 077, other cwd): byte-identical volumes" again

# --- import, shuffled, one volume per run ------------------------------------------------------
E=$W/e
mapfile -t ORDER < <(printf '%s\n' "${VOLS[@]}" | shuf --random-source=<(yes))
e2e_log "import order: ${ORDER[*]##*/}"
one_by_one() {
	local i v out
	for ((i = 0; i < ${#ORDER[@]}; i++)); do
		v=${ORDER[$i]}
		out=$("$REGPRESS" import "$v" --into "$E")
		echo "$out"
		if [ "$i" -lt $((${#ORDER[@]} - 1)) ]; then
			echo "$out" | grep -q "^imported volume [0-9]* of $N (.*); still missing: [0-9]" ||
				{ echo "want 'still missing'"; return 1; }
			[ ! -e "$E/registry" ] || { echo "published before the last volume"; return 1; }
			[ -d "$E/.regpress-import" ] || { echo "no import area kept"; return 1; }
			"$REGPRESS" verify "$E" >/dev/null 2>&1 && { echo "verify passed an incomplete tree"; return 1; }
		else
			echo "$out" | grep -q "published snapshot $ID_A\$" || { echo "want published $ID_A"; return 1; }
		fi
	done
	[ ! -e "$E/.regpress-import" ] || { echo ".regpress-import left behind"; return 1; }
}
check "import one volume per run, shuffled: 'still missing' until the last, then published" one_by_one
check "imported tree: the original snapshot id" test "$(snap_id "$E")" = "$ID_A"
check "imported tree: regpress verify passes" "$REGPRESS" verify "$E"
imported_same() {
	diff -r "$A/blobs" "$E/blobs"
	diff -r "$A/registry" "$E/registry"
	same_file "$A/index.json" "$E/index.json"
	diff <(e2e_tree_state "$A" | grep -Ev '(^| )\./cache(/| |$)') <(e2e_tree_state "$E")
}
check "imported tree: blobs/, registry/, index.json, modes and mtimes as the original" imported_same
import_again() {
	e2e_tree_state "$E" >"$W/again.before"
	"$REGPRESS" import "${VOLS[0]}" --into "$E" | grep -q "already at snapshot $ID_A"
	diff "$W/again.before" <(e2e_tree_state "$E")
}
check "import again: already at the snapshot, nothing changes" import_again

# --- ISO images ------------------------------------------------------------------------------------
isos() {
	"$REGPRESS" media "$A" -o "$W/iso1" --size 1M --iso -q
	sleep 1
	(umask 077 && "$REGPRESS" media "$A" -o "$W/iso2" --size 1M --iso -q)
	local f n=0
	for f in "$W"/iso1/*.iso; do
		cmp "$f" "$W/iso2/${f##*/}"
		[ "$(stat -c %s "$f")" -le 1048576 ] || { echo "$f larger than the medium"; return 1; }
		n=$((n + 1))
	done
	[ "$n" -eq "$N" ] || { echo "$n images, want $N"; return 1; }
}
check "--iso: one image per volume, byte-identical across runs, within the medium" isos
iso_import() {
	local f x
	for f in "$W"/iso1/*.iso; do
		x=$W/x/$(basename "$f" .iso)
		xorriso -osirrox on -indev "$f" -extract / "$x" >/dev/null 2>&1
		diff -r "$x" "$V/$(basename "$f" .iso)"
	done
	"$REGPRESS" import --check "$W"/x/*
	"$REGPRESS" import "$W"/x/* --into "$W/from-iso" | grep -q "published snapshot $ID_A\$"
	"$REGPRESS" verify "$W/from-iso"
}
check "ISO images extract (xorriso -osirrox) to the volumes; all at once they import and verify" iso_import
# The images themselves, no extraction by hand: each checks on its own; imported one per run in
# reverse order they publish the same snapshot; nothing is left in $TMPDIR.
iso_direct() {
	local f isos
	mkdir -p "$W/isotmp"
	mapfile -t isos < <(printf '%s\n' "$W"/iso1/*.iso | LC_ALL=C sort -r)
	TMPDIR=$W/isotmp "$REGPRESS" import --check "${isos[@]}"
	for f in "${isos[@]}"; do
		TMPDIR=$W/isotmp "$REGPRESS" import -q "$f" --into "$W/from-iso-direct"
	done
	[ "$(snap_id "$W/from-iso-direct")" = "$ID_A" ]
	"$REGPRESS" verify "$W/from-iso-direct"
	diff -r "$W/from-iso/blobs" "$W/from-iso-direct/blobs"
	diff -r "$W/from-iso/registry" "$W/from-iso-direct/registry"
	[ -z "$(ls -A "$W/isotmp")" ] || { echo "left in TMPDIR: $(ls "$W/isotmp")"; return 1; }
}
check "ISO images import as they are (one per run, reverse order), same snapshot, \$TMPDIR left empty" \
	iso_direct

# --- deltas ------------------------------------------------------------------------------------------
D=$W/delta
"$REGPRESS" media "$B" --since "$A/registry/snapshot" -o "$D" --size 300K --json >"$W/delta.json" ||
	e2e_die "media --since"
mapfile -t DVOLS < <(jq -r '.volumes[].path' "$W/delta.json")
e2e_log "delta: ${#DVOLS[@]} volumes, fill $(jq .fill "$W/delta.json")"
delta_carries_new() {
	"$REGPRESS" diff --json "$A" "$B" | jq -r '.blobs.added[].digest' | LC_ALL=C sort >"$W/added"
	[ -s "$W/added" ]
	carried "${DVOLS[@]}" | diff "$W/added" -
	jq -e --arg a "$ID_A" --arg b "$ID_B" '.base == $a and .snapshot == $b' "$W/delta.json" >/dev/null
	[ "${#DVOLS[@]}" -ge 2 ] || { echo "want a delta of at least 2 volumes"; return 1; }
}
check "delta: carries exactly the blobs 'regpress diff' lists as added" delta_carries_new
delta_import() {
	cp -a "$A" "$W/a2"
	"$REGPRESS" import "${DVOLS[1]}" --into "$W/a2" | grep -q "still missing"
	# meanwhile the old tree is whole and served as it was; verify only warns about the import
	[ "$(snap_id "$W/a2")" = "$ID_A" ]
	"$REGPRESS" verify "$W/a2" | grep -q "/.regpress-import: warning: an unfinished import"
	"$REGPRESS" import "${DVOLS[@]}" --into "$W/a2" | grep -q "published snapshot $ID_B\$"
	[ "$(snap_id "$W/a2")" = "$ID_B" ]
	"$REGPRESS" verify "$W/a2"
	diff -r "$B/blobs" "$W/a2/blobs"
	diff -r "$B/registry" "$W/a2/registry"
}
check "delta onto a copy of the old tree: the new snapshot id, verify passes" delta_import

# refused TREE PATTERN CMD...: CMD exits 1 with one line on stderr matching the grep PATTERN,
# and TREE is byte-identical afterwards.
refused() {
	local tree=$1 pattern=$2 rc=0
	shift 2
	e2e_tree_state "$tree" >"$W/refused.before"
	"$@" 2>"$W/refused.err" || rc=$?
	cat "$W/refused.err"
	[ "$rc" -eq 1 ] || { echo "exit $rc, want 1"; return 1; }
	[ "$(wc -l <"$W/refused.err")" -eq 1 ] || { echo "want one line"; return 1; }
	grep -q -- "$pattern" "$W/refused.err" || { echo "want: $pattern"; return 1; }
	diff "$W/refused.before" <(e2e_tree_state "$tree") || { echo "the tree changed"; return 1; }
}

# wrong_base TREE: refused with one line naming the volume, exit 1, TREE byte-identical.
wrong_base() {
	refused "$1" "^regpress import: '${DVOLS[0]}': a delta from snapshot $ID_A" \
		"$REGPRESS" import "${DVOLS[@]}" --into "$1"
}
"$REGPRESS" build -q -o "$W/other" "$FX/base.tar" || e2e_die "build other"
check "delta onto another tree: refused before anything is written" wrong_base "$W/other"
no_tree() {
	local rc=0
	"$REGPRESS" import "${DVOLS[0]}" --into "$W/none" 2>&1 || rc=$?
	[ "$rc" -eq 1 ] && [ ! -e "$W/none" ]
}
check "delta into an empty place: refused, nothing created" no_tree

remade() {
	"$REGPRESS" media "$B" --since "$A" -o "$W/remade" --size 300K --only 2 -q
	[ "$(find "$W/remade" -mindepth 1 -maxdepth 1 | wc -l)" -eq 1 ]
	diff -r "${DVOLS[1]}" "$W/remade/${DVOLS[1]##*/}"
	same_state "${DVOLS[1]}" "$W/remade/${DVOLS[1]##*/}"
	"$REGPRESS" media "$B" --since "$A" -o "$W/remade" --size 300K --only 2 --iso -q
	"$REGPRESS" media "$B" --since "$A" -o "$W/remade-all" --size 300K --iso -q
	cmp "$W/remade/${DVOLS[1]##*/}.iso" "$W/remade-all/${DVOLS[1]##*/}.iso"
}
check "a lost delta volume remade from the tree (--only 2, --since TREE) is identical" remade

# --- damage -------------------------------------------------------------------------------------------
# A pending import (one volume in), then a volume whose carried blob has one byte flipped.
damaged() {
	local vol blob rc=0 tree=$W/damaged-into
	for vol in "${VOLS[@]}"; do
		[ -d "$vol/blobs/sha256" ] && break
	done
	cp -a "$vol" "$W/bad-vol"
	blob=$(find "$W/bad-vol/blobs/sha256" -type f | head -1)
	python3 -c 'import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 1; open(p, "wb").write(b)' "$blob"
	for v in "${VOLS[@]}"; do
		[ "$v" = "$vol" ] || { "$REGPRESS" import "$v" --into "$tree" >/dev/null; break; }
	done
	refused "$tree" "^regpress import: '$blob': content has digest" \
		"$REGPRESS" import "$W/bad-vol" --into "$tree"
	"$REGPRESS" import --check "$W/bad-vol" 2>&1 || rc=$?
	[ "$rc" -eq 1 ]
}
check "a volume with one flipped byte: refused naming the file, tree unchanged" damaged

# Damaged and hostile ISO images, into the pending import of `damaged`: each refused with one line
# naming the image, the tree unchanged, nothing left in $TMPDIR. One volume with blobs is the base.
for ISO_VOL in "${VOLS[@]}"; do
	[ -d "$ISO_VOL/blobs/sha256" ] && break
done
ISO_GOOD=$W/iso1/$(basename "$ISO_VOL").iso
mkdir -p "$W/isobad" "$W/isotmp"
# flipped.iso: the image with one byte flipped in the middle of a blob whose middle 64 bytes occur
# nowhere else in the image (manifests share long runs); prints that blob's name.
ISO_BLOB=$(python3 -c 'import os, sys
img = bytearray(open(sys.argv[1], "rb").read()); d = sys.argv[2]
for name in sorted(os.listdir(d)):
    blob = open(os.path.join(d, name), "rb").read(); mid = blob[len(blob) // 2:][:64]
    if len(mid) == 64 and img.count(mid) == 1:
        img[img.find(mid)] ^= 1; open(sys.argv[3], "wb").write(img); print(name); break
else:
    sys.exit("no blob with a unique middle")' "$ISO_GOOD" "$ISO_VOL/blobs/sha256" "$W/isobad/flipped.iso") ||
	e2e_die "making flipped.iso"
# iso_from NAME: an image of a copy of the volume, changed by the commands on stdin (run in it).
iso_from() {
	rm -rf "$W/isobad/$1.d"
	cp -a "$ISO_VOL" "$W/isobad/$1.d"
	(cd "$W/isobad/$1.d" && bash -e)
	xorriso -as mkisofs -R -J -o "$W/isobad/$1.iso" "$W/isobad/$1.d" >/dev/null 2>&1
}
iso_refused() {
	TMPDIR=$W/isotmp refused "$W/damaged-into" "$2" "$REGPRESS" import "$1" --into "$W/damaged-into"
	[ -z "$(ls -A "$W/isotmp")" ] || { echo "left in TMPDIR: $(ls "$W/isotmp")"; return 1; }
}
check "ISO: a flipped byte in a blob: refused naming the image and the file" \
	iso_refused "$W/isobad/flipped.iso" "^regpress import: '$W/isobad/flipped.iso/blobs/sha256/$ISO_BLOB': content has digest"
head -c "$(($(stat -c %s "$ISO_GOOD") * 3 / 4))" "$ISO_GOOD" >"$W/isobad/cut.iso"
check "ISO: cut short: refused naming the image" \
	iso_refused "$W/isobad/cut.iso" "^regpress import: '$W/isobad/cut.iso': "
echo "not an image" >"$W/isobad/text.iso"
check "ISO: a text file: refused as neither a volume directory nor an ISO image" \
	iso_refused "$W/isobad/text.iso" "^regpress import: '$W/isobad/text.iso': not a volume directory or ISO image"
iso_from link <<<"ln -s /etc/passwd blobs/sha256/link" || e2e_die "making link.iso"
check "ISO: a symlink in the image: refused, nothing followed" \
	iso_refused "$W/isobad/link.iso" "^regpress import: '$W/isobad/link.iso': entry 'blobs/sha256/link' is a link"
iso_from extra <<<"echo extra >extra" || e2e_die "making extra.iso"
iso_extra() {
	local rc=0
	TMPDIR=$W/isotmp "$REGPRESS" import --check "$W/isobad/extra.iso" 2>"$W/isobad/extra.err" || rc=$?
	cat "$W/isobad/extra.err"
	[ "$rc" -eq 1 ] && grep -q "^regpress import: '$W/isobad/extra.iso/extra': not part of the volume" \
		"$W/isobad/extra.err"
	[ -z "$(ls -A "$W/isotmp")" ]
}
check "ISO: a file the volume manifest does not list: --check refuses it by its path in the image" iso_extra
bad_manifest() {
	local rc=0
	cp -a "${VOLS[0]}" "$W/bad-manifest"
	sed -i 's/^volumes .*/volumes 9/' "$W/bad-manifest/REGPRESS-VOLUME"
	"$REGPRESS" import --check "$W/bad-manifest" 2>&1 || rc=$?
	[ "$rc" -eq 1 ]
	rc=0
	"$REGPRESS" import "$W/bad-manifest" --into "$W/never" 2>"$W/bm.err" || rc=$?
	[ "$rc" -eq 1 ] && grep -q "REGPRESS-VOLUME': damaged" "$W/bm.err" && [ ! -e "$W/never" ]
}
check "an altered volume manifest: refused" bad_manifest
mixed_sets() {
	local rc=0
	"$REGPRESS" import "${VOLS[0]}" "${DVOLS[0]}" --into "$W/mixed" 2>&1 || rc=$?
	[ "$rc" -eq 1 ] && [ ! -e "$W/mixed" ]
}
check "volumes of two different sets in one run: refused" mixed_sets
other_set_pending() {
	refused "$W/damaged-into" "has an unfinished import of another volume set" \
		"$REGPRESS" import "${DVOLS[0]}" --into "$W/damaged-into"
}
check "a volume of another set while an import is unfinished: refused, tree unchanged" other_set_pending

# --- usage ----------------------------------------------------------------------------------------
usage_exit() {
	local rc=0
	"$REGPRESS" "$@" >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 2 ] || { echo "exit $rc, want 2"; return 1; }
}
check "media without --size: usage error" usage_exit media "$A" -o "$W/u"
check "media --size 12X: usage error" usage_exit media "$A" -o "$W/u" --size 12X
check "import without --into: usage error" usage_exit import "${VOLS[0]}"
check "media never replaces volumes" fails "$REGPRESS" media "$A" -o "$V" --size 1M -q

e2e_done
