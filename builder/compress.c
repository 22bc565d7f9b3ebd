#include "compress.h"

#include <libdeflate.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* gzip: chunks are numbered as they fill; workers compress them in any order; the writer emits
 * them strictly in number order. A chunk's bytes depend only on its input and its number (which
 * picks the level), so the stream is the same for any number of workers (and for none).
 * none, with threads: the same ring of chunks, and one thread that hands them to the sink in
 * order, so writing a layer overlaps reading and hashing the next bytes. */
struct gz_chunk {
	unsigned char *in, *out;
	size_t in_len, out_len;
	int done;
};

struct codec_ops;

struct compressor {
	const struct codec_ops *ops;
	compress_sink sink;
	void *ctx;
	int wrote; /* gzip: a member has been emitted */
	/* gzip */
	struct gz_levels *deflate; /* the writer's own, when there are no workers */
	struct gz_chunk *chunks;
	size_t nchunks, out_cap;
	unsigned long fill, take, emit; /* chunk numbers: being filled, next for a worker, next out */
	pthread_t *workers;
	int nworkers, started, stop;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	/* none, with threads: the sink thread's failure */
	int sink_failed;
	struct rp_err sink_err;
	/* zstd */
	ZSTD_CCtx *zstd;
	unsigned char *zout;
	size_t zout_cap;
	unsigned char held; /* the last byte written so far, given to zstd only with the end */
	int has_held;
};

/* One libdeflate compressor per level; each thread that deflates owns a pair. */
struct gz_levels {
	struct libdeflate_compressor *fast, *good;
};

static struct gz_levels *gz_levels_new(void)
{
	struct gz_levels *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->fast = libdeflate_alloc_compressor(RP_GZIP_LEVEL_FAST);
	l->good = libdeflate_alloc_compressor(RP_GZIP_LEVEL_GOOD);
	if (!l->fast || !l->good) {
		libdeflate_free_compressor(l->fast);
		libdeflate_free_compressor(l->good);
		free(l);
		return NULL;
	}
	return l;
}

static void gz_levels_free(struct gz_levels *l)
{
	if (!l)
		return;
	libdeflate_free_compressor(l->fast);
	libdeflate_free_compressor(l->good);
	free(l);
}

/* Deflate chunk number seq into a gzip member; 0 on failure. */
static size_t gz_compress(struct gz_levels *l, unsigned long seq, struct gz_chunk *c, size_t cap)
{
	return libdeflate_gzip_compress(seq % 2 ? l->good : l->fast, c->in, c->in_len, c->out, cap);
}

