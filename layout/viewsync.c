/* The spare view (FMT_SPARE): a copy of registry/ that a commit brings to the new state, writing
 * only the files that change, and then swaps in with one rename; afterwards it brings the old
 * view, now the spare, to the new state as well. Its snapshot file, written last and removed
 * first, says which state it holds: a spare without it (a writer was killed while editing it)
 * is written in full by the next commit. */
#include "tree_int.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "names.h"
#include "strmap.h"
#include "view.h"
#include "viewsync.h"

static int no_blob(void *ctx, const void *buf, size_t len, char hex[RP_HEX_LEN + 1],
		   struct rp_err *err)
{
	(void)ctx, (void)buf, (void)len, (void)hex;
	return rp_errf(err, "internal: a view file asked for a blob");
}

/* ---- the files of one repository, in memory ---- */

struct vfile {
	char *rel;
	char *body;
	size_t len;
};

struct vfiles {
	struct vfile *v;
	size_t n, cap;
	struct layout_tree *t;
};

static int collect(void *ctx, const char *rel, const void *buf, size_t len, struct rp_err *err)
{
	struct vfiles *f = ctx;

	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 32;
		struct vfile *v = realloc(f->v, cap * sizeof(*v));

		if (!v)
			return rp_errf(err, "out of memory");
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n].rel = strdup(rel);
	f->v[f->n].body = malloc(len + 1);
	if (!f->v[f->n].rel || !f->v[f->n].body) {
		free(f->v[f->n].rel);
		free(f->v[f->n].body);
		return rp_errf(err, "out of memory");
	}
	memcpy(f->v[f->n].body, buf, len);
	f->v[f->n++].len = len;
	return 0;
}

static void vfiles_free(struct vfiles *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		free(f->v[i].rel);
		free(f->v[i].body);
	}
	free(f->v);
	memset(f, 0, sizeof(*f));
}

static int vfiles_read(void *ctx, const char *hex, char **buf, size_t *len, struct rp_err *err)
{
	return tree_read_manifest(((struct vfiles *)ctx)->t, hex, buf, len, err);
}

static int cmp_vfile(const void *a, const void *b)
{
	return strcmp(((const struct vfile *)a)->rel, ((const struct vfile *)b)->rel);
}

static int repo_files(struct layout_tree *t, const struct snapshot *s, const struct view_repo *r,
		      struct vfiles *out, struct rp_err *err)
{
	struct view_sink sink = { collect, no_blob, vfiles_read, out };

	memset(out, 0, sizeof(*out));
	out->t = t;
	if (r && view_emit_repo(s, r, &sink, err) < 0)
		return -1;
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), cmp_vfile);
	return 0;
}

/* ---- editing the spare ---- */

struct sync {
	struct layout_tree *t;
	int undoable;		/* before the publishing rename: every change is logged */
	struct strmap *touched; /* directories (relative to the tree) whose entries changed */
	char **dirs;		/* the same, in a list: their times are set last */
	size_t ndirs, capdirs;
};

static void in_spare(char *buf, size_t sz, const char *rel)
{
	snprintf(buf, sz, "%s%s%s", FMT_SPARE, rel[0] ? "/" : "", rel);
}

static int touch(struct sync *s, const char *dir, struct rp_err *err)
{
	size_t had;

	if (strmap_get(s->touched, dir, &had) == 0)
		return 0;
	if (s->undoable && undo_push_times(s->t, dir, err) < 0)
		return -1;
	if (s->ndirs == s->capdirs) {
		size_t cap = s->capdirs ? s->capdirs * 2 : 32;
		char **v = realloc(s->dirs, cap * sizeof(*v));

		if (!v)
			return rp_errf(err, "out of memory");
		s->dirs = v;
		s->capdirs = cap;
	}
	if (!(s->dirs[s->ndirs] = strdup(dir)) || strmap_put(s->touched, dir, 1) < 0)
		return rp_errf(err, "out of memory");
	s->ndirs++;
	return 0;
}

