#!/usr/bin/env bash
# regpress serve, checked with curl against every row of the served API (docs/tree-format.md "The
# served API"): status, body and headers of each route, pagination, ?ns= mirror routing, every
# error case, and what must never be served (files outside /v2, listings, traversal, old TLS).
# Expected values come from the tree itself (pointer files, _tags.json, catalog.json), so any tree
# the builder makes is checked completely; a hand-made tree adds an OCI index and a host:port repo.
# shellcheck disable=SC2317 # helpers run through `check`, which shellcheck cannot follow
. "$(dirname "$0")/lib.sh"

e2e_tmpdir
e2e_fixtures "$T/fx" || e2e_die "fixtures"
export EMPTY_INDEX='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'

# ---------------------------------------------------------------------------------------------
# helpers (each used as a check command: errexit is on inside, see lib.sh)

# req [CURL ARGS...] PATH: one request to $URL/PATH; status in $T/s, headers in $T/h, body in $T/b.
# HTTP/2 as the clients use it (header names arrive in lower case: compare case-insensitively).
req() {
	local path=${*: -1}
	: >"$T/h" # curl leaves -o alone when no body comes (304, HEAD): no stale body from before
	: >"$T/b"
	curl -sS --cacert "$CERTS/ca.crt" -D "$T/h" -o "$T/b" -w '%{http_code}' "${@:1:$#-1}" \
		"$URL$path" >"$T/s"
}

# hdr NAME: the value of response header NAME of the last req ("" when absent).
hdr() {
	grep -i "^$1:" "$T/h" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//' || true
}

# expect WHAT GOT WANT
expect() {
	[ "$2" = "$3" ] || { echo "$1: got '$2', want '$3'"; echo "--- headers"; cat "$T/h"; \
		echo "--- body"; head -c 600 "$T/b"; echo; return 1; }
}

status_is() { expect "status" "$(cat "$T/s")" "$1"; }
api_version_ok() { expect "Docker-Distribution-API-Version" "$(hdr docker-distribution-api-version)" registry/2.0; }
body_sha() { echo "sha256:$(sha256sum "$T/b" | cut -d' ' -f1)"; }

# err_is STATUS CODE [CURL ARGS...] PATH: an OCI error response.
err_is() {
	local st=$1 code=$2
	shift 2
	req "$@"
	status_is "$st"
	expect "Content-Type" "$(hdr content-type)" application/json
	expect "error code" "$(jq -r '.errors[0].code' "$T/b")" "$code"
	jq -e '.errors[0] | has("message") and has("detail")' "$T/b" >/dev/null
}

# msg_is STATUS PATH MESSAGE: an OCI error with that status and exactly that message (explicit
# returns: it runs on the left of &&, where errexit does not apply).
msg_is() {
	req "$2" || return 1
	status_is "$1" || return 1
	expect "message of $2" "$(jq -r '.errors[0].message' "$T/b")" "$3"
}

# repo_dir REPO: the repository's directory in the tree ($TREE).
repo_dir() {
	local r=$1
	case ${r%%/*} in *:*) r=${r%%:*}+${r#*:} ;; esac
	echo "$TREE/registry/repos/$r"
}

# pointer REPO tags/TAG | sha256/HEX: "digest size type" of a manifest pointer.
pointer() { cat "$(repo_dir "$1")/_manifests/$2"; }

# manifest_ok REPO REF PTR [CURL ARGS]: GET and HEAD of /v2/REPO/manifests/REF match pointer PTR.
# Twice: the server (one worker, see below) sends the file the first time and keeps the manifest in
# memory, so the second round checks the cached answer; then a conditional GET on the digest ETag.
manifest_ok() {
	local repo=$1 ref=$2 digest size type cache round
	shift 2
	read -r digest size type <<<"$(pointer "$repo" "$1")"
	shift
	case $ref in sha256:*) cache="public, max-age=31536000, immutable" ;;
	*) cache="public, max-age=60" ;; esac
	for round in first second; do
		req "$@" "/v2/$repo/manifests/$ref"
		status_is 200
		api_version_ok
		expect "Content-Type ($round)" "$(hdr content-type)" "$type"
		expect "Docker-Content-Digest ($round)" "$(hdr docker-content-digest)" "$digest"
		expect "digest of the body ($round)" "$(body_sha)" "$digest"
		expect "Content-Length ($round)" "$(hdr content-length)" "$size"
		expect "Cache-Control ($round)" "$(hdr cache-control)" "$cache"
		expect "ETag ($round)" "$(hdr etag)" "\"$digest\""
		cmp -s "$T/b" "$TREE/blobs/sha256/${digest#sha256:}"
		req -I "$@" "/v2/$repo/manifests/$ref"
		status_is 200
		expect "HEAD Content-Type ($round)" "$(hdr content-type)" "$type"
		expect "HEAD Docker-Content-Digest ($round)" "$(hdr docker-content-digest)" "$digest"
		expect "HEAD Content-Length ($round)" "$(hdr content-length)" "$size"
		cmp -s "$T/h" "$T/b" # curl -I writes the headers as the body: nothing else came
	done
	req -H "If-None-Match: \"$digest\"" "$@" "/v2/$repo/manifests/$ref"
	status_is 304
	expect "304 Docker-Content-Digest" "$(hdr docker-content-digest)" "$digest"
	[ ! -s "$T/b" ]
}

# all_manifests_ok: every tag and every digest of every repository in the catalog.
all_manifests_ok() {
	local repo tag f n=0
	for repo in $(jq -r '.repositories[]' "$TREE/registry/catalog.json"); do
		for tag in $(jq -r '.tags[]' "$(repo_dir "$repo")/_tags.json"); do
			manifest_ok "$repo" "$tag" "tags/$tag"
			n=$((n + 1))
		done
		for f in "$(repo_dir "$repo")"/_manifests/sha256/*; do
			manifest_ok "$repo" "sha256:${f##*/}" "sha256/${f##*/}"
			n=$((n + 1))
		done
	done
	echo "$n manifests checked"
	[ "$n" -gt 0 ]
}

# all_blobs_ok: every blob marker of every repository: GET, HEAD and two ranges.
all_blobs_ok() {
	local repo f hex size n=0
	for repo in $(jq -r '.repositories[]' "$TREE/registry/catalog.json"); do
		for f in "$(repo_dir "$repo")"/_blobs/*; do
			hex=${f##*/}
			size=$(stat -c %s "$TREE/blobs/sha256/$hex")
			req "/v2/$repo/blobs/sha256:$hex"
			status_is 200
			api_version_ok
			expect "Content-Type" "$(hdr content-type)" application/octet-stream
			expect "Docker-Content-Digest" "$(hdr docker-content-digest)" "sha256:$hex"
			expect "digest of the body" "$(body_sha)" "sha256:$hex"
			expect "Content-Length" "$(hdr content-length)" "$size"
			expect "Cache-Control" "$(hdr cache-control)" "public, max-age=31536000, immutable"
			expect "ETag" "$(hdr etag)" "\"sha256:$hex\""
			req -I "/v2/$repo/blobs/sha256:$hex"
			status_is 200
			expect "HEAD Content-Length" "$(hdr content-length)" "$size"
			expect "HEAD Docker-Content-Digest" "$(hdr docker-content-digest)" "sha256:$hex"
			cmp -s "$T/h" "$T/b" # curl -I writes the headers as the body: nothing else came
			req -r 0-9 "/v2/$repo/blobs/sha256:$hex"
			status_is 206
			cmp -s "$T/b" <(head -c 10 "$TREE/blobs/sha256/$hex")
			req -r "$((size / 2))-" "/v2/$repo/blobs/sha256:$hex"
			status_is 206
			expect "Content-Range" "$(hdr content-range)" "bytes $((size / 2))-$((size - 1))/$size"
			cmp -s "$T/b" <(tail -c +"$((size / 2 + 1))" "$TREE/blobs/sha256/$hex")
			n=$((n + 1))
		done
	done
	echo "$n blobs checked"
	[ "$n" -gt 0 ]
}

