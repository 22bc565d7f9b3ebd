#include "fsat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fsutil.h"

/* Directories deeper than this below a tree are refused: no tree needs it (repository paths are
 * at most 255 characters), and it bounds the descriptors a walk holds. */
#define FSAT_DEPTH_MAX 64

const char *fsat_name(const struct fsat_dir *d, const char *rel, char *buf, size_t bufsz)
{
	/* A name too long for buf is cut: it is only ever shown. */
	if (snprintf(buf, bufsz, "%s%s%s", d->path, rel[0] ? "/" : "", rel) >= (int)bufsz)
		buf[bufsz - 1] = '\0';
	return buf;
}

/* A relative path with plain components only. */
static int rel_ok(const char *rel)
{
	const char *p = rel;

	if (!*rel || *rel == '/')
		return 0;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += n;
		if (*p)
			p++;
		if (e && !*p)
			return 0; /* trailing slash */
	}
	return 1;
}

/* 1 when openat2 with RESOLVE_NO_SYMLINKS works here (Linux 5.6+, not filtered). Tests set
 * REGPRESS_RESOLVE=walk to take the component-by-component path (and valgrind, which does not
 * know openat2, needs it). */
static int have_openat2(void)
{
	static int known = -1;

	if (known < 0 && getenv("REGPRESS_RESOLVE") && !strcmp(getenv("REGPRESS_RESOLVE"), "walk"))
		known = 0;
	if (known < 0) {
		struct open_how how = { .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
					.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS };
		long fd = syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof(how));

		known = fd >= 0;
		if (fd >= 0)
			close((int)fd);
	}
	return known;
}

/* openat(dirfd, rel, flags) with no symlink anywhere on the way and nothing outside dirfd. */
static int open_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
	char comp[NAME_MAX + 1];
	const char *p = rel, *slash;
	int cur = dirfd, fd;

	flags |= O_CLOEXEC | O_NOFOLLOW;
	/* One plain component cannot go through a symlink but its own, which O_NOFOLLOW refuses:
	 * openat is enough, and much cheaper than openat2 here. */
	if (!strchr(rel, '/'))
		return openat(dirfd, rel, flags, mode);
	if (have_openat2()) {
		struct open_how how = { .flags = (unsigned)flags, .mode = flags & O_CREAT ? mode : 0,
					.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
						   RESOLVE_NO_MAGICLINKS };

		do
			fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
		while (fd < 0 && errno == EINTR);
		return fd;
	}
	while ((slash = strchr(p, '/'))) {
		size_t n = (size_t)(slash - p);
		int next;

		if (n > NAME_MAX) {
			errno = ENAMETOOLONG;
			fd = -1;
			goto out;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			fd = -1;
			goto out;
		}
		if (cur != dirfd)
			close(cur);
		cur = next;
		p = slash + 1;
	}
	fd = openat(cur, p, flags, mode);
out:
	if (cur != dirfd) {
		int saved = errno;

		close(cur);
		errno = saved;
	}
	return fd;
}

/* After a failed open: say which component is a symlink or not a directory, if one is. */
static int open_failed(const struct fsat_dir *d, const char *rel, const char *what,
		       struct rp_err *err)
{
	char buf[4096], name[4096];
	int saved = errno;
	size_t i;

