/* The import area (tree.h "the import area"). */
#include "tree_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"

static void in_area(char *buf, size_t sz, const char *rel)
{
	snprintf(buf, sz, "%s/%s", FMT_IMPORT, rel);
}

void layout_hold_name(const struct layout_tree *t, char *buf, size_t bufsz)
{
	fsat_name(&t->root, FMT_IMPORT, buf, bufsz);
}

int layout_hold_read(const struct layout_tree *t, const char *name, size_t max, char **buf,
		     size_t *len, struct rp_err *err)
{
	char rel[256];

	in_area(rel, sizeof(rel), name);
	return fsat_read(&t->root, rel, max, buf, len, err);
}

int layout_hold_open(const struct layout_tree *t, const char *rel, int *fd, struct rp_err *err)
{
	char path[256];

	in_area(path, sizeof(path), rel);
	return fsat_open_file(&t->root, path, fd, NULL, err);
}

/* Write a file into the area, synced before it counts. */
static int put_synced(struct layout_tree *t, const char *name, const void *buf, size_t len,
		      struct rp_err *err)
{
	char rel[256], tmp[sizeof(rel) + 8];
	int fd, rc;

	in_area(rel, sizeof(rel), name);
	snprintf(tmp, sizeof(tmp), "%s.new", rel);
	if (fsat_unlink(&t->root, tmp, err) < 0 || fsat_create(&t->root, tmp, &fd, err) < 0)
		return -1;
	rc = rp_write_all(fd, tmp, buf, len, err);
	if (rc == 0)
		rc = rp_fix_file(fd, tmp, err);
	if (rc == 0 && fsync(fd) < 0)
		rc = rp_errno(err, "cannot sync '%s/%s'", t->root.path, tmp);
	close(fd);
	if (rc == 0)
		rc = fsat_rename(&t->root, tmp, &t->root, rel, err);
	return rc;
}

int layout_hold_start(struct layout_tree *t, const char *manifest_name, const void *manifest,
		      size_t mlen, const char *snapshot_name, const void *snapshot, size_t slen,
		      struct rp_err *err)
{
	if (tree_require_writer(t, err) < 0)
		return -1;
	if (fsat_rmtree(&t->root, FMT_IMPORT, err) < 0 || fsat_mkdirs(&t->root, FMT_IMPORT, err) < 0)
		return -1;
	if (put_synced(t, snapshot_name, snapshot, slen, err) < 0 ||
	    put_synced(t, manifest_name, manifest, mlen, err) < 0)
		return -1;
	return 0;
}

int layout_hold_take(struct layout_tree *t, const char *name, const char *rel,
		     struct rp_err *err)
{
	char path[256], dir[256], *slash;

	if (tree_require_writer(t, err) < 0)
		return -1;
	in_area(path, sizeof(path), rel);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	*slash = '\0';
	if (fsat_mkdirs(&t->root, dir, err) < 0)
		return -1;
	return fsat_rename(&t->scratch, name, &t->root, path, err);
}

int layout_hold_link(struct layout_tree *t, const char *rel, char *name, size_t namesz,
		     struct rp_err *err)
{
	char path[256], full[4096];
	int in, out, r;

	if (tree_require_writer(t, err) < 0)
		return -1;
	in_area(path, sizeof(path), rel);
	snprintf(name, namesz, "kept-%lu", t->next_tmp++);
	r = fsat_open_file(&t->root, path, &in, NULL, err);
	if (r != 0)
		return r < 0 ? -1 : rp_errf(err, "'%s': missing",
					    fsat_name(&t->root, path, full, sizeof(full)));
	/* A hard link through the descriptor: nothing is resolved by name twice. */
	snprintf(full, sizeof(full), "/proc/self/fd/%d", in);
	rp_crash_point();
	if (linkat(AT_FDCWD, full, t->scratch.fd, name, AT_SYMLINK_FOLLOW) == 0) {
		close(in);
		return 0;
	}
	/* Across file systems (or without /proc): a copy. */
	r = fsat_create(&t->scratch, name, &out, err);
	if (r == 0) {
		char buf[1 << 16];
		ssize_t n;

		while (r == 0 && (n = read(in, buf, sizeof(buf))) != 0)
			r = n < 0 ? rp_errno(err, "cannot read '%s/%s'", t->root.path, path)
				  : rp_write_all(out, name, buf, (size_t)n, err);
		if (r == 0)
			r = rp_fix_file(out, name, err);
		close(out);
	}
	close(in);
	return r;
}

int layout_hold_seal(struct layout_tree *t, struct rp_err *err)
{
	if (syncfs(t->root.fd) < 0)
		return rp_errno(err, "cannot sync '%s'", t->root.path);
	return fsat_fix_dir_mtimes(&t->root, FMT_IMPORT, err);
}

int layout_hold_clear(struct layout_tree *t, struct rp_err *err)
{
	if (tree_require_writer(t, err) < 0)
		return -1;
	if (fsat_rmtree(&t->root, FMT_IMPORT, err) < 0)
		return -1;
	return fsat_set_mtime(&t->root, "", err);
}