static int touch_parent(struct sync *s, const char *rel, struct rp_err *err)
{
	char dir[4096], *slash;

	snprintf(dir, sizeof(dir), "%s", rel);
	slash = strrchr(dir, '/');
	*slash = '\0';
	return touch(s, dir, err);
}

/* Make rel's parent directories (logged), touching each that gains an entry. */
static int make_parents(struct sync *s, const char *rel, struct rp_err *err)
{
	char dir[4096], *slash;
	int r;

	snprintf(dir, sizeof(dir), "%s", rel);
	slash = strrchr(dir, '/');
	*slash = '\0';
	r = fsat_type(&s->t->root, dir, NULL, err);
	if (r < 0)
		return -1;
	if (r == FSAT_DIR)
		return 0;
	if (r != FSAT_ABSENT)
		return rp_errf(err, "'%s/%s': not a directory", s->t->root.path, dir);
	if (make_parents(s, dir, err) < 0 || touch_parent(s, dir, err) < 0)
		return -1;
	if (s->undoable)
		return undo_prepare_dir(s->t, dir, err) < 0 ? -1 : touch(s, dir, err);
	return fsat_mkdirs(&s->t->root, dir, err) < 0 ? -1 : touch(s, dir, err);
}

static int put_file(struct sync *s, const char *rel, const struct vfile *f, struct rp_err *err)
{
	int r = fsat_type(&s->t->root, rel, NULL, err);

	if (r < 0)
		return -1;
	if (r == FSAT_ABSENT && make_parents(s, rel, err) < 0)
		return -1;
	if (touch_parent(s, rel, err) < 0)
		return -1;
	if (r != FSAT_ABSENT) {
		if (r != FSAT_FILE)
			return rp_errf(err, "'%s/%s': not a regular file", s->t->root.path, rel);
		if (s->undoable ? undo_move_aside(s->t, rel, err) < 0
				: fsat_unlink(&s->t->root, rel, err) < 0)
			return -1;
	}
	if (s->undoable && undo_push_unlink(s->t, rel, err) < 0)
		return -1;
	return fsat_write_new(&s->t->root, rel, f->body, f->len, err);
}