# collect_pages PATH KEY N: follow Link headers from PATH?n=N; prints the items, one a line.
collect_pages() {
	local next link pages=0
	case $1 in *\?*) next="$1&n=$3" ;; *) next="$1?n=$3" ;; esac
	while [ -n "$next" ]; do
		req "$next"
		status_is 200
		expect "Content-Type" "$(hdr content-type)" application/json
		jq -r ".$2[]" "$T/b" >>"$T/pages"
		[ "$(jq ".$2 | length" "$T/b")" -le "$3" ]
		link=$(hdr link)
		next=
		if [ -n "$link" ]; then
			[[ $link =~ ^\<(/v2/[^>]*)\>\;\ rel=\"next\"$ ]] || { echo "bad Link: $link"; return 1; }
			next=${BASH_REMATCH[1]}
		fi
		pages=$((pages + 1))
		[ "$pages" -lt 100 ]
	done
	cat "$T/pages"
	rm -f "$T/pages"
}

catalog_ok() {
	req /v2/_catalog
	status_is 200
	api_version_ok
	expect "Content-Type" "$(hdr content-type)" application/json
	expect "Cache-Control" "$(hdr cache-control)" "public, max-age=60"
	cmp -s "$T/b" "$TREE/registry/catalog.json"
	[ -z "$(hdr link)" ]
	diff <(collect_pages /v2/_catalog repositories 1) \
		<(jq -r '.repositories[]' "$TREE/registry/catalog.json")
	diff <(collect_pages /v2/_catalog repositories 2) \
		<(jq -r '.repositories[]' "$TREE/registry/catalog.json")
}

tags_ok() {
	local repo first
	for repo in $(jq -r '.repositories[]' "$TREE/registry/catalog.json"); do
		req "/v2/$repo/tags/list"
		status_is 200
		api_version_ok
		expect "Content-Type" "$(hdr content-type)" application/json
		expect "Cache-Control" "$(hdr cache-control)" "public, max-age=60"
		cmp -s "$T/b" "$(repo_dir "$repo")/_tags.json"
		diff <(collect_pages "/v2/$repo/tags/list" tags 1) \
			<(jq -r '.tags[]' "$(repo_dir "$repo")/_tags.json")
		# n=0 is an empty list and no next page; last is exclusive.
		req "/v2/$repo/tags/list?n=0"
		status_is 200
		expect "n=0 tags" "$(jq -c .tags "$T/b")" "[]"
		expect "n=0 name" "$(jq -r .name "$T/b")" "$repo"
		[ -z "$(hdr link)" ]
		first=$(jq -r '.tags[0]' "$(repo_dir "$repo")/_tags.json")
		req "/v2/$repo/tags/list?last=$first"
		status_is 200
		diff <(jq -r '.tags[]' "$T/b") <(jq -r '.tags[1:][]' "$(repo_dir "$repo")/_tags.json")
		# last past the end: an empty list, no next page.
		req "/v2/$repo/tags/list?last=~~~~"
		status_is 200
		expect "last past the end" "$(jq -c .tags "$T/b")" "[]"
		[ -z "$(hdr link)" ]
		req "/v2/$repo/tags/list?n=2&last=~~~~"
		status_is 200
		expect "n=2, last past the end" "$(jq -c .tags "$T/b")" "[]"
		[ -z "$(hdr link)" ]
		# n larger than the list: all of it, no next page; n equal to its length: no next page.
		req "/v2/$repo/tags/list?n=100000"
		status_is 200
		expect "n larger than the list" "$(jq -c .tags "$T/b")" "$(jq -c .tags "$(repo_dir "$repo")/_tags.json")"
		[ -z "$(hdr link)" ]
		req "/v2/$repo/tags/list?n=$(jq '.tags | length' "$(repo_dir "$repo")/_tags.json")"
		status_is 200
		expect "n = length" "$(jq -c .tags "$T/b")" "$(jq -c .tags "$(repo_dir "$repo")/_tags.json")"
		[ -z "$(hdr link)" ]
		# n=0 with last, and a bad n.
		req "/v2/$repo/tags/list?n=0&last=$first"
		status_is 200
		expect "n=0&last" "$(jq -c .tags "$T/b")" "[]"
		req "/v2/$repo/tags/list?n=-1"
		status_is 400
	done
}

# A blob of another repository is unknown here, as on registry:2.
cross_repo_blob_unknown() {
	local a=$1 b=$2 f
	for f in "$(repo_dir "$a")"/_blobs/*; do
		[ -e "$(repo_dir "$b")/_blobs/${f##*/}" ] && continue
		err_is 404 BLOB_UNKNOWN "/v2/$b/blobs/sha256:${f##*/}"
		return 0
	done
	echo "no blob of $a that $b lacks"
	return 1
}

