/* ISO 9660 images: writing one per volume with xorriso, and reading the images `media --iso`
 * wrote as volumes, by extracting them. */
#include "media_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "copy.h"
#include "fsutil.h"

extern char **environ;

/* Write the image of dir to iso (named final in messages). */
int media_make_iso(const char *dir, const char *iso, const char *final, const char *volid,
		    const char *log, struct rp_err *err)
{
	const char *argv[] = { "xorriso", "-as", "mkisofs", "-R", "-J", "-V", volid, "-no-pad",
			       "-uid", "0", "-gid", "0", "-file-mode", "0644", "-dir-mode", "0755",
			       "-o", iso, dir, NULL };
	char epoch[64], **envp, *buf = NULL, *last, *nl;
	size_t n = 0, i, len;
	int status;
	pid_t pid;

	/* xorriso takes the volume dates, the volume UUID and every file date from
	 * SOURCE_DATE_EPOCH: the image is a function of the directory and this time. */
	snprintf(epoch, sizeof(epoch), "SOURCE_DATE_EPOCH=%lld", (long long)rp_epoch());
	while (environ[n])
		n++;
	envp = calloc(n + 2, sizeof(*envp));
	if (!envp)
		return rp_errf(err, "out of memory");
	for (i = n = 0; environ[i]; i++)
		if (strncmp(environ[i], "SOURCE_DATE_EPOCH=", 18))
			envp[n++] = environ[i];
	envp[n++] = epoch;
	pid = fork();
	if (pid < 0) {
		free(envp);
		return rp_errno(err, "cannot run xorriso");
	}
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execvpe(argv[0], (char *const *)argv, envp);
		_exit(127);
	}
	free(envp);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return rp_errno(err, "cannot wait for xorriso");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return rp_errf(err, "cannot make '%s': xorriso not found (install the xorriso "
			       "package)", final);
	/* The last line xorriso wrote says why. */
	last = "";
	if (rp_read_file(log, 1u << 20, &buf, &len, NULL) == 0) {
		while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
			buf[--len] = '\0';
		nl = strrchr(buf, '\n');
		last = nl ? nl + 1 : buf;
	}
	if (WIFEXITED(status))
		rp_errf(err, "cannot make '%s': xorriso exited with status %d: %s", final,
			WEXITSTATUS(status), last);
	else
		rp_errf(err, "cannot make '%s': xorriso killed by signal %d", final,
			WTERMSIG(status));
	free(buf);
	return -1;
}

/* ---- volumes given as ISO images ---- */

/* A volume may also be given as the ISO image `regpress media --iso` wrote, so that no one needs
 * to mount it (which takes root, and a kernel with iso9660) or extract it by hand. The image is
 * extracted into a new directory under $TMPDIR and read from there like any volume; messages name
 * the image instead of that directory. Extraction trusts nothing in the image: only directories and
 * regular files with plain relative names, no two entries with one name, and no more file data
 * than the image's own size (entries that share their data could otherwise fill the disk). */

/* name, with any "./" in front taken off, as a relative path of plain components; NULL if it is
 * not one ("" for the root entry). */
static const char *iso_rel(const char *name)
{
	const char *p, *c;

	while (name[0] == '.' && name[1] == '/')
		name += 2;
	if (!strcmp(name, ".") || !*name)
		return "";
	if (name[0] == '/' || strlen(name) > PATH_MAX / 2)
		return NULL;
	for (c = name; *c; c = *p ? p + 1 : p) {
		p = strchrnul(c, '/');
		if (p == c && *p) /* an empty component: "a//b" */
			return NULL;
		if ((p - c == 1 && c[0] == '.') || (p - c == 2 && c[0] == '.' && c[1] == '.'))
			return NULL;
	}
	return name;
}

/* ---- what a file that is not an ISO image is ---- */

/* A tar header's checksum (the sum of its bytes, the checksum field taken as spaces) matches:
 * a tar archive, with or without the ustar magic. */
static int tar_header(const unsigned char *h, size_t n)
{
	unsigned long sum = 0, want;
	char field[9], *end;
	size_t i;

	if (n < 512)
		return 0;
	if (!memcmp(h + 257, "ustar", 5))
		return 1;
	for (i = 0; i < 512; i++)
		sum += i >= 148 && i < 156 ? ' ' : h[i];
	memcpy(field, h + 148, 8);
	field[8] = '\0';
	want = strtoul(field, &end, 8);
	return end != field && want == sum && h[0];
}

/* What the first bytes of a file given as a volume say it is, for a message: NULL if nothing
 * regpress knows. A tarball is the likeliest mistake (it goes to build, not import). */
