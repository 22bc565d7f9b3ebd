/* Staging blobs: streamed into the writer's scratch area, hashed on the way, and staged under
 * their digest; commit moves them into blobs/sha256/. */
#include "tree_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"

/* Blob writes go to the kernel in pieces this size: measured here, write(2) from a 1 MiB buffer
 * costs 3-4x the kernel CPU of 128 KiB pieces (the copy into the page cache falls out of L2). */
#define BLOB_BUF (128u << 10)
/* Every this many bytes a blob's pages are handed to writeback (sync_file_range), so the disk
 * works while the build computes, and the flush before publishing finds little left to do. */
#define BLOB_WRITEBACK (8u << 20)

struct layout_blob {
	struct layout_tree *tree;
	char name[64]; /* in the scratch area */
	int fd;
	struct rp_sha256 hash;
	uint64_t size;
	uint64_t written, flushed; /* bytes written to fd, and handed to writeback */
	int caller_hash;	   /* layout_blob_hashed_by_caller() */
	unsigned char *buf;
	size_t used;
};

/* Is name in dir a regular file: 1 yes, 0 absent, -1 (err) something else. */
static int regular_in(const struct fsat_dir *dir, const char *name, struct rp_err *err)
{
	struct stat st;

	if (dir->fd < 0 || fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (S_ISREG(st.st_mode))
		return 1;
	return rp_errf(err, "'%s/%s': not a regular file (a tree holds no links or special files)",
		       dir->path, name);
}

int blob_where(const struct layout_tree *t, const char *hex, struct rp_err *err)
{
	int r;

	if (!rp_hex_valid(hex))
		return 0;
	r = regular_in(&t->blobs, hex, err);
	if (r != 0)
		return r;
	return regular_in(&t->staged, hex, err) > 0 ? 2 : 0;
}

int layout_scratch_create(struct layout_tree *t, int *fd, char *name, size_t namesz,
			  struct rp_err *err)
{
	*fd = -1;
	if (tree_require_writer(t, err) < 0)
		return -1;
	snprintf(name, namesz, "file-%lu", t->next_tmp++);
	return fsat_create(&t->scratch, name, fd, err);
}

int layout_scratch_open(const struct layout_tree *t, const char *name, int *fd,
			struct rp_err *err)
{
	if (tree_require_writer(t, err) < 0)
		return -1;
	return fsat_open_file(&t->scratch, name, fd, NULL, err);
}

int layout_blob_new(struct layout_tree *t, struct layout_blob **out, struct rp_err *err)
{
	struct layout_blob *b;

	*out = NULL;
	if (tree_require_writer(t, err) < 0)
		return -1;
	b = calloc(1, sizeof(*b));
	if (!b)
		return rp_errf(err, "out of memory");
	b->tree = t;
	b->fd = -1;
	snprintf(b->name, sizeof(b->name), "blob-%lu", t->next_tmp++);
	b->buf = malloc(BLOB_BUF);
	if (!b->buf || rp_sha256_init(&b->hash) < 0) {
		layout_blob_free(b);
		return rp_errf(err, "out of memory");
	}
	if (fsat_create(&t->scratch, b->name, &b->fd, err) < 0) {
		layout_blob_free(b);
		return -1;
	}
	*out = b;
	return 0;
}

static int blob_flush(struct layout_blob *b, struct rp_err *err)
{
	char name[4096];

	if (rp_write_all(b->fd, fsat_name(&b->tree->scratch, b->name, name, sizeof(name)), b->buf,
			 b->used, err) < 0)
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
	if (b->name[0] && b->tree->scratch.fd >= 0)
		unlinkat(b->tree->scratch.fd, b->name, 0);
	rp_sha256_free(&b->hash);
	free(b->buf);
	free(b);
}

void layout_blob_hashed_by_caller(struct layout_blob *b)
{
	b->caller_hash = 1;
}

/* Stage scratch file name as blob hex (or drop it: the tree has the blob already). */
static int stage(struct layout_tree *t, const char *name, const char *hex, struct rp_err *err)
{
	int r = blob_where(t, hex, err);

	if (r < 0)
		return -1;
	if (r > 0) { /* already stored: content addressing makes the copy redundant */
		fsat_unlink(&t->scratch, name, NULL);
		return 0;
	}
	return fsat_rename(&t->scratch, name, &t->staged, hex, err);
}

int layout_blob_finish(struct layout_blob *b, char hex[RP_HEX_LEN + 1], uint64_t *size,
		       struct rp_err *err)
{
	char name[4096];
	int rc = -1;

	fsat_name(&b->tree->scratch, b->name, name, sizeof(name));
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
	if (rp_fix_file(b->fd, name, err) < 0)
		goto out;
	if (close(b->fd) < 0) {
		b->fd = -1;
		rp_errno(err, "cannot write '%s'", name);
		goto out;
	}
	b->fd = -1;
	if (stage(b->tree, b->name, hex, err) < 0)
		goto out;
	b->name[0] = '\0'; /* moved or removed */
	rc = 0;
out:
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

int layout_blob_adopt(struct layout_tree *t, const char *name, const char *hex,
		      struct rp_err *err)
{
	struct timespec ts[2];
	char full[4096];

	if (tree_require_writer(t, err) < 0)
		return -1;
	if (!rp_hex_valid(hex))
		return rp_errf(err, "invalid digest '%s'", hex);
	ts[0].tv_sec = ts[1].tv_sec = rp_epoch();
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (fchmodat(t->scratch.fd, name, RP_FILE_MODE, 0) < 0 ||
	    utimensat(t->scratch.fd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return rp_errno(err, "cannot set mode or time of '%s'",
				fsat_name(&t->scratch, name, full, sizeof(full)));
	return stage(t, name, hex, err);
}
