#!/usr/bin/env bash
# Volumes are input from elsewhere (issue 17, item 3): a FIFO, a symlink or a device anywhere in a
# volume directory (its manifest, its snapshot, a blob, a part, a signed file, a whole directory)
# is refused by `import --check` and `import --into` with one line naming it, never opened
# (a FIFO would block, holding the tree's lock), never followed (the message reveals nothing
# of the target), and the tree is left byte for byte as it was.
# shellcheck disable=SC2016 # single-quoted bash -c programs take their arguments as $1...
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_workspace
export SOURCE_DATE_EPOCH=1700000000

"$REGPRESS" build -q -o "$W/src" "$FX/base.tar" "$FX/app.tar" || e2e_die "build"
"$REGPRESS" keygen -n "$W/k" >/dev/null || e2e_die "keygen"
"$REGPRESS" snapshot --sign "$W/k.sec" "$W/src" >/dev/null 2>&1 || e2e_die "sign"
# Two volumes, so one blob is split into parts when the size is small enough: use a small one.
"$REGPRESS" media -q "$W/src" -o "$W/vols" --size 170K || e2e_die "media"
V1=$W/vols/volume-01
BLOB=$(awk '$1 == "blob" && $2 == 1 { sub("sha256:", "", $3); print $3; exit }' "$V1/REGPRESS-VOLUME")
[ -n "$BLOB" ] || e2e_die "no blob on volume 1"
# The enclave's tree: the set imported once, then rm'd back to an older state, so the set has
# something to bring.
ENC=$W/enc
"$REGPRESS" build -q -o "$ENC" "$FX/base.tar" || e2e_die "build enclave"
mkdir -p "$W/outside"
echo "outside the volume" >"$W/outside/secret"

# bad_volume NAME TEXT SETUP: a copy of volume 1 changed by SETUP (run in it), then both
# import --check and import --into must fail at once (the watchdog catches a hang) with one
# line containing TEXT and the volume's path, the enclave's tree unchanged, the outside file
# untouched and not named.
bad_volume() {
	local name=$1 text=$2 setup=$3 v=$W/bad-$1 before rc out
	rm -rf "$v"
	cp -a "$V1" "$v"
	(cd "$v" && eval "$setup")
	before=$(e2e_tree_state "$ENC")
	for mode in check into; do
		rc=0
		if [ "$mode" = check ]; then
			"$REGPRESS" import --check "$v" >"$W/out" 2>"$W/err" || rc=$?
		else
			"$REGPRESS" import -q "$v" --into "$ENC" >"$W/out" 2>"$W/err" || rc=$?
		fi
		out=$(cat "$W/err")
		echo "$mode: exit $rc: $out"
		[ "$rc" -eq 1 ] || { echo "want exit 1"; return 1; }
		[ "$(wc -l <"$W/err")" -eq 1 ] || { echo "want one line"; return 1; }
		grep -qF -- "$text" "$W/err" || { echo "want: $text"; return 1; }
		grep -qF -- "$v" "$W/err" || { echo "the message does not name the volume's file"; return 1; }
		! grep -q "outside" "$W/err" || { echo "the message names the link's target"; return 1; }
	done
	diff <(echo "$before") <(e2e_tree_state "$ENC") || { echo "the tree changed"; return 1; }
	[ "$(cat "$W/outside/secret")" = "outside the volume" ]
}

check "REGPRESS-VOLUME is a FIFO" bad_volume manifest-fifo "REGPRESS-VOLUME': not a regular file" \
	'rm REGPRESS-VOLUME && mkfifo REGPRESS-VOLUME'
check "REGPRESS-VOLUME is a symlink" bad_volume manifest-link "REGPRESS-VOLUME': a symbolic link" \
	'mv REGPRESS-VOLUME "$W/outside/m" && ln -s "$W/outside/m" REGPRESS-VOLUME'
check "the snapshot is a FIFO" bad_volume snapshot-fifo "/snapshot': not a regular file" \
	'rm snapshot && mkfifo snapshot'
check "a blob is a FIFO" bad_volume blob-fifo "$BLOB': not a regular file" \
	"rm blobs/sha256/$BLOB && mkfifo blobs/sha256/$BLOB"
check "a blob is a symlink to a file with its bytes" bad_volume blob-link "$BLOB': a symbolic link" \
	"mv blobs/sha256/$BLOB \"\$W/outside/$BLOB\" && ln -s \"\$W/outside/$BLOB\" blobs/sha256/$BLOB"
check "blobs/sha256 is a symlink to a directory with the blobs" bad_volume blobs-dir-link \
	"blobs/sha256': a symbolic link" \
	'mv blobs/sha256 "$W/outside/blobs" && ln -s "$W/outside/blobs" blobs/sha256'
check "a blob is a device" bad_volume blob-device "$BLOB': not a regular file" \
	"rm blobs/sha256/$BLOB && mknod blobs/sha256/$BLOB c 1 3"
check "snapshot.sig is a FIFO" bad_volume sig-fifo "snapshot.sig': not a regular file" \
	'rm snapshot.sig && mkfifo snapshot.sig'
check "release is a symlink" bad_volume release-link "/release': a symbolic link" \
	'mv release "$W/outside/release" && ln -s "$W/outside/release" release'
# A file the manifest does not list is never opened: --check says it is not part of the volume,
# an import reads only what the manifest lists (a disc may hold more, such as lost+found).
check "an extra FIFO: --check refuses it, an import never opens it" bash -c '
	cp -a "$1" "$2" && mkfifo "$2/extra" &&
	! "$3" import --check "$2" 2>"$2.err" && grep -q "extra'"'"': not part of the volume" "$2.err" &&
	cp -a "$4" "$4-x" && "$3" import -q "$2" --into "$4-x" && "$3" verify -q "$4-x" >/dev/null' \
	_ "$V1" "$W/extra" "$REGPRESS" "$ENC"

e2e_done
