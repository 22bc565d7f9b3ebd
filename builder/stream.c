/* Streaming an input's entries once: layers compressed or hashed into the tree, registry blobs
 * copied and checked; what only needs hashing by several threads at once when the input can skip
 * cheaply. */
#include "build_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- streaming pass ---- */

static int want_entry(void *vctx, const struct ar_entry *e)
{
	struct input *in = vctx;

	const struct entry_result *r = &in->res[e - in->idx->entries];

	return r->action != ACT_NONE && r->worker < 0;
}

static int sink_blob(void *vctx, const void *buf, size_t len, struct rp_err *err)
{
	return layout_blob_write(((struct input *)vctx)->blob, buf, len, err);
}

/* A failure while storing an entry (the disk full, a write refused) names the input and the
 * entry as well as the file being written, which is in the tree's staging area. */
static int storing_failed(const struct input *in, const struct ar_entry *e, struct rp_err *err)
{
	return rp_err_prefix(err, "'%s': '%s'", in->idx->display, e->raw ? e->raw : e->name);
}

static int store_data(void *vctx, const struct ar_entry *e, const void *buf, size_t len,
		      struct rp_err *err)
{
	struct input *in = vctx;
	struct entry_result *r = &in->res[e - in->idx->entries];
	/* A kept registry blob is copied as it is, whatever the build's compression. */
	enum rp_compression comp = r->action == ACT_COPY ? RP_COMP_NONE : in->b->opts.compression;
	int as_is = compression_info(comp)->passthrough;

	in->done += len;
	if (in->b->opts.progress)
		in->b->opts.progress(in->b->opts.progress_ctx, in->idx->display, in->done, in->total);
	if (r->action == ACT_VERIFY) {
		if (!in->raw.ctx && rp_sha256_init(&in->raw) < 0)
			return rp_errf(err, "out of memory");
		if (buf) {
			rp_sha256_update(&in->raw, buf, len);
		} else {
			rp_sha256_final(&in->raw, r->raw);
			r->done = 1;
		}
		return 0;
	}
	if (!in->blob) { /* first bytes of this entry */
		if (rp_sha256_init(&in->raw) < 0)
			return rp_errf(err, "out of memory");
		if (layout_blob_new(in->b->tree, &in->blob, err) < 0 ||
		    compressor_new(comp, in->b->opts.threads, sink_blob, in, &in->comp, err) < 0)
			return -1;
		/* Stored as is: the blob's digest is the input's, hashed once, below. */
		if (as_is)
			layout_blob_hashed_by_caller(in->blob);
	}
	if (buf) {
		rp_sha256_update(&in->raw, buf, len);
		return compressor_write(in->comp, buf, len, err);
	}
	if (compressor_finish(in->comp, err) < 0)
		return -1;
	compressor_free(in->comp);
	in->comp = NULL;
	rp_sha256_final(&in->raw, r->raw);
	if (as_is)
		memcpy(r->blob, r->raw, sizeof(r->blob));
	if (layout_blob_finish(in->blob, r->blob, &r->size, err) < 0) {
		in->blob = NULL;
		return -1;
	}
	in->blob = NULL;
	r->done = 1;
	if (r->action == ACT_COMPRESS && !as_is) {
		char val[RP_HEX_LEN + 40];

		snprintf(val, sizeof(val), "sha256:%s %" PRIu64, r->blob, r->size);
		return layout_cache_put(in->b->tree, in->b->cache_ns, r->raw, val, err);
	}
	return 0;
}

static int on_data(void *vctx, const struct ar_entry *e, const void *buf, size_t len,
		   struct rp_err *err)
{
	return store_data(vctx, e, buf, len, err) < 0 ? storing_failed(vctx, e, err) : 0;
}

/* Before streaming: layers whose compressed form the tree already has need only be hashed.
 * The expected diff_id comes from the config; the streaming pass still checks it. */
