#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void rp_crash_point(void)
{
	static long at = -1, count;

	if (at < 0) {
		const char *s = getenv("REGPRESS_CRASH_AT");

		at = s && *s ? strtol(s, NULL, 10) : 0;
	}
	if (at > 0 && ++count == at)
		raise(SIGKILL);
}

time_t rp_epoch(void)
{
	const char *s = getenv("SOURCE_DATE_EPOCH");
	char *end;
	long long v;

	if (!s || !*s)
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < 0)
		return 0;
	return (time_t)v;
}

char *rp_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 2);

	if (!s)
		return NULL;
	memcpy(s, a, la);
	s[la] = '/';
	memcpy(s + la + 1, b, lb + 1);
	return s;
}

int rp_mkdirs(const char *path, struct rp_err *err)
{
	char buf[PATH_MAX];
	size_t i, len = strlen(path);

	if (len >= sizeof(buf))
		return rp_errf(err, "'%s': path too long", path);
	memcpy(buf, path, len + 1);
	rp_crash_point();
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, RP_DIR_MODE) == 0) {
			if (chmod(buf, RP_DIR_MODE) < 0)
				return rp_errno(err, "'%s'", buf);
		} else if (errno != EEXIST) {
			return rp_errno(err, "cannot create directory '%s'", buf);
		}
		if (i < len)
			buf[i] = '/';
	}
	return 0;
}

int rp_write_all(int fd, const char *name, const void *buf, size_t len, struct rp_err *err)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return rp_errno(err, "cannot write '%s'", name);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int rp_set_fd_mtime(int fd, const char *name, struct rp_err *err)
{
	struct timespec ts[2];

	ts[0].tv_sec = ts[1].tv_sec = rp_epoch();
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (futimens(fd, ts) < 0)
		return rp_errno(err, "cannot set the time of '%s'", name);
	return 0;
}

int rp_fix_file(int fd, const char *name, struct rp_err *err)
{
	if (fchmod(fd, RP_FILE_MODE) < 0)
		return rp_errno(err, "cannot set mode or time of '%s'", name);
	return rp_set_fd_mtime(fd, name, err);
}

static int write_fd(int fd, const char *path, const void *buf, size_t len, struct rp_err *err)
{
	if (rp_write_all(fd, path, buf, len, err) < 0)
		return -1;
	return rp_fix_file(fd, path, err);
}

int rp_write_new(const char *path, const void *buf, size_t len, struct rp_err *err)
{
	int fd, rc;

	rp_crash_point();
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, RP_FILE_MODE);

	if (fd < 0)
		return rp_errno(err, "cannot create '%s'", path);
	rc = write_fd(fd, path, buf, len, err);
	if (close(fd) < 0 && rc == 0)
		rc = rp_errno(err, "cannot write '%s'", path);
	return rc;
}

int rp_write_atomic(const char *path, const void *buf, size_t len, struct rp_err *err)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	int fd, dfd, rc = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return rp_errf(err, "'%s': path too long", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, RP_FILE_MODE);
	if (fd < 0)
		return rp_errno(err, "cannot create '%s'", tmp);
	if (write_fd(fd, tmp, buf, len, err) < 0)
		goto out;
	if (fsync(fd) < 0) {
		rp_errno(err, "cannot sync '%s'", tmp);
		goto out;
	}
	rp_crash_point();
	if (rename(tmp, path) < 0) {
		rp_errno(err, "cannot rename '%s' to '%s'", tmp, path);
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	rc = 0;
out:
	close(fd);
	if (rc < 0)
		unlink(tmp);
	return rc;
}

int rp_read_file(const char *path, size_t max, char **bufp, size_t *lenp, struct rp_err *err)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return rp_errno(err, "cannot open '%s'", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return rp_errf(err, "'%s': not a regular file", path);
	}
	if ((unsigned long long)st.st_size > max) {
		close(fd);
		return rp_errf(err, "'%s': too large (%lld bytes, limit %zu)", path,
			       (long long)st.st_size, max);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return rp_errf(err, "'%s': out of memory", path);
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			close(fd);
			return n < 0 ? rp_errno(err, "cannot read '%s'", path)
				     : rp_errf(err, "'%s': changed while reading", path);
		}
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*bufp = buf;
	*lenp = got;
	return 0;
}

int rp_set_mtime(const char *path, struct rp_err *err)
{
	struct timespec ts[2];

	ts[0].tv_sec = ts[1].tv_sec = rp_epoch();
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return rp_errno(err, "cannot set the time of '%s'", path);
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int rp_rmtree(const char *path, struct rp_err *err)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : rp_errno(err, "'%s'", path);
	if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) < 0)
		return rp_errno(err, "cannot remove '%s'", path);
	return 0;
}

static int mtime_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	struct timespec ts[2];

	(void)st;
	(void)ftw;
	if (type != FTW_DP)
		return 0;
	ts[0].tv_sec = ts[1].tv_sec = rp_epoch();
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	return utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

int rp_fix_dir_mtimes(const char *path, struct rp_err *err)
{
	if (nftw(path, mtime_one, 32, FTW_DEPTH | FTW_PHYS) < 0)
		return rp_errno(err, "cannot set times below '%s'", path);
	return 0;
}
