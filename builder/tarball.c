/* Reading input tarballs and OCI layout directories (tarball.h): names normalised, and the
 * streaming pass over the entries a caller wants. The index pass is tarball_index.c, the
 * bounded libarchive reader tarball_reader.c. */
#include "tarball_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *ar_normalize(const char *base_dir, const char *path)
{
	size_t blen = base_dir ? strlen(base_dir) : 0;
	size_t plen = strlen(path);
	char *joined = malloc(blen + plen + 2);
	char *out, *seg, *save = NULL;
	size_t olen = 0;

	if (!joined)
		return NULL;
	if (path[0] == '/' || blen == 0) {
		memcpy(joined, path, plen + 1);
	} else {
		memcpy(joined, base_dir, blen);
		joined[blen] = '/';
		memcpy(joined + blen + 1, path, plen + 1);
	}
	out = malloc(strlen(joined) + 1);
	if (!out) {
		free(joined);
		return NULL;
	}
	out[0] = '\0';
	for (seg = strtok_r(joined, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
		if (!strcmp(seg, "."))
			continue;
		if (!strcmp(seg, "..")) {
			char *slash;

			if (olen == 0)
				goto escape; /* above the archive root */
			slash = strrchr(out, '/');
			olen = slash ? (size_t)(slash - out) : 0;
			out[olen] = '\0';
			continue;
		}
		if (olen)
			out[olen++] = '/';
		memcpy(out + olen, seg, strlen(seg) + 1);
		olen += strlen(seg);
	}
	free(joined);
	if (olen == 0) {
		free(out);
		return NULL;
	}
	return out;
escape:
	free(joined);
	free(out);
	return NULL;
}

/* Stream one file of a directory input: not following a link, not blocking on a FIFO, and only
 * the regular file the walk saw (a file replaced since would not be what was indexed). */
static int stream_file(const struct ar_index *idx, const struct ar_entry *e, unsigned char *buf,
		       ar_data_fn data, void *ctx, struct rp_err *err)
{
	char *path = malloc(strlen(idx->path) + strlen(e->name) + 2);
	struct stat st;
	int64_t got = 0;
	ssize_t n;
	int fd, rc = -1;

	if (!path)
		return rp_errf(err, "out of memory");
	sprintf(path, "%s/%s", idx->path, e->name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	free(path);
	if (fd < 0)
		return rp_errno(err, "'%s': '%s'", idx->display, e->raw);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rp_errf(err, "'%s': '%s' changed while reading", idx->display, e->raw);
		goto out;
	}
	while ((n = read(fd, buf, STREAM_BUF)) > 0 || (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		got += n;
		if (data(ctx, e, buf, (size_t)n, err) < 0)
			goto out;
	}
	if (n < 0) {
		rp_errno(err, "'%s': '%s'", idx->display, e->raw);
		goto out;
	}
	if (got != e->size) {
		rp_errf(err, "'%s': '%s' changed while reading", idx->display, e->raw);
		goto out;
	}
	rc = data(ctx, e, NULL, 0, err);
out:
	close(fd);
	return rc;
}

static int stream_dir(const struct ar_index *idx, ar_want_fn want, ar_data_fn data, void *ctx,
		      struct rp_err *err)
{
	unsigned char *buf = malloc(STREAM_BUF);
	size_t i;
	int rc = 0;

	if (!buf)
		return rp_errf(err, "'%s': out of memory", idx->display);
	for (i = 0; i < idx->n && rc == 0; i++) {
		const struct ar_entry *e = &idx->entries[i];

		if (e->type == AR_FILE && e->name && want(ctx, e))
			rc = stream_file(idx, e, buf, data, ctx, err);
	}
	free(buf);
	return rc;
}

struct chunk_ctx {
	ar_data_fn data;
	void *ctx;
	const struct ar_entry *e;
};

static int chunk_to_data(void *vc, const void *buf, size_t len, struct rp_err *err)
{
	struct chunk_ctx *c = vc;

	return c->data(c->ctx, c->e, buf, len, err);
}

static int stream_tar(const struct ar_index *idx, ar_want_fn want, ar_data_fn data, void *ctx,
		      struct rp_err *err)
{
	struct archive_entry *ae;
	struct reader r;
	size_t i = 0;
	int rc = -1, h;

	if (ar_reader_open(idx, &r, err) < 0)
		goto out;
	while ((h = ar_reader_next(&r, &ae)) == ARCHIVE_OK) {
		struct chunk_ctx c = { data, ctx, NULL };

		if (i >= idx->n || archive_entry_size(ae) != idx->entries[i].size) {
			rp_errf(err, "'%s': changed while reading", idx->display);
			goto out;
		}
		c.e = &idx->entries[i++];
		if (c.e->type != AR_FILE || !c.e->name || !want(ctx, c.e))
			continue;
		if (ar_read_entry(&r, c.e, chunk_to_data, &c, err) < 0 ||
		    data(ctx, c.e, NULL, 0, err) < 0)
			goto out;
	}
	if (h != ARCHIVE_EOF) {
		rp_errf(err, "'%s': %s", idx->display, ar_reader_error(&r));
		goto out;
	}
	rc = 0;
out:
	ar_reader_close(&r);
	return rc;
}

int ar_stream(const struct ar_index *idx, ar_want_fn want, ar_data_fn data, void *ctx,
	      struct rp_err *err)
{
	return idx->is_dir ? stream_dir(idx, want, data, ctx, err)
			   : stream_tar(idx, want, data, ctx, err);
}

/* ar_load: collect the wanted entries' bytes into e->data through ar_stream. */
struct load_ctx {
	const struct ar_entry **want;
	size_t n;
	size_t *fill;
	struct ar_index *idx;
};

static int load_want(void *vctx, const struct ar_entry *e)
{
	struct load_ctx *c = vctx;
	size_t i;

	if (e->data)
		return 0;
	for (i = 0; i < c->n; i++)
		if (c->want[i] == e)
			return 1;
	return 0;
}

static int load_data(void *vctx, const struct ar_entry *ce, const void *buf, size_t len,
		     struct rp_err *err)
{
	struct load_ctx *c = vctx;
	struct ar_entry *e = &c->idx->entries[ce - c->idx->entries];
	size_t *fill = &c->fill[ce - c->idx->entries];

	if (!e->data) { /* first data, or the end of an empty file (no data calls at all) */
		e->data = malloc((size_t)e->size + 1);
		if (!e->data)
			return rp_errf(err, "out of memory");
	}
	if (!buf) {
		e->data_len = *fill;
		e->data[*fill] = '\0';
		return 0;
	}
	if (*fill + len > (size_t)e->size)
		return rp_errf(err, "'%s': '%s' changed while reading", c->idx->display, e->raw);
	memcpy(e->data + *fill, buf, len);
	*fill += len;
	return 0;
}

int ar_load(struct ar_index *idx, const struct ar_entry **want, size_t n, struct rp_err *err)
{
	struct load_ctx c = { want, n, NULL, idx };
	size_t i, missing = 0;
	int rc;

	for (i = 0; i < n; i++) {
		if (want[i]->data)
			continue;
		if ((uint64_t)want[i]->size > AR_META_MAX)
			return rp_errf(err, "'%s': '%s' is %lld bytes, too large for metadata",
				       idx->display, want[i]->raw, (long long)want[i]->size);
		missing++;
	}
	if (!missing)
		return 0;
	c.fill = calloc(idx->n, sizeof(*c.fill));
	if (!c.fill)
		return rp_errf(err, "out of memory");
	rc = ar_stream(idx, load_want, load_data, &c, err);
	free(c.fill);
	return rc;
}

int ar_seekable(const struct ar_index *idx)
{
	return idx->is_dir || !idx->compressed;
}