	if (saved == ELOOP || saved == ENOTDIR || saved == EXDEV) {
		snprintf(buf, sizeof(buf), "%s", rel);
		for (i = 0;; i++) {
			struct stat st;
			char c = buf[i];

			if (c != '/' && c != '\0')
				continue;
			buf[i] = '\0';
			if (fstatat(d->fd, buf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
				if (S_ISLNK(st.st_mode))
					return rp_errf(err, "'%s': a symbolic link (trees and volumes "
						       "hold none; refusing to follow it)",
						       fsat_name(d, buf, name, sizeof(name)));
				if (c == '/' && !S_ISDIR(st.st_mode))
					return rp_errf(err, "'%s': not a directory",
						       fsat_name(d, buf, name, sizeof(name)));
			}
			if (c == '\0')
				break;
			buf[i] = c;
		}
	}
	errno = saved;
	return rp_errno(err, "%s '%s'", what, fsat_name(d, rel, name, sizeof(name)));
}

static int bad_rel(const struct fsat_dir *d, const char *rel, struct rp_err *err)
{
	char name[4096];

	return rp_errf(err, "'%s': not a plain relative path", fsat_name(d, rel, name, sizeof(name)));
}

static int type_of(mode_t m)
{
	return S_ISREG(m) ? FSAT_FILE : S_ISDIR(m) ? FSAT_DIR : FSAT_OTHER;
}

int fsat_open_root(const char *path, int create, struct fsat_dir *d, struct rp_err *err)
{
	struct stat st;

	d->fd = -1;
	d->path = NULL;
	if (create && rp_mkdirs(path, err) < 0)
		return -1;
	/* The directory itself may be reached through a symlink the user made: only what is
	 * beneath it is held to no symlinks. */
	d->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
	if (d->fd < 0) {
		if (errno == ENOTDIR)
			return rp_errf(err, "'%s': not a directory", path);
		return rp_errno(err, "cannot open '%s'", path);
	}
	if (fstat(d->fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		close(d->fd);
		d->fd = -1;
		return rp_errf(err, "'%s': not a directory", path);
	}
	d->path = strdup(path);
	if (!d->path) {
		close(d->fd);
		d->fd = -1;
		return rp_errf(err, "out of memory");
	}
	return 0;
}

void fsat_close(struct fsat_dir *d)
{
	if (!d)
		return;
	if (d->fd >= 0)
		close(d->fd);
	free(d->path);
	d->fd = -1;
	d->path = NULL;
}

int fsat_subdir(const struct fsat_dir *d, const char *rel, int create, struct fsat_dir *out,
		struct rp_err *err)
{
	char name[4096];
	struct stat st;

	out->fd = -1;
	out->path = NULL;
	if (!rel_ok(rel))
		return bad_rel(d, rel, err);
	if (create && fsat_mkdirs(d, rel, err) < 0)
		return -1;
	out->fd = open_beneath(d->fd, rel, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0);
	if (out->fd < 0)
		return errno == ENOENT ? 1 : open_failed(d, rel, "cannot open", err);
	if (fstat(out->fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		close(out->fd);
		out->fd = -1;
		return rp_errf(err, "'%s': not a directory", fsat_name(d, rel, name, sizeof(name)));
	}
	out->path = strdup(fsat_name(d, rel, name, sizeof(name)));
	if (!out->path) {
		close(out->fd);
		out->fd = -1;
		return rp_errf(err, "out of memory");
	}
	return 0;
}

/* The directory holding rel, opened beneath d (d's own fd when rel has one component), and
 * rel's last component. *pfd is to be closed with put_parent. */
static int get_parent(const struct fsat_dir *d, const char *rel, int *pfd, const char **base,
		      struct rp_err *err)
{
	const char *slash = strrchr(rel, '/');
	char dir[4096];

	if (!rel_ok(rel))
		return bad_rel(d, rel, err);
	*base = slash ? slash + 1 : rel;
	if (!slash) {
		*pfd = d->fd;
		return 0;
	}
	if ((size_t)(slash - rel) >= sizeof(dir))
		return rp_errf(err, "'%s': path too long", rel);
	memcpy(dir, rel, (size_t)(slash - rel));
	dir[slash - rel] = '\0';
	*pfd = open_beneath(d->fd, dir, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0);
	if (*pfd < 0)
		return errno == ENOENT ? 1 : open_failed(d, dir, "cannot open", err);
	return 0;
}

static void put_parent(const struct fsat_dir *d, int pfd)
{
	if (pfd >= 0 && pfd != d->fd)
		close(pfd);
}

int fsat_type(const struct fsat_dir *d, const char *rel, struct stat *st, struct rp_err *err)
{
	struct stat s;
	const char *base;
	int pfd, r;

	if (!rel[0])
		return fstat(d->fd, st ? st : &s) < 0 ? rp_errno(err, "'%s'", d->path) : FSAT_DIR;
	r = get_parent(d, rel, &pfd, &base, err);
	if (r != 0)
		return r < 0 ? -1 : FSAT_ABSENT;
	r = fstatat(pfd, base, st ? st : &s, AT_SYMLINK_NOFOLLOW);
	put_parent(d, pfd);
	if (r < 0) {
		char name[4096];

		return errno == ENOENT ? FSAT_ABSENT
				       : rp_errno(err, "'%s'", fsat_name(d, rel, name, sizeof(name)));
	}
	return type_of((st ? st : &s)->st_mode);
}

int fsat_open_file(const struct fsat_dir *d, const char *rel, int *fd, struct stat *st,
		   struct rp_err *err)
{
	char name[4096];
	struct stat s;

	*fd = -1;
	if (!rel_ok(rel))
		return bad_rel(d, rel, err);
	*fd = open_beneath(d->fd, rel, O_RDONLY | O_NONBLOCK, 0);
	if (*fd < 0)
		return errno == ENOENT ? 1 : open_failed(d, rel, "cannot open", err);
	if (fstat(*fd, st ? st : &s) < 0 || !S_ISREG((st ? st : &s)->st_mode)) {
		close(*fd);
		*fd = -1;
		return rp_errf(err, "'%s': not a regular file", fsat_name(d, rel, name, sizeof(name)));
	}
	return 0;
}

int fsat_read_fd(int fd, const char *name, size_t max, char **bufp, size_t *lenp,
		 struct rp_err *err)
{
	struct stat st;
	size_t got = 0, want;
	char *buf;

	if (fstat(fd, &st) < 0)
		return rp_errno(err, "'%s'", name);
	if ((unsigned long long)st.st_size > max)
		return rp_errf(err, "'%s': too large (%lld bytes, limit %zu)", name,
			       (long long)st.st_size, max);
	want = (size_t)st.st_size;
	buf = malloc(want + 1);
	if (!buf)
		return rp_errf(err, "'%s': out of memory", name);
	while (got < want) {
		ssize_t n = pread(fd, buf + got, want - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? rp_errno(err, "cannot read '%s'", name)
				     : rp_errf(err, "'%s': changed while reading", name);
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*bufp = buf;
	*lenp = got;
	return 0;
}

int fsat_read(const struct fsat_dir *d, const char *rel, size_t max, char **buf, size_t *len,
	      struct rp_err *err)
{
	char name[4096];
	int fd, r = fsat_open_file(d, rel, &fd, NULL, err);

	if (r != 0)
		return r;
	r = fsat_read_fd(fd, fsat_name(d, rel, name, sizeof(name)), max, buf, len, err);
	close(fd);
	return r;
}

int fsat_create(const struct fsat_dir *d, const char *rel, int *fd, struct rp_err *err)
{
	char name[4096];

	*fd = -1;
	if (!rel_ok(rel))
		return bad_rel(d, rel, err);
	rp_crash_point();
	*fd = open_beneath(d->fd, rel, O_WRONLY | O_CREAT | O_EXCL, RP_FILE_MODE);
	if (*fd < 0)
		return open_failed(d, rel, "cannot create", err);
	/* The umask may have taken bits away. */
	if (fchmod(*fd, RP_FILE_MODE) < 0) {
		close(*fd);
		*fd = -1;
		return rp_errno(err, "'%s'", fsat_name(d, rel, name, sizeof(name)));
	}
	return 0;
}

int fsat_write_new(const struct fsat_dir *d, const char *rel, const void *buf, size_t len,
		   struct rp_err *err)
{
	char name[4096];
	int fd, rc;

	if (fsat_create(d, rel, &fd, err) < 0)
		return -1;
	fsat_name(d, rel, name, sizeof(name));
	rc = rp_write_all(fd, name, buf, len, err);
	if (rc == 0)
		rc = rp_set_fd_mtime(fd, name, err); /* fsat_create set the mode */
	if (close(fd) < 0 && rc == 0)
		rc = rp_errno(err, "cannot write '%s'", name);
	if (rc < 0)
		fsat_unlink(d, rel, NULL);
	return rc;
}

int fsat_replace(const struct fsat_dir *d, const char *rel, const void *buf, size_t len,
		 struct rp_err *err)
{
	char tmp[4096];

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.regpress-new", rel) >= sizeof(tmp))
		return rp_errf(err, "'%s': path too long", rel);
	if (fsat_unlink(d, tmp, err) < 0 || fsat_write_new(d, tmp, buf, len, err) < 0)
		return -1;
	if (fsat_rename(d, tmp, d, rel, err) < 0) {
		fsat_unlink(d, tmp, NULL);
		return -1;
	}
	return 0;
}

int fsat_rename(const struct fsat_dir *fd_, const char *from, const struct fsat_dir *td,
		const char *to, struct rp_err *err)
{
	char a[4096], b[4096];
	const char *fb, *tb;
	int fp, tp, r;

	if ((r = get_parent(fd_, from, &fp, &fb, err)) != 0)
		return r < 0 ? -1 : rp_errf(err, "'%s': no such directory", fsat_name(fd_, from, a, sizeof(a)));
	if ((r = get_parent(td, to, &tp, &tb, err)) != 0) {
		put_parent(fd_, fp);
		return r < 0 ? -1 : rp_errf(err, "'%s': no such directory", fsat_name(td, to, a, sizeof(a)));
	}
	rp_crash_point();
	r = renameat(fp, fb, tp, tb);
	if (r < 0)
		rp_errno(err, "cannot move '%s' to '%s'", fsat_name(fd_, from, a, sizeof(a)),
			 fsat_name(td, to, b, sizeof(b)));
	put_parent(fd_, fp);
	put_parent(td, tp);
	return r < 0 ? -1 : 0;
}

int fsat_exchange(const struct fsat_dir *d, const char *x, const char *y, struct rp_err *err)
{
	char a[4096], b[4096];
	const char *xb, *yb;
	int xp, yp, r;

	if ((r = get_parent(d, x, &xp, &xb, err)) != 0)
		return r < 0 ? -1 : rp_errf(err, "'%s': no such directory", fsat_name(d, x, a, sizeof(a)));
	if ((r = get_parent(d, y, &yp, &yb, err)) != 0) {
		put_parent(d, xp);
		return r < 0 ? -1 : rp_errf(err, "'%s': no such directory", fsat_name(d, y, a, sizeof(a)));
	}
	rp_crash_point();
	r = renameat2(xp, xb, yp, yb, RENAME_EXCHANGE);
	if (r < 0)
		rp_errno(err, "cannot exchange '%s' and '%s'", fsat_name(d, x, a, sizeof(a)),
			 fsat_name(d, y, b, sizeof(b)));
	put_parent(d, xp);
	put_parent(d, yp);
	return r < 0 ? -1 : 0;
}

static int remove_at(const struct fsat_dir *d, const char *rel, int flags, struct rp_err *err)
{
	char name[4096];
	const char *base;
	int pfd, r = get_parent(d, rel, &pfd, &base, err);

	if (r != 0)
		return r < 0 ? -1 : 1;
	rp_crash_point();
	r = unlinkat(pfd, base, flags);
	put_parent(d, pfd);
	if (r < 0 && errno == ENOENT)
		return 1;
	if (r < 0)
		return rp_errno(err, "cannot remove '%s'", fsat_name(d, rel, name, sizeof(name)));
	return 0;
}

int fsat_unlink(const struct fsat_dir *d, const char *rel, struct rp_err *err)
{
	return remove_at(d, rel, 0, err);
}

int fsat_rmdir(const struct fsat_dir *d, const char *rel, struct rp_err *err)
{
	return remove_at(d, rel, AT_REMOVEDIR, err);
}

int fsat_mkdirs(const struct fsat_dir *d, const char *rel, struct rp_err *err)
{
	char buf[4096], name[4096];
	size_t i, len = strlen(rel);
	int made = 0;

	if (!rel_ok(rel))
		return bad_rel(d, rel, err);
	if (len >= sizeof(buf))
		return rp_errf(err, "'%s': path too long", rel);
	memcpy(buf, rel, len + 1);
	for (i = 1; i <= len; i++) {
		const char *base;
		int pfd, r;

		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		r = get_parent(d, buf, &pfd, &base, err);
		if (r != 0)
			return r < 0 ? -1 : rp_errf(err, "'%s': vanished", fsat_name(d, buf, name, sizeof(name)));
		rp_crash_point();
		if (mkdirat(pfd, base, RP_DIR_MODE) == 0) {
			made = 1;
			r = fchmodat(pfd, base, RP_DIR_MODE, 0);
		} else if (errno == EEXIST) {
			struct stat st;

			r = fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW);
			if (r == 0 && !S_ISDIR(st.st_mode)) {
				put_parent(d, pfd);
				return rp_errf(err, "'%s': %s", fsat_name(d, buf, name, sizeof(name)),
					       S_ISLNK(st.st_mode) ? "a symbolic link (a tree holds "
					       "none; refusing to follow it)" : "not a directory");
			}
		} else {
			r = -1;
		}
		put_parent(d, pfd);
		if (r < 0)
			return rp_errno(err, "cannot create directory '%s'",
					fsat_name(d, buf, name, sizeof(name)));
		if (i < len)
			buf[i] = '/';
	}
	return made ? 0 : 1;
}

/* ---- walking ---- */

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entry names of directory fd (left open), sorted; NULL-terminated. */
static char **list_dir(int fd, const char *name, size_t *n, struct rp_err *err)
{
	int dup_fd = dup(fd);
	DIR *dir = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	struct dirent *e;
	char **v = NULL;
	size_t cap = 0;

	*n = 0;
	if (!dir) {
		if (dup_fd >= 0)
			close(dup_fd);
		rp_errno(err, "cannot read '%s'", name);
		return NULL;
	}
	rewinddir(dir);
	while ((e = readdir(dir))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (*n + 1 >= cap) {
			char **nv = realloc(v, (cap = cap ? cap * 2 : 32) * sizeof(*v));

			if (!nv)
				goto oom;
			v = nv;
		}
		if (!(v[(*n)++] = strdup(e->d_name)))
			goto oom;
		v[*n] = NULL;
	}
	closedir(dir);
	if (!v && !(v = calloc(1, sizeof(*v)))) {
		rp_errf(err, "out of memory");
		return NULL;
	}
	qsort(v, *n, sizeof(*v), cmp_name);
	return v;
oom:
	closedir(dir);
	while (v && *n)
		free(v[--*n]);
	free(v);
	rp_errf(err, "out of memory");
	return NULL;
}

static void free_list(char **v, size_t n)
{
	while (n)
		free(v[--n]);
	free(v);
}

/* Walk the entries of directory fd (closed here), rel its path below root (in a 4096 buffer). */
static int walk_dir(const struct fsat_dir *root, int fd, char *rel, size_t rlen, int depth,
		    fsat_walk_fn fn, void *ctx, struct rp_err *err)
{
	char name[4096];
	char **names = NULL;
	size_t n = 0, i;
	int rc = 0;

	if (depth > FSAT_DEPTH_MAX)
		rc = rp_errf(err, "'%s': directories nested too deep",
			     fsat_name(root, rel, name, sizeof(name)));
	else if (!(names = list_dir(fd, fsat_name(root, rel, name, sizeof(name)), &n, err)))
		rc = -1;
	for (i = 0; rc == 0 && i < n; i++) {
		size_t len = strlen(names[i]);
		struct stat st;
		int r;

		if (rlen + len + 2 >= 4096) {
			rc = rp_errf(err, "'%s/%s': path too long", name, names[i]);
			break;
		}
		if (rlen)
			rel[rlen] = '/';
		memcpy(rel + rlen + (rlen ? 1 : 0), names[i], len + 1);
		if (fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				rc = rp_errno(err, "cannot read '%s'", fsat_name(root, rel, name, sizeof(name)));
			rel[rlen] = '\0';
			continue;
		}
		r = fn(ctx, rel, &st, err);
		if (r < 0) {
			rc = -1;
		} else if (r == 0 && S_ISDIR(st.st_mode)) {
			int dfd = openat(fd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK |
					 O_CLOEXEC);

			if (dfd < 0)
				rc = rp_errno(err, "cannot read '%s'", fsat_name(root, rel, name, sizeof(name)));
			else
				rc = walk_dir(root, dfd, rel, strlen(rel), depth + 1, fn, ctx, err);
		}
		rel[rlen] = '\0';
	}
	free_list(names, n);
	close(fd);
	return rc < 0 ? -1 : 0;
}

int fsat_walk(const struct fsat_dir *d, const char *rel, fsat_walk_fn fn, void *ctx,
	      struct rp_err *err)
{
	char path[4096];
	int fd;

	if (rel[0] && !rel_ok(rel))
		return bad_rel(d, rel, err);
	snprintf(path, sizeof(path), "%s", rel);
	fd = rel[0] ? open_beneath(d->fd, rel, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0)
		    : openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : open_failed(d, rel, "cannot read", err);
	return walk_dir(d, fd, path, strlen(path), 0, fn, ctx, err);
}

/* ---- removing and times, bottom-up over descriptors ---- */

static int rm_below(const struct fsat_dir *root, int fd, const char *name, int depth,
		    struct rp_err *err)
{
	DIR *dir;
	struct dirent *e;
	int rc = 0;

	if (depth > FSAT_DEPTH_MAX) {
		close(fd);
		return rp_errf(err, "'%s': directories nested too deep", name);
	}
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return rp_errno(err, "cannot read '%s'", name);
	}
	while (rc == 0 && (e = readdir(dir))) {
		char sub[4096];
		int cfd;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", name, e->d_name);
		rp_crash_point();
		if (unlinkat(dirfd(dir), e->d_name, 0) == 0 || errno == ENOENT)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			rc = rp_errno(err, "cannot remove '%s'", sub);
			break;
		}
		cfd = openat(dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0) {
			rc = rp_errno(err, "cannot remove '%s'", sub);
			break;
		}
		rc = rm_below(root, cfd, sub, depth + 1, err);
		if (rc == 0 && unlinkat(dirfd(dir), e->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			rc = rp_errno(err, "cannot remove '%s'", sub);
	}
	closedir(dir);
	return rc;
}

int fsat_rmtree(const struct fsat_dir *d, const char *rel, struct rp_err *err)
{
	char name[4096];
	int fd, r = fsat_type(d, rel, NULL, err);

	if (r < 0)
		return -1;
	if (r == FSAT_ABSENT)
		return 0;
	if (r != FSAT_DIR)
		return fsat_unlink(d, rel, err) < 0 ? -1 : 0;
	fd = open_beneath(d->fd, rel, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0);
	if (fd < 0)
		return open_failed(d, rel, "cannot remove", err);
	if (rm_below(d, fd, fsat_name(d, rel, name, sizeof(name)), 0, err) < 0)
		return -1;
	return fsat_rmdir(d, rel, err) < 0 ? -1 : 0;
}

int fsat_set_mtime(const struct fsat_dir *d, const char *rel, struct rp_err *err)
{
	struct timespec ts[2];
	char name[4096];
	const char *base;
	int pfd, r;

	/* Times are part of the tree's bytes (e2e_tree_state): setting one is a step a kill may
	 * interrupt like any write. */
	rp_crash_point();
	ts[0].tv_sec = ts[1].tv_sec = rp_epoch();
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (!rel[0])
		return futimens(d->fd, ts) < 0 ? rp_errno(err, "cannot set the time of '%s'", d->path)
					       : 0;
	if ((r = get_parent(d, rel, &pfd, &base, err)) != 0)
		return r < 0 ? -1 : rp_errf(err, "'%s': no such file", fsat_name(d, rel, name, sizeof(name)));
	r = utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW);
	put_parent(d, pfd);
	if (r < 0)
		return rp_errno(err, "cannot set the time of '%s'", fsat_name(d, rel, name, sizeof(name)));
	return 0;
}

struct mtimes_ctx {
	const struct fsat_dir *d;
};

static int mtime_one(void *ctx, const char *rel, const struct stat *st, struct rp_err *err)
{
	const struct fsat_dir *d = ((struct mtimes_ctx *)ctx)->d;

	if (!S_ISDIR(st->st_mode))
		return 1;
	/* Parents before children: a child's time set later does not touch the parent's. */
	return fsat_set_mtime(d, rel, err) < 0 ? -1 : 0;
}

int fsat_fix_dir_mtimes(const struct fsat_dir *d, const char *rel, struct rp_err *err)
{
	struct mtimes_ctx c = { d };

	if (fsat_walk(d, rel, mtime_one, &c, err) < 0)
		return -1;
	return fsat_set_mtime(d, rel, err);
}
