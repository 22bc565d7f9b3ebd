#include "tree.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "names.h"
#include "snapshot.h"
#include "view.h"

#define STAGING ".regpress-tmp"
#define OCI_LAYOUT "{\"imageLayoutVersion\":\"1.0.0\"}"
/* Blob writes go to the kernel in pieces this size: measured here, write(2) from a 1 MiB buffer
 * costs 3-4x the kernel CPU of 128 KiB pieces (the copy into the page cache falls out of L2). */
#define BLOB_BUF (128u << 10)
/* Every this many bytes a blob's pages are handed to writeback (sync_file_range), so the disk
 * works while the build computes, and the flush before publishing finds little left to do. */
#define BLOB_WRITEBACK (8u << 20)

struct layout_tree {
	char *path;
	char *staging;	   /* TREE/.regpress-tmp */
	char *staged_blobs; /* TREE/.regpress-tmp/blobs: complete blobs, named by hex */
	char *scratch;	   /* TREE/.regpress-tmp/scratch */
	int dirfd;	   /* holds the flock */
	int created;	   /* the tree directory did not exist before: how many levels of it */
	struct timespec root_mtime;
	char **lines; /* the state: snapshot records without the header */
	size_t nlines, cap;
	unsigned long next_tmp;
	char snapshot_id[RP_HEX_LEN + 1];
	json_t *cache_new; /* "ns/key" -> "value", written at commit */
	/* What a commit changed outside the staging area before its publishing rename (blobs and
	 * cache entries moved in, directories made or touched): undone if it fails there. */
	struct undo *undo;
	size_t nundo, undocap;
	int published; /* the publishing rename happened: nothing to undo any more */
};

enum undo_kind { UNDO_UNLINK, UNDO_RMDIR, UNDO_TIMES };

struct undo {
	enum undo_kind kind;
	char *path;
	struct timespec times[2]; /* UNDO_TIMES: atime and mtime to put back */
};

struct layout_blob {
	struct layout_tree *tree;
	char *tmp;
	int fd;
	struct rp_sha256 hash;
	uint64_t size;
	uint64_t written, flushed; /* bytes written to fd, and handed to writeback */
	int caller_hash;	   /* layout_blob_hashed_by_caller() */
	unsigned char *buf;
	size_t used;
};

const char *layout_path(const struct layout_tree *t)
{
	return t->path;
}

const char *layout_scratch_dir(const struct layout_tree *t)
{
	return t->scratch;
}

const char *layout_snapshot_id(const struct layout_tree *t)
{
	return t->snapshot_id;
}

/* ---- the undo log of a commit's steps before its publishing rename ---- */

static int undo_push(struct layout_tree *t, enum undo_kind kind, const char *path,
		     const struct stat *st, struct rp_err *err)
{
	struct undo *u;

	if (t->nundo == t->undocap) {
		size_t cap = t->undocap ? t->undocap * 2 : 64;

		u = realloc(t->undo, cap * sizeof(*u));
		if (!u)
			return rp_errf(err, "out of memory");
		t->undo = u;
		t->undocap = cap;
	}
	u = &t->undo[t->nundo];
	u->kind = kind;
	u->path = strdup(path);
	if (!u->path)
		return rp_errf(err, "out of memory");
	if (st) {
		u->times[0] = st->st_atim;
		u->times[1] = st->st_mtim;
	}
	t->nundo++;
	return 0;
}

static void undo_clear(struct layout_tree *t)
{
	size_t i;

	for (i = 0; i < t->nundo; i++)
		free(t->undo[i].path);
	free(t->undo);
	t->undo = NULL;
	t->nundo = t->undocap = 0;
}

/* Take back, newest first, what the log records: the tree is as it was before the commit. */
static void undo_run(struct layout_tree *t)
{
	size_t i;

	for (i = t->nundo; i-- > 0;) {
		struct undo *u = &t->undo[i];

		if (u->kind == UNDO_UNLINK)
			unlink(u->path);
		else if (u->kind == UNDO_RMDIR)
			rmdir(u->path);
		else
			utimensat(AT_FDCWD, u->path, u->times, AT_SYMLINK_NOFOLLOW);
	}
	undo_clear(t);
}

static int path_up(char *p);

/* Before a commit adds entries to dir: log its times, or make it (and its missing parents, the
 * tree root being there) and log its removal. */
static int undo_prepare_dir(struct layout_tree *t, const char *dir, struct rp_err *err)
{
	struct stat st;
	char *parent;
	size_t i;
	int rc;

	for (i = 0; i < t->nundo; i++)
		if (t->undo[i].kind != UNDO_UNLINK && !strcmp(t->undo[i].path, dir))
			return 0;
	if (stat(dir, &st) == 0)
		return undo_push(t, UNDO_TIMES, dir, &st, err);
	if (errno != ENOENT)
		return rp_errno(err, "'%s'", dir);
	parent = strdup(dir);
	if (!parent)
		return rp_errf(err, "out of memory");
	rc = path_up(parent) ? undo_prepare_dir(t, parent, err) : 0;
	free(parent);
	if (rc < 0 || rp_mkdirs(dir, err) < 0)
		return -1;
	return undo_push(t, UNDO_RMDIR, dir, NULL, err);
}

/* Move a staged file to its place in the tree (no file there yet), logged for undo. */
static int undo_rename(struct layout_tree *t, const char *src, const char *dst,
		       struct rp_err *err)
{
	struct stat st;
	int existed = lstat(dst, &st) == 0;

	if (!existed && undo_push(t, UNDO_UNLINK, dst, NULL, err) < 0)
		return -1;
	rp_crash_point();
	if (rename(src, dst) < 0)
		return rp_errno(err, "cannot move '%s' to '%s'", src, dst);
	return 0;
}

