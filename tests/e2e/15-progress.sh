#!/usr/bin/env bash
# Progress of long builds, verifies, media and imports (issue 7): a line with bytes done/total, %,
# rate and ETA on a
# terminal (`script` gives the command a pty), start/done lines with --progress=plain for logs,
# and nothing with -q, with --progress=none, or when stderr is not a terminal.
# shellcheck disable=SC2317 # helpers run through `check`, which shellcheck cannot follow
# shellcheck disable=SC2016 # single-quoted bash -c programs take their arguments as $1...
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_fixtures "$T/fx" || e2e_die "fixtures"
# One 96 MB layer of pseudo-random bytes: at one thread its gzip takes long enough (> 0.2 s, the
# terminal line's first redraw) on any machine these tests run on.
python3 "$(repo)/tests/bench/mkinput.py" big "$T/big.tar" 96 >/dev/null || e2e_die "big input"

# stderr_of OUT CMD...: run CMD with stdout discarded and stderr into OUT; fails if CMD fails.
stderr_of() {
	local out=$1
	shift
	"$@" 2>"$out" >/dev/null
}

plain_build() {
	stderr_of "$T/plain.err" "$REGPRESS" build --progress=plain -o "$T/plain" "$T/big.tar" "$T/fx/base.tar"
	cat "$T/plain.err"
	grep -q "^$T/big.tar: started, 91.6 MiB$" "$T/plain.err"
	grep -E -q "^$T/big.tar: done, 91.6 MiB in [0-9.]+ s \([0-9.]+ [KMG]?i?B/s\)$" "$T/plain.err"
	grep -q "^$T/fx/base.tar: started" "$T/plain.err"
	grep -q "^$T/fx/base.tar: done" "$T/plain.err"
	# Plain lines are whole lines: no carriage returns, no escape sequences.
	! grep -q $'[\r\033]' "$T/plain.err"
}
check "build --progress=plain: a start and a done line per input" plain_build

silent() {
	stderr_of "$T/silent.err" "$@"
	if [ -s "$T/silent.err" ]; then
		echo "stderr not empty:"
		cat -v "$T/silent.err"
		return 1
	fi
}
check "build -q: nothing on stderr" silent "$REGPRESS" build -q -o "$T/q" "$T/big.tar"
check "build --progress=none: nothing on stderr" \
	silent "$REGPRESS" build --progress=none -o "$T/none" "$T/big.tar"
check "build, stderr not a terminal (auto): no progress" silent "$REGPRESS" build -o "$T/auto" "$T/big.tar"
check "verify -q: nothing on stderr" silent "$REGPRESS" verify -q "$T/plain"
check "verify, stderr not a terminal (auto): no progress" silent "$REGPRESS" verify "$T/plain"

tty_build() {
	script -qec "'$REGPRESS' build -j1 -o '$T/tty' '$T/big.tar'" /dev/null >"$T/tty.out"
	cat -v "$T/tty.out" | tr '\r' '\n' | head -20
	# "LABEL  12.0 MiB / 91.6 MiB  13%  85.2 MiB/s  ETA 0:01", redrawn in place and erased.
	grep -E -q $'\r'"$T/big.tar  [0-9.]+ [KMG]iB / 91.6 MiB +[0-9]+%  [0-9.]+ [KMG]?i?B/s  ETA [0-9]+:[0-9][0-9]"$'\033\\[K' "$T/tty.out"
	grep -q $'\r\033\\[K' "$T/tty.out"
	# The result still goes to stdout.
	grep -q "^snapshot sha256:" <(tr -d '\r' <"$T/tty.out")
}
check "build on a terminal: a progress line with %, rate and ETA, erased at the end" tty_build

plain_verify() {
	stderr_of "$T/verify.err" "$REGPRESS" verify --progress=plain "$T/plain"
	cat "$T/verify.err"
	grep -q "^verifying: started, " "$T/verify.err"
	grep -E -q "^verifying: done, [0-9.]+ [KMG]iB in [0-9.]+ s" "$T/verify.err"
}
check "verify --progress=plain: start and done lines" plain_verify

