/* Small file-system helpers with fixed modes and mtimes, so trees do not depend on umask or clock. */
#ifndef RP_FSUTIL_H
#define RP_FSUTIL_H

#include <stddef.h>
#include <time.h>

#include "err.h"

#define RP_FILE_MODE 0644
#define RP_DIR_MODE 0755

/* SOURCE_DATE_EPOCH when set and valid, else 0. */
time_t rp_epoch(void);
/* mkdir -p with mode RP_DIR_MODE whatever the umask. */
int rp_mkdirs(const char *path, struct rp_err *err);
/* write() all of buf to fd, retrying after EINTR; name is for the message. */
int rp_write_all(int fd, const char *name, const void *buf, size_t len, struct rp_err *err);
/* Give an open file mode RP_FILE_MODE and mtime rp_epoch(), whatever the umask and clock. */
int rp_fix_file(int fd, const char *name, struct rp_err *err);
/* Only the mtime (and atime) rp_epoch(). */
int rp_set_fd_mtime(int fd, const char *name, struct rp_err *err);
/* Create path (which must not exist) with exactly buf, mode RP_FILE_MODE, mtime rp_epoch(). */
int rp_write_new(const char *path, const void *buf, size_t len, struct rp_err *err);
/* Replace path atomically: temp file beside it, fsync, rename, fsync the directory. */
int rp_write_atomic(const char *path, const void *buf, size_t len, struct rp_err *err);
/* Read a whole regular file of at most max bytes (NUL-terminated for convenience). */
int rp_read_file(const char *path, size_t max, char **buf, size_t *len, struct rp_err *err);
/* Set a path's mtime (and atime) to rp_epoch(), not following symlinks. */
int rp_set_mtime(const char *path, struct rp_err *err);
/* rm -rf; missing is fine. */
int rp_rmtree(const char *path, struct rp_err *err);
/* Set mtime rp_epoch() on every directory below and including path (after all writes). */
int rp_fix_dir_mtimes(const char *path, struct rp_err *err);
/* Test hook for crash-safety tests: with REGPRESS_CRASH_AT=N in the environment, the Nth call
 * (counting every file write, rename and directory change a writer makes) kills the process with
 * SIGKILL, as a power cut or OOM kill would. Without the variable it costs one getenv, once. */
void rp_crash_point(void);
/* Join into a malloc'd string "a/b". */
char *rp_join(const char *a, const char *b);

#endif