static int add_line(struct layout_tree *t, char *line, struct rp_err *err)
{
	if (t->nlines == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		char **n = realloc(t->lines, cap * sizeof(*n));

		if (!n) {
			free(line);
			return rp_errf(err, "out of memory");
		}
		t->lines = n;
		t->cap = cap;
	}
	t->lines[t->nlines++] = line;
	return 0;
}

static int load_snapshot(struct layout_tree *t, struct rp_err *err)
{
	char *path = rp_join(t->path, "registry/snapshot");
	char *buf = NULL, *p, *nl;
	size_t len;
	int rc = -1;

	if (!path)
		return rp_errf(err, "out of memory");
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		free(path);
		return 0;
	}
	if (rp_read_file(path, SNAPSHOT_MAX, &buf, &len, err) < 0)
		goto out;
	{
		/* Refuse to build on a state we cannot read exactly. */
		struct snapshot snap;

		if (snapshot_parse(buf, len, path, &snap, err) < 0)
			goto out;
		snapshot_free(&snap);
	}
	rp_sha256_buf(buf, len, t->snapshot_id);
	for (p = buf + sizeof(SNAPSHOT_HEADER); *p; p = nl + 1) {
		char *line;

		nl = strchr(p, '\n');
		if (!nl) {
			rp_errf(err, "'%s': truncated", path);
			goto out;
		}
		line = strndup(p, (size_t)(nl - p));
		if (!line || add_line(t, line, err) < 0) {
			rp_errf(err, "out of memory");
			goto out;
		}
	}
	rc = 0;
out:
	free(buf);
	free(path);
	return rc;
}

/* Cut the last component (and the slashes after it) off a path; 0 if nothing is left above it. */
static int path_up(char *p)
{
	size_t n = strlen(p);

	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	while (n > 0 && p[n - 1] != '/')
		n--;
	while (n > 1 && p[n - 1] == '/')
		n--;
	p[n] = '\0';
	return n > 0;
}

/* How many trailing components of path do not exist (path itself does not). */
static int missing_levels(const char *path)
{
	char *p = strdup(path);
	struct stat st;
	int n = 1;

	while (p && path_up(p) && stat(p, &st) < 0)
		n++;
	free(p);
	return n;
}

static int install_derived(struct layout_tree *t, const char *id, struct rp_err *err);
static int fix_times(struct layout_tree *t, struct rp_err *err);

/* A staging area left by a killed writer: if the writer got as far as its publishing rename, it
 * left index.json (and oci-layout) for the published snapshot there: put them in place, and the
 * times it had not yet fixed. Anything else in it was never published and is garbage. */
static int recover(struct layout_tree *t, struct rp_err *err)
{
	struct stat st;

	if (lstat(t->staging, &st) < 0 || !t->snapshot_id[0])
		return 0;
	if (install_derived(t, t->snapshot_id, err) < 0 || fix_times(t, err) < 0)
		return -1;
	t->root_mtime.tv_sec = rp_epoch(); /* put back by layout_close */
	t->root_mtime.tv_nsec = 0;
	return 0;
}

int layout_open(const char *path, struct layout_tree **out, struct rp_err *err)
{
	struct layout_tree *t = calloc(1, sizeof(*t));
	struct stat st;

	*out = NULL;
	if (!t)
		return rp_errf(err, "out of memory");
	t->dirfd = -1;
	t->path = strdup(path);
	if (!t->path)
		goto oom;
	if (stat(path, &st) < 0) {
		if (errno != ENOENT) {
			rp_errno(err, "'%s'", path);
			goto fail;
		}
		t->created = missing_levels(path);
		if (rp_mkdirs(path, err) < 0)
			goto fail;
		if (stat(path, &st) < 0) {
			rp_errno(err, "'%s'", path);
			goto fail;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		rp_errf(err, "'%s': not a directory", path);
		goto fail;
	}
	t->root_mtime = st.st_mtim;
	t->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dirfd < 0) {
		rp_errno(err, "cannot open '%s'", path);
		goto fail;
	}
	/* The lock lives on the directory itself: no lock file to leave behind or to differ. */
	while (flock(t->dirfd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			rp_errno(err, "cannot lock '%s'", path);
			goto fail;
		}
	}
	if (!t->created) {
		/* A tree that is neither empty nor a regpress tree is somebody else's directory. */
		char *snap = rp_join(path, "registry/snapshot");
		int has_snapshot = snap && access(snap, F_OK) == 0;
		int empty = 1;
		DIR *d;

		free(snap);
		if (!has_snapshot && (d = fdopendir(dup(t->dirfd)))) {
			struct dirent *e;

			/* blobs/ and cache/ without registry/: a first build killed while
			 * publishing; its next build finishes the job. An import waiting for
			 * more volumes keeps its files in .regpress-import/. */
			while ((e = readdir(d)))
				if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
				    strcmp(e->d_name, STAGING) && strcmp(e->d_name, "blobs") &&
				    strcmp(e->d_name, "cache") &&
				    strcmp(e->d_name, ".regpress-import")) /* layout/media.h */
					empty = 0;
			closedir(d);
			if (!empty) {
				rp_errf(err, "'%s': not empty and not a regpress tree", path);
				goto fail;
			}
		}
	}
	t->staging = rp_join(path, STAGING);
	t->staged_blobs = t->staging ? rp_join(t->staging, "blobs") : NULL;
	t->scratch = t->staging ? rp_join(t->staging, "scratch") : NULL;
	if (!t->staged_blobs || !t->scratch)
		goto oom;
	if (load_snapshot(t, err) < 0 || recover(t, err) < 0)
		goto fail;
	if (rp_rmtree(t->staging, err) < 0 || rp_mkdirs(t->staged_blobs, err) < 0 ||
	    rp_mkdirs(t->scratch, err) < 0)
		goto fail;
	*out = t;
	return 0;
oom:
	rp_errf(err, "out of memory");
fail:
	layout_close(t);
	return -1;
}

