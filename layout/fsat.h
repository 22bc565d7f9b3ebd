/* File access beneath a directory, never through a symlink and never into a special file.
 *
 * A struct fsat_dir is a directory opened once; every path given with it is relative to it
 * ("registry/snapshot"), must stay inside it (no "..", nothing absolute), and is resolved by the
 * kernel with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) where it has it, else component by
 * component with O_NOFOLLOW. Files are opened with O_NONBLOCK and their type checked with fstat
 * before anything is read, so a FIFO or a device cannot block or feed a reader: only regular
 * files and directories are ever used. Changes (create, rename, unlink, mkdir, times) are made
 * relative to the parent directory opened the same way, so no intermediate symlink is followed
 * either. Messages name the file as "DIR/REL".
 *
 * layout/ uses this for every file of a tree (through the tree handle, tree.h), media/ for the
 * files of a volume. */
#ifndef RP_FSAT_H
#define RP_FSAT_H

#include <stddef.h>
#include <sys/stat.h>

#include "err.h"

struct fsat_dir {
	int fd;
	char *path; /* for messages */
};

enum fsat_type { FSAT_ABSENT, FSAT_FILE, FSAT_DIR, FSAT_OTHER };

/* Open the directory path (which the user named: it may be reached through a symlink); with
 * create, make it and missing parents. */
int fsat_open_root(const char *path, int create, struct fsat_dir *d, struct rp_err *err);
/* Open rel beneath d as a directory; 1 if absent (with create: made, mode 0755, parents too). */
int fsat_subdir(const struct fsat_dir *d, const char *rel, int create, struct fsat_dir *out,
		struct rp_err *err);
void fsat_close(struct fsat_dir *d);

/* What rel is, without following a symlink (a symlink, FIFO or device is FSAT_OTHER); st may be
 * NULL. -1 only when it cannot be told (a parent is a symlink or not a directory: err says). */
int fsat_type(const struct fsat_dir *d, const char *rel, struct stat *st, struct rp_err *err);

/* Open rel for reading; it must be a regular file. 0, 1 if absent, -1 on error. */
int fsat_open_file(const struct fsat_dir *d, const char *rel, int *fd, struct stat *st,
		   struct rp_err *err);
/* Read a whole regular file of at most max bytes, NUL-terminated. 0, 1 if absent, -1 on error. */
int fsat_read(const struct fsat_dir *d, const char *rel, size_t max, char **buf, size_t *len,
	      struct rp_err *err);
/* Read fd (a regular file opened by fsat_open_file) whole, at most max bytes; name for messages. */
int fsat_read_fd(int fd, const char *name, size_t max, char **buf, size_t *len,
		 struct rp_err *err);

/* Create rel (which must not exist), mode 0644 whatever the umask; its parent must exist. */
int fsat_create(const struct fsat_dir *d, const char *rel, int *fd, struct rp_err *err);
/* Create rel with exactly buf, mode 0644, mtime SOURCE_DATE_EPOCH. */
int fsat_write_new(const struct fsat_dir *d, const char *rel, const void *buf, size_t len,
		   struct rp_err *err);
/* Write buf to a new file beside rel and rename it over rel (no fsync: callers flush with
 * syncfs before anything depends on it). */
int fsat_replace(const struct fsat_dir *d, const char *rel, const void *buf, size_t len,
		 struct rp_err *err);

/* rename(2), renameat2(RENAME_EXCHANGE), unlink(2) (1 if absent), rmdir(2) (1 if absent). */
int fsat_rename(const struct fsat_dir *from_dir, const char *from, const struct fsat_dir *to_dir,
		const char *to, struct rp_err *err);
int fsat_exchange(const struct fsat_dir *d, const char *a, const char *b, struct rp_err *err);
int fsat_unlink(const struct fsat_dir *d, const char *rel, struct rp_err *err);
int fsat_rmdir(const struct fsat_dir *d, const char *rel, struct rp_err *err);
/* mkdir -p of rel, mode 0755 whatever the umask; 1 if it existed already. */
int fsat_mkdirs(const struct fsat_dir *d, const char *rel, struct rp_err *err);
/* rm -rf of rel: unlinks symlinks and special files, never follows them. Absent is fine. */
int fsat_rmtree(const struct fsat_dir *d, const char *rel, struct rp_err *err);
/* Set the mtime (and atime) of rel to SOURCE_DATE_EPOCH; "" is d itself. */
int fsat_set_mtime(const struct fsat_dir *d, const char *rel, struct rp_err *err);
/* ... of every directory below and including rel. */
int fsat_fix_dir_mtimes(const struct fsat_dir *d, const char *rel, struct rp_err *err);

/* Walk everything below rel ("" for d itself), parents before children, names sorted: fn gets
 * each entry's path relative to d and its lstat. Symlinks and special files are reported, never
 * entered or opened. fn returns 0 to go on, 1 to skip a directory's contents, -1 to stop. */
typedef int (*fsat_walk_fn)(void *ctx, const char *rel, const struct stat *st,
			    struct rp_err *err);
int fsat_walk(const struct fsat_dir *d, const char *rel, fsat_walk_fn fn, void *ctx,
	      struct rp_err *err);

/* "DIR/REL" for messages, in buf. */
const char *fsat_name(const struct fsat_dir *d, const char *rel, char *buf, size_t bufsz);

#endif