/* none: the thread that calls the sink, chunk after chunk, in order. */
static void *none_writer(void *arg)
{
	struct compressor *c = arg;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		struct gz_chunk *ch;
		int failed;

		while (!c->stop && c->emit == c->fill)
			pthread_cond_wait(&c->work, &c->mu);
		if (c->emit == c->fill)
			break;
		ch = &c->chunks[c->emit % c->nchunks];
		failed = c->sink_failed || c->stop; /* after a failure or an abort: drop the rest */
		pthread_mutex_unlock(&c->mu);
		if (!failed && c->sink(c->ctx, ch->in, ch->in_len, &c->sink_err) < 0)
			failed = 1;
		pthread_mutex_lock(&c->mu);
		c->sink_failed = failed;
		ch->in_len = 0;
		c->emit++;
		pthread_cond_broadcast(&c->done);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* none: hand the filled chunk to the sink thread; with finish, wait until all are written. */
static int none_submit(struct compressor *c, int finish, struct rp_err *err)
{
	int failed;

	pthread_mutex_lock(&c->mu);
	if (c->chunks[c->fill % c->nchunks].in_len > 0) {
		c->fill++;
		pthread_cond_signal(&c->work);
	}
	/* The next chunk to fill must be free (or, at the end, every chunk written). */
	while (!c->sink_failed && (finish ? c->emit < c->fill : c->fill - c->emit >= c->nchunks))
		pthread_cond_wait(&c->done, &c->mu);
	failed = c->sink_failed;
	pthread_mutex_unlock(&c->mu);
	if (failed) {
		*err = c->sink_err;
		return -1;
	}
	return 0;
}

static void *gz_worker(void *arg)
{
	struct compressor *c = arg;
	struct gz_levels *d = gz_levels_new();

	pthread_mutex_lock(&c->mu);
	for (;;) {
		struct gz_chunk *ch;
		unsigned long seq;

		while (!c->stop && c->take == c->fill)
			pthread_cond_wait(&c->work, &c->mu);
		if (c->stop && c->take == c->fill)
			break;
		seq = c->take++;
		ch = &c->chunks[seq % c->nchunks];
		pthread_mutex_unlock(&c->mu);
		ch->out_len = d ? gz_compress(d, seq, ch, c->out_cap) : 0;
		pthread_mutex_lock(&c->mu);
		ch->done = 1;
		pthread_cond_broadcast(&c->done);
	}
	pthread_mutex_unlock(&c->mu);
	gz_levels_free(d);
	return NULL;
}

static int gz_open(struct compressor *c, int threads, struct rp_err *err)
{
	size_t i, good, fast;

	c->deflate = gz_levels_new();
	if (!c->deflate)
		return rp_errf(err, "out of memory");
	/* a chunk's output buffer must hold either level's worst case */
	good = libdeflate_gzip_compress_bound(c->deflate->good, RP_GZIP_CHUNK);
	fast = libdeflate_gzip_compress_bound(c->deflate->fast, RP_GZIP_CHUNK);
	c->out_cap = good > fast ? good : fast;
	c->nworkers = threads > 1 ? threads : 0;
	/* Two chunks per worker keep every worker busy while the writer emits. */
	c->nchunks = c->nworkers ? 2 * (size_t)c->nworkers : 1;
	c->chunks = calloc(c->nchunks, sizeof(*c->chunks));
	if (!c->chunks)
		return rp_errf(err, "out of memory");
	for (i = 0; i < c->nchunks; i++) {
		c->chunks[i].in = malloc(RP_GZIP_CHUNK);
		c->chunks[i].out = malloc(c->out_cap);
		if (!c->chunks[i].in || !c->chunks[i].out)
			return rp_errf(err, "out of memory");
	}
	if (!c->nworkers)
		return 0;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->work, NULL);
	pthread_cond_init(&c->done, NULL);
	c->workers = calloc((size_t)c->nworkers, sizeof(*c->workers));
	if (!c->workers)
		return rp_errf(err, "out of memory");
	for (; c->started < c->nworkers; c->started++)
		if (pthread_create(&c->workers[c->started], NULL, gz_worker, c))
			return rp_errf(err, "cannot start compression threads");
	return 0;
}

static int none_open(struct compressor *c, int threads, struct rp_err *err)
{
	size_t i;

	if (threads <= 1)
		return 0; /* bytes go straight to the sink */
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->work, NULL);
	pthread_cond_init(&c->done, NULL);
	c->nworkers = 1;
	c->nchunks = 4;
	c->chunks = calloc(c->nchunks, sizeof(*c->chunks));
	c->workers = calloc(1, sizeof(*c->workers));
	if (!c->chunks || !c->workers)
		return rp_errf(err, "out of memory");
	for (i = 0; i < c->nchunks; i++)
		if (!(c->chunks[i].in = malloc(RP_GZIP_CHUNK)))
			return rp_errf(err, "out of memory");
	if (pthread_create(&c->workers[0], NULL, none_writer, c))
		return rp_errf(err, "cannot start a writer thread");
	c->started = 1;
	return 0;
}

static int zstd_open(struct compressor *c, int threads, struct rp_err *err)
{
	size_t r;

	c->zstd = ZSTD_createCCtx();
	c->zout_cap = ZSTD_CStreamOutSize();
	c->zout = malloc(c->zout_cap);
	if (!c->zstd || !c->zout)
		return rp_errf(err, "out of memory");
	r = ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_compressionLevel, RP_ZSTD_LEVEL);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_checksumFlag, 1);
	/* nbWorkers >= 1 selects the multi-threaded format, identical for any worker count. */
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_nbWorkers, threads > 0 ? threads : 1);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_jobSize, (int)RP_ZSTD_JOB);
	return ZSTD_isError(r) ? rp_errf(err, "zstd: %s", ZSTD_getErrorName(r)) : 0;
}