void layout_close(struct layout_tree *t)
{
	size_t i;

	if (!t)
		return;
	undo_run(t); /* a commit that failed before its publishing rename */
	if (t->staging) {
		struct timespec ts[2];

		rp_rmtree(t->staging, NULL);
		/* Creating and removing the staging area touched the root: put its time back, so a
		 * failed or empty run leaves the tree exactly as it was. */
		ts[0] = ts[1] = t->root_mtime;
		if (t->dirfd >= 0)
			futimens(t->dirfd, ts);
	}
	if (t->created && t->snapshot_id[0] == '\0') {
		/* We made it (and the parents that were missing) and published nothing: leave no
		 * trace. rmdir only removes empty directories, so nothing else can go. */
		int level;

		for (level = 0; level < t->created; level++)
			if (rmdir(t->path) < 0 || !path_up(t->path))
				break;
	}
	if (t->dirfd >= 0)
		close(t->dirfd); /* releases the lock */
	for (i = 0; i < t->nlines; i++)
		free(t->lines[i]);
	free(t->lines);
	free(t->path);
	free(t->staging);
	free(t->staged_blobs);
	free(t->scratch);
	json_decref(t->cache_new);
	free(t);
}

char *layout_blob_path(const struct layout_tree *t, const char *hex)
{
	char rel[RP_HEX_LEN + 32];
	char *p;

	snprintf(rel, sizeof(rel), "blobs/sha256/%s", hex);
	p = rp_join(t->path, rel);
	if (p && access(p, F_OK) == 0)
		return p;
	free(p);
	p = rp_join(t->staged_blobs, hex);
	if (p && access(p, F_OK) == 0)
		return p;
	free(p);
	return NULL;
}

int layout_has_blob(const struct layout_tree *t, const char *hex)
{
	char *p = layout_blob_path(t, hex);

	free(p);
	return p != NULL;
}

int layout_blob_new(struct layout_tree *t, struct layout_blob **out, struct rp_err *err)
{
	struct layout_blob *b = calloc(1, sizeof(*b));
	char name[64];

	*out = NULL;
	if (!b)
		return rp_errf(err, "out of memory");
	b->tree = t;
	b->fd = -1;
	snprintf(name, sizeof(name), "blob-%lu", t->next_tmp++);
	b->tmp = rp_join(t->scratch, name);
	b->buf = malloc(BLOB_BUF);
	if (!b->tmp || !b->buf || rp_sha256_init(&b->hash) < 0) {
		layout_blob_free(b);
		return rp_errf(err, "out of memory");
	}
	b->fd = open(b->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, RP_FILE_MODE);
	if (b->fd < 0) {
		rp_errno(err, "cannot create '%s'", b->tmp);
		layout_blob_free(b);
		return -1;
	}
	*out = b;
	return 0;
}

static int blob_flush(struct layout_blob *b, struct rp_err *err)
{
	if (rp_write_all(b->fd, b->tmp, b->buf, b->used, err) < 0)
		return -1;
	b->written += b->used;
	b->used = 0;
	if (b->written - b->flushed >= BLOB_WRITEBACK) {
		/* Only starts writeback (no wait); failure just leaves it to the flush at commit. */
		sync_file_range(b->fd, (off64_t)b->flushed, (off64_t)(b->written - b->flushed),
				SYNC_FILE_RANGE_WRITE);
		b->flushed = b->written;
	}
	return 0;
}

int layout_blob_write(struct layout_blob *b, const void *buf, size_t len, struct rp_err *err)
{
	const unsigned char *p = buf;

	if (!b->caller_hash)
		rp_sha256_update(&b->hash, buf, len);
	b->size += len;
	while (len) {
		size_t n = BLOB_BUF - b->used;

		if (n > len)
			n = len;
		memcpy(b->buf + b->used, p, n);
		b->used += n;
		p += n;
		len -= n;
		if (b->used == BLOB_BUF && blob_flush(b, err) < 0)
			return -1;
	}
	return 0;
}

void layout_blob_free(struct layout_blob *b)
{
	if (!b)
		return;
	if (b->fd >= 0)
		close(b->fd);
	if (b->tmp)
		unlink(b->tmp);
	rp_sha256_free(&b->hash);
	free(b->tmp);
	free(b->buf);
	free(b);
}

void layout_blob_hashed_by_caller(struct layout_blob *b)
{
	b->caller_hash = 1;
}

int layout_blob_finish(struct layout_blob *b, char hex[RP_HEX_LEN + 1], uint64_t *size,
		       struct rp_err *err)
{
	char *dst = NULL;
	int rc = -1;

	if (blob_flush(b, err) < 0)
		goto out;
	if (!b->caller_hash)
		rp_sha256_final(&b->hash, hex);
	else if (!rp_hex_valid(hex)) {
		rp_errf(err, "invalid digest '%s'", hex);
		goto out;
	}
	if (size)
		*size = b->size;
	if (rp_fix_file(b->fd, b->tmp, err) < 0)
		goto out;
	if (close(b->fd) < 0) {
		b->fd = -1;
		rp_errno(err, "cannot write '%s'", b->tmp);
		goto out;
	}
	b->fd = -1;
	if (layout_has_blob(b->tree, hex)) {
		rc = 0; /* already stored: content addressing makes the copy redundant */
		goto out;
	}
	dst = rp_join(b->tree->staged_blobs, hex);
	rp_crash_point();
	if (!dst || rename(b->tmp, dst) < 0) {
		rp_errno(err, "cannot stage blob '%s'", b->tmp);
		goto out;
	}
	rc = 0;
out:
	free(dst);
	layout_blob_free(b);
	return rc;
}

int layout_put_blob(struct layout_tree *t, const void *buf, size_t len, char hex[RP_HEX_LEN + 1],
		    struct rp_err *err)
{
	struct layout_blob *b;

	if (layout_blob_new(t, &b, err) < 0)
		return -1;
	if (layout_blob_write(b, buf, len, err) < 0) {
		layout_blob_free(b);
		return -1;
	}
	return layout_blob_finish(b, hex, NULL, err);
}