# not_served PATH [CURL ARGS]: anything but a 2xx, and no file content.
not_served() {
	local path=$1
	shift
	req "$@" "$path"
	case $(cat "$T/s") in 2*) echo "$path served: $(cat "$T/s")"; return 1 ;; esac
	! grep -q 'root:' "$T/b"
	! grep -q 'regpress-snapshot' "$T/b"
}

same_etag_on_copy() {
	local a b
	req -I "/v2/$1/manifests/$2"
	a=$(hdr etag)
	[ -n "$a" ]
	curl -sS --cacert "$CERTS/ca.crt" -I "https://127.0.0.1:$PORT2/v2/$1/manifests/$2" -o /dev/null \
		-D "$T/h2"
	b=$(grep -i '^etag:' "$T/h2" | cut -d: -f2- | tr -d '\r ')
	expect "ETag on a copy of the tree" "$b" "$(echo "$a" | tr -d ' ')"
}

tls11_refused() {
	local out
	out=$(echo | openssl s_client -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -connect "127.0.0.1:$PORT" 2>&1) &&
		{ echo "TLS 1.1 handshake succeeded"; echo "$out"; return 1; }
	grep -q 'alert protocol version' <<<"$out" || { echo "$out"; return 1; }
}

tls12_ok() {
	echo | openssl s_client -tls1_2 -CAfile "$CERTS/ca.crt" -verify_return_error \
		-connect "127.0.0.1:$PORT" 2>&1 | grep -q 'Protocol *: TLSv1.2'
}