/* Emit finished chunks in order; with wait, block until the oldest one is finished. */
static int gz_emit(struct compressor *c, int wait, struct rp_err *err)
{
	while (c->emit < c->fill) {
		struct gz_chunk *ch = &c->chunks[c->emit % c->nchunks];

		if (c->nworkers) {
			int finished;

			pthread_mutex_lock(&c->mu);
			while (wait && !ch->done)
				pthread_cond_wait(&c->done, &c->mu);
			finished = ch->done; /* read under the lock: the worker sets it */
			pthread_mutex_unlock(&c->mu);
			if (!finished)
				return 0;
		}
		if (ch->out_len == 0)
			return rp_errf(err, "gzip: compression failed");
		if (c->sink(c->ctx, ch->out, ch->out_len, err) < 0)
			return -1;
		ch->done = 0;
		ch->in_len = 0;
		c->emit++;
		c->wrote = 1;
		wait = wait && c->emit < c->fill && c->fill - c->emit >= c->nchunks;
	}
	return 0;
}

/* The chunk being filled is complete: hand it to a worker (or compress it here). */
static int gz_submit(struct compressor *c, struct rp_err *err)
{
	struct gz_chunk *ch = &c->chunks[c->fill % c->nchunks];

	if (!c->nworkers) {
		ch->out_len = gz_compress(c->deflate, c->fill, ch, c->out_cap);
		c->fill++;
		return gz_emit(c, 0, err);
	}
	pthread_mutex_lock(&c->mu);
	ch->done = 0;
	c->fill++;
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->mu);
	/* All slots in flight: wait for the oldest before the writer may fill another. */
	return gz_emit(c, c->fill - c->emit >= c->nchunks, err);
}

static int zstd_run(struct compressor *c, const void *buf, size_t len, ZSTD_EndDirective mode,
		    struct rp_err *err)
{
	ZSTD_inBuffer in = { buf, len, 0 };

	for (;;) {
		ZSTD_outBuffer o = { c->zout, c->zout_cap, 0 };
		size_t left = ZSTD_compressStream2(c->zstd, &o, &in, mode);

		if (ZSTD_isError(left))
			return rp_errf(err, "zstd: %s", ZSTD_getErrorName(left));
		if (o.pos && c->sink(c->ctx, c->zout, o.pos, err) < 0)
			return -1;
		if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size)
			return 0;
	}
}

/* Copy input into the current chunk; each chunk that fills up goes to the workers (gzip: to be
 * deflated; none: to be written by the writer thread). */
static int fill_chunks(struct compressor *c, const unsigned char *p, size_t len,
		       int (*submit)(struct compressor *c, struct rp_err *err), struct rp_err *err)
{
	while (len) {
		struct gz_chunk *ch = &c->chunks[c->fill % c->nchunks];
		size_t n = RP_GZIP_CHUNK - ch->in_len;

		if (n > len)
			n = len;
		memcpy(ch->in + ch->in_len, p, n);
		ch->in_len += n;
		p += n;
		len -= n;
		if (ch->in_len == RP_GZIP_CHUNK && submit(c, err) < 0)
			return -1;
	}
	return 0;
}

static int none_submit_full(struct compressor *c, struct rp_err *err)
{
	return none_submit(c, 0, err);
}

static int none_write(struct compressor *c, const void *buf, size_t len, struct rp_err *err)
{
	if (!c->nworkers)
		return c->sink(c->ctx, buf, len, err);
	return fill_chunks(c, buf, len, none_submit_full, err);
}

static int gz_write(struct compressor *c, const void *buf, size_t len, struct rp_err *err)
{
	return fill_chunks(c, buf, len, gz_submit, err);
}

static int zstd_write(struct compressor *c, const void *buf, size_t len, struct rp_err *err)
{
	const unsigned char *p = buf;

	/* zstd's multi-threaded mode turns a full job into a job when a queue slot is free: if the
	 * input ends exactly at a job boundary, that last full job is marked final or not (then an
	 * empty final block follows) depending on timing. Holding the last byte back for
	 * ZSTD_e_end makes the final job never empty, so the bytes never vary. */
	if (len == 0)
		return 0;
	if (c->has_held && zstd_run(c, &c->held, 1, ZSTD_e_continue, err) < 0)
		return -1;
	if (len > 1 && zstd_run(c, p, len - 1, ZSTD_e_continue, err) < 0)
		return -1;
	c->held = p[len - 1];
	c->has_held = 1;
	return 0;
}

static int none_finish(struct compressor *c, struct rp_err *err)
{
	return c->nworkers ? none_submit(c, 1, err) : 0;
}