static const char *file_kind(const unsigned char *h, size_t n)
{
	static const struct {
		const char *magic;
		size_t len;
		const char *what;
	} kinds[] = {
		{ "PK\x03\x04", 4, "a ZIP archive" },
		{ "PK\x05\x06", 4, "a ZIP archive" },
		{ "PK\x07\x08", 4, "a ZIP archive" },
		{ "\x1f\x8b", 2, "a gzip-compressed file (regpress import takes volumes written by "
				 "regpress media; a compressed tarball goes to regpress build)" },
		{ "\x28\xb5\x2f\xfd", 4, "a zstd-compressed file (regpress import takes volumes "
					 "written by regpress media; a compressed tarball goes to "
					 "regpress build)" },
		{ "\xfd" "7zXZ", 6, "an xz-compressed file (regpress import takes volumes written by "
				   "regpress media; a compressed tarball goes to regpress build)" },
		{ "BZh", 3, "a bzip2-compressed file (regpress import takes volumes written by "
			    "regpress media; a compressed tarball goes to regpress build)" },
	};
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (n >= kinds[i].len && !memcmp(h, kinds[i].magic, kinds[i].len))
			return kinds[i].what;
	if (tar_header(h, n))
		return "a tar archive (regpress import takes volumes written by regpress media; a "
		       "tarball goes to regpress build)";
	return NULL;
}

/* The message for a file libarchive does not take for an ISO image: what it is instead, when
 * regpress can tell, else libarchive's reason. */
static int not_an_image(int fd, const char *iso, struct archive *a, struct rp_err *err)
{
	unsigned char head[512];
	ssize_t n = pread(fd, head, sizeof(head), 0);
	const char *what = n > 0 ? file_kind(head, (size_t)n) : NULL;

	if (what)
		return rp_errf(err, "'%s': not a volume directory or ISO image: %s", iso, what);
	return rp_errf(err, "'%s': not a volume directory or ISO image (%s)", iso,
		       archive_error_string(a));
}

/* ---- extracting an image ---- */

struct extract {
	const char *iso, *dir;
	struct archive *a;
	struct copier *c;
	uint64_t budget; /* file data the image can still honestly hold: its size, less what came */
	char *path;	 /* the current entry's path under dir */
};

/* Copy the current entry's size bytes into out, counting them for progress. */
static int extract_data(struct extract *x, int out, const char *rel, int64_t size,
			struct rp_err *err)
{
	int64_t left;

	for (left = size; left > 0;) {
		la_ssize_t n = archive_read_data(x->a, x->c->buf, COPY_BUF);

		if (n < 0)
			return rp_errf(err, "'%s': cannot read entry '%s': %s", x->iso, rel,
				       archive_error_string(x->a));
		if (n == 0 || n > left)
			return rp_errf(err, "'%s': entry '%s' is not the %" PRId64 " bytes it claims",
				       x->iso, rel, size);
		if (rp_write_all(out, x->path, x->c->buf, (size_t)n, err) < 0)
			return -1;
		left -= n;
		x->c->done += (uint64_t)n;
		if (x->c->progress)
			x->c->progress(x->c->ctx, x->c->done, x->c->total);
	}
	return 0;
}

/* A regular file entry: within the budget, created new (never over an entry of the same name),
 * its directories made first. */
static int extract_file(struct extract *x, const char *rel, int64_t size, struct rp_err *err)
{
	char *slash = strrchr(x->path, '/');
	int out, r;

	if (size < 0 || (uint64_t)size > x->budget)
		return rp_errf(err, "'%s': entry '%s' claims more data than the image holds", x->iso,
			       rel);
	x->budget -= (uint64_t)size;
	*slash = '\0';
	r = rp_mkdirs(x->path, err);
	*slash = '/';
	if (r < 0)
		return -1;
	out = open(x->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0 && errno == EEXIST)
		return rp_errf(err, "'%s': entry '%s' appears twice", x->iso, rel);
	if (out < 0)
		return rp_errno(err, "cannot create '%s'", x->path);
	r = extract_data(x, out, rel, size, err);
	if (close(out) < 0 && r == 0)
		r = rp_errno(err, "cannot write '%s'", x->path);
	return r;
}

/* One entry: only directories and regular files with plain relative names. */
static int extract_entry(struct extract *x, struct archive_entry *e, struct rp_err *err)
{
	const char *name = archive_entry_pathname(e), *rel = name ? iso_rel(name) : NULL;
	mode_t type = archive_entry_filetype(e);

	if (!rel)
		return rp_errf(err, "'%s': entry '%s' is not a plain relative path", x->iso,
			       name ? name : "");
	if (archive_entry_hardlink(e) || (type != AE_IFDIR && type != AE_IFREG))
		return rp_errf(err, "'%s': entry '%s' is a link or a special file (a volume holds "
			       "only files and directories)", x->iso, rel);
	if (!*rel)
		return 0;
	free(x->path);
	if (!(x->path = media_path2(x->dir, rel)))
		return rp_errf(err, "out of memory");
	if (type == AE_IFDIR)
		return rp_mkdirs(x->path, err);
	return extract_file(x, rel, archive_entry_size(e), err);
}

