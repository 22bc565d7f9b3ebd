#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "fsutil.h"
#include "sign.h"
#include "snapshot.h"
#include "view.h"

#define STAGING ".regpress-tmp"
#define SIG_FILE "registry/snapshot.sig"
#define HASH_BUF (1u << 20)

struct vctx {
	const char *tree;
	const struct verify_opts *o;
	struct verify_result *res;
	json_t *files; /* rel -> sha256 hex of the expected content */
	json_t *dirs;  /* rel -> true, every directory an expected file needs */
	json_t *blobs; /* hex -> {"size": n, "seen": bool} */
	json_t *seen;  /* rel -> true, derived files found */
	uint64_t total, done;
	unsigned char *buf;
};

static void finding(struct vctx *v, enum verify_level level, const char *rel, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void finding(struct vctx *v, enum verify_level level, const char *rel, const char *fmt, ...)
{
	char what[1024], path[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s%s%s", v->tree, rel[0] ? "/" : "", rel);
	if (level == VERIFY_PROBLEM)
		v->res->problems++;
	else
		v->res->warnings++;
	if (v->o->report)
		v->o->report(v->o->ctx, level, path, what);
}

static void add_dirs(struct vctx *v, const char *rel)
{
	char buf[4096];
	char *slash;

	snprintf(buf, sizeof(buf), "%s", rel);
	while ((slash = strrchr(buf, '/'))) {
		*slash = '\0';
		json_object_set_new(v->dirs, buf, json_true());
	}
}

static int expect_file(void *ctx, const char *rel, const void *buf, size_t len, struct rp_err *err)
{
	struct vctx *v = ctx;
	char hex[RP_HEX_LEN + 1];

	(void)err;
	rp_sha256_buf(buf, len, hex);
	json_object_set_new(v->files, rel, json_string(hex));
	add_dirs(v, rel);
	return 0;
}

static void expect_blob(struct vctx *v, const char *hex, uint64_t size)
{
	json_t *b = json_object_get(v->blobs, hex);

	if (b) {
		if ((uint64_t)json_integer_value(json_object_get(b, "size")) != size)
			finding(v, VERIFY_PROBLEM, "registry/snapshot",
				"sha256:%s is listed with two different sizes", hex);
		return;
	}
	json_object_set_new(v->blobs, hex, json_pack("{s:I, s:b}", "size", (json_int_t)size,
						      "seen", 0));
	v->total += size;
}

static int expect_twin(void *ctx, const void *buf, size_t len, char hex[RP_HEX_LEN + 1],
		       struct rp_err *err)
{
	(void)err;
	rp_sha256_buf(buf, len, hex);
	expect_blob(ctx, hex, len);
	return 0;
}

static int read_blob(void *ctx, const char *hex, char **buf, size_t *len, struct rp_err *err)
{
	struct vctx *v = ctx;
	char rel[RP_HEX_LEN + 16];
	char *path;
	int rc;

	snprintf(rel, sizeof(rel), "blobs/sha256/%s", hex);
	path = rp_join(v->tree, rel);
	if (!path)
		return rp_errf(err, "out of memory");
	rc = rp_read_file(path, 4u << 20, buf, len, err);
	free(path);
	return rc;
}

/* Hash a file, feeding progress; 0 and hex set, or -1 if unreadable. */
static int hash_file(struct vctx *v, const char *path, char hex[RP_HEX_LEN + 1])
{
	struct rp_sha256 h;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0 || rp_sha256_init(&h) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((n = read(fd, v->buf, HASH_BUF)) > 0) {
		rp_sha256_update(&h, v->buf, (size_t)n);
		v->done += (uint64_t)n;
		if (v->o->progress)
			v->o->progress(v->o->ctx, v->done, v->total);
	}
	close(fd);
	if (n < 0) {
		rp_sha256_free(&h);
		return -1;
	}
	rp_sha256_final(&h, hex);
	return 0;
}

/* A writer killed right after its publishing rename leaves index.json and oci-layout for the
 * new snapshot in the staging area (TREE/.regpress-tmp/<name>-<snapshot id>), and the next writer
 * puts them in place: the tree in place is then not damaged, only one step behind. */
static int pending_in_staging(struct vctx *v, const char *rel, const char *want)
{
	char *path = NULL, *buf = NULL, hex[RP_HEX_LEN + 1];
	size_t len;
	int ok = 0;

	if (strcmp(rel, "index.json") && strcmp(rel, "oci-layout"))
		return 0;
	if (asprintf(&path, "%s/%s/%s-%s", v->tree, STAGING, rel, v->res->snapshot_id) < 0)
		return 0;
	if (rp_read_file(path, SNAPSHOT_MAX, &buf, &len, NULL) == 0) {
		rp_sha256_buf(buf, len, hex);
		ok = !strcmp(hex, want);
	}
	free(buf);
	free(path);
	if (ok)
		finding(v, VERIFY_WARNING, rel, "not yet the snapshot's: an interrupted write left "
			"the new one in %s; the next write puts it in place", STAGING);
	return ok;
}

static struct vctx *walk_ctx;

static int walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	struct vctx *v = walk_ctx;
	const char *rel = path + strlen(v->tree);
	char hex[RP_HEX_LEN + 1];

	(void)ftw;
	while (*rel == '/')
		rel++;
	if (!strcmp(rel, "cache") || !strncmp(rel, "cache/", 6))
		return 0; /* the build cache: not part of the snapshot (docs/tree-format.md) */
	if (!strncmp(rel, STAGING, strlen(STAGING)) &&
	    (rel[strlen(STAGING)] == '\0' || rel[strlen(STAGING)] == '/')) {
		if (rel[strlen(STAGING)] == '\0')
			finding(v, VERIFY_WARNING, rel, "left by an interrupted write; the next "
				"write removes it");
		return 0;
	}
	if (!strcmp(rel, ".regpress-import") || !strncmp(rel, ".regpress-import/", 17)) {
		/* layout/media.h: verified files of an import waiting for more volumes */
		if (rel[16] == '\0')
			finding(v, VERIFY_WARNING, rel, "an unfinished import (regpress import); "
				"not served, removed when the import completes");
		return 0;
	}
	if (type == FTW_D || type == FTW_DP) {
		if ((st->st_mode & 07777) != RP_DIR_MODE)
			finding(v, VERIFY_PROBLEM, rel, "directory mode %04o, want %04o",
				st->st_mode & 07777, RP_DIR_MODE);
		if (rel[0] && !json_object_get(v->dirs, rel))
			finding(v, VERIFY_PROBLEM, rel, "unexpected directory");
		return 0;
	}
	if (type == FTW_SL || type == FTW_SLN || !S_ISREG(st->st_mode)) {
		finding(v, VERIFY_PROBLEM, rel, "not a regular file (the tree holds no links or "
			"special files)");
		return 0;
	}
	if ((st->st_mode & 07777) != RP_FILE_MODE)
		finding(v, VERIFY_PROBLEM, rel, "mode %04o, want %04o", st->st_mode & 07777,
			RP_FILE_MODE);
	if (!strncmp(rel, "blobs/sha256/", 13)) {
		const char *name = rel + 13;
		json_t *b = json_object_get(v->blobs, name);

		if (!b && !rp_hex_valid(name)) {
			finding(v, VERIFY_PROBLEM, rel, "stray file (not a blob name)");
			return 0;
		}
		/* An unused blob is what rm leaves for gc: normal, unless the tree must be exactly a
		 * signed snapshot. */
		if (!b) {
			finding(v, v->o->pubkey ? VERIFY_PROBLEM : VERIFY_WARNING, rel,
				"blob not in the snapshot (regpress gc removes it)");
			return 0;
		}
		json_object_set_new(b, "seen", json_true());
		if ((uint64_t)st->st_size != (uint64_t)json_integer_value(json_object_get(b, "size"))) {
			finding(v, VERIFY_PROBLEM, rel, "size %lld, the snapshot says %lld",
				(long long)st->st_size,
				(long long)json_integer_value(json_object_get(b, "size")));
			return 0;
		}
		if (v->o->quick)
			return 0;
		if (hash_file(v, path, hex) < 0)
			finding(v, VERIFY_PROBLEM, rel, "cannot read: %s", strerror(errno));
		else if (strcmp(hex, name))
			finding(v, VERIFY_PROBLEM, rel, "content has digest sha256:%s, not its name",
				hex);
		else
			v->res->blobs++, v->res->bytes += (uint64_t)st->st_size;
		return 0;
	}
	if (!strcmp(rel, SIG_FILE))
		return 0; /* checked on its own */
	{
		json_t *want = json_object_get(v->files, rel);

		if (!want) {
			finding(v, VERIFY_PROBLEM, rel, "stray file (not part of the snapshot)");
			return 0;
		}
		json_object_set_new(v->seen, rel, json_true());
		if (hash_file(v, path, hex) < 0)
			finding(v, VERIFY_PROBLEM, rel, "cannot read: %s", strerror(errno));
		else if (strcmp(hex, json_string_value(want)) &&
			 !pending_in_staging(v, rel, json_string_value(want)))
			finding(v, VERIFY_PROBLEM, rel, "differs from what the snapshot implies");
	}
	return 0;
}

/* Does repo serve this digest as a blob (kind SNAP_BLOB) or manifest (SNAP_MANIFEST)? */
static int repo_has(json_t *served, const char *repo, const char *kind, const char *digest)
{
	char key[512];

	snprintf(key, sizeof(key), "%s %s %s", kind, repo, digest);
	return json_object_get(served, key) != NULL;
}

static void check_manifests(struct vctx *v, const struct snapshot *s)
{
	json_t *served = json_object();
	size_t i, j;

	for (i = 0; i < s->n; i++) {
		char key[512];

		if (s->v[i].kind == SNAP_TAG)
			continue;
		snprintf(key, sizeof(key), "%s %s sha256:%s",
			 s->v[i].kind == SNAP_BLOB ? "blob" : s->v[i].kind == SNAP_MISSING ? "missing"
			 : "manifest", s->v[i].repo, s->v[i].hex);
		json_object_set_new(served, key, json_true());
	}
	for (i = 0; i < s->n; i++) {
		const struct snap_rec *r = &s->v[i];
		char rel[RP_HEX_LEN + 16], *buf = NULL;
		struct rp_err e;
		json_t *m, *refs, *d;
		size_t len;

		if (r->kind != SNAP_MANIFEST)
			continue;
		snprintf(rel, sizeof(rel), "blobs/sha256/%s", r->hex);
		if (read_blob(v, r->hex, &buf, &len, &e) < 0)
			continue; /* reported as missing or unreadable by the walk */
		m = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
		free(buf);
		if (!json_is_object(m)) {
			finding(v, VERIFY_PROBLEM, rel, "manifest is not a JSON object");
			json_decref(m);
			continue;
		}
		if (json_integer_value(json_object_get(m, "schemaVersion")) != 2)
			finding(v, VERIFY_PROBLEM, rel, "manifest schemaVersion is not 2");
		d = json_object_get(m, "mediaType");
		if (d && (!json_is_string(d) || strcmp(json_string_value(d), r->media_type)))
			finding(v, VERIFY_PROBLEM, rel, "mediaType differs from the snapshot's %s",
				r->media_type);
		refs = json_object_get(m, "manifests");
		if (json_is_array(refs)) { /* an index: its children are manifests of the repo */
			json_array_foreach(refs, j, d) {
				const char *dg = json_string_value(json_object_get(d, "digest"));

				if (dg && repo_has(served, r->repo, "missing", dg))
					finding(v, VERIFY_WARNING, rel, "index entry %zu (%s) is absent, "
						"as recorded when the tree was built", j + 1, dg);
				else if (!dg || !repo_has(served, r->repo, "manifest", dg))
					finding(v, VERIFY_PROBLEM, rel, "index entry %zu (%s) is not a "
						"manifest of %s", j + 1, dg ? dg : "no digest", r->repo);
			}
		} else {
			const char *dg = json_string_value(json_object_get(json_object_get(m, "config"),
									     "digest"));

			if (!dg || !repo_has(served, r->repo, "blob", dg))
				finding(v, VERIFY_PROBLEM, rel, "config %s is not a blob of %s",
					dg ? dg : "(none)", r->repo);
			json_array_foreach(json_object_get(m, "layers"), j, d) {
				dg = json_string_value(json_object_get(d, "digest"));
				if (!dg || !repo_has(served, r->repo, "blob", dg))
					finding(v, VERIFY_PROBLEM, rel, "layer %zu (%s) is not a blob "
						"of %s", j + 1, dg ? dg : "no digest", r->repo);
			}
		}
		json_decref(m);
	}
	json_decref(served);
}

static void check_signature(struct vctx *v, const char *text)
{
	char *path = rp_join(v->tree, SIG_FILE), *sig = NULL;
	struct rp_err e;
	size_t len;

	if (!path)
		return;
	if (access(path, F_OK) < 0)
		finding(v, VERIFY_PROBLEM, SIG_FILE, "missing: the tree is not signed");
	else if (rp_read_file(path, 4096, &sig, &len, &e) < 0)
		finding(v, VERIFY_PROBLEM, SIG_FILE, "%s", e.msg);
	else if (sign_verify(v->o->pubkey, text, strlen(text), sig, &e) < 0)
		finding(v, VERIFY_PROBLEM, SIG_FILE, "%s", e.msg);
	else
		v->res->signed_ok = 1;
	free(sig);
	free(path);
}

int layout_verify(const char *tree, const struct verify_opts *o, struct verify_result *res,
		  struct rp_err *err)
{
	struct vctx v = { tree, o, res, json_object(), json_object(), json_object(), json_object(),
			  0, 0, malloc(HASH_BUF) };
	struct view_sink sink = { expect_file, expect_twin, read_blob, &v };
	struct snapshot s = { NULL, 0, "" };
	char *text = NULL;
	const char *key;
	json_t *val;
	size_t i;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	if (!v.files || !v.dirs || !v.blobs || !v.seen || !v.buf) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (snapshot_load(tree, &s, &text, err) < 0)
		goto out;
	memcpy(res->snapshot_id, s.id, sizeof(s.id));
	for (i = 0; i < s.n; i++)
		if (s.v[i].kind == SNAP_BLOB || s.v[i].kind == SNAP_MANIFEST)
			expect_blob(&v, s.v[i].hex, s.v[i].size);
	{
		struct rp_err e;

		if (view_emit(text, &s, &sink, &e) < 0)
			finding(&v, VERIFY_PROBLEM, "registry/snapshot", "cannot derive the tree: %s",
				e.msg);
	}
	json_object_foreach(v.blobs, key, val) {
		char rel[RP_HEX_LEN + 16];

		snprintf(rel, sizeof(rel), "blobs/sha256/%s", key);
		add_dirs(&v, rel);
	}
	json_object_set_new(v.dirs, "registry", json_true());
	walk_ctx = &v;
	if (nftw(tree, walk_one, 32, FTW_PHYS) < 0) {
		rp_errno(err, "cannot walk '%s'", tree);
		goto out;
	}
	json_object_foreach(v.files, key, val)
		if (!json_object_get(v.seen, key) &&
		    !pending_in_staging(&v, key, json_string_value(val)))
			finding(&v, VERIFY_PROBLEM, key, "missing");
	json_object_foreach(v.blobs, key, val)
		if (!json_is_true(json_object_get(val, "seen"))) {
			char rel[RP_HEX_LEN + 16];

			snprintf(rel, sizeof(rel), "blobs/sha256/%s", key);
			finding(&v, VERIFY_PROBLEM, rel, "missing blob");
		}
	check_manifests(&v, &s);
	if (o->pubkey)
		check_signature(&v, text);
	rc = 0;
out:
	free(text);
	free(v.buf);
	snapshot_free(&s);
	json_decref(v.files);
	json_decref(v.dirs);
	json_decref(v.blobs);
	json_decref(v.seen);
	return rc;
}