int layout_blob_adopt(struct layout_tree *t, const char *path, const char *hex,
		      struct rp_err *err)
{
	struct timespec ts[2];
	char *dst;
	int rc = 0;

	if (!rp_hex_valid(hex))
		return rp_errf(err, "invalid digest '%s'", hex);
	if (layout_has_blob(t, hex)) {
		unlink(path);
		return 0;
	}
	ts[0].tv_sec = ts[1].tv_sec = rp_epoch();
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (chmod(path, RP_FILE_MODE) < 0 || utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return rp_errno(err, "cannot set mode or time of '%s'", path);
	dst = rp_join(t->staged_blobs, hex);
	if (!dst)
		return rp_errf(err, "out of memory");
	rp_crash_point();
	if (rename(path, dst) < 0)
		rc = rp_errno(err, "cannot stage blob '%s'", path);
	free(dst);
	return rc;
}

static int record(struct layout_tree *t, const char *kind, const char *repo, const char *hex,
		  uint64_t size, const char *media_type, struct rp_err *err)
{
	char *line;
	size_t i;

	if (!layout_repo_valid(repo))
		return rp_errf(err, "invalid repository name '%s'", repo);
	if (!rp_hex_valid(hex))
		return rp_errf(err, "invalid digest '%s'", hex);
	for (i = 0; media_type[i]; i++)
		if (media_type[i] <= ' ' || media_type[i] > '~')
			return rp_errf(err, "invalid media type '%s'", media_type);
	if (i == 0)
		return rp_errf(err, "empty media type for sha256:%s", hex);
	if (asprintf(&line, "%s %s sha256:%s %" PRIu64 " %s", kind, repo, hex, size, media_type) < 0)
		return rp_errf(err, "out of memory");
	return add_line(t, line, err);
}

int layout_add_manifest(struct layout_tree *t, const char *repo, const char *hex, uint64_t size,
			const char *media_type, struct rp_err *err)
{
	return record(t, "manifest", repo, hex, size, media_type, err);
}

int layout_add_blob(struct layout_tree *t, const char *repo, const char *hex, uint64_t size,
		    const char *media_type, struct rp_err *err)
{
	return record(t, "blob", repo, hex, size, media_type, err);
}

int layout_add_missing(struct layout_tree *t, const char *repo, const char *hex, uint64_t size,
		       const char *media_type, struct rp_err *err)
{
	return record(t, "missing", repo, hex, size, media_type, err);
}

int layout_set_tag(struct layout_tree *t, const char *repo, const char *tag, const char *hex,
		   struct rp_err *err)
{
	char *prefix, *line;
	size_t i, plen;

	if (!layout_repo_valid(repo))
		return rp_errf(err, "invalid repository name '%s'", repo);
	if (!layout_tag_valid(tag))
		return rp_errf(err, "invalid tag '%s'", tag);
	if (!rp_hex_valid(hex))
		return rp_errf(err, "invalid digest '%s'", hex);
	if (asprintf(&prefix, "tag %s %s ", repo, tag) < 0)
		return rp_errf(err, "out of memory");
	plen = strlen(prefix);
	/* A tag names one manifest: retagging replaces the old line. */
	for (i = 0; i < t->nlines;) {
		if (!strncmp(t->lines[i], prefix, plen)) {
			free(t->lines[i]);
			t->lines[i] = t->lines[--t->nlines];
		} else {
			i++;
		}
	}
	if (asprintf(&line, "%ssha256:%s", prefix, hex) < 0) {
		free(prefix);
		return rp_errf(err, "out of memory");
	}
	free(prefix);
	return add_line(t, line, err);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Records are unique by everything before the size: "blob <repo> sha256:<hex>". */
static size_t key_len(const char *line)
{
	const char *p = strchr(line, ' ');

	p = p ? strchr(p + 1, ' ') : NULL;
	p = p ? strchr(p + 1, ' ') : NULL;
	return p ? (size_t)(p - line) : strlen(line);
}

static void sort_unique(struct layout_tree *t)
{
	size_t i, n = 0;

	qsort(t->lines, t->nlines, sizeof(*t->lines), cmp_str);
	for (i = 0; i < t->nlines; i++) {
		if (n > 0 && key_len(t->lines[n - 1]) == key_len(t->lines[i]) &&
		    !strncmp(t->lines[n - 1], t->lines[i], key_len(t->lines[i]))) {
			free(t->lines[i]);
			continue;
		}
		t->lines[n++] = t->lines[i];
	}
	t->nlines = n;
}

/* The commit sink: registry/ files go into the staged view; index.json and oci-layout wait in
 * memory until the view is published. */
struct commit_sink {
	struct layout_tree *t;
	char *index_json;
	size_t index_len;
};

static int commit_file(void *ctx, const char *rel, const void *buf, size_t len,
		       struct rp_err *err)
{
	struct commit_sink *c = ctx;
	char path[PATH_MAX], *slash;

