#include "copy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

int copier_init(struct copier *c, media_progress_fn progress, void *ctx, struct rp_err *err)
{
	memset(c, 0, sizeof(*c));
	c->progress = progress;
	c->ctx = ctx;
	c->buf = malloc(COPY_BUF);
	return c->buf ? 0 : rp_errf(err, "out of memory");
}

void copier_free(struct copier *c)
{
	free(c->buf);
	c->buf = NULL;
}

int copy_range(struct copier *c, int src, const char *src_name, uint64_t off, uint64_t len,
	       int dst, const char *dst_name, struct rp_sha256 *h, struct rp_sha256 *whole,
	       struct rp_err *err)
{
	while (len) {
		size_t want = len < COPY_BUF ? (size_t)len : COPY_BUF;
		ssize_t n = pread(src, c->buf, want, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return rp_errno(err, "cannot read '%s'", src_name);
		}
		if (n == 0)
			return rp_errf(err, "'%s': shorter than expected", src_name);
		if (h)
			rp_sha256_update(h, c->buf, (size_t)n);
		if (whole)
			rp_sha256_update(whole, c->buf, (size_t)n);
		if (dst >= 0 && rp_write_all(dst, dst_name, c->buf, (size_t)n, err) < 0)
			return -1;
		off += (uint64_t)n;
		len -= (uint64_t)n;
		c->done += (uint64_t)n;
		if (c->progress)
			c->progress(c->ctx, c->done, c->total);
	}
	return 0;
}

int copy_size_is(int fd, const char *name, uint64_t want, const char *says, struct rp_err *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return rp_errno(err, "cannot read '%s'", name);
	if ((uint64_t)st.st_size != want)
		return rp_errf(err, "'%s': %lld bytes, %s says %" PRIu64, name, (long long)st.st_size,
			       says, want);
	return 0;
}

int copy_checked(struct copier *c, int src, const char *src_name, uint64_t src_size, uint64_t off,
		 uint64_t len, const char *want, int dst, const char *dst_name, int sync,
		 struct rp_err *err)
{
	struct rp_sha256 h;
	char got[RP_HEX_LEN + 1];

	if (rp_sha256_init(&h) < 0)
		return rp_errf(err, "out of memory");
	if (copy_range(c, src, src_name, off, len, dst, dst_name, &h, NULL, err) < 0) {
		rp_sha256_free(&h);
		return -1;
	}
	rp_sha256_final(&h, got);
	if (strcmp(got, want)) {
		if (off == 0 && len == src_size)
			return rp_errf(err, "'%s': content has digest sha256:%s, not sha256:%s",
				       src_name, got, want);
		return rp_errf(err, "'%s': bytes %" PRIu64 "-%" PRIu64 " have digest sha256:%s, not "
			       "sha256:%s", src_name, off, off + len, got, want);
	}
	if (dst < 0)
		return 0;
	if (rp_fix_file(dst, dst_name, err) < 0)
		return -1;
	if (sync && fdatasync(dst) < 0)
		return rp_errno(err, "cannot sync '%s'", dst_name);
	c->files_copied++;
	c->bytes_copied += len;
	return 0;
}
