-- regpress.lua: the OCI Distribution pull API over a regpress tree (docs/tree-format.md).
--
-- Runs as lighttpd mod_magnet `magnet.attract-physical-path-to` for every request. It maps URLs
-- to files and sets headers: blobs and lists are sent by lighttpd's static handler (sendfile,
-- Range, HEAD, Content-Length, ETag); manifests, small and hot, from a per-worker cache. Nothing is
-- parsed per request except the one-line manifest pointer and, when paginating, a tags/catalog
-- JSON file.
--
-- Every request outside a route below ends here with a status, so lighttpd never maps a URL to a
-- file by itself: `registry/snapshot`, `blobs/...` or anything else under the document root are
-- reachable only through the routes.

local r = lighty.r
local attr = r.req_attr
local hdr = r.resp_header

-- Manifests are sent from memory, keyed by digest: a manifest GET then costs one small pointer
-- read and no path lookups, where a file sent by lighttpd costs two lstat() per path component
-- (symlink following is off). A manifest enters the cache only after lighttpd's static handler
-- has served its file (with every symlink check) and its bytes hash to its digest. The table lives
-- in the script's global state, which lighttpd keeps between requests (one per worker process),
-- and is emptied when it passes MANIFEST_CACHE_BYTES, so memory stays bounded.
local MANIFEST_MAX = 4 * 1024 * 1024 -- the limit registries put on a manifest
local MANIFEST_CACHE_BYTES = 32 * 1024 * 1024 -- per worker process
local MANIFESTS = _G.regpress_manifests
if not MANIFESTS then
	local bodies, bytes = {}, 0
	MANIFESTS = {
		get = function(hex)
			return bodies[hex]
		end,
		put = function(hex, body)
			if bytes + #body > MANIFEST_CACHE_BYTES then
				bodies, bytes = {}, 0
			end
			bodies[hex] = body
			bytes = bytes + #body
		end,
	}
	_G.regpress_manifests = MANIFESTS
end

-- The contents of file p, or its first limit bytes; nil if it cannot be read.
local function read_all(p, limit)
	local f = io.open(p, "rb")
	if not f then
		return nil
	end
	local s = f:read(limit or "a")
	f:close()
	return s
end