# media and import: the same progress, labelled "writing volumes", "checking", "importing".
media_import_plain() {
	stderr_of "$T/media.err" "$REGPRESS" media "$T/plain" -o "$T/vols" --size 64M --progress=plain
	stderr_of "$T/check.err" "$REGPRESS" import --check --progress=plain "$T"/vols/volume-*
	stderr_of "$T/import.err" "$REGPRESS" import --progress=plain "$T"/vols/volume-* --into "$T/imported"
	cat "$T/media.err" "$T/check.err" "$T/import.err"
	grep -E -q "^writing volumes: started, [0-9.]+ [KMG]iB$" "$T/media.err"
	grep -E -q "^writing volumes: done, [0-9.]+ [KMG]iB in [0-9.]+ s" "$T/media.err"
	grep -E -q "^checking: started, " "$T/check.err"
	grep -E -q "^checking: done, [0-9.]+ [KMG]iB in [0-9.]+ s" "$T/check.err"
	grep -E -q "^importing: started, " "$T/import.err"
	grep -E -q "^importing: done, [0-9.]+ [KMG]iB in [0-9.]+ s" "$T/import.err"
	! grep -q $'[\r\033]' "$T/media.err" "$T/check.err" "$T/import.err"
}
check "media and import --progress=plain: start and done lines" media_import_plain
check "media -q: nothing on stderr" silent "$REGPRESS" media -q "$T/plain" -o "$T/vols-q" --size 64M
check "media, stderr not a terminal (auto): no progress" \
	silent "$REGPRESS" media "$T/plain" -o "$T/vols-auto" --size 64M
check "import, stderr not a terminal (auto): no progress" \
	silent "$REGPRESS" import "$T"/vols/volume-* --into "$T/imported-auto"
check "import --check -q: nothing on stderr" silent "$REGPRESS" import --check -q "$T"/vols/volume-*

# On a terminal: a tree of one 256 MB uncompressed layer, so media (~0.4 s here) and import
# (~1 s) run past the first redraw (0.2 s).
tty_line() { # FILE LABEL: a redrawn "LABEL  done / total  N%  rate  ETA m:ss" line, then erased
	grep -E -q $'\r'"$2  [0-9.]+ [KMG]iB / [0-9.]+ [KMG]iB +[0-9]+%  [0-9.]+ [KMG]?i?B/s  ETA [0-9]+:[0-9][0-9]"$'\033\\[K' "$1" &&
		grep -q $'\r\033\\[K' "$1"
}
tty_media_import() {
	python3 "$(repo)/tests/bench/mkinput.py" big "$T/big256.tar" 256 >/dev/null
	"$REGPRESS" build -q --compression none -o "$T/t256" "$T/big256.tar"
	script -qec "'$REGPRESS' media '$T/t256' -o '$T/v256' --size 4G" /dev/null >"$T/mtty.out"
	script -qec "'$REGPRESS' import '$T/v256/volume-01' --into '$T/i256'" /dev/null >"$T/itty.out"
	cat -v "$T/mtty.out" "$T/itty.out" | tr '\r' '\n' | head -20
	tty_line "$T/mtty.out" "writing volumes"
	tty_line "$T/itty.out" "importing"
	# The results still go to stdout.
	grep -q "^volume 1 of 1: " <(tr '\r' '\n' <"$T/mtty.out" | sed 's/\x1b\[K//g')
	rm -rf "$T/big256.tar" "$T/t256" "$T/v256" "$T/i256"
}
check "media and import on a terminal: a progress line with %, rate and ETA, erased at the end" \
	tty_media_import

usage_error() {
	local rc=0
	"$@" >/dev/null 2>&1 || rc=$?
	echo "exit $rc"
	[ "$rc" -eq 2 ]
}
check "build --progress=bogus is a usage error" usage_error "$REGPRESS" build --progress=bogus -o "$T/x" "$T/big.tar"
check "verify --progress=bogus is a usage error" usage_error "$REGPRESS" verify --progress=bogus "$T/plain"
check "media --progress=bogus is a usage error" \
	usage_error "$REGPRESS" media --progress=bogus "$T/plain" -o "$T/x" --size 64M
check "import --progress=bogus is a usage error" \
	usage_error "$REGPRESS" import --progress=bogus "$T"/vols/volume-* --into "$T/x"
check "verify --help documents -q and --progress" bash -c '"$1" verify --help | grep -q -- "-q, --quiet" &&
	"$1" verify --help | grep -q -- "--progress=MODE"' _ "$REGPRESS"

e2e_done
