#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "fsutil.h"
#include "manifest.h"
#include "release.h"
#include "sign.h"
#include "tree_int.h"
#include "view.h"
#include "viewsync.h"

#define HASH_BUF (1u << 20)

struct vctx {
	struct layout_tree *t;
	const struct verify_opts *o;
	struct verify_result *res;
	json_t *files; /* rel -> sha256 hex of the expected content */
	json_t *dirs;  /* rel -> true, every directory an expected file needs */
	json_t *blobs; /* hex -> {"size": n, "seen": bool} */
	json_t *seen;  /* rel -> true, derived files found */
	int spare;     /* the spare holds this snapshot: it is checked like registry/ */
	const char *prefix; /* of the view files being noted: FMT_VIEW or FMT_SPARE */
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
	fsat_name(&v->t->root, rel, path, sizeof(path));
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

static void expect(struct vctx *v, const char *rel, const void *buf, size_t len)
{
	char hex[RP_HEX_LEN + 1];

	rp_sha256_buf(buf, len, hex);
	json_object_set_new(v->files, rel, json_string(hex));
	add_dirs(v, rel);
}

static int expect_file(void *ctx, const char *rel, const void *buf, size_t len, struct rp_err *err)
{
	struct vctx *v = ctx;
	char path[4096];

	(void)err;
	snprintf(path, sizeof(path), "%s/%s", v->prefix, rel);
	expect(v, path, buf, len);
	return 0;
}

static void expect_blob(struct vctx *v, const char *hex, uint64_t size)
{
	json_t *b = json_object_get(v->blobs, hex);

	if (b) {
		if ((uint64_t)json_integer_value(json_object_get(b, "size")) != size)
			finding(v, VERIFY_PROBLEM, FMT_SNAPSHOT,
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

static int read_manifest(void *ctx, const char *hex, char **buf, size_t *len, struct rp_err *err)
{
	return tree_read_manifest(((struct vctx *)ctx)->t, hex, buf, len, err);
}

/* Hash a file, feeding progress; 0 and hex set, or -1 (errno) if unreadable. */
static int hash_file(struct vctx *v, const char *rel, char hex[RP_HEX_LEN + 1])
{
	struct rp_sha256 h;
	ssize_t n;
	int fd;

	if (fsat_open_file(&v->t->root, rel, &fd, NULL, NULL) != 0) {
		errno = errno ? errno : EIO;
		return -1;
	}
	if (rp_sha256_init(&h) < 0) {
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
	char path[256], *buf = NULL, hex[RP_HEX_LEN + 1];
	size_t len;
	int ok = 0;

	if (strcmp(rel, FMT_INDEX) && strcmp(rel, FMT_OCI_LAYOUT))
		return 0;
	snprintf(path, sizeof(path), "%s/%s-%s", FMT_STAGING, rel, v->res->snapshot_id);
	if (fsat_read(&v->t->root, path, SNAPSHOT_MAX, &buf, &len, NULL) == 0) {
		rp_sha256_buf(buf, len, hex);
		ok = !strcmp(hex, want);
	}
	free(buf);
	if (ok)
		finding(v, VERIFY_WARNING, rel, "not yet the snapshot's: an interrupted write left "
			"the new one in %s; the next write puts it in place", FMT_STAGING);
	return ok;
}

static int under(const char *rel, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(rel, dir, n) && (rel[n] == '\0' || rel[n] == '/');
}

/* Directories and files outside the snapshot that the format allows: 1 to skip. */
static int allowed_extra(struct vctx *v, const char *rel)
{
	if (under(rel, FMT_CACHE))
		return 1; /* the build cache: not part of the snapshot (docs/tree-format.md) */
	if (under(rel, FMT_STAGING)) {
		if (!strcmp(rel, FMT_STAGING))
			finding(v, VERIFY_WARNING, rel, "left by an interrupted write; the next "
				"write removes it");
		return 1;
	}
	if (under(rel, FMT_IMPORT)) {
		if (!strcmp(rel, FMT_IMPORT))
			finding(v, VERIFY_WARNING, rel, "an unfinished import (regpress import); "
				"not served, removed when the import completes");
		return 1;
	}
	if (under(rel, FMT_SPARE) && !v->spare) {
		if (!strcmp(rel, FMT_SPARE))
			finding(v, VERIFY_WARNING, rel, "a spare view an interrupted write left "
				"unfinished; not served, the next write rebuilds it");
		return 1;
	}
	return 0;
}

static void check_blob_file(struct vctx *v, const char *rel, const struct stat *st)
{
	const char *name = rel + strlen(FMT_BLOBS "/");
	json_t *b = json_object_get(v->blobs, name);
	char hex[RP_HEX_LEN + 1];

	if (!b && !rp_hex_valid(name)) {
		finding(v, VERIFY_PROBLEM, rel, "stray file (not a blob name)");
		return;
	}
	/* An unused blob is what an interrupted write leaves for gc: normal, unless the tree must
	 * be exactly a signed snapshot. */
	if (!b) {
		finding(v, v->o->pubkey ? VERIFY_PROBLEM : VERIFY_WARNING, rel,
			"blob not in the snapshot (regpress gc removes it)");
		return;
	}
	json_object_set_new(b, "seen", json_true());
	if ((uint64_t)st->st_size != (uint64_t)json_integer_value(json_object_get(b, "size"))) {
		finding(v, VERIFY_PROBLEM, rel, "size %lld, the snapshot says %lld",
			(long long)st->st_size,
			(long long)json_integer_value(json_object_get(b, "size")));
		return;
	}
	if (v->o->quick)
		return;
	if (hash_file(v, rel, hex) < 0)
		finding(v, VERIFY_PROBLEM, rel, "cannot read: %s", strerror(errno));
	else if (strcmp(hex, name))
		finding(v, VERIFY_PROBLEM, rel, "content has digest sha256:%s, not its name", hex);
	else
		v->res->blobs++, v->res->bytes += (uint64_t)st->st_size;
}

static void check_derived_file(struct vctx *v, const char *rel)
{
	json_t *want = json_object_get(v->files, rel);
	char hex[RP_HEX_LEN + 1];

	if (!want) {
		finding(v, VERIFY_PROBLEM, rel, "stray file (not part of the snapshot)");
		return;
	}
	json_object_set_new(v->seen, rel, json_true());
	if (hash_file(v, rel, hex) < 0)
		finding(v, VERIFY_PROBLEM, rel, "cannot read: %s", strerror(errno));
	else if (strcmp(hex, json_string_value(want)) &&
		 !pending_in_staging(v, rel, json_string_value(want)))
		finding(v, VERIFY_PROBLEM, rel, "differs from what the snapshot implies%s",
			under(rel, FMT_SPARE) ? " (in the spare view, which the next write would "
			"publish: remove " FMT_SPARE " to have it rebuilt)" : "");
}

/* registry/snapshot.sig, release or release.sig, or the spare's. */
static int is_signed_file(const char *rel)
{
	const char *name = under(rel, FMT_SPARE) ? rel + strlen(FMT_SPARE "/")
			   : under(rel, FMT_VIEW) ? rel + strlen(FMT_VIEW "/") : NULL;
	int i;

	for (i = 0; name && i < LAYOUT_SIGNED_N; i++)
		if (!strcmp(name, layout_signed_name((enum layout_signed)i)))
			return 1;
	return 0;
}

static int walk_one(void *ctx, const char *rel, const struct stat *st, struct rp_err *err)
{
	struct vctx *v = ctx;

	(void)err;
	if (allowed_extra(v, rel))
		return 1;
	if (S_ISDIR(st->st_mode)) {
		if ((st->st_mode & 07777) != RP_DIR_MODE)
			finding(v, VERIFY_PROBLEM, rel, "directory mode %04o, want %04o",
				st->st_mode & 07777, RP_DIR_MODE);
		if (!json_object_get(v->dirs, rel)) {
			finding(v, VERIFY_PROBLEM, rel, "unexpected directory");
			return 1;
		}
		return 0;
	}
	if (!S_ISREG(st->st_mode)) {
		finding(v, VERIFY_PROBLEM, rel, "not a regular file (the tree holds no links or "
			"special files)");
		return 0;
	}
	if ((st->st_mode & 07777) != RP_FILE_MODE)
		finding(v, VERIFY_PROBLEM, rel, "mode %04o, want %04o", st->st_mode & 07777,
			RP_FILE_MODE);
	if (under(rel, FMT_BLOBS) && strchr(rel + strlen(FMT_BLOBS), '/'))
		check_blob_file(v, rel, st);
	else if (!is_signed_file(rel))
		check_derived_file(v, rel); /* signed files are checked on their own */
	return 0;
}

/* Does repo serve this digest as a blob, manifest or missing one? key "kind repo sha256:hex". */
static int repo_has(json_t *served, const char *kind, const char *repo, const char *digest)
{
	char key[512];

	snprintf(key, sizeof(key), "%s %s %s", kind, repo, digest);
	return json_object_get(served, key) != NULL;
}

static void check_refs(struct vctx *v, const char *rel, const struct snap_rec *r,
		       const struct manifest_info *m, json_t *served)
{
	size_t j;

	if (m->is_index) { /* an index: its children are manifests of the repo */
		for (j = 0; j < m->nchildren; j++) {
			const char *dg = json_string_value(json_object_get(m->children[j].desc, "digest"));

			if (dg && repo_has(served, "missing", r->repo, dg))
				finding(v, VERIFY_WARNING, rel, "index entry %zu (%s) is absent, as "
					"recorded when the tree was built", j + 1, dg);
			else if (!dg || !repo_has(served, "manifest", r->repo, dg))
				finding(v, VERIFY_PROBLEM, rel, "index entry %zu (%s) is not a manifest "
					"of %s", j + 1, dg ? dg : "no digest", r->repo);
		}
		return;
	}
	{
		const char *dg = json_string_value(json_object_get(m->config.desc, "digest"));

		if (!dg || !repo_has(served, "blob", r->repo, dg))
			finding(v, VERIFY_PROBLEM, rel, "config %s is not a blob of %s",
				dg ? dg : "(none)", r->repo);
	}
	for (j = 0; j < m->nlayers; j++) {
		const char *dg = json_string_value(json_object_get(m->layers[j].desc, "digest"));

		if (!dg || !repo_has(served, "blob", r->repo, dg))
			finding(v, VERIFY_PROBLEM, rel, "layer %zu (%s) is not a blob of %s", j + 1,
				dg ? dg : "no digest", r->repo);
	}
}

static void check_manifests(struct vctx *v, const struct snapshot *s)
{
	json_t *served = json_object();
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i].kind != SNAP_TAG) {
			char key[512];

			/* "kind repo sha256:hex": the first three fields of the record's line */
			snprintf(key, sizeof(key), "%.*s", (int)(strchr(strchr(strchr(s->v[i].line, ' ')
				 + 1, ' ') + 1, ' ') - s->v[i].line), s->v[i].line);
			json_object_set_new(served, key, json_true());
		}
	for (i = 0; i < s->n; i++) {
		const struct snap_rec *r = &s->v[i];
		struct manifest_info m;
		char rel[RP_HEX_LEN + 16], *buf = NULL;
		json_t *d;
		size_t len;

		if (r->kind != SNAP_MANIFEST)
			continue;
		snprintf(rel, sizeof(rel), FMT_BLOBS "/%s", r->hex);
		if (layout_blob_read(v->t, r->hex, LAYOUT_MANIFEST_MAX, &buf, &len, NULL) != 0)
			continue; /* reported as missing or unreadable by the walk */
		if (manifest_parse(buf, len, JSON_REJECT_DUPLICATES, &m) < 0) {
			free(buf);
			finding(v, VERIFY_PROBLEM, rel, "manifest is not a JSON object");
			continue;
		}
		free(buf);
		if (json_integer_value(json_object_get(m.json, "schemaVersion")) != 2)
			finding(v, VERIFY_PROBLEM, rel, "manifest schemaVersion is not 2");
		d = json_object_get(m.json, "mediaType");
		if (d && (!json_is_string(d) || strcmp(json_string_value(d), r->media_type)))
			finding(v, VERIFY_PROBLEM, rel, "mediaType differs from the snapshot's %s",
				r->media_type);
		check_refs(v, rel, r, &m, served);
		manifest_info_free(&m);
	}
	json_decref(served);
}

/* A valid spare is a copy of registry/: its signed files too. */
static void check_spare_signed(struct vctx *v, const struct layout_signed_files *live)
{
	struct layout_signed_files sp;
	struct rp_err e;
	int i;

	if (!v->spare)
		return;
	if (signed_files_read(v->t, FMT_SPARE, &sp, &e) < 0) {
		finding(v, VERIFY_PROBLEM, FMT_SPARE, "%s", e.msg);
		return;
	}
	for (i = 0; i < LAYOUT_SIGNED_N; i++)
		if ((!sp.buf[i] != !live->buf[i]) ||
		    (sp.buf[i] && (sp.len[i] != live->len[i] ||
				   memcmp(sp.buf[i], live->buf[i], sp.len[i])))) {
			char rel[64];

			snprintf(rel, sizeof(rel), FMT_SPARE "/%s",
				 layout_signed_name((enum layout_signed)i));
			finding(v, VERIFY_WARNING, rel, "differs from " FMT_VIEW "/%s (snapshot "
				"--sign writes both again)", layout_signed_name((enum layout_signed)i));
		}
	signed_files_free(&sp);
}

/* One signature of f by the public key: 1 if good, 0 if not (reported). */
static int signature_good(struct vctx *v, const struct layout_signed_files *f,
			  enum layout_signed sig, enum layout_signed what, const char *missing)
{
	char rel[64];
	struct rp_err e;

	snprintf(rel, sizeof(rel), FMT_VIEW "/%s", layout_signed_name(sig));
	if (!f->buf[sig]) {
		finding(v, VERIFY_PROBLEM, rel, "missing: %s", missing);
		return 0;
	}
	if (sign_verify(v->o->pubkey, f->buf[what], f->len[what], f->buf[sig], &e) < 0) {
		finding(v, VERIFY_PROBLEM, rel, "%s", e.msg);
		return 0;
	}
	return 1;
}

/* The signed files: a release that parses, signatures that belong to it, and with a public key
 * both signatures good and the release naming this snapshot. */
static void check_signed(struct vctx *v, const char *text, size_t len)
{
	struct layout_signed_files f;
	struct release r;
	struct rp_err e;
	int stale = 0, have_release = 0;

	if (signed_files_read(v->t, FMT_VIEW, &f, &e) < 0) {
		finding(v, VERIFY_PROBLEM, FMT_VIEW, "%s", e.msg);
		return;
	}
	if (f.buf[LAYOUT_RELEASE]) {
		if (release_parse(f.buf[LAYOUT_RELEASE], f.len[LAYOUT_RELEASE],
				  FMT_VIEW "/" FMT_RELEASE_NAME, &r, &e) < 0)
			finding(v, VERIFY_PROBLEM, FMT_VIEW "/" FMT_RELEASE_NAME, "%s", e.msg);
		else
			have_release = 1, stale = strcmp(r.snapshot, v->res->snapshot_id) != 0;
	}
	if (f.buf[LAYOUT_RELEASE_SIG] && (!have_release || stale))
		finding(v, VERIFY_PROBLEM, FMT_VIEW "/" FMT_RELEASE_SIG_NAME, "%s",
			have_release ? "signs a release of another snapshot"
				     : "a signature without a valid " FMT_VIEW "/" FMT_RELEASE_NAME);
	if (have_release)
		v->res->release = r.number;
	check_spare_signed(v, &f);
	if (v->o->pubkey) {
		struct layout_signed_files snap = f;

		snap.buf[LAYOUT_RELEASE] = text; /* the snapshot, as signed */
		snap.len[LAYOUT_RELEASE] = len;
		v->res->signed_ok = signature_good(v, &snap, LAYOUT_SNAPSHOT_SIG, LAYOUT_RELEASE,
						   "the tree is not signed");
		if (!have_release && v->res->signed_ok)
			finding(v, VERIFY_WARNING, FMT_VIEW "/" FMT_RELEASE_NAME, "missing: signed "
				"without a release number, so an import cannot tell it from an older "
				"release");
		else if (have_release && stale && v->res->signed_ok)
			finding(v, VERIFY_PROBLEM, FMT_VIEW "/" FMT_RELEASE_NAME, "release %llu is of "
				"snapshot sha256:%s, not of this one", (unsigned long long)r.number,
				r.snapshot);
		else if (have_release && !stale)
			v->res->release_ok = signature_good(v, &f, LAYOUT_RELEASE_SIG, LAYOUT_RELEASE,
							    "the release is not signed");
	}
	signed_files_free(&f);
}

/* What the snapshot implies: every derived file (in registry/, and in the spare when it holds
 * this snapshot), index.json, oci-layout, and every blob with its size. */
static void expectations(struct vctx *v, const char *text, size_t len, const struct snapshot *s)
{
	struct view_sink sink = { expect_file, expect_twin, read_manifest, v };
	struct rp_err e;
	char *idx = NULL;
	const char *key;
	json_t *val;
	size_t i, ilen;

	for (i = 0; i < s->n; i++)
		if (s->v[i].kind == SNAP_BLOB || s->v[i].kind == SNAP_MANIFEST)
			expect_blob(v, s->v[i].hex, s->v[i].size);
	v->prefix = FMT_VIEW;
	if (view_emit_all(text, len, s, &sink, &e) < 0 ||
	    (v->spare && (v->prefix = FMT_SPARE, view_emit_all(text, len, s, &sink, &e) < 0)) ||
	    view_index_json(s, NULL, &sink, NULL, &idx, &ilen, &e) < 0)
		finding(v, VERIFY_PROBLEM, FMT_SNAPSHOT, "cannot derive the tree: %s", e.msg);
	else
		expect(v, FMT_INDEX, idx, ilen);
	free(idx);
	expect(v, FMT_OCI_LAYOUT, FMT_OCI_LAYOUT_BODY, strlen(FMT_OCI_LAYOUT_BODY));
	json_object_foreach(v->blobs, key, val) {
		char rel[RP_HEX_LEN + 16];

		snprintf(rel, sizeof(rel), FMT_BLOBS "/%s", key);
		add_dirs(v, rel);
	}
	/* The containers stay when the last repository or blob goes (rm of every tag). */
	add_dirs(v, FMT_BLOBS "/x");
	add_dirs(v, FMT_VIEW "/" FMT_REPOS_NAME "/x");
	if (v->spare)
		add_dirs(v, FMT_SPARE "/" FMT_REPOS_NAME "/x");
}

int layout_verify(const char *tree, const struct verify_opts *o, struct verify_result *res,
		  struct rp_err *err)
{
	struct vctx v = { NULL, o, res, json_object(), json_object(), json_object(), json_object(),
			  0, FMT_VIEW, 0, 0, malloc(HASH_BUF) };
	const struct snapshot *s;
	const char *text, *key;
	json_t *val;
	size_t len;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	if (!v.files || !v.dirs || !v.blobs || !v.seen || !v.buf) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (layout_open(tree, LAYOUT_READ, &v.t, err) < 0)
		goto out;
	s = layout_snapshot(v.t);
	text = layout_snapshot_text(v.t, &len);
	memcpy(res->snapshot_id, s->id, sizeof(s->id));
	v.spare = spare_valid(v.t);
	expectations(&v, text, len, s);
	{
		struct stat st;

		if (fstat(v.t->root.fd, &st) == 0 && (st.st_mode & 07777) != RP_DIR_MODE)
			finding(&v, VERIFY_PROBLEM, "", "directory mode %04o, want %04o",
				st.st_mode & 07777, RP_DIR_MODE);
	}
	if (fsat_walk(&v.t->root, "", walk_one, &v, err) < 0)
		goto out;
	json_object_foreach(v.files, key, val)
		if (!json_object_get(v.seen, key) &&
		    !pending_in_staging(&v, key, json_string_value(val)))
			finding(&v, VERIFY_PROBLEM, key, "missing");
	json_object_foreach(v.blobs, key, val)
		if (!json_is_true(json_object_get(val, "seen"))) {
			char rel[RP_HEX_LEN + 16];

			snprintf(rel, sizeof(rel), FMT_BLOBS "/%s", key);
			finding(&v, VERIFY_PROBLEM, rel, "missing blob");
		}
	check_manifests(&v, s);
	check_signed(&v, text, len);
	rc = 0;
out:
	layout_close(v.t);
	free(v.buf);
	json_decref(v.files);
	json_decref(v.dirs);
	json_decref(v.blobs);
	json_decref(v.seen);
	return rc;
}