	if (!strcmp(rel, "oci-layout"))
		return 0; /* constant; written once when missing */
	if (!strcmp(rel, "index.json")) {
		c->index_json = malloc(len + 1);
		if (!c->index_json)
			return rp_errf(err, "out of memory");
		memcpy(c->index_json, buf, len);
		c->index_len = len;
		return 0;
	}
	if (snprintf(path, sizeof(path), "%s/%s", c->t->staging, rel) >= (int)sizeof(path))
		return rp_errf(err, "path too long: '%s'", rel);
	slash = strrchr(path, '/');
	*slash = '\0';
	if (access(path, F_OK) < 0 && rp_mkdirs(path, err) < 0)
		return -1;
	*slash = '/';
	return rp_write_new(path, buf, len, err);
}

static int commit_blob(void *ctx, const void *buf, size_t len, char hex[RP_HEX_LEN + 1],
		       struct rp_err *err)
{
	return layout_put_blob(((struct commit_sink *)ctx)->t, buf, len, hex, err);
}

static int read_blob(void *ctx, const char *hex, char **buf, size_t *len, struct rp_err *err)
{
	char *path = layout_blob_path(((struct commit_sink *)ctx)->t, hex);
	int rc;

	if (!path)
		return rp_errf(err, "blob sha256:%s is not in the tree", hex);
	rc = rp_read_file(path, 4u << 20, buf, len, err);
	free(path);
	return rc;
}

/* Every blob and manifest the state names must be in the tree before it is published. */
static int check_blobs(const struct layout_tree *t, const struct snapshot *s, struct rp_err *err)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if ((s->v[i].kind == SNAP_BLOB || s->v[i].kind == SNAP_MANIFEST) &&
		    !layout_has_blob(t, s->v[i].hex))
			return rp_errf(err, "%s sha256:%s of '%s' is not in the tree",
				       s->v[i].kind == SNAP_BLOB ? "blob" : "manifest", s->v[i].hex,
				       s->v[i].repo);
	return 0;
}

static int cache_stage(struct layout_tree *t, struct rp_err *err);
static int cache_publish(struct layout_tree *t, struct rp_err *err);

/* Move staged blobs into blobs/sha256/. Adding blobs never changes what is served. */
static int publish_blobs(struct layout_tree *t, struct rp_err *err)
{
	char *dst_dir = rp_join(t->path, "blobs/sha256");
	DIR *d = opendir(t->staged_blobs);
	struct dirent *e;
	int rc = -1;

	if (!dst_dir || !d) {
		rp_errno(err, "cannot read '%s'", t->staged_blobs);
		goto out;
	}
	if (undo_prepare_dir(t, dst_dir, err) < 0)
		goto out;
	while ((e = readdir(d))) {
		char *src, *dst;
		int r;

		if (e->d_name[0] == '.')
			continue;
		src = rp_join(t->staged_blobs, e->d_name);
		dst = rp_join(dst_dir, e->d_name);
		r = src && dst ? undo_rename(t, src, dst, err) : rp_errf(err, "out of memory");
		free(src);
		free(dst);
		if (r < 0)
			goto out;
	}
	rc = 0;
out:
	if (d)
		closedir(d);
	free(dst_dir);
	return rc;
}

static int stage_derived(struct layout_tree *t, const struct commit_sink *cs, const char *id,
			 struct rp_err *err);

static char *snapshot_text(const struct layout_tree *t)
{
	size_t i, len = sizeof(SNAPSHOT_HEADER) + 1;
	char *s, *p;

	for (i = 0; i < t->nlines; i++)
		len += strlen(t->lines[i]) + 1;
	s = malloc(len);
	if (!s)
		return NULL;
	p = s + sprintf(s, "%s\n", SNAPSHOT_HEADER);
	for (i = 0; i < t->nlines; i++)
		p += sprintf(p, "%s\n", t->lines[i]);
	return s;
}

int layout_commit(struct layout_tree *t, struct rp_err *err)
{
	struct commit_sink cs = { t, NULL, 0 };
	struct view_sink sink = { commit_file, commit_blob, read_blob, &cs };
	struct snapshot snap = { NULL, 0, "" };
	char *text = NULL, *view = NULL, *live = NULL;
	struct stat st;
	int rc = -1;

	sort_unique(t);
	text = snapshot_text(t);
	view = rp_join(t->staging, "registry");
	live = rp_join(t->path, "registry");
	if (!text || !view || !live) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (snapshot_parse(text, strlen(text), "new snapshot", &snap, err) < 0 ||
	    check_blobs(t, &snap, err) < 0 || rp_mkdirs(view, err) < 0 ||
	    view_emit(text, &snap, &sink, err) < 0 || rp_fix_dir_mtimes(view, err) < 0)
		goto out;
	/* index.json, oci-layout and cache entries are staged too, so that a full disk fails the
	 * commit here, where it can be undone, and what follows the publishing rename is renames. */
	if (stage_derived(t, &cs, snap.id, err) < 0 || cache_stage(t, err) < 0)
		goto out;
	/* Everything new reaches the disk before the rename that makes it visible. */
	if (syncfs(t->dirfd) < 0) {
		rp_errno(err, "cannot sync '%s'", t->path);
		goto out;
	}
	if (publish_blobs(t, err) < 0 || cache_publish(t, err) < 0)
		goto out;
	rp_crash_point();
	if (lstat(live, &st) == 0) {
		if (renameat2(AT_FDCWD, view, AT_FDCWD, live, RENAME_EXCHANGE) < 0) {
			rp_errno(err, "cannot publish '%s'", live);
			goto out;
		}
	} else if (rename(view, live) < 0) {
		rp_errno(err, "cannot publish '%s'", live);
		goto out;
	}
	t->published = 1;
	undo_clear(t);
	fsync(t->dirfd);
	memcpy(t->snapshot_id, snap.id, sizeof(snap.id));
	/* A crash from here on leaves index.json for the new snapshot in staging; the next writer
	 * puts it in place (recover). */
	if (install_derived(t, snap.id, err) < 0)
		goto out;
	/* The old view now sits in staging; drop it with the rest of the staging area. */
	rp_crash_point();
	if (rp_rmtree(t->staging, err) < 0 || fix_times(t, err) < 0 || rp_set_mtime(t->path, err) < 0)
		goto out;
	free(t->staging);
	t->staging = NULL; /* nothing left to abort; layout_close must not touch the root's time */
	rc = 0;
out:
	snapshot_free(&snap);
	free(cs.index_json);
	free(text);
	free(view);
	free(live);
	return rc;
}

/* The staged copy of derived file name (index.json, oci-layout) for snapshot id. */
static char *derived_path(const struct layout_tree *t, const char *name, const char *id)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s-%s", t->staging, name, id) < 0)
		return NULL;
	return p;
}