void bld_plan_reuse(struct input *in, const struct src_image *img)
{
	json_t *config, *ids;
	size_t i;

	config = json_loadb((const char *)img->config->data, img->config->data_len, 0, NULL);
	ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
	for (i = 0; i < img->nlayers && i < json_array_size(ids); i++) {
		struct entry_result *r = &in->res[img->layers[i] - in->idx->entries];
		const char *id = json_string_value(json_array_get(ids, i)), *hex;
		char val[RP_HEX_LEN + 40], blob[RP_HEX_LEN + 8];
		unsigned long long size;

		if (r->action != ACT_COMPRESS || !id || !rp_digest_parse(id, &hex))
			continue;
		if (in->b->codec->passthrough) { /* uncompressed: the blob is the layer itself */
			if (layout_has_blob(in->b->tree, hex)) {
				r->action = ACT_VERIFY;
				memcpy(r->blob, hex, RP_HEX_LEN + 1);
				r->size = (uint64_t)img->layers[i]->size;
			}
			continue;
		}
		if (layout_cache_get(in->b->tree, in->b->cache_ns, hex, val, sizeof(val)) == 0 &&
		    sscanf(val, "%71s %llu", blob, &size) == 2 && rp_digest_parse(blob, &hex) &&
		    layout_has_blob(in->b->tree, hex)) {
			r->action = ACT_VERIFY;
			memcpy(r->blob, hex, RP_HEX_LEN + 1);
			r->size = size;
		}
	}
	json_decref(config);
}

/* ---- parallel pass ---- */

/* Entries whose only work is hashing (and maybe copying): layers the tree already holds (a
 * rebuild: their diff_id is checked), layers stored uncompressed and kept registry blobs (hashed
 * once and written as they are). SHA-256 of one stream cannot be split, but when the input can
 * skip cheaply (ar_seekable), several threads each stream their own share of these entries,
 * largest first to the least loaded, in passes of their own over the input; the main pass then
 * skips them. Compressed layers stay in the main pass: the compressors use every core already. */
#define PASS_THREADS 8 /* the most threads that hash at once */

struct worker {
	struct input *in;
	int id, failed;
	struct rp_sha256 sha;
	struct layout_blob *blob;
	struct rp_err err;
	pthread_t thread;
};

struct parallel_pass {
	pthread_mutex_t mu;	   /* done, running; and the tree's blob staging (not thread-safe) */
	pthread_cond_t cond;
	uint64_t done;
	int running;
};

static int hash_only(const struct input *in, const struct entry_result *r)
{
	return r->action == ACT_VERIFY || r->action == ACT_COPY ||
	       (r->action == ACT_COMPRESS && in->b->codec->passthrough);
}

static int worker_want(void *vctx, const struct ar_entry *e)
{
	struct worker *w = vctx;

	return w->in->res[e - w->in->idx->entries].worker == w->id;
}

static int worker_store(void *vctx, const struct ar_entry *e, const void *buf, size_t len,
			struct rp_err *err)
{
	struct worker *w = vctx;
	struct entry_result *r = &w->in->res[e - w->in->idx->entries];
	struct parallel_pass *pp = w->in->pass;
	int rc = 0;

	if (!w->sha.ctx) { /* first bytes of this entry */
		if (rp_sha256_init(&w->sha) < 0)
			return rp_errf(err, "out of memory");
		if (r->action != ACT_VERIFY) {
			pthread_mutex_lock(&pp->mu);
			rc = layout_blob_new(w->in->b->tree, &w->blob, err);
			pthread_mutex_unlock(&pp->mu);
			if (rc < 0)
				return -1;
			layout_blob_hashed_by_caller(w->blob); /* stored as is: its digest is ours */
		}
	}
	if (buf) {
		rp_sha256_update(&w->sha, buf, len);
		if (w->blob && layout_blob_write(w->blob, buf, len, err) < 0)
			return -1;
		pthread_mutex_lock(&pp->mu);
		pp->done += len;
		pthread_mutex_unlock(&pp->mu);
		return 0;
	}
	rp_sha256_final(&w->sha, r->raw);
	if (w->blob) {
		memcpy(r->blob, r->raw, sizeof(r->blob));
		pthread_mutex_lock(&pp->mu);
		rc = layout_blob_finish(w->blob, r->blob, &r->size, err);
		pthread_mutex_unlock(&pp->mu);
		w->blob = NULL;
	}
	r->done = 1;
	return rc;
}

static int worker_data(void *vctx, const struct ar_entry *e, const void *buf, size_t len,
		       struct rp_err *err)
{
	const struct worker *w = vctx;