# run_api_checks: the whole API table against $TREE served at $URL.
run_api_checks() {
	local label=$1 repo tag hex mhex
	repo=$(jq -r '.repositories[0]' "$TREE/registry/catalog.json")
	tag=$(jq -r '.tags[0]' "$(repo_dir "$repo")/_tags.json")
	mhex=$(cut -d' ' -f1 "$(repo_dir "$repo")/_manifests/tags/$tag")
	mhex=${mhex#sha256:}
	hex=$(find "$(repo_dir "$repo")/_blobs" -type f | head -1)
	hex=${hex##*/}

	check "$label: GET /v2/ is 200 {} with API version" \
		eval 'req /v2/ && status_is 200 && api_version_ok && expect body "$(cat "$T/b")" "{}"'
	check "$label: HEAD /v2/ and /v2 without slash" \
		eval 'req -I /v2/ && status_is 200 && req /v2 && status_is 200 && api_version_ok'
	check "$label: _catalog, direct and paginated (Link, last exclusive)" catalog_ok
	check "$label: tags/list, direct and paginated, n=0, last" tags_ok
	check "$label: every manifest by tag and digest: type, digest, length, cache, HEAD" all_manifests_ok
	check "$label: every blob: digest, type, length, cache, HEAD, Range 206" all_blobs_ok

	check "$label: unknown repository is 404 NAME_UNKNOWN" err_is 404 NAME_UNKNOWN /v2/no/such/manifests/1
	check "$label: tags/list of unknown repository is 404 NAME_UNKNOWN" \
		err_is 404 NAME_UNKNOWN /v2/no/such/tags/list
	check "$label: paginated tags/list of unknown repository is 404 NAME_UNKNOWN" \
		err_is 404 NAME_UNKNOWN "/v2/no/such/tags/list?n=1"
	check "$label: blob of unknown repository is 404 NAME_UNKNOWN" \
		err_is 404 NAME_UNKNOWN "/v2/no/such/blobs/sha256:$hex"
	check "$label: unknown tag is 404 MANIFEST_UNKNOWN" \
		err_is 404 MANIFEST_UNKNOWN "/v2/$repo/manifests/no-such-tag"
	check "$label: unknown manifest digest is 404 MANIFEST_UNKNOWN" \
		err_is 404 MANIFEST_UNKNOWN "/v2/$repo/manifests/sha256:$(printf '0%.0s' {1..64})"
	check "$label: HEAD of unknown manifest is 404 without body" \
		eval 'req -I "/v2/$repo/manifests/no-such-tag" && status_is 404 && cmp -s "$T/h" "$T/b"'
	check "$label: unknown blob is 404 BLOB_UNKNOWN" \
		err_is 404 BLOB_UNKNOWN "/v2/$repo/blobs/sha256:$(printf 'a%.0s' {1..64})"
	check "$label: a manifest is not a blob of the repository unless marked" \
		eval '[ -e "$(repo_dir "$repo")/_blobs/$mhex" ] || err_is 404 BLOB_UNKNOWN "/v2/$repo/blobs/sha256:$mhex"'
	check "$label: manifests/sha256:totallywrong is 400 DIGEST_INVALID" \
		err_is 400 DIGEST_INVALID "/v2/$repo/manifests/sha256:totallywrong"
	check "$label: blobs/sha256:totallywrong is 400 DIGEST_INVALID" \
		err_is 400 DIGEST_INVALID "/v2/$repo/blobs/sha256:totallywrong"
	check "$label: upper-case hex digest is 400 DIGEST_INVALID" \
		err_is 400 DIGEST_INVALID "/v2/$repo/blobs/sha256:$(echo "$hex" | tr a-f A-F)"
	check "$label: blobs/<tag> is 400 DIGEST_INVALID" err_is 400 DIGEST_INVALID "/v2/$repo/blobs/latest"
	check "$label: other digest algorithm is unknown, not an error" \
		err_is 404 MANIFEST_UNKNOWN "/v2/$repo/manifests/sha512:$(printf 'b%.0s' {1..128})"
	check "$label: upper-case name is 400 NAME_INVALID" err_is 400 NAME_INVALID /v2/Library/Base/tags/list
	check "$label: _blobs as a name component is 400 NAME_INVALID" \
		err_is 400 NAME_INVALID "/v2/$repo/_blobs/tags/list"
	check "$label: leading . or - in a component is 400 NAME_INVALID" \
		eval 'err_is 400 NAME_INVALID "/v2/.x/y/manifests/1" && err_is 400 NAME_INVALID "/v2/x/-y/manifests/1"'
	check "$label: bad separators are 400 NAME_INVALID" \
		eval 'err_is 400 NAME_INVALID "/v2/a___b/manifests/1" && err_is 400 NAME_INVALID "/v2/a._b/manifests/1"'
	check "$label: the stored host+port form is not a name" \
		err_is 400 NAME_INVALID "/v2/localhost+5000/x/manifests/1"
	check "$label: bad n is 400" eval 'req "/v2/$repo/tags/list?n=x" && status_is 400'

	# With a body over HTTP/1.1; over HTTP/2 without one: lighttpd answers 405 before the
	# body and then resets the stream with NO_ERROR (RFC 9113 8.1), which curl 7.88 reports as
	# "Stream error" at random although the whole response arrived.
	local m
	for m in PUT POST PATCH DELETE; do
		check "$label: $m is 405 UNSUPPORTED with Allow" \
			eval 'err_is 405 UNSUPPORTED --http1.1 -X '"$m"' -d x "/v2/$repo/manifests/$tag" &&
				expect Allow "$(hdr allow)" "GET, HEAD" && api_version_ok &&
				err_is 405 UNSUPPORTED -X '"$m"' -H "Content-Length: 0" "/v2/$repo/blobs/sha256:$hex" &&
				expect Allow "$(hdr allow)" "GET, HEAD"'
	done
	check "$label: POST to blob uploads (docker push) is 405" \
		eval 'err_is 405 UNSUPPORTED -X POST -d "" "/v2/$repo/blobs/uploads/"'
	# lighttpd itself wants a length on POST before any module runs.
	check "$label: POST without Content-Length is lighttpd's 411, in JSON" \
		eval 'err_is 411 UNSUPPORTED -X POST "/v2/$repo/blobs/uploads/"'
	# Methods lighttpd knows reach the script (405); one it does not know is its own 501 (RFC 9110:
	# the answer to an unrecognized method), before any module runs (README "The served API").
	check "$label: OPTIONS, PROPFIND and TRACE are 405 UNSUPPORTED with Allow" \
		eval 'for m in OPTIONS PROPFIND TRACE; do err_is 405 UNSUPPORTED -X $m "/v2/$repo/manifests/$tag" &&
			expect "Allow ($m)" "$(hdr allow)" "GET, HEAD" || return 1; done'
	check "$label: an unknown method is lighttpd's 501, in JSON" \
		eval 'err_is 501 UNSUPPORTED -X FROB "/v2/$repo/manifests/$tag" &&
			err_is 501 UNSUPPORTED --http1.1 -X FROB "/v2/$repo/manifests/$tag"'
	check "$label: outside /v2 too: 404 NOT_FOUND with Docker-Distribution-API-Version" \
		eval 'err_is 404 NOT_FOUND /index.json && api_version_ok && err_is 404 NOT_FOUND -X DELETE / && api_version_ok'
	# Misses name the repository and what was asked (Docker and podman print the message).
	local zeros
	zeros=$(printf '0%.0s' {1..64})
	check "$label: error messages name the repository and the reference" \
		eval 'msg_is 404 "/v2/$repo/manifests/no-such-tag" "manifest $repo:no-such-tag unknown to registry" &&
			msg_is 404 "/v2/$repo/manifests/sha256:$zeros" "manifest $repo@sha256:$zeros unknown to registry" &&
			msg_is 404 "/v2/$repo/blobs/sha256:$zeros" "blob $repo@sha256:$zeros unknown to registry" &&
			msg_is 404 /v2/no/such/manifests/1 "repository no/such not known to registry (manifest 1)" &&
			msg_is 404 "/v2/no/such/blobs/sha256:$zeros" "repository no/such not known to registry (blob sha256:$zeros)" &&
			msg_is 404 /v2/no/such/tags/list "repository no/such not known to registry" &&
			msg_is 404 "/v2/no/such/tags/list?n=1" "repository no/such not known to registry" &&
			msg_is 404 "/v2/no/such/referrers/sha256:$zeros" "repository no/such not known to registry (referrers of sha256:$zeros)" &&
			msg_is 404 "/v2/nope/manifests/1?ns=docker.io" "repository library/nope not known to registry (manifest 1)"'
	check "$label: a body over server.max-request-size is 413, in JSON" \
		eval 'head -c 5000 /dev/zero >"$T/big" && err_is 413 UNSUPPORTED --http1.1 -X PUT --data-binary @"$T/big" "/v2/$repo/manifests/$tag"'

	check "$label: query strings do not break routing" \
		eval 'manifest_ok "$repo" "$tag" "tags/$tag" -G -d foo=bar &&
			req "/v2/?x=1" && status_is 200 && req "/v2/_catalog?foo" && status_is 200 &&
			cmp -s "$T/b" "$TREE/registry/catalog.json"'
	check "$label: ?ns=docker.io does not break anything" \
		eval 'manifest_ok "$repo" "$tag" "tags/$tag" -G -d ns=docker.io &&
			req "/v2/$repo/blobs/sha256:$hex?ns=docker.io" && status_is 200 &&
			req "/v2/$repo/tags/list?ns=docker.io" && status_is 200 &&
			cmp -s "$T/b" "$(repo_dir "$repo")/_tags.json" && req "/v2/?ns=docker.io" && status_is 200'

	check "$label: no listing of /v2/<dir>/" \
		eval 'err_is 404 NOT_FOUND "/v2/${repo%%/*}/" && err_is 404 NOT_FOUND "/v2/$repo/" &&
			err_is 404 NOT_FOUND "/v2/$repo/manifests/" && err_is 404 NOT_FOUND "/v2/$repo/_manifests/tags/$tag"'
	check "$label: unknown endpoints under /v2 are 404 (blob uploads, other paths)" \
		eval 'err_is 404 NOT_FOUND "/v2/$repo/blobs/uploads/x/y" && err_is 404 NOT_FOUND "/v2/$repo/uploads/x" &&
			err_is 404 NOT_FOUND "/v2/$repo/referrers/sha256:$mhex/x"'
	check "$label: referrers of a manifest without any: 200 empty OCI index, never 404" \
		eval 'req "/v2/$repo/referrers/sha256:$mhex" && status_is 200 && api_version_ok &&
			expect type "$(hdr content-type)" application/vnd.oci.image.index.v1+json &&
			[ -z "$(hdr oci-filters-applied)" ] &&
			expect body "$(cat "$T/b")" "$EMPTY_INDEX" &&
			req "/v2/$repo/referrers/sha256:$(printf "0%.0s" {1..64})" && status_is 200 &&
			expect body "$(cat "$T/b")" "$EMPTY_INDEX"'
	check "$label: referrers: malformed digest 400, tag 400, unknown repository 404 NAME_UNKNOWN" \
		eval 'err_is 400 DIGEST_INVALID "/v2/$repo/referrers/sha256:nothex" &&
			err_is 400 DIGEST_INVALID "/v2/$repo/referrers/latest" &&
			err_is 404 NAME_UNKNOWN "/v2/no/such/referrers/sha256:$mhex"'
	local p
	for p in / /index.json /oci-layout /registry/snapshot /registry/catalog.json "/blobs/sha256/$hex" \
		/blobs/ /registry/ /v2x /v3/; do
		check "$label: nothing outside /v2: $p" eval 'not_served "'"$p"'" && status_is 404'
	done
	for p in /v2/../../etc/passwd /v2/../registry/snapshot "/v2/$repo/..%2f..%2f..%2f..%2fregistry/snapshot" \
		/v2/%2e%2e/%2e%2e/etc/passwd "/v2/$repo/manifests/..%2f..%2f..%2fsnapshot"; do
		check "$label: traversal refused: $p" not_served "$p" --path-as-is
	done
	check "$label: TLS 1.1 refused (alert protocol version)" tls11_refused
	check "$label: TLS 1.2 accepted with the CA" tls12_ok
}

# ---------------------------------------------------------------------------------------------
# 1. A tree made by `regpress build`: Docker schema2 manifests, and OCI ones in another repository.

TREE=$T/tree
check "build a tree (docker format)" \
	"$REGPRESS" build -q -o "$TREE" "$T/fx/base.tar" "$T/fx/app.tar"
check "add an OCI-format repository" \
	"$REGPRESS" build -q --format oci --tag example.com/oci/base:1 -o "$TREE" "$T/fx/base.tar"
[ -s "$TREE/registry/catalog.json" ] || e2e_die "no tree built"

# One worker: manifest_ok's second round then surely meets the cache its first round filled.
e2e_serve "$TREE" --workers 1
run_api_checks built

check "built: ?ns=docker.io maps a one-component path to library/" \
	eval 'manifest_ok library/base 1 tags/1 && req "/v2/base/manifests/1?ns=docker.io" && status_is 200 &&
		expect digest "$(hdr docker-content-digest)" "$(cut -d" " -f1 "$(repo_dir library/base)/_manifests/tags/1")"'
check "built: ?ns=example.com maps team/app to example.com/team/app" \
	eval 'req "/v2/team/app/manifests/1.0?ns=example.com" && status_is 200 &&
		expect digest "$(hdr docker-content-digest)" "$(cut -d" " -f1 "$(repo_dir example.com/team/app)/_manifests/tags/1.0")" &&
		req "/v2/team/app/tags/list?ns=example.com" && status_is 200 &&
		cmp -s "$T/b" "$(repo_dir example.com/team/app)/_tags.json"'
check "built: ?ns= of another registry does not find docker.io images" \
	err_is 404 NAME_UNKNOWN "/v2/library/base/manifests/1?ns=quay.io"
check "built: a blob of app is unknown under library/base" \
	cross_repo_blob_unknown example.com/team/app library/base
check "built: both manifest formats are served" \
	eval 'req -I /v2/library/base/manifests/1 && expect type "$(hdr content-type)" application/vnd.docker.distribution.manifest.v2+json &&
		req -I /v2/example.com/oci/base/manifests/1 && expect type "$(hdr content-type)" application/vnd.oci.image.manifest.v1+json'

# ETags must not depend on inode numbers: a copy of the tree, served too, gives the same ones.
cp -a "$TREE" "$T/tree-copy"
URL1=$URL PORT1=$PORT SERVE_PID1=$SERVE_PID
e2e_serve "$T/tree-copy"
PORT2=$PORT
URL=$URL1 PORT=$PORT1 SERVE_PID=$SERVE_PID1
check "built: same ETag from a copy of the tree" same_etag_on_copy library/base 1

# ---------------------------------------------------------------------------------------------
# 2. A hand-made tree per docs/tree-format.md: an OCI index over an OCI manifest, a Docker
#    schema2 manifest, a host:port repository, more tags than one page.

mk_tree() {
	python3 - "$1" <<-'PY'
	import hashlib, json, os, sys
	T = sys.argv[1]
	os.makedirs(T + "/blobs/sha256")
	snap = []
	repos = {}
	def put(data):
	    h = hashlib.sha256(data).hexdigest()
	    open(f"{T}/blobs/sha256/{h}", "wb").write(data)
	    return h
	def rdir(repo):
	    first, _, rest = repo.partition("/")
	    return f"{T}/registry/repos/{first.replace(':', '+')}/{rest}"
	def blob(repo, data, mt):
	    h = put(data)
	    os.makedirs(rdir(repo) + "/_blobs", exist_ok=True)
	    open(f"{rdir(repo)}/_blobs/{h}", "wb").close()
	    snap.append(f"blob {repo} sha256:{h} {len(data)} {mt}")
	    return {"mediaType": mt, "digest": "sha256:" + h, "size": len(data)}
	def manifest(repo, obj, mt, tags=()):
	    data = json.dumps(obj, separators=(",", ":")).encode()
	    h = put(data)
	    d = rdir(repo) + "/_manifests"
	    os.makedirs(d + "/sha256", exist_ok=True)
	    os.makedirs(d + "/tags", exist_ok=True)
	    ptr = f"sha256:{h} {len(data)} {mt}\n"
	    open(f"{d}/sha256/{h}", "w").write(ptr)
	    snap.append(f"manifest {repo} sha256:{h} {len(data)} {mt}")
	    repos.setdefault(repo, [])
	    for t in tags:
	        open(f"{d}/tags/{t}", "w").write(ptr)
	        snap.append(f"tag {repo} {t} sha256:{h}")
	        repos[repo].append(t)
	    return {"mediaType": mt, "digest": "sha256:" + h, "size": len(data)}
	D2 = "application/vnd.docker.distribution.manifest.v2+json"
	OM = "application/vnd.oci.image.manifest.v1+json"
	OI = "application/vnd.oci.image.index.v1+json"
	r = "example.com/team/app"
	cfg = blob(r, b'{"architecture":"arm64","os":"linux"}', "application/vnd.oci.image.config.v1+json")
	lay = blob(r, bytes(range(256)) * 50, "application/vnd.oci.image.layer.v1.tar+gzip")
	m = manifest(r, {"schemaVersion": 2, "mediaType": OM, "config": cfg, "layers": [lay]}, OM, ["1.0-arm64"])
	m["platform"] = {"architecture": "arm64", "os": "linux"}
	manifest(r, {"schemaVersion": 2, "mediaType": OI, "manifests": [m]}, OI,
	         ["1.0", "latest", "a", "b", "c", "v_1", "Z"])
	r = "localhost:5000/team/app"
	cfg = blob(r, b'{"architecture":"amd64","os":"linux"}', "application/vnd.docker.container.image.v1+json")
	lay = blob(r, b"x" * 3000, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	manifest(r, {"schemaVersion": 2, "mediaType": D2, "config": cfg, "layers": [lay]}, D2, ["v1"])
	for repo, tags in repos.items():
	    open(rdir(repo) + "/_tags.json", "w").write(
	        json.dumps({"name": repo, "tags": sorted(tags)}, separators=(",", ":")))
	open(f"{T}/registry/catalog.json", "w").write(
	    json.dumps({"repositories": sorted(repos)}, separators=(",", ":")))
	open(f"{T}/registry/snapshot", "w").write(
	    "regpress-snapshot 1\n" + "".join(l + "\n" for l in sorted(snap)))
	open(f"{T}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
	open(f"{T}/index.json", "w").write('{"schemaVersion":2,"mediaType":"%s","manifests":[]}' % OI)
	PY
}

TREE=$T/handmade
check "hand-made tree" mk_tree "$TREE"
e2e_serve "$TREE"
run_api_checks handmade
check "handmade: OCI index served with its type" \
	eval 'req -I /v2/example.com/team/app/manifests/latest &&
		expect type "$(hdr content-type)" application/vnd.oci.image.index.v1+json'
check "handmade: host:port repository by name and by ?ns=host%3Aport" \
	eval 'manifest_ok localhost:5000/team/app v1 tags/v1 &&
		req "/v2/team/app/manifests/v1?ns=localhost%3A5000" && status_is 200 &&
		req "/v2/team/app/tags/list?ns=localhost%3A5000&n=0" && status_is 200 &&
		expect name "$(jq -r .name "$T/b")" localhost:5000/team/app'
check "handmade: Link keeps ?ns= so the next page routes the same" \
	eval 'req "/v2/team/app/tags/list?ns=example.com&n=2" && status_is 200 &&
		[[ "$(hdr link)" == *"ns=example.com"* ]] &&
		diff <(collect_pages "/v2/team/app/tags/list?ns=example.com" tags 3) \
			<(jq -r ".tags[]" "$(repo_dir example.com/team/app)/_tags.json")'
check "handmade: Range beyond the end is 416, not 500" \
	eval 'req -r 999999-1000000 "/v2/example.com/team/app/blobs/$(jq -r .config.digest \
		"$TREE/blobs/sha256/$(cut -d" " -f1 "$(repo_dir example.com/team/app)/_manifests/tags/1.0-arm64" | cut -d: -f2)")" &&
		status_is 416'

# ---------------------------------------------------------------------------------------------
# 3. Referrers: an OCI layout input (skopeo oci:) with an SBOM artifact whose subject is the image,
#    listed unnamed in index.json; regpress stores it beside its subject.

# mk_artifact LAYOUT TYPE CONTENT: add an artifact manifest of artifactType TYPE with one layer
# CONTENT and the layout's first image as subject; prints its digest.
mk_artifact() {
	python3 - "$@" <<-'PY'
	import hashlib, json, os, sys
	L, atype, content = sys.argv[1], sys.argv[2], sys.argv[3].encode()
	def put(b):
	    h = hashlib.sha256(b).hexdigest()
	    with open(os.path.join(L, "blobs", "sha256", h), "wb") as f:
	        f.write(b)
	    return "sha256:" + h
	with open(os.path.join(L, "index.json")) as f:
	    idx = json.load(f)
	subject = {k: idx["manifests"][0][k] for k in ("mediaType", "digest", "size")}
	man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
	       "artifactType": atype,
	       "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": put(b"{}"), "size": 2},
	       "layers": [{"mediaType": atype, "digest": put(content), "size": len(content)}],
	       "subject": subject,
	       # braces, commas and quotes in an annotation must not confuse the server's filter
	       "annotations": {"org.example.note": "a}, {\"b\": [1]", "org.opencontainers.image.created": "1970-01-01T00:00:00Z"}}
	b = json.dumps(man, separators=(",", ":")).encode()
	d = put(b)
	idx["manifests"].append({"mediaType": man["mediaType"], "digest": d, "size": len(b), "artifactType": atype})
	with open(os.path.join(L, "index.json"), "w") as f:
	    json.dump(idx, f)
	print(d)
	PY
}

LAYOUT=$T/layout
skopeo copy -q "docker-archive:$T/fx/base.tar" "oci:$LAYOUT:base:1" || e2e_die "skopeo oci: layout"
SUBJECT=$(jq -r '.manifests[0].digest' "$LAYOUT/index.json")
SBOM=$(mk_artifact "$LAYOUT" application/spdx+json '{"spdxVersion":"SPDX-2.3"}') || e2e_die "artifact"
SIG=$(mk_artifact "$LAYOUT" application/vnd.dev.cosign.artifact.sig.v1+json 'signature') || e2e_die "artifact"
TREE=$T/referrers
check "build a tree from an OCI layout with two artifacts on one image" \
	"$REGPRESS" build -q -o "$TREE" "$LAYOUT"
e2e_serve "$TREE"

referrers_ok() {
	req "/v2/library/base/referrers/$SUBJECT"
	status_is 200
	api_version_ok
	expect type "$(hdr content-type)" application/vnd.oci.image.index.v1+json
	expect "Cache-Control" "$(hdr cache-control)" "public, max-age=60"
	[ -z "$(hdr oci-filters-applied)" ]
	jq -e '.schemaVersion == 2 and .mediaType == "application/vnd.oci.image.index.v1+json"' "$T/b"
	diff <(jq -r '.manifests[] | "\(.digest) \(.artifactType) \(.mediaType)"' "$T/b" | sort) \
		<(printf '%s\n' "$SBOM application/spdx+json application/vnd.oci.image.manifest.v1+json" \
			"$SIG application/vnd.dev.cosign.artifact.sig.v1+json application/vnd.oci.image.manifest.v1+json" | sort)
	# each descriptor's size and annotations are the artifact's own
	local d
	for d in "$SBOM" "$SIG"; do
		expect "size of $d" "$(jq -r --arg d "$d" '.manifests[] | select(.digest == $d) | .size' "$T/b")" \
			"$(stat -c %s "$TREE/blobs/sha256/${d#sha256:}")"
		expect "annotation of $d" "$(jq -r --arg d "$d" '.manifests[] | select(.digest == $d) | .annotations["org.example.note"]' "$T/b")" \
			'a}, {"b": [1]'
	done
	cmp -s "$T/b" "$(repo_dir library/base)/_referrers/${SUBJECT#sha256:}"
}
check "referrers: the image's index lists both artifacts with artifactType, size, annotations" referrers_ok
check "referrers: artifactType filter keeps the SBOM only and says OCI-Filters-Applied" \
	eval 'req "/v2/library/base/referrers/$SUBJECT?artifactType=application/spdx%2Bjson" && status_is 200 &&
		expect filters "$(hdr oci-filters-applied)" artifactType &&
		expect type "$(hdr content-type)" application/vnd.oci.image.index.v1+json &&
		expect digests "$(jq -r "[.manifests[].digest] | join(\" \")" "$T/b")" "$SBOM" &&
		jq -e ".manifests[0].annotations[\"org.example.note\"] == \"a}, {\\\"b\\\": [1]\"" "$T/b" &&
		jq -e ".mediaType == \"application/vnd.oci.image.index.v1+json\" and .schemaVersion == 2" "$T/b"'
check "referrers: a filter matching nothing is an empty index, filter applied" \
	eval 'req "/v2/library/base/referrers/$SUBJECT?artifactType=text/plain" && status_is 200 &&
		expect filters "$(hdr oci-filters-applied)" artifactType && expect body "$(cat "$T/b")" "$EMPTY_INDEX"'
check "referrers: through ?ns=docker.io mirror routing too" \
	eval 'req "/v2/base/referrers/$SUBJECT?ns=docker.io" && status_is 200 &&
		cmp -s "$T/b" "$(repo_dir library/base)/_referrers/${SUBJECT#sha256:}"'
check "referrers: the artifacts themselves are served by digest with their blobs" \
	eval 'manifest_ok library/base "$SBOM" "sha256/${SBOM#sha256:}" &&
		req "/v2/library/base/blobs/$(jq -r .layers[0].digest "$TREE/blobs/sha256/${SBOM#sha256:}")" && status_is 200 &&
		expect body "$(cat "$T/b")" "{\"spdxVersion\":\"SPDX-2.3\"}"'
check "referrers: an artifact has no referrers: empty index" \
	eval 'req "/v2/library/base/referrers/$SBOM" && status_is 200 && expect body "$(cat "$T/b")" "$EMPTY_INDEX"'
check "referrers: skopeo still pulls the image by tag" \
	skopeo inspect --raw --cert-dir "$CA_DIR" "docker://$REG/library/base:1"

# ---------------------------------------------------------------------------------------------
# 4. The command itself.

check "serve refuses a directory that is not a tree, naming it" \
	eval '! "$REGPRESS" serve "$T/fx" --cert "$CERTS/server.crt" --key "$CERTS/server.key" 2>"$T/e" &&
		grep -q "$T/fx" "$T/e" && [ "$(wc -l <"$T/e")" -eq 1 ]'
check "serve refuses a missing certificate, naming it" \
	eval '! "$REGPRESS" serve "$TREE" --cert "$T/nope.crt" --key "$CERTS/server.key" 2>"$T/e" &&
		grep -q nope.crt "$T/e" && [ "$(wc -l <"$T/e")" -eq 1 ]'
check "serve refuses a key that does not match the certificate" \
	eval '! "$REGPRESS" serve "$TREE" --cert "$CERTS/server.crt" --key "$CERTS/ca.key" 2>"$T/e" &&
		grep -q "does not match" "$T/e"'
usage_exit_2() {
	local rc=0
	"$REGPRESS" serve 2>/dev/null || rc=$?
	expect "no TREE" "$rc" 2
	rc=0
	"$REGPRESS" serve "$TREE" --cert x --key y --listen ::1:5000 2>/dev/null || rc=$?
	expect "unbracketed IPv6" "$rc" 2
	rc=0
	"$REGPRESS" serve "$TREE" --bogus 2>/dev/null || rc=$?
	expect "unknown option" "$rc" 2
	rc=0
	"$REGPRESS" serve "$TREE" --cert x --key y --workers 0 2>/dev/null || rc=$?
	expect "--workers 0" "$rc" 2
}
check "serve usage errors exit 2" usage_exit_2
check "serve --help exits 0 on stdout" eval '"$REGPRESS" serve --help | grep -q "^usage: regpress serve"'
check "serve --print-config is a config lighttpd accepts" \
	eval '"$REGPRESS" serve "$TREE" --cert "$CERTS/server.crt" --key "$CERTS/server.key" --config-dir "$T/cfg" \
		--listen "[::1]:5000" && lighttpd -tt -f "$T/cfg/lighttpd.conf" &&
		"$REGPRESS" serve "$TREE" --cert "$CERTS/server.crt" --key "$CERTS/server.key" --print-config \
		--config-dir "$T/cfg" --listen "[::1]:5000" | cmp - "$T/cfg/lighttpd.conf" &&
		grep -q "server.bind = \"\[::1\]\"" "$T/cfg/lighttpd.conf"'
# By default lighttpd forks one worker per CPU (at most 8); on one CPU it is a single process.
default_workers() {
	local lpid want
	lpid=$(pgrep -P "$SERVE_PID" lighttpd)
	want=$(nproc)
	[ "$want" -le 8 ] || want=8
	[ "$want" -gt 1 ] || want=0
	e2e_wait_for 50 eval '[ "$(pgrep -c -P "$lpid" lighttpd)" -eq "$want" ]' ||
		{ echo "$(pgrep -c -P "$lpid" lighttpd) lighttpd workers, want $want"; return 1; }
}
check "serve runs one lighttpd worker per CPU by default" default_workers
# The runtime directory is the one of lighttpd's -f argument.
stops_and_cleans() {
	local lpid conf
	lpid=$(pgrep -P "$SERVE_PID" lighttpd)
	conf=$(tr '\0' '\n' <"/proc/$lpid/cmdline" | sed -n '/^-f$/{n;p}')
	[ -f "$conf" ]
	e2e_serve_stop
	! kill -0 "$lpid" 2>/dev/null
	[ ! -e "$(dirname "$conf")" ] || { echo "$(dirname "$conf") left behind"; return 1; }
}
check "serve stops on SIGTERM, lighttpd with it, and removes its runtime directory" stops_and_cleans

e2e_done
