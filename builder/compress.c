#include "compress.h"

#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

struct compressor {
	enum rp_compression kind;
	compress_sink sink;
	void *ctx;
	/* gzip */
	struct libdeflate_compressor *deflate;
	unsigned char *in;
	size_t in_used;
	int wrote; /* a gzip member has been emitted */
	unsigned char *out;
	size_t out_cap;
	/* zstd */
	ZSTD_CCtx *zstd;
};

int compression_parse(const char *s)
{
	if (!strcmp(s, "gzip"))
		return RP_COMP_GZIP;
	if (!strcmp(s, "zstd"))
		return RP_COMP_ZSTD;
	if (!strcmp(s, "none"))
		return RP_COMP_NONE;
	return -1;
}

const char *compression_name(enum rp_compression c)
{
	return c == RP_COMP_GZIP ? "gzip" : c == RP_COMP_ZSTD ? "zstd" : "none";
}

int compressor_new(enum rp_compression kind, int threads, compress_sink sink, void *ctx,
		   struct compressor **out, struct rp_err *err)
{
	struct compressor *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return rp_errf(err, "out of memory");
	c->kind = kind;
	c->sink = sink;
	c->ctx = ctx;
	if (kind == RP_COMP_GZIP) {
		c->deflate = libdeflate_alloc_compressor(RP_GZIP_LEVEL);
		c->in = malloc(RP_GZIP_CHUNK);
		c->out_cap = libdeflate_gzip_compress_bound(c->deflate, RP_GZIP_CHUNK);
		c->out = malloc(c->out_cap);
		if (!c->deflate || !c->in || !c->out)
			goto oom;
	} else if (kind == RP_COMP_ZSTD) {
		size_t r;

		c->zstd = ZSTD_createCCtx();
		c->out_cap = ZSTD_CStreamOutSize();
		c->out = malloc(c->out_cap);
		if (!c->zstd || !c->out)
			goto oom;
		r = ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_compressionLevel, RP_ZSTD_LEVEL);
		if (!ZSTD_isError(r))
			r = ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_checksumFlag, 1);
		/* nbWorkers >= 1 selects the multi-threaded format, identical for any worker count. */
		if (!ZSTD_isError(r))
			r = ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_nbWorkers, threads > 0 ? threads : 1);
		if (ZSTD_isError(r)) {
			compressor_free(c);
			return rp_errf(err, "zstd: %s", ZSTD_getErrorName(r));
		}
	}
	*out = c;
	return 0;
oom:
	compressor_free(c);
	return rp_errf(err, "out of memory");
}

static int gzip_chunk(struct compressor *c, struct rp_err *err)
{
	size_t n;

	if (c->in_used == 0)
		return 0;
	n = libdeflate_gzip_compress(c->deflate, c->in, c->in_used, c->out, c->out_cap);
	if (n == 0)
		return rp_errf(err, "gzip: compression failed");
	c->in_used = 0;
	c->wrote = 1;
	return c->sink(c->ctx, c->out, n, err);
}

static int zstd_run(struct compressor *c, const void *buf, size_t len, ZSTD_EndDirective mode,
		    struct rp_err *err)
{
	ZSTD_inBuffer in = { buf, len, 0 };

	for (;;) {
		ZSTD_outBuffer o = { c->out, c->out_cap, 0 };
		size_t left = ZSTD_compressStream2(c->zstd, &o, &in, mode);

		if (ZSTD_isError(left))
			return rp_errf(err, "zstd: %s", ZSTD_getErrorName(left));
		if (o.pos && c->sink(c->ctx, c->out, o.pos, err) < 0)
			return -1;
		if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size)
			return 0;
	}
}

int compressor_write(struct compressor *c, const void *buf, size_t len, struct rp_err *err)
{
	const unsigned char *p = buf;

	switch (c->kind) {
	case RP_COMP_NONE:
		return c->sink(c->ctx, buf, len, err);
	case RP_COMP_ZSTD:
		return zstd_run(c, buf, len, ZSTD_e_continue, err);
	case RP_COMP_GZIP:
		while (len) {
			size_t n = RP_GZIP_CHUNK - c->in_used;

			if (n > len)
				n = len;
			memcpy(c->in + c->in_used, p, n);
			c->in_used += n;
			p += n;
			len -= n;
			if (c->in_used == RP_GZIP_CHUNK && gzip_chunk(c, err) < 0)
				return -1;
		}
		return 0;
	}
	return 0;
}

int compressor_finish(struct compressor *c, struct rp_err *err)
{
	static const unsigned char empty[1];

	switch (c->kind) {
	case RP_COMP_NONE:
		return 0;
	case RP_COMP_ZSTD:
		return zstd_run(c, empty, 0, ZSTD_e_end, err);
	case RP_COMP_GZIP:
		if (c->in_used == 0 && !c->wrote) {
			/* An empty input still needs one (empty) member to be valid gzip. */
			size_t n = libdeflate_gzip_compress(c->deflate, empty, 0, c->out, c->out_cap);

			if (n == 0)
				return rp_errf(err, "gzip: compression failed");
			return c->sink(c->ctx, c->out, n, err);
		}
		return gzip_chunk(c, err);
	}
	return 0;
}

void compressor_free(struct compressor *c)
{
	if (!c)
		return;
	if (c->deflate)
		libdeflate_free_compressor(c->deflate);
	ZSTD_freeCCtx(c->zstd);
	free(c->in);
	free(c->out);
	free(c);
}