/* Stage index.json, and oci-layout when the tree has none, for snapshot id. */
static int stage_derived(struct layout_tree *t, const struct commit_sink *cs, const char *id,
			 struct rp_err *err)
{
	char *idx = derived_path(t, "index.json", id), *layout = derived_path(t, "oci-layout", id);
	char *live = rp_join(t->path, "oci-layout");
	int rc = -1;

	if (!idx || !layout || !live)
		rp_errf(err, "out of memory");
	else if (rp_write_new(idx, cs->index_json, cs->index_len, err) == 0 &&
		 (access(live, F_OK) == 0 ||
		  rp_write_new(layout, OCI_LAYOUT, strlen(OCI_LAYOUT), err) == 0))
		rc = 0;
	free(idx);
	free(layout);
	free(live);
	return rc;
}

/* Put the staged oci-layout and index.json for snapshot id in place, if staged. */
static int install_derived(struct layout_tree *t, const char *id, struct rp_err *err)
{
	static const char *const names[] = { "oci-layout", "index.json" };
	size_t i;
	int rc = 0, moved = 0;

	for (i = 0; rc == 0 && i < sizeof(names) / sizeof(names[0]); i++) {
		char *src = derived_path(t, names[i], id), *dst = rp_join(t->path, names[i]);

		if (!src || !dst) {
			rc = rp_errf(err, "out of memory");
		} else if (access(src, F_OK) == 0) {
			rp_crash_point();
			if (rename(src, dst) < 0)
				rc = rp_errno(err, "cannot rename '%s' to '%s'", src, dst);
			moved = 1;
		}
		free(src);
		free(dst);
	}
	if (moved)
		fsync(t->dirfd);
	return rc;
}

/* Directory times under blobs/ and cache/ (renames into them touched them). */
static int fix_times(struct layout_tree *t, struct rp_err *err)
{
	static const char *const dirs[] = { "blobs", "cache" };
	size_t i;
	int rc = 0;

	for (i = 0; rc == 0 && i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *p = rp_join(t->path, dirs[i]);
		struct stat st;

		if (!p)
			rc = rp_errf(err, "out of memory");
		else if (lstat(p, &st) == 0)
			rc = rp_fix_dir_mtimes(p, err);
		free(p);
	}
	return rc;
}

int layout_put_signature(struct layout_tree *t, const char *sig, size_t len, struct rp_err *err)
{
	char *path = rp_join(t->path, "registry/snapshot.sig");
	char *dir = rp_join(t->path, "registry");
	char *tmp = t->staging ? rp_join(t->staging, "snapshot.sig") : NULL;
	int rc = -1;

	/* Written in the staging area, then renamed: a crash leaves no stray file in registry/. */
	if (!t->staging) {
		rp_errf(err, "'%s': signing after a commit needs the tree opened again", t->path);
	} else if (!path || !dir || !tmp) {
		rp_errf(err, "out of memory");
	} else if (rp_write_new(tmp, sig, len, err) == 0) {
		if (syncfs(t->dirfd) < 0) {
			rp_errno(err, "cannot sync '%s'", t->path);
		} else {
			rp_crash_point();
			if (rename(tmp, path) < 0)
				rp_errno(err, "cannot rename '%s' to '%s'", tmp, path);
			else
				rc = rp_set_mtime(dir, err); /* adding the file touched it */
		}
	}
	free(tmp);
	free(path);
	free(dir);
	return rc;
}

/* ---- removing: untag and garbage-collect ---- */

/* Add to set (hex -> true) everything manifest hex reaches: itself, index children, config and
 * layers. Unreadable manifests reach only themselves. */
static void reach(const struct layout_tree *t, const char *hex, json_t *set)
{
	char *path, *buf = NULL;
	json_t *m, *d;
	size_t len, i;

	if (json_object_get(set, hex))
		return;
	json_object_set_new(set, hex, json_true());
	path = layout_blob_path(t, hex);
	if (!path || rp_read_file(path, 4u << 20, &buf, &len, NULL) < 0) {
		free(path);
		return;
	}
	free(path);
	m = json_loadb(buf, len, 0, NULL);
	free(buf);
	json_array_foreach(json_object_get(m, "manifests"), i, d) {
		const char *h, *dg = json_string_value(json_object_get(d, "digest"));

		if (dg && rp_digest_parse(dg, &h))
			reach(t, h, set);
	}
	for (i = 0; i <= json_array_size(json_object_get(m, "layers")); i++) {
		json_t *x = i == 0 ? json_object_get(m, "config")
			    : json_array_get(json_object_get(m, "layers"), i - 1);
		const char *h, *dg = json_string_value(json_object_get(x, "digest"));

		if (dg && rp_digest_parse(dg, &h))
			json_object_set_new(set, h, json_true());
	}
	json_decref(m);
}

/* Fields of a record line: kind, repo, and the hex of its digest (third or fourth field). */
static int line_fields(const char *line, char *kind, size_t ksz, char *repo, size_t rsz,
		       char *tag, size_t tsz, char hex[RP_HEX_LEN + 1])
{
	char copy[1024], *f[6], *save = NULL, *tok;
	int n = 0;

	snprintf(copy, sizeof(copy), "%s", line);
	for (tok = strtok_r(copy, " ", &save); tok && n < 6; tok = strtok_r(NULL, " ", &save))
		f[n++] = tok;
	if (n < 4)
		return -1;
	snprintf(kind, ksz, "%s", f[0]);
	snprintf(repo, rsz, "%s", f[1]);
	tag[0] = '\0';
	if (!strcmp(f[0], "tag")) {
		snprintf(tag, tsz, "%s", f[2]);
		snprintf(hex, RP_HEX_LEN + 1, "%s", f[3] + 7);
	} else {
		snprintf(hex, RP_HEX_LEN + 1, "%s", f[2] + 7);
	}
	return 0;
}

