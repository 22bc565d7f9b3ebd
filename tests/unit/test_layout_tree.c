/* Unit tests of layout/tree.c (with snapshot.c and view.c behind it): the files a commit writes,
 * checked byte for byte against docs/tree-format.md, modes and mtimes under a hostile umask,
 * retagging, and "a failed or empty run leaves the tree exactly as it was". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "fsutil.h"
#include "tree.h"
#include "unit.h"

#define EPOCH 1700000000L
#define EPOCH_S "1700000000"

#define MT_DOCKER "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CFG "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_GZ "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define MT_OCI "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CFG "application/vnd.oci.image.config.v1+json"
#define MT_OCI_GZ "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"

/* ---- small helpers ---- */

struct fx {
	char dir[64];
	mode_t old_umask;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/rp-tree-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->old_umask = umask(077); /* hostile: the tree must still be 0644/0755 */
	setenv("SOURCE_DATE_EPOCH", EPOCH_S, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct rp_err err;

	umask(f->old_umask);
	rp_rmtree(f->dir, &err);
	free(f);
	return 0;
}

static char *path_in(const char *root, const char *rel)
{
	char *p = rp_join(root, rel);

	assert_non_null(p);
	return p;
}

/* Contents of root/rel, NUL-terminated; fails the test if unreadable. */
static char *slurp(const char *root, const char *rel, size_t *lenp)
{
	struct rp_err err = { "" };
	char *p = rel ? path_in(root, rel) : strdup(root), *buf = NULL;
	size_t len = 0;

	if (rp_read_file(p, 64u << 20, &buf, &len, &err) < 0)
		fail_msg("cannot read %s: %s", p, err.msg);
	free(p);
	if (lenp)
		*lenp = len;
	return buf;
}

static void expect_file(const char *root, const char *rel, const char *want)
{
	size_t len;
	char *got = slurp(root, rel, &len);

	if (len != strlen(want) || memcmp(got, want, len))
		fail_msg("%s/%s:\n got: '%s'\nwant: '%s'", root, rel, got, want);
	free(got);
}

static int exists(const char *root, const char *rel)
{
	struct stat st;
	char *p = path_in(root, rel);
	int r = lstat(p, &st) == 0;

	free(p);
	return r;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	return s;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A growable list of strings. */
struct strs {
	char **v;
	size_t n;
};

static void strs_add(struct strs *l, char *s)
{
	l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
	assert_non_null(l->v);
	l->v[l->n++] = s;
}

static void strs_sort_unique(struct strs *l)
{
	size_t i, n = 0;

	qsort(l->v, l->n, sizeof(*l->v), cmp_str);
	for (i = 0; i < l->n; i++) {
		if (n && !strcmp(l->v[n - 1], l->v[i])) {
			free(l->v[i]);
			continue;
		}
		l->v[n++] = l->v[i];
	}
	l->n = n;
}

static char *strs_join(const struct strs *l)
{
	size_t i, len = 1;
	char *s;

	for (i = 0; i < l->n; i++)
		len += strlen(l->v[i]) + 1;
	s = malloc(len);
	assert_non_null(s);
	s[0] = '\0';
	for (i = 0; i < l->n; i++) {
		strcat(s, l->v[i]);
		strcat(s, "\n");
	}
	return s;
}

static void strs_free(struct strs *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Add rel and every parent directory of it. */
static void add_path(struct strs *l, const char *rel)
{
	char *s = strdup(rel), *slash;

	assert_non_null(s);
	strs_add(l, strdup(s));
	while ((slash = strrchr(s, '/'))) {
		*slash = '\0';
		strs_add(l, strdup(s));
	}
	free(s);
}

/* ---- walking a tree ---- */

static const char *walk_root;
static struct strs *walk_out;
static int walk_detail; /* 1: "rel type mode size mtime sha", 0: "rel" */
static int walk_check;	/* check the format's invariants on every entry */

static int walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	const char *rel = path + strlen(walk_root);
	const char *base = path + ftw->base;
	char hex[RP_HEX_LEN + 1] = "-";

	while (*rel == '/')
		rel++;
	if (!*rel)
		rel = ".";
	if (walk_check) {
		if (type == FTW_SL || type == FTW_SLN || (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)))
			fail_msg("%s: not a regular file or directory", path);
		if (S_ISREG(st->st_mode) && (st->st_mode & 07777) != 0644)
			fail_msg("%s: file mode %o, want 0644", path, (unsigned)(st->st_mode & 07777));
		if (S_ISDIR(st->st_mode) && (st->st_mode & 07777) != 0755)
			fail_msg("%s: directory mode %o, want 0755", path, (unsigned)(st->st_mode & 07777));
		if (S_ISREG(st->st_mode) && st->st_nlink != 1)
			fail_msg("%s: %lu hard links", path, (unsigned long)st->st_nlink);
		if (st->st_mtim.tv_sec != EPOCH || st->st_mtim.tv_nsec != 0)
			fail_msg("%s: mtime %lld.%09ld, want %ld", path, (long long)st->st_mtim.tv_sec,
				 st->st_mtim.tv_nsec, EPOCH);
		if (ftw->level > 0 && strchr(base, ':'))
			fail_msg("%s: file name contains ':'", path);
		if (ftw->level > 0 && strlen(base) > 64 && !strstr(rel, "registry/repos/"))
			fail_msg("%s: file name longer than 64", path);
	}
	if (walk_detail && S_ISREG(st->st_mode)) {
		size_t len;
		char *buf = slurp(path, NULL, &len);

		rp_sha256_buf(buf, len, hex);
		free(buf);
	}
	if (walk_detail)
		strs_add(walk_out, xasprintf("%s %c %o %lld %lld.%09ld %s", rel,
					     S_ISDIR(st->st_mode) ? 'd' : S_ISREG(st->st_mode) ? 'f' : '?',
					     (unsigned)(st->st_mode & 07777), (long long)st->st_size,
					     (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, hex));
	else
		strs_add(walk_out, strdup(rel));
	return 0;
}

/* Sorted listing of everything under root (root itself as "."), one line each. */
static char *listing(const char *root, int detail, int check)
{
	struct strs l = { NULL, 0 };
	char *s;

	walk_root = root;
	walk_out = &l;
	walk_detail = detail;
	walk_check = check;
	assert_int_equal(nftw(root, walk_one, 16, FTW_PHYS), 0);
	strs_sort_unique(&l);
	s = strs_join(&l);
	strs_free(&l);
	return s;
}

/* Fail, showing the first line that differs, unless two listings are equal. */
static void same_listing(const char *what, const char *before, const char *after)
{
	const char *a = before, *b = after;

	if (!strcmp(before, after))
		return;
	while (*a && *a == *b) {
		const char *na = strchr(a, '\n'), *nb = strchr(b, '\n');

		if (!na || !nb || na - a != nb - b || memcmp(a, b, (size_t)(na - a)))
			break;
		a = na + 1;
		b = nb + 1;
	}
	fail_msg("%s changed the tree:\nbefore: %.*s\n after: %.*s", what,
		 (int)(strchrnul(a, '\n') - a), a, (int)(strchrnul(b, '\n') - b), b);
}

/* ---- building a tree ---- */

struct blob {
	char *bytes;
	size_t len;
	char hex[RP_HEX_LEN + 1];
};

static void put(struct layout_tree *t, struct blob *b, char *bytes)
{
	struct rp_err err = { "" };
	char want[RP_HEX_LEN + 1];

	b->bytes = bytes;
	b->len = strlen(bytes);
	if (layout_put_blob(t, b->bytes, b->len, b->hex, &err) < 0)
		fail_msg("layout_put_blob: %s", err.msg);
	rp_sha256_buf(b->bytes, b->len, want);
	assert_string_equal(b->hex, want);
	assert_true(layout_has_blob(t, b->hex));
}

static void blob_free(struct blob *b)
{
	free(b->bytes);
	b->bytes = NULL;
}

static char *manifest_json(const char *mt, const char *cfg_mt, const struct blob *cfg,
			   const char *layer_mt, const struct blob *layer)
{
	return xasprintf("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
			 "\"size\":%zu,\"digest\":\"sha256:%s\"},\"layers\":[{\"mediaType\":\"%s\","
			 "\"size\":%zu,\"digest\":\"sha256:%s\"}]}",
			 mt, cfg_mt, cfg->len, cfg->hex, layer_mt, layer->len, layer->hex);
}

/* The standard tree of these tests:
 *   library/alpine      tags 3.19 and latest -> m1 (Docker schema2: cfg1, layer1)
 *   localhost:5000/app  tag 1 -> m2 (OCI: cfg2, layer2)
 *   x/app, x/app-dev    tag 1 -> m2 (index.json order differs from the snapshot's)
 *   y/untagged          m2 by digest only */
struct std {
	struct blob cfg1, layer1, m1, cfg2, layer2, m2;
	char twin[RP_HEX_LEN + 1]; /* expected digest of m1's OCI twin */
	char *twin_bytes;
};

static void std_free(struct std *s)
{
	blob_free(&s->cfg1);
	blob_free(&s->layer1);
	blob_free(&s->m1);
	blob_free(&s->cfg2);
	blob_free(&s->layer2);
	blob_free(&s->m2);
	free(s->twin_bytes);
}

static void add_repo(struct layout_tree *t, const char *repo, const struct blob *cfg,
		     const char *cfg_mt, const struct blob *layer, const char *layer_mt,
		     const struct blob *m, const char *mt)
{
	struct rp_err err = { "" };

	/* Records in no particular order, some twice: the commit sorts and deduplicates. */
	if (layout_add_manifest(t, repo, m->hex, m->len, mt, &err) < 0 ||
	    layout_add_blob(t, repo, layer->hex, layer->len, layer_mt, &err) < 0 ||
	    layout_add_blob(t, repo, cfg->hex, cfg->len, cfg_mt, &err) < 0 ||
	    layout_add_blob(t, repo, layer->hex, layer->len, layer_mt, &err) < 0 ||
	    layout_add_manifest(t, repo, m->hex, m->len, mt, &err) < 0)
		fail_msg("add_repo %s: %s", repo, err.msg);
}

static void build_std(const char *tree, struct std *s)
{
	struct layout_tree *t = NULL;
	struct rp_err err = { "" };

	memset(s, 0, sizeof(*s));
	if (layout_open(tree, LAYOUT_WRITE, &t, &err) < 0)
		fail_msg("layout_open: %s", err.msg);
	put(t, &s->cfg1, strdup("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":"
			     "\"layers\",\"diff_ids\":[]}}"));
	put(t, &s->layer1, strdup("layer one: pretend this is gzip"));
	put(t, &s->m1, manifest_json(MT_DOCKER, MT_DOCKER_CFG, &s->cfg1, MT_DOCKER_GZ, &s->layer1));
	put(t, &s->cfg2, strdup("{\"architecture\":\"arm64\",\"os\":\"linux\"}"));
	put(t, &s->layer2, strdup("layer two"));
	put(t, &s->m2, manifest_json(MT_OCI, MT_OCI_CFG, &s->cfg2, MT_OCI_GZ, &s->layer2));
	/* Putting the same bytes again is harmless. */
	{
		char hex[RP_HEX_LEN + 1];

		OK(layout_put_blob(t, s->layer2.bytes, s->layer2.len, hex, E_));
		assert_string_equal(hex, s->layer2.hex);
	}
	s->twin_bytes = manifest_json(MT_OCI, MT_OCI_CFG, &s->cfg1, MT_OCI_GZ, &s->layer1);
	rp_sha256_buf(s->twin_bytes, strlen(s->twin_bytes), s->twin);

	add_repo(t, "y/untagged", &s->cfg2, MT_OCI_CFG, &s->layer2, MT_OCI_GZ, &s->m2, MT_OCI);
	add_repo(t, "x/app-dev", &s->cfg2, MT_OCI_CFG, &s->layer2, MT_OCI_GZ, &s->m2, MT_OCI);
	add_repo(t, "x/app", &s->cfg2, MT_OCI_CFG, &s->layer2, MT_OCI_GZ, &s->m2, MT_OCI);
	add_repo(t, "localhost:5000/app", &s->cfg2, MT_OCI_CFG, &s->layer2, MT_OCI_GZ, &s->m2,
		 MT_OCI);
	add_repo(t, "library/alpine", &s->cfg1, MT_DOCKER_CFG, &s->layer1, MT_DOCKER_GZ, &s->m1,
		 MT_DOCKER);
	OK(layout_set_tag(t, "x/app-dev", "1", s->m2.hex, E_));
	OK(layout_set_tag(t, "library/alpine", "latest", s->m1.hex, E_));
	OK(layout_set_tag(t, "x/app", "1", s->m2.hex, E_));
	OK(layout_set_tag(t, "localhost:5000/app", "1", s->m2.hex, E_));
	OK(layout_set_tag(t, "library/alpine", "3.19", s->m1.hex, E_));
	OK(layout_set_tag(t, "library/alpine", "latest", s->m1.hex, E_)); /* again: one line */
	if (layout_commit(t, NULL, &err) < 0)
		fail_msg("layout_commit: %s", err.msg);
	layout_close(t);
}

static char *pointer(const struct blob *m, const char *mt)
{
	return xasprintf("sha256:%s %zu %s\n", m->hex, m->len, mt);
}

static char *index_entry(const char *mt, const char *hex, size_t size, const char *ref)
{
	return xasprintf("{\"mediaType\":\"%s\",\"digest\":\"sha256:%s\",\"size\":%zu,"
			 "\"annotations\":{\"org.opencontainers.image.ref.name\":\"%s\"}}",
			 mt, hex, size, ref);
}

/* ---- tests ---- */

static void test_new_tree_files(void **state)
{
	struct fx *f = *state;
	char *tree = path_in(f->dir, "tree");
	struct strs l = { NULL, 0 }, paths = { NULL, 0 };
	struct std s;
	char *want, *got, *e1, *e2, *e3, *e4, *e5;
	const char *repos[] = { "library/alpine", "localhost+5000/app", "x/app", "x/app-dev",
				"y/untagged" };
	size_t i;

	build_std(tree, &s);

	/* registry/snapshot: the header, then the records sorted by bytes, unique. */
#define REC(...) strs_add(&l, xasprintf(__VA_ARGS__))
	REC("blob library/alpine sha256:%s %zu %s", s.cfg1.hex, s.cfg1.len, MT_DOCKER_CFG);
	REC("blob library/alpine sha256:%s %zu %s", s.layer1.hex, s.layer1.len, MT_DOCKER_GZ);
	REC("manifest library/alpine sha256:%s %zu %s", s.m1.hex, s.m1.len, MT_DOCKER);
	REC("tag library/alpine 3.19 sha256:%s", s.m1.hex);
	REC("tag library/alpine latest sha256:%s", s.m1.hex);
	for (i = 0; i < 4; i++) {
		const char *r = i == 0 ? "localhost:5000/app" : i == 1 ? "x/app" : i == 2 ? "x/app-dev"
			      : "y/untagged";

		REC("blob %s sha256:%s %zu %s", r, s.cfg2.hex, s.cfg2.len, MT_OCI_CFG);
		REC("blob %s sha256:%s %zu %s", r, s.layer2.hex, s.layer2.len, MT_OCI_GZ);
		REC("manifest %s sha256:%s %zu %s", r, s.m2.hex, s.m2.len, MT_OCI);
		if (i < 3)
			REC("tag %s 1 sha256:%s", r, s.m2.hex);
	}
#undef REC
	strs_sort_unique(&l);
	got = strs_join(&l);
	want = xasprintf("regpress-snapshot 1\n%s", got);
	free(got);
	strs_free(&l);
	expect_file(tree, "registry/snapshot", want);
	free(want);
	/* Independently of how the expectation was built: strictly ascending after the header. */
	{
		char *snap = slurp(tree, "registry/snapshot", NULL), *p, *prev = NULL, *save = NULL;

		assert_int_equal(strncmp(snap, "regpress-snapshot 1\n", 20), 0);
		for (p = strtok_r(snap + 20, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
			if (prev && strcmp(prev, p) >= 0)
				fail_msg("snapshot not sorted: '%s' then '%s'", prev, p);
			prev = p;
		}
		free(snap);
	}

	/* oci-layout, catalog, tag lists. */
	expect_file(tree, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
	expect_file(tree, "registry/catalog.json",
		    "{\"repositories\":[\"library/alpine\",\"localhost:5000/app\",\"x/app\","
		    "\"x/app-dev\",\"y/untagged\"]}");
	expect_file(tree, "registry/repos/library/alpine/_tags.json",
		    "{\"name\":\"library/alpine\",\"tags\":[\"3.19\",\"latest\"]}");
	expect_file(tree, "registry/repos/localhost+5000/app/_tags.json",
		    "{\"name\":\"localhost:5000/app\",\"tags\":[\"1\"]}");
	expect_file(tree, "registry/repos/x/app/_tags.json", "{\"name\":\"x/app\",\"tags\":[\"1\"]}");
	expect_file(tree, "registry/repos/x/app-dev/_tags.json",
		    "{\"name\":\"x/app-dev\",\"tags\":[\"1\"]}");
	expect_file(tree, "registry/repos/y/untagged/_tags.json",
		    "{\"name\":\"y/untagged\",\"tags\":[]}");

	/* Manifest pointers: one line each, the original (Docker) media type for m1. */
	want = pointer(&s.m1, MT_DOCKER);
	expect_file(tree, "registry/repos/library/alpine/_manifests/tags/3.19", want);
	expect_file(tree, "registry/repos/library/alpine/_manifests/tags/latest", want);
	got = xasprintf("registry/repos/library/alpine/_manifests/sha256/%s", s.m1.hex);
	expect_file(tree, got, want);
	free(got);
	free(want);
	want = pointer(&s.m2, MT_OCI);
	for (i = 1; i < 5; i++) {
		got = xasprintf("registry/repos/%s/_manifests/sha256/%s", repos[i], s.m2.hex);
		expect_file(tree, got, want);
		free(got);
		if (i < 4) {
			got = xasprintf("registry/repos/%s/_manifests/tags/1", repos[i]);
			expect_file(tree, got, want);
			free(got);
		}
	}
	free(want);

	/* Blob markers are empty; blobs hold exactly their bytes. */
	for (i = 0; i < 5; i++) {
		const struct blob *c = i ? &s.cfg2 : &s.cfg1, *ly = i ? &s.layer2 : &s.layer1;

		got = xasprintf("registry/repos/%s/_blobs/%s", repos[i], c->hex);
		expect_file(tree, got, "");
		free(got);
		got = xasprintf("registry/repos/%s/_blobs/%s", repos[i], ly->hex);
		expect_file(tree, got, "");
		free(got);
	}
	{
		const struct blob *all[] = { &s.cfg1, &s.layer1, &s.m1, &s.cfg2, &s.layer2, &s.m2 };

		for (i = 0; i < 6; i++) {
			got = xasprintf("blobs/sha256/%s", all[i]->hex);
			expect_file(tree, got, all[i]->bytes);
			free(got);
		}
		got = xasprintf("blobs/sha256/%s", s.twin);
		expect_file(tree, got, s.twin_bytes);
		free(got);
	}

	/* index.json: one descriptor per tag, sorted by reference ("x/app-dev:1" < "x/app:1",
	 * unlike the snapshot's order), Docker manifests replaced by their OCI twin. */
	e1 = index_entry(MT_OCI, s.twin, strlen(s.twin_bytes), "library/alpine:3.19");
	e2 = index_entry(MT_OCI, s.twin, strlen(s.twin_bytes), "library/alpine:latest");
	e3 = index_entry(MT_OCI, s.m2.hex, s.m2.len, "localhost:5000/app:1");
	e4 = index_entry(MT_OCI, s.m2.hex, s.m2.len, "x/app-dev:1");
	e5 = index_entry(MT_OCI, s.m2.hex, s.m2.len, "x/app:1");
	want = xasprintf("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[%s,%s,%s,%s,%s]}",
			 MT_OCI_INDEX, e1, e2, e3, e4, e5);
	expect_file(tree, "index.json", want);
	free(want);
	free(e1);
	free(e2);
	free(e3);
	free(e4);
	free(e5);

	/* Exactly these files and directories, nothing else (no staging area, no lock file). */
	add_path(&paths, ".");
	add_path(&paths, "index.json");
	add_path(&paths, "oci-layout");
	add_path(&paths, "registry/snapshot");
	add_path(&paths, "registry/catalog.json");
	{
		const struct blob *all[] = { &s.cfg1, &s.layer1, &s.m1, &s.cfg2, &s.layer2, &s.m2 };

		for (i = 0; i < 6; i++)
			add_path(&paths, got = xasprintf("blobs/sha256/%s", all[i]->hex)), free(got);
		add_path(&paths, got = xasprintf("blobs/sha256/%s", s.twin)), free(got);
	}
	for (i = 0; i < 5; i++) {
		const struct blob *c = i ? &s.cfg2 : &s.cfg1, *ly = i ? &s.layer2 : &s.layer1;
		const struct blob *m = i ? &s.m2 : &s.m1;

		add_path(&paths, got = xasprintf("registry/repos/%s/_tags.json", repos[i])), free(got);
		add_path(&paths, got = xasprintf("registry/repos/%s/_blobs/%s", repos[i], c->hex)),
			free(got);
		add_path(&paths, got = xasprintf("registry/repos/%s/_blobs/%s", repos[i], ly->hex)),
			free(got);
		add_path(&paths, got = xasprintf("registry/repos/%s/_manifests/sha256/%s", repos[i],
						 m->hex)), free(got);
		if (i == 0) {
			add_path(&paths, "registry/repos/library/alpine/_manifests/tags/3.19");
			add_path(&paths, "registry/repos/library/alpine/_manifests/tags/latest");
		} else if (i < 4) {
			add_path(&paths, got = xasprintf("registry/repos/%s/_manifests/tags/1", repos[i])),
				free(got);
		}
	}
	/* The spare view (docs/tree-format.md): a copy of registry/ that the next write edits. */
	{
		size_t n = paths.n;

		for (i = 0; i < n; i++)
			if (!strncmp(paths.v[i], "registry/", 9))
				add_path(&paths, got = xasprintf(".regpress-spare/%s", paths.v[i] + 9)),
					free(got);
	}
	strs_sort_unique(&paths);
	want = strs_join(&paths);
	strs_free(&paths);
	got = listing(tree, 0, 1); /* also checks modes 0644/0755, mtimes, no symlinks, no ':' */
	assert_string_equal(got, want);
	free(got);
	free(want);
	std_free(&s);
	free(tree);
}

static void test_snapshot_id(void **state)
{
	struct fx *f = *state;
	char *tree = path_in(f->dir, "tree");
	struct layout_tree *t;
	struct rp_err err = { "" };
	struct std s;
	char hex[RP_HEX_LEN + 1], *snap;
	size_t len;

	build_std(tree, &s);
	snap = slurp(tree, "registry/snapshot", &len);
	rp_sha256_buf(snap, len, hex);
	free(snap);
	if (layout_open(tree, LAYOUT_WRITE, &t, &err) < 0)
		fail_msg("layout_open: %s", err.msg);
	assert_string_equal(layout_snapshot_id(t), hex);
	assert_string_equal(layout_path(t), tree);
	/* The scratch directory is inside the tree (same file system), and exists. */
	assert_int_equal(strncmp(layout_scratch_dir(t), tree, strlen(tree)), 0);
	assert_int_equal(access(layout_scratch_dir(t), W_OK), 0);
	/* Committing the same state again gives the same id. */
	OK(layout_commit(t, NULL, E_));
	assert_string_equal(layout_snapshot_id(t), hex);
	layout_close(t);
	std_free(&s);
	free(tree);
}

static void test_reopen_retag(void **state)
{
	struct fx *f = *state;
	char *tree = path_in(f->dir, "tree");
	struct layout_tree *t = NULL;
	struct rp_err err = { "" };
	struct blob cfg3 = { 0 }, layer3 = { 0 }, m3 = { 0 };
	struct std s;
	char *snap, *line, *want, *twin3, twin3_hex[RP_HEX_LEN + 1], *idx;
	int latest_lines = 0;

	build_std(tree, &s);
	if (layout_open(tree, LAYOUT_WRITE, &t, &err) < 0)
		fail_msg("reopen: %s", err.msg);
	/* The committed blobs are known to the new writer. */
	assert_true(layout_has_blob(t, s.m1.hex));
	{
		char *w = xasprintf("%s/blobs/sha256/%s", tree, s.m1.hex);
		uint64_t size = 0;
		int fd = -1;

		/* Read through the handle, and it is the committed file. */
		assert_int_equal(layout_blob_open(t, s.m1.hex, &fd, &size, &err), 0);
		assert_int_equal(size, s.m1.len);
		assert_int_equal(access(w, F_OK), 0);
		close(fd);
		free(w);
	}
	put(t, &cfg3, strdup("{\"architecture\":\"amd64\",\"os\":\"linux\",\"v\":3}"));
	put(t, &layer3, strdup("layer three"));
	put(t, &m3, manifest_json(MT_DOCKER, MT_DOCKER_CFG, &cfg3, MT_DOCKER_GZ, &layer3));
	add_repo(t, "library/alpine", &cfg3, MT_DOCKER_CFG, &layer3, MT_DOCKER_GZ, &m3, MT_DOCKER);
	OK(layout_set_tag(t, "library/alpine", "latest", s.m2.hex, E_)); /* overwritten below */
	OK(layout_set_tag(t, "library/alpine", "latest", m3.hex, E_));
	if (layout_commit(t, NULL, &err) < 0)
		fail_msg("commit: %s", err.msg);
	layout_close(t);

	/* One line for the tag, naming the new manifest; 3.19 and m1 untouched. */
	snap = slurp(tree, "registry/snapshot", NULL);
	for (line = strstr(snap, "\ntag library/alpine latest "); line;
	     line = strstr(line + 1, "\ntag library/alpine latest "))
		latest_lines++;
	assert_int_equal(latest_lines, 1);
	want = xasprintf("\ntag library/alpine latest sha256:%s\n", m3.hex);
	assert_non_null(strstr(snap, want));
	free(want);
	want = xasprintf("\ntag library/alpine 3.19 sha256:%s\n", s.m1.hex);
	assert_non_null(strstr(snap, want));
	free(want);
	want = xasprintf("\nmanifest library/alpine sha256:%s ", s.m1.hex);
	assert_non_null(strstr(snap, want));
	free(want);
	free(snap);

	want = pointer(&m3, MT_DOCKER);
	expect_file(tree, "registry/repos/library/alpine/_manifests/tags/latest", want);
	free(want);
	want = pointer(&s.m1, MT_DOCKER);
	expect_file(tree, "registry/repos/library/alpine/_manifests/tags/3.19", want);
	free(want);
	expect_file(tree, "registry/repos/library/alpine/_tags.json",
		    "{\"name\":\"library/alpine\",\"tags\":[\"3.19\",\"latest\"]}");

	/* index.json follows: latest now names m3's twin. */
	twin3 = manifest_json(MT_OCI, MT_OCI_CFG, &cfg3, MT_OCI_GZ, &layer3);
	rp_sha256_buf(twin3, strlen(twin3), twin3_hex);
	idx = slurp(tree, "index.json", NULL);
	want = index_entry(MT_OCI, twin3_hex, strlen(twin3), "library/alpine:latest");
	assert_non_null(strstr(idx, want));
	free(want);
	want = index_entry(MT_OCI, s.twin, strlen(s.twin_bytes), "library/alpine:3.19");
	assert_non_null(strstr(idx, want));
	free(want);
	free(idx);
	want = xasprintf("blobs/sha256/%s", twin3_hex);
	expect_file(tree, want, twin3);
	free(want);
	free(twin3);

	/* Still every mode and mtime as the format says; no staging area left. */
	free(listing(tree, 0, 1));
	assert_false(exists(tree, ".regpress-tmp"));
	blob_free(&cfg3);
	blob_free(&layer3);
	blob_free(&m3);
	std_free(&s);
	free(tree);
}

/* Open the tree, do work, close without committing (or after a failed commit). */
static void abandoned_session(const char *tree, const struct std *s, int how)
{
	struct layout_tree *t = NULL;
	struct rp_err err = { "" };
	struct layout_blob *b = NULL;
	char hex[RP_HEX_LEN + 1], *big;
	uint64_t size = 0;
	size_t i;

	if (layout_open(tree, LAYOUT_WRITE, &t, &err) < 0)
		fail_msg("layout_open: %s", err.msg);
	OK(layout_put_blob(t, "new blob", 8, hex, E_));
	/* A streamed blob larger than the writer's buffer. */
	big = malloc(3u << 20);
	assert_non_null(big);
	for (i = 0; i < (3u << 20); i++)
		big[i] = (char)(i * 7 + (i >> 13));
	OK(layout_blob_new(t, &b, E_));
	OK(layout_blob_write(b, big, 1, E_));
	OK(layout_blob_write(b, big + 1, (3u << 20) - 1, E_));
	OK(layout_blob_finish(b, hex, &size, E_));
	assert_int_equal(size, 3u << 20);
	{
		char want[RP_HEX_LEN + 1];

		rp_sha256_buf(big, 3u << 20, want);
		assert_string_equal(hex, want);
	}
	free(big);
	/* An abandoned streamed blob. */
	OK(layout_blob_new(t, &b, E_));
	OK(layout_blob_write(b, "partial", 7, E_));
	layout_blob_free(b);
	OK(layout_add_blob(t, "library/alpine", hex, size, MT_DOCKER_GZ, E_));
	OK(layout_set_tag(t, "library/alpine", "latest", s->m2.hex, E_));
	if (how == 1) {
		/* latest -> m2, which library/alpine does not serve: the commit must fail. */
		assert_int_equal(layout_commit(t, NULL, &err), -1);
		assert_non_null(strstr(err.msg, "library/alpine"));
	} else if (how == 2) {
		/* A manifest whose bytes are nowhere. */
		OK(layout_add_manifest(t, "library/alpine", "00000000000000000000000000000000000000"
				       "00000000000000000000000000", 5, MT_DOCKER, E_));
		assert_int_equal(layout_commit(t, NULL, &err), -1);
		assert_non_null(strstr(err.msg, "not in the tree"));
	}
	layout_close(t);
}

static void test_close_without_commit_is_identical(void **state)
{
	struct fx *f = *state;
	char *tree = path_in(f->dir, "tree");
	struct timespec ts[2];
	char *before, *after;
	struct std s;
	int how;

	build_std(tree, &s);
	/* A root time the writer cannot guess, with nanoseconds. */
	ts[0].tv_sec = ts[1].tv_sec = 1234567890;
	ts[0].tv_nsec = ts[1].tv_nsec = 987654321;
	assert_int_equal(utimensat(AT_FDCWD, tree, ts, 0), 0);
	before = listing(tree, 1, 0);
	for (how = 0; how < 3; how++) {
		abandoned_session(tree, &s, how);
		after = listing(tree, 1, 0);
		same_listing(how == 0 ? "open+close" : how == 1 ? "failed commit (tag)"
			     : "failed commit (blob)", before, after);
		free(after);
	}
	free(before);
	std_free(&s);
	free(tree);
}

static void test_new_tree_without_commit_vanishes(void **state)
{
	struct fx *f = *state;
	char *tree = path_in(f->dir, "new"), *before, *after;
	struct layout_tree *t = NULL;
	struct rp_err err = { "" };
	char hex[RP_HEX_LEN + 1], *m;

	before = listing(f->dir, 0, 0);
	if (layout_open(tree, LAYOUT_WRITE, &t, &err) < 0)
		fail_msg("layout_open: %s", err.msg);
	OK(layout_put_blob(t, "x", 1, hex, E_));
	layout_close(t);
	assert_int_equal(access(tree, F_OK), -1);
	assert_int_equal(errno, ENOENT);

	/* Same after a failed commit: a tag naming a manifest the repository lacks. */
	t = NULL;
	if (layout_open(tree, LAYOUT_WRITE, &t, &err) < 0)
		fail_msg("layout_open: %s", err.msg);
	OK(layout_put_blob(t, "x", 1, hex, E_));
	OK(layout_add_blob(t, "a/b", hex, 1, MT_OCI_GZ, E_));
	OK(layout_set_tag(t, "a/b", "1", hex, E_));
	assert_int_equal(layout_commit(t, NULL, &err), -1);
	m = xasprintf("tag a/b:1 names sha256:%s, which the repository lacks", hex);
	if (!strstr(err.msg, m))
		fail_msg("message '%s' lacks '%s'", err.msg, m);
	free(m);
	layout_close(t);
	assert_int_equal(access(tree, F_OK), -1);
	after = listing(f->dir, 0, 0);
	same_listing("open+close of a new tree (parent)", before, after);
	free(before);
	free(after);
	free(tree);
}

static void test_tag_to_other_repos_manifest_fails(void **state)
{
	struct fx *f = *state;
	char *tree = path_in(f->dir, "tree"), *before, *after;
	struct layout_tree *t = NULL;
	struct rp_err err = { "" };
	struct std s;
	char id[RP_HEX_LEN + 1];

	build_std(tree, &s);
	before = listing(tree, 1, 0);
	if (layout_open(tree, LAYOUT_WRITE, &t, &err) < 0)
		fail_msg("layout_open: %s", err.msg);
	snprintf(id, sizeof(id), "%s", layout_snapshot_id(t));
	assert_int_equal(strlen(id), RP_HEX_LEN);
	/* m1 is a manifest of library/alpine, not of x/app: x/app cannot tag it. */
	OK(layout_set_tag(t, "x/app", "2", s.m1.hex, E_));
	assert_int_equal(layout_commit(t, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "x/app:2"));
	assert_non_null(strstr(err.msg, s.m1.hex));
	assert_string_equal(layout_snapshot_id(t), id); /* unchanged by the failed commit */
	layout_close(t);
	after = listing(tree, 1, 0);
	same_listing("failed commit", before, after);
	free(before);
	free(after);
	std_free(&s);
	free(tree);
}

static void test_refuses_foreign_directory(void **state)
{
	struct fx *f = *state;
	char *dir = path_in(f->dir, "other"), *file = path_in(dir, "hello.txt"), *before, *after;
	struct layout_tree *t = (struct layout_tree *)1;
	struct rp_err err = { "" };

	assert_int_equal(mkdir(dir, 0700), 0);
	OK(rp_write_new(file, "hi\n", 3, E_));
	before = listing(dir, 1, 0);
	assert_int_equal(layout_open(dir, LAYOUT_WRITE, &t, &err), -1);
	assert_null(t);
	assert_non_null(strstr(err.msg, "not empty and not a regpress tree"));
	assert_non_null(strstr(err.msg, dir));
	after = listing(dir, 1, 0);
	same_listing("refused open", before, after);
	free(before);
	free(after);

	/* A regular file is not a tree either. */
	err.msg[0] = '\0';
	assert_int_equal(layout_open(file, LAYOUT_WRITE, &t, &err), -1);
	assert_non_null(strstr(err.msg, "not a directory"));
	free(file);
	free(dir);
}

static void test_empty_directory_and_stale_staging(void **state)
{
	struct fx *f = *state;
	char *dir = path_in(f->dir, "empty"), *junk;
	struct layout_tree *t = NULL;
	struct rp_err err = { "" };
	char hex[RP_HEX_LEN + 1];

	/* An existing empty directory is fine, and is left in place (empty) when nothing is
	 * committed: we did not create it. */
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(chmod(dir, 0755), 0); /* umask 077 took the rest */
	if (layout_open(dir, LAYOUT_WRITE, &t, &err) < 0)
		fail_msg("layout_open: %s", err.msg);
	layout_close(t);
	{
		char *l = listing(dir, 0, 0);

		assert_string_equal(l, ".\n");
		free(l);
	}
	/* A staging area left by a killed writer does not make it foreign, and is removed. */
	junk = path_in(dir, ".regpress-tmp/blobs");
	OK(rp_mkdirs(junk, E_));
	free(junk);
	junk = path_in(dir, ".regpress-tmp/blobs/garbage");
	OK(rp_write_new(junk, "x", 1, E_));
	free(junk);
	t = NULL;
	if (layout_open(dir, LAYOUT_WRITE, &t, &err) < 0)
		fail_msg("layout_open with stale staging: %s", err.msg);
	assert_false(layout_has_blob(t, "garbage"));
	OK(layout_put_blob(t, "x", 1, hex, E_));
	OK(layout_add_blob(t, "a/b", hex, 1, MT_OCI_GZ, E_));
	OK(layout_commit(t, NULL, E_));
	layout_close(t);
	assert_false(exists(dir, ".regpress-tmp"));
	expect_file(dir, "registry/catalog.json", "{\"repositories\":[\"a/b\"]}");
	expect_file(dir, "registry/repos/a/b/_tags.json", "{\"name\":\"a/b\",\"tags\":[]}");
	expect_file(dir, "index.json", "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX
		    "\",\"manifests\":[]}");
	/* Every mode and time as specified (the root was made 0755 by the test itself). */
	free(listing(dir, 0, 1));
	free(dir);
}

static void test_host_port_directories(void **state)
{
	struct fx *f = *state;
	char *tree = path_in(f->dir, "tree"), *p;
	struct std s;
	struct stat st;

	build_std(tree, &s);
	assert_true(exists(tree, "registry/repos/localhost+5000/app/_tags.json"));
	assert_false(exists(tree, "registry/repos/localhost:5000"));
	p = path_in(tree, "registry/repos/localhost+5000");
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	free(p);
	std_free(&s);
	free(tree);
}

static void test_docker_manifest_oci_twin(void **state)
{
	struct fx *f = *state;
	char *tree = path_in(f->dir, "tree"), *idx, *rel, *bytes, *snap;
	json_t *j, *d, *twin;
	json_error_t jerr;
	struct std s;
	size_t i, len;
	char hex[RP_HEX_LEN + 1];

	build_std(tree, &s);
	idx = slurp(tree, "index.json", NULL);
	j = json_loads(idx, 0, &jerr);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "schemaVersion")), 2);
	assert_string_equal(json_string_value(json_object_get(j, "mediaType")), MT_OCI_INDEX);
	assert_int_equal(json_array_size(json_object_get(j, "manifests")), 5);
	json_array_foreach(json_object_get(j, "manifests"), i, d) {
		const char *dg = json_string_value(json_object_get(d, "digest")), *h;
		const char *ref = json_string_value(json_object_get(
			json_object_get(d, "annotations"), "org.opencontainers.image.ref.name"));

		assert_non_null(ref);
		/* No Docker media type in index.json: OCI tools would skip it. */
		assert_string_equal(json_string_value(json_object_get(d, "mediaType")), MT_OCI);
		assert_true(rp_digest_parse(dg, &h));
		rel = xasprintf("blobs/sha256/%s", h);
		bytes = slurp(tree, rel, &len);
		free(rel);
		rp_sha256_buf(bytes, len, hex);
		assert_string_equal(hex, h);
		assert_int_equal(json_integer_value(json_object_get(d, "size")), (json_int_t)len);
		twin = json_loadb(bytes, len, 0, &jerr);
		assert_non_null(twin);
		assert_string_equal(json_string_value(json_object_get(twin, "mediaType")), MT_OCI);
		assert_string_equal(json_string_value(json_object_get(
			json_object_get(twin, "config"), "mediaType")), MT_OCI_CFG);
		assert_string_equal(json_string_value(json_object_get(
			json_array_get(json_object_get(twin, "layers"), 0), "mediaType")), MT_OCI_GZ);
		if (!strncmp(ref, "library/alpine:", 15)) {
			/* The twin of m1: same config and layer blobs, not m1 itself. */
			assert_string_not_equal(h, s.m1.hex);
			assert_string_equal(h, s.twin);
			assert_string_equal(bytes, s.twin_bytes);
			rel = xasprintf("sha256:%s", s.cfg1.hex);
			assert_string_equal(json_string_value(json_object_get(
				json_object_get(twin, "config"), "digest")), rel);
			free(rel);
		} else {
			assert_string_equal(h, s.m2.hex); /* OCI manifests are listed as they are */
		}
		json_decref(twin);
		free(bytes);
	}
	json_decref(j);
	free(idx);
	/* The twin is derived: not in the snapshot, not served by the registry view. */
	snap = slurp(tree, "registry/snapshot", NULL);
	assert_null(strstr(snap, s.twin));
	free(snap);
	rel = xasprintf("registry/repos/library/alpine/_manifests/sha256/%s", s.twin);
	assert_false(exists(tree, rel));
	free(rel);
	std_free(&s);
	free(tree);
}

static void test_lock_held_while_open(void **state)
{
	struct fx *f = *state;
	char *tree = path_in(f->dir, "tree");
	struct layout_tree *t = NULL;
	struct rp_err err = { "" };
	int fd;

	if (layout_open(tree, LAYOUT_WRITE, &t, &err) < 0)
		fail_msg("layout_open: %s", err.msg);
	fd = open(tree, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	layout_close(t);
	close(fd);
	free(tree);
}

static void test_records_rejected(void **state)
{
	struct fx *f = *state;
	char *tree = path_in(f->dir, "tree");
	struct layout_tree *t = NULL;
	struct rp_err err = { "" };
	char hex[RP_HEX_LEN + 1];

	if (layout_open(tree, LAYOUT_WRITE, &t, &err) < 0)
		fail_msg("layout_open: %s", err.msg);
	OK(layout_put_blob(t, "x", 1, hex, E_));
	assert_int_equal(layout_add_blob(t, "Library/alpine", hex, 1, MT_OCI_GZ, &err), -1);
	assert_non_null(strstr(err.msg, "Library/alpine"));
	assert_int_equal(layout_add_blob(t, "localhost+5000/app", hex, 1, MT_OCI_GZ, &err), -1);
	assert_int_equal(layout_add_manifest(t, "a/b", "sha256:abc", 1, MT_OCI, &err), -1);
	assert_int_equal(layout_add_manifest(t, "a/b", hex, 1, "", &err), -1);
	assert_int_equal(layout_add_manifest(t, "a/b", hex, 1, "bad type", &err), -1);
	assert_int_equal(layout_add_manifest(t, "a/b", hex, 1, "bad\ntype", &err), -1);
	assert_int_equal(layout_set_tag(t, "a/b", ".x", hex, &err), -1);
	assert_int_equal(layout_set_tag(t, "a/b", "x y", hex, &err), -1);
	assert_int_equal(layout_set_tag(t, "a/B", "x", hex, &err), -1);
	assert_int_equal(layout_set_tag(t, "a/b", "x", "ABC", &err), -1);
	layout_close(t);
	assert_int_equal(access(tree, F_OK), -1);
	free(tree);
}

/* A commit that fails after it moved blobs and cache entries into the tree (before its publishing
 * rename) takes them back: the tree is as it was, to the directory times. The failure here: a
 * cache entry's place is taken by a directory, so moving the entry in fails. */
static void test_failed_publish_is_undone(void **state)
{
	struct fx *f = *state;
	char *tree = path_in(f->dir, "tree"), *blocker, *before, *after, *blob;
	struct layout_tree *t = NULL;
	struct rp_err err = { "" };
	char hex[RP_HEX_LEN + 1], val[RP_HEX_LEN + 16];
	struct timespec ts[2];
	struct std s;

	build_std(tree, &s);
	blocker = path_in(tree, "cache/ns1/key2/inside");
	OK(rp_mkdirs(blocker, E_));
	free(blocker);
	/* Times the writer cannot guess, on every directory it may touch. */
	ts[0].tv_sec = ts[1].tv_sec = 1234567890;
	ts[0].tv_nsec = ts[1].tv_nsec = 987654321;
	assert_int_equal(utimensat(AT_FDCWD, tree, ts, 0), 0);
	blocker = path_in(tree, "blobs/sha256");
	assert_int_equal(utimensat(AT_FDCWD, blocker, ts, 0), 0);
	free(blocker);
	blocker = path_in(tree, "cache/ns1");
	assert_int_equal(utimensat(AT_FDCWD, blocker, ts, 0), 0);
	free(blocker);
	before = listing(tree, 1, 0);

	if (layout_open(tree, LAYOUT_WRITE, &t, &err) < 0)
		fail_msg("layout_open: %s", err.msg);
	OK(layout_put_blob(t, "a blob the failed commit moves in", 33, hex, E_));
	OK(layout_add_blob(t, "x/app", hex, 33, MT_OCI_GZ, E_));
	snprintf(val, sizeof(val), "sha256:%s 33", hex);
	OK(layout_cache_put(t, "ns0", "key1", val, E_)); /* a new namespace: made, then removed */
	OK(layout_cache_put(t, "ns1", "key1", val, E_)); /* beside the blocker */
	OK(layout_cache_put(t, "ns1", "key2", val, E_)); /* the blocked one */
	assert_int_equal(layout_commit(t, NULL, &err), -1);
	if (!strstr(err.msg, "key2"))
		fail_msg("message '%s' does not name the entry it could not move", err.msg);
	layout_close(t);
	after = listing(tree, 1, 0);
	same_listing("a commit that failed after moving blobs in", before, after);
	blob = xasprintf("blobs/sha256/%s", hex);
	assert_false(exists(tree, blob));
	assert_false(exists(tree, "cache/ns0"));
	free(blob);
	free(before);
	free(after);
	std_free(&s);
	free(tree);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_tree_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_retag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_without_commit_is_identical, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_new_tree_without_commit_vanishes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tag_to_other_repos_manifest_fails, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refuses_foreign_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_directory_and_stale_staging, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_host_port_directories, setup, teardown),
		cmocka_unit_test_setup_teardown(test_docker_manifest_oci_twin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_held_while_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_records_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_publish_is_undone, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
