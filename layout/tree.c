/* The tree handle: opening (lock, checks, recovery of a killed writer), closing, reading. */
#include "tree_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "fsutil.h"
#include "strmap.h"

static void (*wait_fn)(void *ctx, const char *tree);
static void *wait_ctx;

void layout_on_wait(void (*fn)(void *ctx, const char *tree), void *ctx)
{
	wait_fn = fn;
	wait_ctx = ctx;
}

const char *layout_path(const struct layout_tree *t)
{
	return t->root.path;
}

const struct snapshot *layout_snapshot(const struct layout_tree *t)
{
	return &t->snap;
}

const char *layout_snapshot_text(const struct layout_tree *t, size_t *len)
{
	if (len)
		*len = t->text_len;
	return t->text ? t->text : "";
}

const char *layout_snapshot_id(const struct layout_tree *t)
{
	return t->snap.id;
}

int tree_require_writer(const struct layout_tree *t, struct rp_err *err)
{
	if (t->mode != LAYOUT_WRITE)
		return rp_errf(err, "'%s': opened for reading only", t->root.path);
	return 0;
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

/* Take the lock: shared for readers, exclusive for a writer; say so once if it must wait. A file
 * system without locks (some read-only media) has no writers to wait for. */
static int take_lock(struct layout_tree *t, struct rp_err *err)
{
	int op = t->mode == LAYOUT_WRITE ? LOCK_EX : LOCK_SH;

	if (flock(t->root.fd, op | LOCK_NB) == 0)
		return 0;
	if (errno == ENOLCK || errno == EOPNOTSUPP || errno == ENOTSUP)
		return t->mode == LAYOUT_READ ? 0 : rp_errno(err, "cannot lock '%s'", t->root.path);
	if (errno != EWOULDBLOCK)
		return rp_errno(err, "cannot lock '%s'", t->root.path);
	if (wait_fn)
		wait_fn(wait_ctx, t->root.path);
	while (flock(t->root.fd, op) < 0)
		if (errno != EINTR)
			return rp_errno(err, "cannot lock '%s'", t->root.path);
	return 0;
}

/* A directory that is neither empty nor a regpress tree is somebody else's: a writer does not
 * take it over. blobs/ and cache/ without registry/: a first build killed while publishing; an
 * import waiting for more volumes keeps its files in FMT_IMPORT. */
static int check_empty(struct layout_tree *t, struct rp_err *err)
{
	static const char *const ours[] = { FMT_STAGING, FMT_SPARE, FMT_IMPORT, "blobs", FMT_CACHE };
	int fd = dup(t->root.fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	int empty = 1;
	size_t i;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return rp_errno(err, "cannot read '%s'", t->root.path);
	}
	while ((e = readdir(d))) {
		int known = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");

		for (i = 0; !known && i < sizeof(ours) / sizeof(ours[0]); i++)
			known = !strcmp(e->d_name, ours[i]);
		empty &= known;
	}
	closedir(d);
	return empty ? 0 : rp_errf(err, "'%s': not empty and not a regpress tree", t->root.path);
}

/* Read and parse registry/snapshot: 0, 1 if the tree has none. */
static int load_snapshot(struct layout_tree *t, struct rp_err *err)
{
	char name[4096];
	int r = fsat_read(&t->root, FMT_SNAPSHOT, SNAPSHOT_MAX, &t->text, &t->text_len, err);

	if (r != 0)
		return r;
	return snapshot_parse(t->text, t->text_len, fsat_name(&t->root, FMT_SNAPSHOT, name,
				sizeof(name)), &t->snap, err);
}

int tree_state(struct layout_tree *t, struct rp_err *err)
{
	if (!t->st_stale)
		return 0;
	t->st_stale = 0;
	state_free(&t->st);
	return state_init(&t->st, err) < 0 ? -1 : state_copy(&t->st, &t->snap, err);
}

int tree_open_blobs(struct layout_tree *t, int create, struct rp_err *err)
{
	int r;

	if (t->blobs.fd >= 0)
		return 0;
	r = fsat_subdir(&t->root, FMT_BLOBS, create, &t->blobs, err);
	return r < 0 ? -1 : 0;
}

int tree_install_derived(struct layout_tree *t, const char *id, struct rp_err *err)
{
	static const char *const names[] = { FMT_OCI_LAYOUT, FMT_INDEX };
	size_t i;
	int r = 0, moved = 0;

	for (i = 0; r == 0 && i < sizeof(names) / sizeof(names[0]); i++) {
		char src[256];

		snprintf(src, sizeof(src), FMT_STAGING "/%s-%s", names[i], id);
		if (fsat_type(&t->root, src, NULL, NULL) != FSAT_FILE)
			continue;
		r = fsat_rename(&t->root, src, &t->root, names[i], err);
		moved = 1;
	}
	if (moved)
		fsync(t->root.fd);
	return r;
}

/* A staging area left by a killed writer: if the writer got as far as its publishing rename, it
 * left index.json (and oci-layout) for the published snapshot there: put them in place, and the
 * times it had not yet fixed. Anything else in it was never published and is garbage. */
static int recover(struct layout_tree *t, struct rp_err *err)
{
	if (!t->snap.id[0] || !t->text || fsat_type(&t->root, FMT_STAGING, NULL, NULL) != FSAT_DIR)
		return 0;
	if (tree_install_derived(t, t->snap.id, err) < 0)
		return -1;
	/* The times the killed writer had not fixed yet (dirs only; cheap next to a build). */
	if ((fsat_type(&t->root, "blobs", NULL, NULL) == FSAT_DIR &&
	     fsat_fix_dir_mtimes(&t->root, "blobs", err) < 0) ||
	    (fsat_type(&t->root, FMT_CACHE, NULL, NULL) == FSAT_DIR &&
	     fsat_fix_dir_mtimes(&t->root, FMT_CACHE, err) < 0))
		return -1;
	t->root_mtime.tv_sec = rp_epoch(); /* put back by layout_close */
	t->root_mtime.tv_nsec = 0;
	return 0;
}

/* A writer's staging area: FMT_STAGING with blobs/ (complete blobs, by hex) and scratch/. */
static int open_staging(struct layout_tree *t, struct rp_err *err)
{
	char name[4096];

	if (fsat_rmtree(&t->root, FMT_STAGING, err) < 0 ||
	    fsat_subdir(&t->root, FMT_STAGING "/blobs", 1, &t->staged, err) != 0 ||
	    fsat_subdir(&t->root, FMT_STAGING "/scratch", 1, &t->scratch, err) != 0 ||
	    fsat_subdir(&t->root, FMT_STAGING, 0, &t->staging, err) != 0)
		return -1;
	t->staging_open = 1;
	t->scratch_path = strdup(fsat_name(&t->root, FMT_STAGING "/scratch", name, sizeof(name)));
	return t->scratch_path ? 0 : rp_errf(err, "out of memory");
}

static int open_writer(struct layout_tree *t, struct rp_err *err)
{
	int r;

	if (state_init(&t->st, err) < 0)
		return -1;
	r = fsat_type(&t->root, FMT_SNAPSHOT, NULL, err);
	if (r < 0)
		return -1;
	if (r == FSAT_ABSENT && !t->created && check_empty(t, err) < 0)
		return -1;
	if (r == FSAT_OTHER)
		return rp_errf(err, "'%s/%s': not a regular file", t->root.path, FMT_SNAPSHOT);
	/* Refuse to build on a state we cannot read exactly. */
	if (load_snapshot(t, err) < 0 || recover(t, err) < 0 || tree_open_blobs(t, 0, err) < 0 ||
	    open_staging(t, err) < 0)
		return -1;
	return t->text ? state_copy(&t->st, &t->snap, err) : 0;
}

static int open_reader(struct layout_tree *t, struct rp_err *err)
{
	int r = load_snapshot(t, err);

	if (r < 0)
		return -1;
	if (r == 1)
		return rp_errf(err, "'%s': not a regpress tree (no %s)", t->root.path, FMT_SNAPSHOT);
	return tree_open_blobs(t, 0, err);
}

int layout_open(const char *path, enum layout_mode mode, struct layout_tree **out,
		struct rp_err *err)
{
	struct layout_tree *t = calloc(1, sizeof(*t));
	struct stat st;

	*out = NULL;
	if (!t)
		return rp_errf(err, "out of memory");
	t->mode = mode;
	t->root.fd = t->blobs.fd = t->staging.fd = t->staged.fd = t->scratch.fd = -1;
	if (mode == LAYOUT_WRITE && lstat(path, &st) < 0 && errno == ENOENT)
		t->created = missing_levels(path);
	if (mode == LAYOUT_READ && stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
		rp_errf(err, "'%s': not a directory (a regpress tree is one)", path);
		goto fail;
	}
	if (fsat_open_root(path, t->created > 0, &t->root, err) < 0)
		goto fail;
	if (fstat(t->root.fd, &st) < 0) {
		rp_errno(err, "'%s'", path);
		goto fail;
	}
	t->root_mtime = st.st_mtim;
	if (take_lock(t, err) < 0)
		goto fail;
	if ((mode == LAYOUT_WRITE ? open_writer(t, err) : open_reader(t, err)) < 0)
		goto fail;
	*out = t;
	return 0;
fail:
	layout_close(t);
	return -1;
}

void layout_close(struct layout_tree *t)
{
	if (!t)
		return;
	undo_run(t); /* a commit that failed before its publishing rename */
	fsat_close(&t->staged);
	fsat_close(&t->scratch);
	fsat_close(&t->staging);
	if (t->staging_open) {
		struct timespec ts[2];

		fsat_rmtree(&t->root, FMT_STAGING, NULL);
		/* Creating and removing the staging area touched the root: put its time back, so a
		 * failed or empty run leaves the tree exactly as it was. */
		ts[0] = ts[1] = t->root_mtime;
		futimens(t->root.fd, ts);
	}
	if (t->created && !t->text && t->root.path) {
		/* We made it (and the parents that were missing) and published nothing: leave no
		 * trace. rmdir only removes empty directories, so nothing else can go. */
		char *p = strdup(t->root.path);
		int level;

		for (level = 0; p && level < t->created; level++)
			if (rmdir(p) < 0 || !path_up(p))
				break;
		free(p);
	}
	fsat_close(&t->blobs);
	fsat_close(&t->root); /* releases the lock */
	state_free(&t->st);
	snapshot_free(&t->snap);
	free(t->text);
	free(t->scratch_path);
	json_decref(t->cache_new);
	if (t->stage_signed)
		signed_files_free(t->stage_signed);
	free(t->stage_signed);
	free(t);
}

/* ---- reading ---- */

int layout_blob_open(const struct layout_tree *t, const char *hex, int *fd, uint64_t *size,
		     struct rp_err *err)
{
	struct stat st;
	int r = 1;

	*fd = -1;
	if (!rp_hex_valid(hex))
		return rp_errf(err, "invalid digest '%s'", hex);
	if (t->blobs.fd >= 0)
		r = fsat_open_file(&t->blobs, hex, fd, &st, err);
	if (r == 1 && t->staged.fd >= 0)
		r = fsat_open_file(&t->staged, hex, fd, &st, err);
	if (r == 0 && size)
		*size = (uint64_t)st.st_size;
	return r;
}

int layout_blob_read(const struct layout_tree *t, const char *hex, size_t max, char **buf,
		     size_t *len, struct rp_err *err)
{
	char name[4096];
	int fd, r = layout_blob_open(t, hex, &fd, NULL, err);

	if (r != 0)
		return r;
	snprintf(name, sizeof(name), "%s/%s/%s", t->root.path, FMT_BLOBS, hex);
	r = fsat_read_fd(fd, name, max, buf, len, err);
	close(fd);
	return r;
}

int layout_has_blob(const struct layout_tree *t, const char *hex)
{
	return blob_where(t, hex, NULL) > 0;
}

const char *layout_scratch_dir(const struct layout_tree *t)
{
	return t->scratch_path;
}

int layout_snapshot_load(const char *path, struct snapshot *out, char **text, struct rp_err *err)
{
	struct layout_tree *t;
	struct stat st;
	char *buf = NULL;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (text)
		*text = NULL;
	if (stat(path, &st) < 0)
		return rp_errno(err, "'%s'", path);
	if (!S_ISDIR(st.st_mode)) {
		if (rp_read_file(path, SNAPSHOT_MAX, &buf, &len, err) < 0)
			return -1;
		if (snapshot_parse(buf, len, path, out, err) < 0) {
			free(buf);
			return -1;
		}
		if (text)
			*text = buf;
		else
			free(buf);
		return 0;
	}
	if (layout_open(path, LAYOUT_READ, &t, err) < 0)
		return -1;
	/* Hand the parsed snapshot and its text over to the caller. */
	*out = t->snap;
	memset(&t->snap, 0, sizeof(t->snap));
	if (text)
		*text = t->text;
	else
		free(t->text);
	t->text = NULL;
	layout_close(t);
	return 0;
}