int layout_untag(struct layout_tree *t, const char *repo, const char *tag, const char *hex_in,
		 struct rp_err *err)
{
	json_t *gone = json_object(), *keep = json_object();
	char kind[16], r[RP_REPO_MAX + 1], tg[RP_TAG_MAX + 1], hex[RP_HEX_LEN + 1];
	char target[RP_HEX_LEN + 1] = "";
	size_t i, n;
	int found = 0, rc = -1;

	if (!gone || !keep) {
		rp_errf(err, "out of memory");
		goto out;
	}
	sort_unique(t);
	if (hex_in)
		snprintf(target, sizeof(target), "%s", hex_in);
	/* Find what is removed, and drop the tag lines that go with it. */
	for (i = n = 0; i < t->nlines; i++) {
		int drop = 0;

		if (line_fields(t->lines[i], kind, sizeof(kind), r, sizeof(r), tg, sizeof(tg), hex) ==
		    0 && !strcmp(r, repo)) {
			if (!strcmp(kind, "tag") && tag && !strcmp(tg, tag)) {
				snprintf(target, sizeof(target), "%s", hex);
				drop = found = 1;
			} else if (!strcmp(kind, "tag") && hex_in && !strcmp(hex, hex_in)) {
				drop = 1;
			} else if (!strcmp(kind, "manifest") && hex_in && !strcmp(hex, hex_in)) {
				found = 1;
			}
		}
		if (drop)
			free(t->lines[i]);
		else
			t->lines[n++] = t->lines[i];
	}
	t->nlines = n;
	if (!found) {
		if (tag)
			rp_errf(err, "%s:%s: no such tag", repo, tag);
		else
			rp_errf(err, "%s@sha256:%s: no such manifest", repo, hex_in);
		goto out;
	}
	reach(t, target, gone);
	/* What stays reachable: the remaining tags, and manifests the removed one did not reach
	 * (images kept by digest). */
	for (i = 0; i < t->nlines; i++) {
		if (line_fields(t->lines[i], kind, sizeof(kind), r, sizeof(r), tg, sizeof(tg), hex) <
		    0 || strcmp(r, repo))
			continue;
		if (!strcmp(kind, "tag") || (!strcmp(kind, "manifest") && !json_object_get(gone, hex)))
			reach(t, hex, keep);
	}
	if (hex_in && json_object_get(keep, hex_in)) {
		rp_errf(err, "%s@sha256:%s is part of an index or image still tagged; remove that "
			"first", repo, hex_in);
		goto out;
	}
	for (i = n = 0; i < t->nlines; i++) {
		if (line_fields(t->lines[i], kind, sizeof(kind), r, sizeof(r), tg, sizeof(tg), hex) ==
		    0 && !strcmp(r, repo) && strcmp(kind, "tag") && json_object_get(gone, hex) &&
		    !json_object_get(keep, hex)) {
			free(t->lines[i]);
			continue;
		}
		t->lines[n++] = t->lines[i];
	}
	t->nlines = n;
	rc = 0;
out:
	json_decref(gone);
	json_decref(keep);
	return rc;
}

static int gc_file(void *ctx, const char *rel, const void *buf, size_t len, struct rp_err *err)
{
	(void)ctx, (void)rel, (void)buf, (void)len, (void)err;
	return 0;
}

struct gc_ctx {
	struct layout_tree *t;
	json_t *used;
};

/* OCI twins are derived, not recorded: deriving them marks them in use. */
static int gc_twin(void *ctx, const void *buf, size_t len, char hex[RP_HEX_LEN + 1],
		   struct rp_err *err)
{
	(void)err;
	rp_sha256_buf(buf, len, hex);
	json_object_set_new(((struct gc_ctx *)ctx)->used, hex, json_true());
	return 0;
}

static int gc_read(void *ctx, const char *hex, char **buf, size_t *len, struct rp_err *err)
{
	struct commit_sink cs = { ((struct gc_ctx *)ctx)->t, NULL, 0 };

	return read_blob(&cs, hex, buf, len, err);
}

/* Drop build-cache entries whose blob is gone, so a later build does not trust them. */
static int gc_cache(struct layout_tree *t, struct rp_err *err)
{
	char *top = rp_join(t->path, "cache");
	DIR *d = top ? opendir(top) : NULL;
	struct dirent *ns;
	int rc = 0;

	if (!d) {
		free(top);
		return 0;
	}
	while (rc == 0 && (ns = readdir(d))) {
		char *sub;
		DIR *sd;
		struct dirent *e;

		if (ns->d_name[0] == '.' || !(sub = rp_join(top, ns->d_name)))
			continue;
		sd = opendir(sub);
		while (sd && (e = readdir(sd))) {
			char val[RP_HEX_LEN + 40], hex[RP_HEX_LEN + 8];
			const char *h;

			if (e->d_name[0] == '.')
				continue;
			if (layout_cache_get(t, ns->d_name, e->d_name, val, sizeof(val)) == 0 &&
			    sscanf(val, "%71s", hex) == 1 && rp_digest_parse(hex, &h) &&
			    layout_has_blob(t, h))
				continue;
			{
				char *p = rp_join(sub, e->d_name);

				if (p && unlink(p) < 0)
					rc = rp_errno(err, "cannot remove '%s'", p);
				free(p);
			}
		}
		if (sd)
			closedir(sd);
		if (rc == 0)
			rc = rp_set_mtime(sub, err);
		free(sub);
	}
	closedir(d);
	free(top);
	return rc;
}