/* 1 if directory rel is empty. */
static int dir_empty(const struct layout_tree *t, const char *rel)
{
	struct fsat_dir d;
	struct dirent *e;
	DIR *dir;
	int empty = 1, fd;

	if (fsat_subdir(&t->root, rel, 0, &d, NULL) != 0)
		return 0;
	fd = dup(d.fd);
	dir = fd >= 0 ? fdopendir(fd) : NULL;
	while (dir && (e = readdir(dir)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			empty = 0;
	if (dir)
		closedir(dir);
	else if (fd >= 0)
		close(fd);
	fsat_close(&d);
	return dir && empty;
}

/* Remove rel (a file or a directory tree), then its parents that it left empty, up to the
 * repositories' directory: the view has no empty directories. */
static int drop(struct sync *s, const char *rel, struct rp_err *err)
{
	char path[4096], stop[64], *slash;
	int r = 0;

	in_spare(stop, sizeof(stop), FMT_REPOS_NAME);
	snprintf(path, sizeof(path), "%s", rel);
	for (;;) {
		if (touch_parent(s, path, err) < 0)
			return -1;
		if (s->undoable)
			r = undo_move_aside(s->t, path, err);
		else
			r = fsat_rmtree(&s->t->root, path, err);
		if (r < 0)
			return -1;
		slash = strrchr(path, '/');
		*slash = '\0';
		if (!strcmp(path, stop) || !strchr(path, '/') || !dir_empty(s->t, path))
			return 0;
	}
}

/* Bring one repository's files from old to new. */
static int sync_repo(struct sync *s, const struct snapshot *old, const struct view_repo *ro,
		     const struct snapshot *new, const struct view_repo *rn, struct rp_err *err)
{
	struct vfiles a, b;
	char rel[4096], dir[RP_REPO_MAX + 16];
	size_t i = 0, j = 0;
	int rc = -1;

	if (repo_files(s->t, old, ro, &a, err) < 0)
		return -1;
	if (repo_files(s->t, new, rn, &b, err) < 0)
		goto out;
	if (!rn) { /* the repository is gone: its whole directory */
		view_repo_dir(ro->name, dir, sizeof(dir));
		in_spare(rel, sizeof(rel), dir);
		rc = fsat_type(&s->t->root, rel, NULL, err) == FSAT_ABSENT ? 0 : drop(s, rel, err);
		goto out;
	}
	while (i < a.n || j < b.n) {
		int c = i == a.n ? 1 : j == b.n ? -1 : strcmp(a.v[i].rel, b.v[j].rel);

		if (c < 0) {
			in_spare(rel, sizeof(rel), a.v[i++].rel);
			if (drop(s, rel, err) < 0)
				goto out;
		} else if (c > 0 || a.v[i].len != b.v[j].len ||
			   memcmp(a.v[i].body, b.v[j].body, b.v[j].len)) {
			in_spare(rel, sizeof(rel), b.v[j].rel);
			if (put_file(s, rel, &b.v[j], err) < 0)
				goto out;
			if (c == 0)
				i++;
			j++;
		} else {
			i++, j++;
		}
	}
	rc = 0;
out:
	vfiles_free(&a);
	vfiles_free(&b);
	return rc;
}

/* Same records for the repository in both states? */
static int same_repo(const struct snapshot *old, const struct view_repo *a,
		     const struct snapshot *new, const struct view_repo *b)
{
	size_t i;

	if (!a || !b || a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++)
		if (strcmp(old->v[a->recs[i]].line, new->v[b->recs[i]].line))
			return 0;
	return 1;
}

static int sync_catalog(struct sync *s, const struct view_repos *ro, const struct view_repos *rn,
			struct rp_err *err)
{
	struct vfiles a, b;
	struct view_sink sink = { collect, no_blob, vfiles_read, &a };
	char rel[64];
	int rc = -1;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.t = b.t = s->t;
	if (view_emit_top("", 0, ro, &sink, err) < 0)
		goto out;
	sink.ctx = &b;
	if (view_emit_top("", 0, rn, &sink, err) < 0)
		goto out;
	/* [1] is catalog.json ([0] the snapshot, written by the caller) */
	in_spare(rel, sizeof(rel), b.v[1].rel);
	rc = a.v[1].len == b.v[1].len && !memcmp(a.v[1].body, b.v[1].body, b.v[1].len)
		     ? 0 : put_file(s, rel, &b.v[1], err);
out:
	vfiles_free(&a);
	vfiles_free(&b);
	return rc;
}

/* Directory times last: a change below a directory never touches the directory's time. */
static int fix_touched(struct sync *s, struct rp_err *err)
{
	size_t i;

	for (i = 0; i < s->ndirs; i++)
		if (fsat_type(&s->t->root, s->dirs[i], NULL, NULL) == FSAT_DIR &&
		    fsat_set_mtime(&s->t->root, s->dirs[i], err) < 0)
			return -1;
	return 0;
}

static void sync_free(struct sync *s)
{
	size_t i;

	for (i = 0; i < s->ndirs; i++)
		free(s->dirs[i]);
	free(s->dirs);
	strmap_free(s->touched);
}

/* Remove the spare's file name (its snapshot or signature) if there. */
static int drop_file(struct sync *s, const char *name, struct rp_err *err)
{
	char rel[64];
	int r;

	in_spare(rel, sizeof(rel), name);
	r = fsat_type(&s->t->root, rel, NULL, err);
	if (r <= FSAT_ABSENT)
		return r;
	if (touch(s, FMT_SPARE, err) < 0)
		return -1;
	return s->undoable ? undo_move_aside(s->t, rel, err) : fsat_unlink(&s->t->root, rel, err);
}

static int sync_repos(struct sync *s, const struct snapshot *old, const struct snapshot *new,
		      struct rp_err *err)
{
	struct view_repos ro, rn;
	size_t i = 0, j = 0;
	int rc = -1;

	if (view_repos_make(old, &ro, err) < 0)
		return -1;
	if (view_repos_make(new, &rn, err) < 0)
		goto out;
	while (i < ro.n || j < rn.n) {
		int c = i == ro.n ? 1 : j == rn.n ? -1 : strcmp(ro.v[i].name, rn.v[j].name);
		const struct view_repo *a = c <= 0 ? &ro.v[i] : NULL, *b = c >= 0 ? &rn.v[j] : NULL;

		if (!same_repo(old, a, new, b) && sync_repo(s, old, a, new, b, err) < 0)
			goto out;
		i += c <= 0;
		j += c >= 0;
	}
	rc = sync_catalog(s, &ro, &rn, err);
out:
	view_repos_free(&ro);
	view_repos_free(&rn);
	return rc;
}

/* The spare's signed files made those of sig (before its snapshot, which marks it complete). */
static int sync_signed(struct sync *s, const struct layout_signed_files *sig, struct rp_err *err)
{
	int i;

	for (i = 0; i < LAYOUT_SIGNED_N; i++) {
		const char *name = layout_signed_name((enum layout_signed)i);
		struct vfile f = { NULL, (char *)sig->buf[i], sig->len[i] };
		char rel[64], *cur = NULL;
		size_t clen;
		int r;

		in_spare(rel, sizeof(rel), name);
		r = fsat_read(&s->t->root, rel, LAYOUT_SIGNED_MAX, &cur, &clen, err);
		if (r < 0)
			return -1;
		if (r == 0 && f.body && clen == f.len && !memcmp(cur, f.body, f.len))
			r = 2; /* already so */
		free(cur);
		if (r != 2 && (f.body ? put_file(s, rel, &f, err) : drop_file(s, name, err)) < 0)
			return -1;
	}
	return 0;
}

int spare_sync(struct layout_tree *t, const struct snapshot *old, const struct snapshot *new,
	       const char *text, size_t len, const struct layout_signed_files *sig, int undoable,
	       struct rp_err *err)
{
	struct sync s = { t, undoable, strmap_new(), NULL, 0, 0 };
	struct vfile marker = { NULL, (char *)text, len };
	struct fsat_dir d;
	int rc = -1;

	if (!s.touched) {
		rp_errf(err, "out of memory");
		goto out;
	}
	/* The snapshot goes first: a spare without it is written in full by the next commit. */
	if (drop_file(&s, FMT_SNAPSHOT_NAME, err) < 0)
		goto out;
	if (fsat_subdir(&t->root, FMT_SPARE, 0, &d, err) != 0)
		goto out;
	fsync(d.fd);
	fsat_close(&d);
	/* Directory times before the marker, and the spare's own after it: a spare with its
	 * snapshot is complete down to the times (spare_valid). */
	if (sync_repos(&s, old, new, err) < 0 || sync_signed(&s, sig, err) < 0 ||
	    fix_touched(&s, err) < 0 ||
	    put_file(&s, FMT_SPARE "/" FMT_SNAPSHOT_NAME, &marker, err) < 0 ||
	    fsat_set_mtime(&t->root, FMT_SPARE, err) < 0)
		goto out;
	rc = 0;
out:
	sync_free(&s);
	return rc;
}

/* ---- a whole view ---- */

struct full_sink {
	struct layout_tree *t;
	struct strmap *dirs; /* directories made so far (relative to the tree) */
	const char *marker;  /* the snapshot: written last */
	size_t marker_len;
	/* The directory written into last: the view's files come grouped by directory, so most
	 * are created relative to it, one component each. */
	char dir_rel[4096];
	struct fsat_dir dir;
};

static int full_file(void *ctx, const char *rel, const void *buf, size_t len, struct rp_err *err)
{
	struct full_sink *f = ctx;
	char path[4096], dir[4096], *slash;
	size_t had;

	if (!strcmp(rel, FMT_SNAPSHOT_NAME)) {
		f->marker = buf;
		f->marker_len = len;
		return 0;
	}
	in_spare(path, sizeof(path), rel);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	*slash = '\0';
	if (strcmp(dir, f->dir_rel)) {
		if (strmap_get(f->dirs, dir, &had) < 0) {
			if (fsat_mkdirs(&f->t->root, dir, err) < 0)
				return -1;
			if (strmap_put(f->dirs, dir, 1) < 0)
				return rp_errf(err, "out of memory");
		}
		fsat_close(&f->dir);
		f->dir_rel[0] = '\0';
		if (fsat_subdir(&f->t->root, dir, 0, &f->dir, err) != 0)
			return -1;
		snprintf(f->dir_rel, sizeof(f->dir_rel), "%s", dir);
	}
	return fsat_write_new(&f->dir, path + strlen(dir) + 1, buf, len, err);
}

static int full_read(void *ctx, const char *hex, char **buf, size_t *len, struct rp_err *err)
{
	return tree_read_manifest(((struct full_sink *)ctx)->t, hex, buf, len, err);
}

/* The signed files of a spare being written whole. */
static int full_signed(struct layout_tree *t, const struct layout_signed_files *sig,
		       struct rp_err *err)
{
	int i;

	for (i = 0; i < LAYOUT_SIGNED_N; i++) {
		char rel[64];

		in_spare(rel, sizeof(rel), layout_signed_name((enum layout_signed)i));
		if (sig->buf[i] && fsat_write_new(&t->root, rel, sig->buf[i], sig->len[i], err) < 0)
			return -1;
	}
	return 0;
}

int spare_write_full(struct layout_tree *t, const struct snapshot *s, const char *text,
		     size_t len, const struct layout_signed_files *sig, int undoable,
		     struct rp_err *err)
{
	struct full_sink f = { t, strmap_new(), NULL, 0, "", { -1, NULL } };
	struct view_sink sink = { full_file, no_blob, full_read, &f };
	int r, rc = -1;

	if (!f.dirs) {
		rp_errf(err, "out of memory");
		goto out;
	}
	r = fsat_type(&t->root, FMT_SPARE, NULL, err);
	if (r < 0)
		goto out;
	if (r != FSAT_ABSENT && (undoable ? undo_move_aside(t, FMT_SPARE, err)
					  : fsat_rmtree(&t->root, FMT_SPARE, err)) < 0)
		goto out;
	if (undoable && (undo_push_times(t, "", err) < 0 || undo_push_rmtree(t, FMT_SPARE, err) < 0))
		goto out;
	if (fsat_mkdirs(&t->root, FMT_SPARE, err) < 0 || strmap_put(f.dirs, FMT_SPARE, 1) < 0)
		goto out;
	/* Only the finished spare gets its snapshot: one a kill interrupted has none. */
	if (view_emit_all(text, len, s, &sink, err) < 0 || full_signed(t, sig, err) < 0 ||
	    fsat_fix_dir_mtimes(&t->root, FMT_SPARE, err) < 0 ||
	    fsat_write_new(&t->root, FMT_SPARE "/" FMT_SNAPSHOT_NAME, f.marker, f.marker_len,
			   err) < 0 ||
	    fsat_set_mtime(&t->root, FMT_SPARE, err) < 0)
		goto out;
	rc = 0;
out:
	fsat_close(&f.dir);
	strmap_free(f.dirs);
	return rc;
}

int spare_valid(const struct layout_tree *t)
{
	struct stat st;
	char *buf = NULL;
	size_t len;
	int fd, ok = 0;

	/* The spare's own time is set last: a writer killed before that left it unfinished. */
	if (!t->text || fsat_type(&t->root, FMT_SPARE, &st, NULL) != FSAT_DIR ||
	    st.st_mtim.tv_sec != rp_epoch() || st.st_mtim.tv_nsec != 0)
		return 0;
	if (fsat_open_file(&t->root, FMT_SPARE "/" FMT_SNAPSHOT_NAME, &fd, &st, NULL) != 0)
		return 0;
	if (st.st_mtim.tv_sec == rp_epoch() && st.st_mtim.tv_nsec == 0 &&
	    (size_t)st.st_size == t->text_len &&
	    fsat_read_fd(fd, "spare", t->text_len, &buf, &len, NULL) == 0)
		ok = len == t->text_len && !memcmp(buf, t->text, len);
	free(buf);
	close(fd);
	return ok;
}