-- The same script runs again at response start for manifest URLs (serve.c): when the static
-- handler has just sent a manifest missing from the cache (the request stage below left its digest
-- in the request's environment), read it once more and keep it if it hashes right.
if r.req_item.http_status ~= 0 then
	local fill = r.req_env["regpress.fill"]
	if fill and r.req_item.http_status == 200 and not MANIFESTS.get(fill) then
		local body = read_all(attr["physical.path"], MANIFEST_MAX + 1)
		if body and lighty.c.md("sha256", body):lower() == fill then
			MANIFESTS.put(fill, body)
		end
	end
	return 0
end

local JSON = "application/json"
local IMMUTABLE = "public, max-age=31536000, immutable"
local SHORT = "public, max-age=60" -- tags move; a minute bounds staleness after a republish

-- Clients only inspect `code`; message/detail are for humans. Bodies are built from fixed strings
-- and validated names only, so no JSON escaping is needed.
local function fail(status, code, message)
	hdr["Content-Type"] = JSON
	hdr["Cache-Control"] = "no-store"
	r.resp_body.set({ '{"errors":[{"code":"', code, '","message":"', message, '","detail":null}]}' })
	return status
end

-- On every answer of the script, inside /v2 or not (the README promises it on every response).
hdr["Docker-Distribution-API-Version"] = "registry/2.0"

local path = attr["uri.path"] -- already percent-decoded and dot-segment-normalised by lighttpd
if path ~= "/v2" and path:sub(1, 4) ~= "/v2/" then
	return fail(404, "NOT_FOUND", "not found")
end

local method = attr["request.method"]
if method ~= "GET" and method ~= "HEAD" then
	hdr["Allow"] = "GET, HEAD"
	return fail(405, "UNSUPPORTED", "the registry is read-only")
end

if path == "/v2" or path == "/v2/" then
	hdr["Content-Type"] = JSON
	r.resp_body.set({ "{}" })
	return 200
end

local root = attr["physical.doc-root"]
local reg = root .. "/registry/"

-- Query parameters; the script is the only user and no rewrite runs first, so uri.query is intact.
local query = {}
for k, v in string.gmatch(attr["uri.query"] or "", "([^&=]+)=([^&]*)") do
	query[k] = lighty.c.urldec(v)
end

-- One repository path component, distribution grammar [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.
-- This also refuses "", ".", "..", and leading "_" or "." (the tree's own `_tags.json`, ...).
local function component_ok(c)
	if not c:find("^[a-z0-9][a-z0-9._-]*$") or not c:find("[a-z0-9]$") then
		return false
	end
	for sep in c:gmatch("[._-]+") do
		if sep ~= "." and sep ~= "_" and sep ~= "__" and sep:find("[^-]") then
			return false
		end
	end
	return true
end

-- A registry host, possibly with a port: the file name stores "host:port" as "host+port" because
-- ':' is not portable to every file system the tree may travel on.
local function host_dir(h)
	local host, port = h:match("^([^:]+):(%d%d?%d?%d?%d?)$")
	if host then
		return component_ok(host) and (host .. "+" .. port) or nil
	end
	return component_ok(h) and h or nil
end

-- Repository name -> directory under registry/repos/, or nil when the name is malformed.
local function repo_dir(name)
	if #name > 255 then
		return nil
	end
	local parts, i = {}, 0
	for c in (name .. "/"):gmatch("([^/]*)/") do
		i = i + 1
		-- Only the first component of a multi-component name may be a host:port.
		local d = (i == 1 and name:find("/", 1, true)) and host_dir(c) or (component_ok(c) and c)
		if not d then
			return nil
		end
		parts[i] = d
	end
	return table.concat(parts, "/")
end

local function file_exists(p)
	local st = lighty.c.stat(p)
	return st ~= nil and st.is_file
end

-- The contents of a tree file the script reads itself (a manifest pointer, a tag list or the
-- catalog to paginate, a referrers index to filter), after the checks lighttpd's static handler
-- makes before it sends a file: no symlink anywhere in the path (server.follow-symlink is off),
-- a regular file, opened without following a link. Those checks are lighttpd's own: the stat
-- object's "http-response-send-file" runs them (http_response_send_file, lighttpd 1.4.69) and
-- attaches the file to the response, which is undone here (the body, and the headers it may have
-- set, put back as they were; the status it leaves, 200, is replaced by the script's answer). io.open alone
-- follows symlinks, so a tampered tree could otherwise make the script read and return any file.
-- Returns the text, or nil and "missing" or "denied" (the static handler's 403).
local function read_checked(p, limit)
	local st = lighty.c.stat(p)
	if not st then
		return nil, "missing"
	end
	local saved = { hdr["Content-Type"], hdr["ETag"], hdr["Last-Modified"] }
	local status = st["http-response-send-file"]
	r.resp_body.set({})
	hdr["Content-Type"] = saved[1] or ""
	hdr["ETag"] = saved[2] or ""
	hdr["Last-Modified"] = saved[3] or ""
	-- 304: lighttpd answered a conditional request, after the same checks.
	if status ~= 200 and status ~= 304 then
		return nil, "denied"
	end
	local body = read_all(p, limit)
	if not body then
		return nil, "missing"
	end
	return body
end

-- Manifest pointers are read on every manifest request, and the checks above cost a lstat() per
-- path component each time (a fifth of the rate of cached manifests). So a pointer lighttpd has
-- approved is remembered with its file's identity (inode, change time, size; any rename, link,
-- chmod or write changes the change time) and read again without the checks while the path still
-- leads to that same file. What a pointer says is used only when it parses as a pointer naming a
-- blob of the tree, which is then served with the static handler's checks or from the cache, so a
-- link swapped in between two stat() (lighttpd keeps one per second) can disclose nothing else.
-- Bounded like the manifest cache: forgotten wholesale past POINTERS_MAX entries.
local POINTERS_MAX = 16384 -- paths of a few hundred bytes: a few MiB per worker
local POINTERS = _G.regpress_pointers
if not POINTERS then
	local ok, n = {}, 0
	POINTERS = {
		approved = function(p, id)
			return ok[p] == id
		end,
		approve = function(p, id)
			if n >= POINTERS_MAX then
				ok, n = {}, 0
			end
			if not ok[p] then
				n = n + 1
			end
			ok[p] = id
		end,
	}
	_G.regpress_pointers = POINTERS
end

local function read_pointer(p)
	local st = lighty.c.stat(p)
	if not st then
		return nil, "missing"
	end
	local s, ns = st.st_ctim()
	local id = st.st_ino .. " " .. s .. "." .. ns .. " " .. st.st_size
	if POINTERS.approved(p, id) then
		return read_all(p, 1024)
	end
	local text, why = read_checked(p, 1024)
	if text then
		POINTERS.approve(p, id)
	end
	return text, why
end

local function denied()
	return fail(403, "DENIED", "access denied")
end

-- Hand a file to the static handler. Content-Type and ETag set here survive it, and its
-- If-None-Match handling compares against that ETag (lighttpd 1.4.69). Content addressed by a
-- digest has the digest as its ETag, as registry:2 sends it: the same on every copy of a tree, and
-- the same whether a manifest comes from a file or from the cache.
local function content_headers(ctype, cache, digest)
	hdr["Content-Type"] = ctype
	hdr["Cache-Control"] = cache
	if digest then
		hdr["Docker-Content-Digest"] = digest
		hdr["ETag"] = '"' .. digest .. '"'
	end
end

local function send(file, ctype, cache, digest)
	attr["physical.path"] = file
	content_headers(ctype, cache, digest)
	return 0
end

-- tags/list and _catalog with n/last: `last` is exclusive, lists are sorted in byte order in the
-- file (tree-format.md), and their items (tags, repository names) never contain '"' or '\', so a
-- pattern extracts them. Without n/last the precomputed file is sent as it is.
local function paginate(file, key, head, link_base, link_extra)
	local n, last = query["n"], query["last"]
	if not n and not last then
		return file_exists(file) and send(file, JSON, SHORT) or nil
	end
	if n and not n:find("^%d+$") then
		return fail(400, "PAGINATION_NUMBER_INVALID", "n must be a non-negative integer")
	end
	n = n and tonumber(n)
	local body, why = read_checked(file)
	if why == "denied" then
		return denied()
	end
	local list = body and body:match('"' .. key .. '":%[(.-)%]')
	if not list then
		return nil
	end
	local out, more = {}, false
	for item in list:gmatch('"([^"]*)"') do
		if not last or item > last then
			if n and #out >= n then
				more = true
				break
			end
			out[#out + 1] = '"' .. item .. '"'
		end
	end
	if more and #out > 0 then -- n=0 asks for nothing, so there is no next page to point at
		hdr["Link"] = "<" .. link_base .. "?last=" .. lighty.c.urlenc(out[#out]:sub(2, -2)) ..
			"&n=" .. n .. link_extra .. '>; rel="next"'
	end
	hdr["Content-Type"] = JSON
	hdr["Cache-Control"] = SHORT
	r.resp_body.set({ head, '"', key, '":[', table.concat(out, ","), "]}" })
	return 200
end

if path == "/v2/_catalog" then
	return paginate(reg .. "catalog.json", "repositories", "{", "/v2/_catalog", "") or
		fail(404, "NOT_FOUND", "no catalog")
end

-- The reference/kind never contain '/', so a greedy name leaves exactly one parse.
local name, kind, ref = path:match("^/v2/(.+)/(manifests)/([^/]+)$")
if not name then
	name, kind, ref = path:match("^/v2/(.+)/(blobs)/([^/]+)$")
end
if not name then
	name, kind, ref = path:match("^/v2/(.+)/(referrers)/([^/]+)$")
end
if not name then
	name = path:match("^/v2/(.+)/tags/list$")
	kind = "tags"
end
if not name then
	return fail(404, "NOT_FOUND", "no such endpoint")
end

-- containerd mirrors send /v2/<path>?ns=<registry> with the registry host removed from the path.
local repo = name
local ns = query["ns"]
if ns and ns ~= "" then
	ns = ns:lower()
	if ns == "docker.io" or ns == "index.docker.io" or ns == "registry-1.docker.io" then
		if not name:find("/", 1, true) then
			repo = "library/" .. name
		end
	else
		repo = ns .. "/" .. name
	end
end

local dir = repo_dir(repo)
if not dir then
	return fail(400, "NAME_INVALID", "invalid repository name")
end
dir = reg .. "repos/" .. dir .. "/"

-- Misses are checked against the repository's _tags.json only then, to keep hits at one lookup.
-- The message names the repository and what was asked of it ("manifest library/app:2.1"): Docker
-- and podman print it after the code, and print the code alone when the message is the spec's
-- standard text. repo and the references passed the name, tag and digest grammars, so they hold
-- no character JSON would need escaped. `asked` is what a NAME_UNKNOWN adds ("manifest 2.1").
local function unknown(code, what, asked)
	if not file_exists(dir .. "_tags.json") then
		return fail(404, "NAME_UNKNOWN", "repository " .. repo .. " not known to registry" ..
			(asked and (" (" .. asked .. ")") or ""))
	end
	return fail(404, code, what .. " unknown to registry")
end

if kind == "tags" then
	local extra = (ns and ns ~= "") and ("&ns=" .. lighty.c.urlenc(ns)) or ""
	local head = '{"name":"' .. repo .. '",'
	return paginate(dir .. "_tags.json", "tags", head, "/v2/" .. name .. "/tags/list", extra) or
		unknown("NAME_UNKNOWN", "tag list of " .. repo)
end

-- Walk JSON text from position i, outside strings: visit(c, i, depth) for each bracket ('{', '[',
-- '}', ']', with the depth inside it) and visit('"', i, depth, s, e) for each string (its contents
-- are text:sub(s, e), escapes left as they are). Stops when visit returns a value, and returns it.
-- Tracking strings and depth means braces or commas in annotation values never split anything.
local function json_walk(text, i, visit)
	local depth, instr, esc, s = 0, false, false, nil
	while i <= #text do
		local c, got = text:sub(i, i), nil
		if instr then
			if esc then
				esc = false
			elseif c == "\\" then
				esc = true
			elseif c == '"' then
				instr = false
				got = visit('"', i, depth, s, i - 1)
			end
		elseif c == '"' then
			instr, s = true, i + 1
		elseif c == "{" or c == "[" then
			depth = depth + 1
			got = visit(c, i, depth)
		elseif c == "}" or c == "]" then
			got = visit(c, i, depth)
			depth = depth - 1
		end
		if got ~= nil then
			return got
		end
		i = i + 1
	end
	return nil
end

-- The descriptors of an OCI index's "manifests" array, as the JSON text of each (for filtering
-- without a JSON library); nil if the array is absent or unterminated.
local function index_descriptors(body)
	local start = body:find('"manifests":%[')
	if not start then
		return nil
	end
	local out, from = {}, nil
	-- depth 1 is the array itself, 2 a descriptor.
	return json_walk(body, body:find("[", start, true), function(c, i, depth)
		if c == "{" and depth == 2 then
			from = i
		elseif c == "}" and depth == 2 then
			out[#out + 1] = body:sub(from, i)
		elseif c == "]" and depth == 1 then
			return out
		end
	end)
end

-- The value of a descriptor's top-level string member `key` (nil when absent).
local function top_string(desc, key)
	return json_walk(desc, 1, function(c, i, depth, s, e)
		if c == '"' and depth == 1 and desc:sub(s, e) == key and desc:sub(i + 1, i + 1) == ":" then
			return desc:match('^"([^"\\]*)"', i + 2) or false
		end
	end) or nil
end

local EMPTY_INDEX = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
local INDEX = "application/vnd.oci.image.index.v1+json"

-- A reference with ':' is a digest. Only sha256 is stored; any other well-formed digest is simply
-- unknown, a malformed one (sha256:totallywrong) is 400 as the spec allows, never a 500.
local hex, cache, ref_name
if ref:find(":", 1, true) then
	local alg, enc = ref:match("^([a-z0-9]+[a-z0-9+._-]*):([A-Za-z0-9=_-]+)$")
	if alg == "sha256" then
		hex = (#enc == 64 and enc:find("^[0-9a-f]+$")) and enc or nil
	elseif alg then
		hex = false -- another algorithm: well-formed but never stored
	end
	if hex == nil then
		return fail(400, "DIGEST_INVALID", "invalid digest")
	end
	cache, ref_name = IMMUTABLE, repo .. "@" .. ref
elseif kind == "blobs" or kind == "referrers" then
	return fail(400, "DIGEST_INVALID", "invalid digest")
else
	if not ref:find("^[A-Za-z0-9_][A-Za-z0-9._-]*$") or #ref > 128 then
		return fail(404, "MANIFEST_UNKNOWN", "invalid tag for repository " .. repo)
	end
	cache, ref_name = SHORT, repo .. ":" .. ref
end

if kind == "blobs" then
	if not hex or not file_exists(dir .. "_blobs/" .. hex) then
		return unknown("BLOB_UNKNOWN", "blob " .. ref_name, "blob " .. ref)
	end
	return send(root .. "/blobs/sha256/" .. hex, "application/octet-stream", IMMUTABLE, "sha256:" .. hex)
end

-- referrers: the precomputed index of the repository's manifests whose subject is the digest, or
-- an empty index (never 404 for a known repository: a 404 sends clients to the fallback tag).
-- The list can change on a republish, so it is cached briefly like a tag.
if kind == "referrers" then
	if not file_exists(dir .. "_tags.json") then
		return unknown("NAME_UNKNOWN", "referrers of " .. ref_name, "referrers of " .. ref)
	end
	local file = hex and (dir .. "_referrers/" .. hex)
	local want = query["artifactType"]
	hdr["Content-Type"] = INDEX
	hdr["Cache-Control"] = SHORT
	if not file or not file_exists(file) then
		if want then
			hdr["OCI-Filters-Applied"] = "artifactType"
		end
		r.resp_body.set({ EMPTY_INDEX })
		return 200
	end
	if not want then
		return send(file, INDEX, SHORT)
	end
	local text, why = read_checked(file)
	if why == "denied" then
		return denied()
	end
	local descs = index_descriptors(text or "")
	if not descs then
		return fail(500, "UNKNOWN", "unreadable referrers index")
	end
	local keep = {}
	for _, d in ipairs(descs) do
		if top_string(d, "artifactType") == want then
			keep[#keep + 1] = d
		end
	end
	hdr["OCI-Filters-Applied"] = "artifactType"
	r.resp_body.set({ '{"schemaVersion":2,"mediaType":"', INDEX, '","manifests":[',
		table.concat(keep, ","), "]}" })
	return 200
end

-- manifests: the pointer "sha256:<hex> <size> <media-type>" gives the digest and the exact type
-- clients need as Content-Type.
if hex == false then
	return unknown("MANIFEST_UNKNOWN", "manifest " .. ref_name, "manifest " .. ref)
end
local pointer, why = read_pointer(dir .. "_manifests/" .. (hex and ("sha256/" .. hex) or ("tags/" .. ref)))
if why == "denied" then
	return denied()
end
local phex, psize, mtype
if pointer then
	phex, psize, mtype = pointer:match("^sha256:(%x+) (%d+) ([%w!#$&^_.+/-]+)\n?$")
end
if not phex or #phex ~= 64 then
	return unknown("MANIFEST_UNKNOWN", "manifest " .. ref_name, "manifest " .. ref)
end
local digest = "sha256:" .. phex
local body = MANIFESTS.get(phex)
if not body then
	if tonumber(psize) <= MANIFEST_MAX then
		r.req_env["regpress.fill"] = phex
	end
	return send(root .. "/blobs/sha256/" .. phex, mtype, cache, digest)
end
content_headers(mtype, cache, digest)
local inm = r.req_header["If-None-Match"]
if inm and (inm == "*" or inm:find(hdr["ETag"], 1, true)) then
	return 304
end
r.resp_body.set({ body })
return 200