int layout_gc(struct layout_tree *t, uint64_t *files, uint64_t *bytes, struct rp_err *err)
{
	struct gc_ctx g = { t, json_object() };
	struct view_sink sink = { gc_file, gc_twin, gc_read, &g };
	struct snapshot snap = { NULL, 0, "" };
	char *text = NULL, *dir = NULL;
	struct dirent *e;
	DIR *d = NULL;
	size_t i;
	int rc = -1;

	*files = *bytes = 0;
	sort_unique(t);
	text = snapshot_text(t);
	dir = rp_join(t->path, "blobs/sha256");
	if (!g.used || !text || !dir) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (snapshot_parse(text, strlen(text), "snapshot", &snap, err) < 0)
		goto out;
	for (i = 0; i < snap.n; i++)
		if (snap.v[i].kind == SNAP_BLOB || snap.v[i].kind == SNAP_MANIFEST)
			json_object_set_new(g.used, snap.v[i].hex, json_true());
	if (snap.n && view_emit(text, &snap, &sink, err) < 0)
		goto out;
	d = opendir(dir);
	if (!d) {
		rc = errno == ENOENT ? 0 : rp_errno(err, "cannot read '%s'", dir);
		goto out;
	}
	while ((e = readdir(d))) {
		struct stat st;
		char *p;

		if (e->d_name[0] == '.' || json_object_get(g.used, e->d_name))
			continue;
		p = rp_join(dir, e->d_name);
		rp_crash_point();
		if (p && lstat(p, &st) == 0 && unlink(p) == 0) {
			(*files)++;
			*bytes += (uint64_t)st.st_size;
		} else if (p) {
			rp_errno(err, "cannot remove '%s'", p);
			free(p);
			goto out;
		}
		free(p);
	}
	if (rp_set_mtime(dir, err) < 0 || gc_cache(t, err) < 0)
		goto out;
	rc = 0;
out:
	if (d)
		closedir(d);
	snapshot_free(&snap);
	json_decref(g.used);
	free(text);
	free(dir);
	return rc;
}

int layout_set_state(struct layout_tree *t, const char *text, struct rp_err *err)
{
	struct snapshot snap;
	const char *p, *nl;
	size_t i;

	if (snapshot_parse(text, strlen(text), "snapshot", &snap, err) < 0)
		return -1;
	snapshot_free(&snap);
	for (i = 0; i < t->nlines; i++)
		free(t->lines[i]);
	t->nlines = 0;
	for (p = strchr(text, '\n') + 1; *p; p = nl + 1) {
		char *line;

		nl = strchr(p, '\n');
		line = strndup(p, (size_t)(nl - p));
		if (!line || add_line(t, line, err) < 0)
			return rp_errf(err, "out of memory");
	}
	return 0;
}

/* ---- the build cache: TREE/cache/<ns>/<key>, one line each ---- */

static int cache_name_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '.' || s[i] == '_'))
			return 0;
	return i > 0 && i <= 100 && s[0] != '.';
}

int layout_cache_get(const struct layout_tree *t, const char *ns, const char *key, char *val,
		     size_t valsz)
{
	char rel[256], *path, *buf = NULL, *nl;
	json_t *staged;
	size_t len;

	if (!cache_name_ok(ns) || !cache_name_ok(key))
		return -1;
	snprintf(rel, sizeof(rel), "%s/%s", ns, key);
	staged = json_object_get(t->cache_new, rel);
	if (staged) {
		snprintf(val, valsz, "%s", json_string_value(staged));
		return 0;
	}
	snprintf(rel, sizeof(rel), "cache/%s/%s", ns, key);
	path = rp_join(t->path, rel);
	if (!path || rp_read_file(path, 4096, &buf, &len, NULL) < 0) {
		free(path);
		return -1;
	}
	free(path);
	nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	snprintf(val, valsz, "%s", buf);
	free(buf);
	return 0;
}

int layout_cache_put(struct layout_tree *t, const char *ns, const char *key, const char *val,
		     struct rp_err *err)
{
	char rel[256];

	if (!cache_name_ok(ns) || !cache_name_ok(key))
		return rp_errf(err, "invalid cache key '%s/%s'", ns, key);
	if (!t->cache_new && !(t->cache_new = json_object()))
		return rp_errf(err, "out of memory");
	snprintf(rel, sizeof(rel), "%s/%s", ns, key);
	return json_object_set_new(t->cache_new, rel, json_string(val)) ? rp_errf(err, "out of memory")
									 : 0;
}

/* Cache entries are staged at commit (TREE/.regpress-tmp/cache/NS/KEY) and moved in after the
 * blobs they name: a crash before leaves a cache that merely lacks entries. */
static int cache_stage(struct layout_tree *t, struct rp_err *err)
{
	const char *rel;
	json_t *v;

	json_object_foreach(t->cache_new, rel, v) {
		char path[PATH_MAX], body[256];

		snprintf(path, sizeof(path), "%s/cache/%s", t->staging, rel);
		*strrchr(path, '/') = '\0';
		if (rp_mkdirs(path, err) < 0)
			return -1;
		snprintf(path, sizeof(path), "%s/cache/%s", t->staging, rel);
		snprintf(body, sizeof(body), "%s\n", json_string_value(v));
		if (rp_write_new(path, body, strlen(body), err) < 0)
			return -1;
	}
	return 0;
}

static int cache_publish(struct layout_tree *t, struct rp_err *err)
{
	const char *rel;
	json_t *v;

	json_object_foreach(t->cache_new, rel, v) {
		char src[PATH_MAX], dst[PATH_MAX], body[256], *old = NULL;
		size_t len;
		int same;

		snprintf(src, sizeof(src), "%s/cache/%s", t->staging, rel);
		snprintf(dst, sizeof(dst), "%s/cache/%s", t->path, rel);
		snprintf(body, sizeof(body), "%s\n", json_string_value(v));
		/* A rebuild finds the same entries: leave those alone. */
		same = rp_read_file(dst, sizeof(body), &old, &len, NULL) == 0 && len == strlen(body) &&
		       !memcmp(old, body, len);
		free(old);
		if (same)
			continue;
		*strrchr(dst, '/') = '\0';
		if (undo_prepare_dir(t, dst, err) < 0)
			return -1;
		snprintf(dst, sizeof(dst), "%s/cache/%s", t->path, rel);
		if (undo_rename(t, src, dst, err) < 0)
			return -1;
	}
	return 0;
}