static int zstd_finish(struct compressor *c, struct rp_err *err)
{
	static const unsigned char empty[1];

	return c->has_held ? zstd_run(c, &c->held, 1, ZSTD_e_end, err)
			   : zstd_run(c, empty, 0, ZSTD_e_end, err);
}

static int gz_finish(struct compressor *c, struct rp_err *err)
{
	/* The partial last chunk; an empty input still needs one (empty) member. */
	if (c->chunks[c->fill % c->nchunks].in_len > 0 || (!c->wrote && c->fill == c->emit))
		if (gz_submit(c, err) < 0)
			return -1;
	/* gz_emit stops waiting once a slot is free; the end needs every chunk out. */
	while (c->emit < c->fill)
		if (gz_emit(c, 1, err) < 0)
			return -1;
	return 0;
}

static void gz_id(char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "gzip-libdeflate-%s-l%dl%d-c%u", LIBDEFLATE_VERSION_STRING,
		 RP_GZIP_LEVEL_FAST, RP_GZIP_LEVEL_GOOD, RP_GZIP_CHUNK);
}

static void zstd_id(char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "zstd-%s-l%d-mt-j%u", ZSTD_versionString(), RP_ZSTD_LEVEL, RP_ZSTD_JOB);
}

static void none_id(char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "none");
}

/* Each compression is one row: its facts and its functions; nothing else asks which it is. */
struct codec_ops {
	struct rp_codec info;
	int (*open)(struct compressor *c, int threads, struct rp_err *err);
	int (*write)(struct compressor *c, const void *buf, size_t len, struct rp_err *err);
	int (*finish)(struct compressor *c, struct rp_err *err);
	void (*id)(char *buf, size_t bufsz);
};

static const struct codec_ops codecs[] = {
	[RP_COMP_GZIP] = { { "gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip",
			     "application/vnd.oci.image.layer.v1.tar+gzip", 0 },
			   gz_open, gz_write, gz_finish, gz_id },
	[RP_COMP_ZSTD] = { { "zstd", NULL, "application/vnd.oci.image.layer.v1.tar+zstd", 0 },
			   zstd_open, zstd_write, zstd_finish, zstd_id },
	[RP_COMP_NONE] = { { "none", "application/vnd.docker.image.rootfs.diff.tar",
			     "application/vnd.oci.image.layer.v1.tar", 1 },
			   none_open, none_write, none_finish, none_id },
};

int compression_parse(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++)
		if (!strcmp(s, codecs[i].info.name))
			return (int)i;
	return -1;
}

const char *compression_name(enum rp_compression c)
{
	return codecs[c].info.name;
}

const struct rp_codec *compression_info(enum rp_compression c)
{
	return &codecs[c].info;
}

void compression_id(enum rp_compression c, char *buf, size_t bufsz)
{
	codecs[c].id(buf, bufsz);
}

int compressor_new(enum rp_compression kind, int threads, compress_sink sink, void *ctx,
		   struct compressor **out, struct rp_err *err)
{
	struct compressor *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return rp_errf(err, "out of memory");
	c->ops = &codecs[kind];
	c->sink = sink;
	c->ctx = ctx;
	if (c->ops->open(c, threads, err) < 0) {
		compressor_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

int compressor_write(struct compressor *c, const void *buf, size_t len, struct rp_err *err)
{
	return c->ops->write(c, buf, len, err);
}

int compressor_finish(struct compressor *c, struct rp_err *err)
{
	return c->ops->finish(c, err);
}

void compressor_free(struct compressor *c)
{
	size_t i;
	int t;

	if (!c)
		return;
	if (c->started) {
		pthread_mutex_lock(&c->mu);
		c->stop = 1;
		pthread_cond_broadcast(&c->work);
		pthread_mutex_unlock(&c->mu);
		for (t = 0; t < c->started; t++)
			pthread_join(c->workers[t], NULL);
	}
	if (c->nworkers) {
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->work);
		pthread_cond_destroy(&c->done);
	}
	free(c->workers);
	for (i = 0; c->chunks && i < c->nchunks; i++) {
		free(c->chunks[i].in);
		free(c->chunks[i].out);
	}
	free(c->chunks);
	gz_levels_free(c->deflate);
	ZSTD_freeCCtx(c->zstd);
	free(c->zout);
	free(c);
}