	return worker_store(vctx, e, buf, len, err) < 0 ? storing_failed(w->in, e, err) : 0;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct parallel_pass *pp = w->in->pass;

	w->failed = ar_stream(w->in->idx, worker_want, worker_data, w, &w->err) < 0;
	rp_sha256_free(&w->sha);
	layout_blob_free(w->blob);
	w->blob = NULL;
	pthread_mutex_lock(&pp->mu);
	pp->running--;
	pthread_cond_signal(&pp->cond);
	pthread_mutex_unlock(&pp->mu);
	return NULL;
}

/* Hand each hashing-only entry to one of n threads: the largest left to the least loaded. */
static void assign_workers(struct input *in, int n)
{
	uint64_t load[PASS_THREADS] = { 0 };
	size_t i;
	int k;

	for (;;) {
		size_t best = in->idx->n;
		int t = 0;

		for (i = 0; i < in->idx->n; i++)
			if (hash_only(in, &in->res[i]) && in->res[i].worker < 0 &&
			    (best == in->idx->n || in->idx->entries[i].size > in->idx->entries[best].size))
				best = i;
		if (best == in->idx->n)
			break;
		for (k = 1; k < n; k++)
			if (load[k] < load[t])
				t = k;
		in->res[best].worker = t;
		load[t] += (uint64_t)in->idx->entries[best].size;
	}
}

/* Start n workers; how many started (fewer, with err set, if a thread could not be made). */
static int start_workers(struct input *in, struct worker *w, int n, struct rp_err *err)
{
	struct parallel_pass *pp = in->pass;
	int k;

	memset(w, 0, (size_t)n * sizeof(*w));
	for (k = 0; k < n; k++) {
		w[k].in = in;
		w[k].id = k;
		pthread_mutex_lock(&pp->mu);
		pp->running++;
		pthread_mutex_unlock(&pp->mu);
		if (pthread_create(&w[k].thread, NULL, worker_run, &w[k])) {
			pthread_mutex_lock(&pp->mu);
			pp->running--;
			pthread_mutex_unlock(&pp->mu);
			rp_errf(err, "cannot start hashing threads");
			break;
		}
	}
	return k;
}

/* Wait for every worker to finish, reporting progress a few times a second. */
static void wait_workers(struct input *in)
{
	struct parallel_pass *pp = in->pass;

	pthread_mutex_lock(&pp->mu);
	while (pp->running > 0) {
		struct timespec ts;
		uint64_t done;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&pp->cond, &pp->mu, &ts);
		done = pp->done;
		pthread_mutex_unlock(&pp->mu);
		if (in->b->opts.progress)
			in->b->opts.progress(in->b->opts.progress_ctx, in->idx->display, in->done + done,
					     in->total);
		pthread_mutex_lock(&pp->mu);
	}
	in->done += pp->done;
	pthread_mutex_unlock(&pp->mu);
}

static int parallel_pass(struct input *in, struct rp_err *err)
{
	struct worker w[PASS_THREADS];
	struct parallel_pass pp;
	size_t i, count = 0;
	int n = in->b->opts.threads < PASS_THREADS ? in->b->opts.threads : PASS_THREADS;
	int k, started, rc;

	for (i = 0; i < in->idx->n; i++) {
		in->res[i].worker = -1;
		count += hash_only(in, &in->res[i]);
	}
	if ((size_t)n > count)
		n = (int)count;
	if (n < 2 || !ar_seekable(in->idx))
		return 0;
	assign_workers(in, n);
	memset(&pp, 0, sizeof(pp));
	pthread_mutex_init(&pp.mu, NULL);
	pthread_cond_init(&pp.cond, NULL);
	in->pass = &pp;
	started = start_workers(in, w, n, err);
	rc = started < n ? -1 : 0;
	wait_workers(in);
	for (k = 0; k < started; k++) {
		pthread_join(w[k].thread, NULL);
		if (w[k].failed && rc == 0) {
			*err = w[k].err;
			rc = -1;
		}
	}
	in->pass = NULL;
	pthread_mutex_destroy(&pp.mu);
	pthread_cond_destroy(&pp.cond);
	return rc;
}

int bld_stream(struct input *in, struct rp_err *err)
{
	if (parallel_pass(in, err) < 0)
		return -1;
	return ar_stream(in->idx, want_entry, on_data, in, err);
}