/* Extract the ISO image iso into the existing, empty directory dir. */
static int iso_extract(const char *iso, const char *dir, struct copier *c, struct rp_err *err)
{
	struct extract x = { iso, dir, NULL, c, 0, NULL };
	struct archive_entry *e;
	struct stat st;
	int fd, r, rc = -1;

	fd = open(iso, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return rp_errno(err, "cannot open '%s'", iso);
	if (fstat(fd, &st) < 0) {
		rp_errno(err, "cannot read '%s'", iso);
		goto out;
	}
	x.budget = (uint64_t)st.st_size;
	x.a = archive_read_new();
	if (!x.a || archive_read_support_format_iso9660(x.a) != ARCHIVE_OK) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (archive_read_open_fd(x.a, fd, 64 * 1024) != ARCHIVE_OK) {
		not_an_image(fd, iso, x.a, err);
		goto out;
	}
	while ((r = archive_read_next_header(x.a, &e)) == ARCHIVE_OK)
		if (extract_entry(&x, e, err) < 0)
			goto out;
	if (r != ARCHIVE_EOF && archive_format(x.a) == 0) /* not even the descriptors were read */
		not_an_image(fd, iso, x.a, err);
	else if (r != ARCHIVE_EOF)
		rp_errf(err, "'%s': damaged ISO image (%s)", iso, archive_error_string(x.a));
	else
		rc = 0;
out:
	free(x.path);
	if (x.a)
		archive_read_free(x.a);
	close(fd);
	return rc;
}

/* Replace each "from" in the message by "to" (a directory by the image it came from). */
static void err_rename(struct rp_err *err, const char *from, const char *to)
{
	char buf[sizeof(err->msg)];
	const char *p = err->msg, *hit;
	size_t lf = strlen(from), used = 0;

	buf[0] = '\0';
	while ((hit = strstr(p, from)) && used < sizeof(buf)) {
		used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%.*s%s", (int)(hit - p), p,
					 to);
		p = hit + lf;
	}
	if (p == err->msg)
		return;
	if (used < sizeof(buf))
		snprintf(buf + used, sizeof(buf) - used, "%s", p);
	memcpy(err->msg, buf, sizeof(buf));
	err->msg[sizeof(err->msg) - 1] = '\0';
}

void volume_dirs_free(struct volume_dirs *vd)
{
	size_t i;

	for (i = 0; vd->extracted && i < vd->n; i++)
		if (vd->extracted[i]) {
			rp_rmtree(vd->extracted[i], NULL);
			free(vd->extracted[i]);
		}
	free(vd->extracted);
	free(vd->dirs);
	memset(vd, 0, sizeof(*vd));
}

int volume_dirs_open(const char *const *paths, size_t n, media_progress_fn progress,
			    void *ctx, struct volume_dirs *vd, struct rp_err *err)
{
	const char *tmp = getenv("TMPDIR");
	struct copier c;
	struct stat st;
	size_t i;

	memset(vd, 0, sizeof(*vd));
	memset(&c, 0, sizeof(c));
	c.progress = progress;
	c.ctx = ctx;
	vd->n = n;
	vd->dirs = calloc(n ? n : 1, sizeof(*vd->dirs));
	vd->extracted = calloc(n ? n : 1, sizeof(*vd->extracted));
	if (!vd->dirs || !vd->extracted) {
		rp_errf(err, "out of memory");
		goto fail;
	}
	/* dirs[i] stays NULL for an image, to be extracted once the total size is known. */
	for (i = 0; i < n; i++) {
		if (stat(paths[i], &st) < 0) {
			rp_errno(err, "'%s'", paths[i]);
			goto fail;
		}
		if (S_ISREG(st.st_mode))
			c.total += (uint64_t)st.st_size;
		else
			vd->dirs[i] = paths[i]; /* volume_open says what is wrong with a non-directory */
	}
	for (i = 0; i < n; i++) {
		if (vd->dirs[i])
			continue;
		if (!c.buf && !(c.buf = malloc(COPY_BUF))) {
			rp_errf(err, "out of memory");
			goto fail;
		}
		if (asprintf(&vd->extracted[i], "%s/regpress-volume.XXXXXX",
			     tmp && *tmp ? tmp : "/tmp") < 0) {
			vd->extracted[i] = NULL;
			rp_errf(err, "out of memory");
			goto fail;
		}
		if (!mkdtemp(vd->extracted[i])) {
			rp_errno(err, "cannot make a directory to extract '%s' into ('%s')", paths[i],
				 vd->extracted[i]);
			free(vd->extracted[i]);
			vd->extracted[i] = NULL;
			goto fail;
		}
		vd->dirs[i] = vd->extracted[i];
		if (iso_extract(paths[i], vd->extracted[i], &c, err) < 0)
			goto fail;
	}
	free(c.buf);
	return 0;
fail:
	free(c.buf);
	volume_dirs_free(vd);
	return -1;
}

/* A failure while reading the extracted directories: name the images instead. */
void volume_dirs_err(const struct volume_dirs *vd, const char *const *paths,
			    struct rp_err *err)
{
	size_t i;

	for (i = 0; i < vd->n; i++)
		if (vd->extracted[i])
			err_rename(err, vd->extracted[i], paths[i]);
}

