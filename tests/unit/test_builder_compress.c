/* Unit tests of builder/compress.c: round trips for gzip, zstd and none, and the determinism the
 * header promises: the same output for any thread count and any way the input is cut into writes.
 * gzip is decoded twice, member by member with libdeflate and as a stream with libarchive's gzip
 * filter (two independent decoders); zstd with libzstd's streaming decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <archive.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "compress.h"

struct buf {
	unsigned char *p;
	size_t len, cap;
	int fail_after; /* sink: fail on call number fail_after (1-based), 0: never */
	int calls;
};

static int sink(void *ctx, const void *data, size_t len, struct rp_err *err)
{
	struct buf *b = ctx;

	b->calls++;
	if (b->fail_after && b->calls >= b->fail_after)
		return rp_errf(err, "sink full");
	if (len == 0)
		return 0;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + len)
			cap *= 2;
		b->p = realloc(b->p, cap);
		assert_non_null(b->p);
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

/* Input: text (compressible) then pseudo-random bytes (not), then text again. */
static unsigned char *make_input(size_t len)
{
	unsigned char *p = malloc(len ? len : 1);
	uint32_t x = 12345;
	size_t i;

	assert_non_null(p);
	for (i = 0; i < len; i++) {
		if ((i / 300000) % 2 == 0) {
			p[i] = (unsigned char)("the quick brown fox jumps over the lazy dog "[i % 44]);
		} else {
			x = x * 1103515245u + 12345u;
			p[i] = (unsigned char)(x >> 16);
		}
	}
	return p;
}

/* Compress in writes of chunk bytes (0: one write). */
static struct buf compress_all(enum rp_compression kind, int threads, const unsigned char *in,
			       size_t len, size_t chunk)
{
	struct buf out = { 0 };
	struct compressor *c = NULL;
	struct rp_err err = { "" };
	size_t off = 0;

	if (compressor_new(kind, threads, sink, &out, &c, &err) < 0)
		fail_msg("compressor_new: %s", err.msg);
	if (chunk == 0)
		chunk = len ? len : 1;
	while (off < len) {
		size_t n = len - off < chunk ? len - off : chunk;

		if (compressor_write(c, in + off, n, &err) < 0)
			fail_msg("compressor_write: %s", err.msg);
		off += n;
	}
	if (compressor_finish(c, &err) < 0)
		fail_msg("compressor_finish: %s", err.msg);
	compressor_free(c);
	return out;
}

/* Decode a multi-member gzip stream member by member with libdeflate, checking every member's
 * header (no mtime, no name: RFC 1952 fields that would break reproducibility) and that every
 * member but the last holds exactly RP_GZIP_CHUNK bytes. Returns the number of members. */
static size_t gunzip_members(const struct buf *z, unsigned char *out, size_t out_cap,
			     size_t *out_len)
{
	struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
	size_t off = 0, members = 0, last = 0;

	assert_non_null(d);
	*out_len = 0;
	while (off < z->len) {
		size_t in_used = 0, produced = 0;
		enum libdeflate_result r;

		if (z->len - off < 18)
			fail_msg("gzip member %zu: only %zu bytes", members + 1, z->len - off);
		assert_int_equal(z->p[off], 0x1f);
		assert_int_equal(z->p[off + 1], 0x8b);
		assert_int_equal(z->p[off + 2], 8); /* deflate */
		if (z->p[off + 3] != 0)
			fail_msg("gzip member %zu: FLG %#x (want 0: no name, comment, extra)",
				 members + 1, z->p[off + 3]);
		if (z->p[off + 4] || z->p[off + 5] || z->p[off + 6] || z->p[off + 7])
			fail_msg("gzip member %zu: mtime is not 0", members + 1);
		if (members && last != RP_GZIP_CHUNK)
			fail_msg("gzip member %zu holds %zu bytes, not %u", members, last,
				 RP_GZIP_CHUNK);
		r = libdeflate_gzip_decompress_ex(d, z->p + off, z->len - off, out + *out_len,
						  out_cap - *out_len, &in_used, &produced);
		if (r != LIBDEFLATE_SUCCESS)
			fail_msg("gzip member %zu at offset %zu: libdeflate result %d", members + 1, off,
				 (int)r);
		off += in_used;
		*out_len += produced;
		last = produced;
		members++;
	}
	libdeflate_free_decompressor(d);
	return members;
}

/* Decode any filter libarchive knows (gzip here) as one raw stream. */
static unsigned char *archive_decode(const struct buf *z, size_t *len)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	unsigned char *out = NULL;
	size_t cap = 0;
	la_ssize_t n;

	assert_non_null(a);
	archive_read_support_filter_all(a);
	archive_read_support_format_raw(a);
	assert_int_equal(archive_read_open_memory(a, z->p, z->len), ARCHIVE_OK);
	assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
	*len = 0;
	for (;;) {
		if (*len + 65536 > cap) {
			cap = cap ? cap * 2 : 1 << 20;
			out = realloc(out, cap);
			assert_non_null(out);
		}
		n = archive_read_data(a, out + *len, 65536);
		if (n < 0)
			fail_msg("libarchive: %s", archive_error_string(a));
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	archive_read_free(a);
	return out;
}

/* Decode every zstd frame; checks the magic and the checksum flag of the first frame header. */
static unsigned char *unzstd(const struct buf *z, size_t *len, size_t cap)
{
	ZSTD_DStream *ds = ZSTD_createDStream();
	unsigned char *out = malloc(cap + 1);
	ZSTD_inBuffer in = { z->p, z->len, 0 };
	size_t r = 0;

	assert_non_null(ds);
	assert_non_null(out);
	assert_true(z->len >= 5);
	assert_memory_equal(z->p, "\x28\xb5\x2f\xfd", 4);
	assert_int_equal(z->p[4] & 0x04, 0x04); /* Frame_Header_Descriptor: Content_Checksum_flag */
	*len = 0;
	while (in.pos < in.size) {
		ZSTD_outBuffer o = { out + *len, cap + 1 - *len, 0 };
		size_t before = in.pos;

		r = ZSTD_decompressStream(ds, &o, &in);
		if (ZSTD_isError(r))
			fail_msg("zstd: %s", ZSTD_getErrorName(r));
		*len += o.pos;
		if (*len > cap)
			fail_msg("zstd: more output than input");
		if (o.pos == 0 && in.pos == before)
			fail_msg("zstd: no progress");
	}
	assert_int_equal(r, 0); /* the last frame ended */
	ZSTD_freeDStream(ds);
	return out;
}

static void check_roundtrip(enum rp_compression kind, const struct buf *z, const unsigned char *in,
			    size_t len)
{
	unsigned char *out;
	size_t out_len = 0;

	switch (kind) {
	case RP_COMP_NONE:
		assert_int_equal(z->len, len);
		if (len)
			assert_memory_equal(z->p, in, len);
		break;
	case RP_COMP_GZIP:
		out = malloc(len + 1);
		assert_non_null(out);
		assert_true(gunzip_members(z, out, len + 1, &out_len) >= 1);
		assert_int_equal(out_len, len);
		if (len)
			assert_memory_equal(out, in, len);
		free(out);
		if (len == 0)
			break; /* libarchive's raw format refuses an empty stream */
		out = archive_decode(z, &out_len);
		assert_int_equal(out_len, len);
		assert_memory_equal(out, in, len);
		free(out);
		break;
	case RP_COMP_ZSTD:
		out = unzstd(z, &out_len, len);
		assert_int_equal(out_len, len);
		if (len)
			assert_memory_equal(out, in, len);
		free(out);
		break;
	}
}

#define BIG ((3u << 20) + 12345u) /* four gzip chunks, the last partial */

static void roundtrip(enum rp_compression kind)
{
	static const size_t sizes[] = { 0, 1, 1000, RP_GZIP_CHUNK - 1, RP_GZIP_CHUNK,
					RP_GZIP_CHUNK + 1, 2 * RP_GZIP_CHUNK, BIG };
	unsigned char *in = make_input(BIG);
	size_t i;
	int threads;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		for (threads = 1; threads <= 4; threads *= 2) {
			struct buf z = compress_all(kind, threads, in, sizes[i], 0);

			check_roundtrip(kind, &z, in, sizes[i]);
			free(z.p);
		}
	free(in);
}

static void test_gzip_roundtrip(void **state)
{
	(void)state;
	roundtrip(RP_COMP_GZIP);
}

static void test_zstd_roundtrip(void **state)
{
	(void)state;
	roundtrip(RP_COMP_ZSTD);
}

static void test_none_roundtrip(void **state)
{
	(void)state;
	roundtrip(RP_COMP_NONE);
}

/* Same bytes for every run, thread count and write size. */
static void deterministic(enum rp_compression kind, size_t len)
{
	static const size_t chunks[] = { 0, 1, 7, (1u << 20) + 3, 65536 };
	static const int threads[] = { 1, 2, 4, 1, 3 };
	unsigned char *in = make_input(len);
	struct buf ref = compress_all(kind, 1, in, len, 0);
	size_t i, k;

	check_roundtrip(kind, &ref, in, len);
	for (i = 0; i < sizeof(threads) / sizeof(threads[0]); i++)
		for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
			struct buf z;

			/* 1-byte writes are slow under sanitizers: only for the first two thread counts. */
			if (chunks[k] == 1 && i >= 2)
				continue;
			z = compress_all(kind, threads[i], in, len, chunks[k]);
			if (z.len != ref.len || memcmp(z.p, ref.p, z.len))
				fail_msg("%s: %zu bytes in, threads %d, writes of %zu: %zu bytes out, "
					 "differs from %zu bytes with 1 thread, one write",
					 compression_name(kind), len, threads[i], chunks[k], z.len,
					 ref.len);
			free(z.p);
		}
	free(ref.p);
	free(in);
}

static void test_gzip_deterministic(void **state)
{
	(void)state;
	deterministic(RP_COMP_GZIP, BIG);
	deterministic(RP_COMP_GZIP, 5000);
}

static void test_zstd_deterministic(void **state)
{
	(void)state;
	deterministic(RP_COMP_ZSTD, BIG);
	deterministic(RP_COMP_ZSTD, 5000);
}

static void test_none_deterministic(void **state)
{
	(void)state;
	deterministic(RP_COMP_NONE, 100000);
}

/* Larger inputs than zstd's multi-threaded job size: output still independent of workers and of
 * how the input is cut into writes. 24 MiB is a whole number of jobs (RP_ZSTD_JOB), the case where
 * zstd alone would end the frame differently depending on timing. */
static void test_zstd_threads_large(void **state)
{
	size_t len = 12 * (size_t)RP_ZSTD_JOB;
	unsigned char *in = make_input(len);
	struct buf ref = compress_all(RP_COMP_ZSTD, 1, in, len, 0);
	int threads;

	(void)state;
	check_roundtrip(RP_COMP_ZSTD, &ref, in, len);
	for (threads = 1; threads <= 4; threads *= 2) {
		struct buf z = compress_all(RP_COMP_ZSTD, threads, in, len, 100003);

		if (z.len != ref.len || memcmp(z.p, ref.p, z.len))
			fail_msg("zstd, 24 MiB: threads %d differ from 1", threads);
		free(z.p);
	}
	free(ref.p);
	free(in);
}

static void test_empty_input(void **state)
{
	struct buf z;

	(void)state;
	/* gzip: one valid, empty member. */
	z = compress_all(RP_COMP_GZIP, 1, NULL, 0, 0);
	assert_true(z.len >= 18);
	check_roundtrip(RP_COMP_GZIP, &z, NULL, 0);
	{
		struct buf z4 = compress_all(RP_COMP_GZIP, 4, NULL, 0, 0);

		assert_int_equal(z4.len, z.len);
		assert_memory_equal(z4.p, z.p, z.len);
		free(z4.p);
	}
	free(z.p);
	/* zstd: one valid frame with nothing in it. */
	z = compress_all(RP_COMP_ZSTD, 1, NULL, 0, 0);
	assert_true(z.len > 0);
	check_roundtrip(RP_COMP_ZSTD, &z, NULL, 0);
	free(z.p);
	/* none: nothing. */
	z = compress_all(RP_COMP_NONE, 1, NULL, 0, 0);
	assert_int_equal(z.len, 0);
	free(z.p);
}

static void test_gzip_header(void **state)
{
	unsigned char *in = make_input(100);
	struct buf z = compress_all(RP_COMP_GZIP, 1, in, 100, 0);

	(void)state;
	/* ID1 ID2 CM FLG MTIME(4) XFL OS: no FNAME (FLG bit 3), mtime 0. */
	assert_true(z.len > 18);
	assert_int_equal(z.p[0], 0x1f);
	assert_int_equal(z.p[1], 0x8b);
	assert_int_equal(z.p[2], 8);
	assert_int_equal(z.p[3] & 0x08, 0);
	assert_int_equal(z.p[3], 0);
	assert_int_equal(z.p[4] | z.p[5] | z.p[6] | z.p[7], 0);
	free(z.p);
	free(in);
}

static void test_sink_error(void **state)
{
	unsigned char *in = make_input(BIG);
	static const enum rp_compression kinds[] = { RP_COMP_GZIP, RP_COMP_ZSTD, RP_COMP_NONE };
	size_t k;
	int threads;

	(void)state;
	for (k = 0; k < 3; k++)
		for (threads = 1; threads <= 4; threads *= 2) {
			struct buf out = { 0 };
			struct compressor *c = NULL;
			struct rp_err err = { "" };
			int rc;

			out.fail_after = 1;
			assert_int_equal(compressor_new(kinds[k], threads, sink, &out, &c, &err), 0);
			rc = compressor_write(c, in, BIG, &err);
			if (rc == 0)
				rc = compressor_finish(c, &err);
			assert_int_equal(rc, -1);
			assert_string_equal(err.msg, "sink full");
			compressor_free(c); /* joins any workers, frees everything (LSan checks) */
			free(out.p);
		}
	free(in);
}

static void test_free_unfinished(void **state)
{
	unsigned char *in = make_input(BIG);
	int threads;

	(void)state;
	for (threads = 1; threads <= 4; threads *= 2) {
		struct buf out = { 0 };
		struct compressor *c = NULL;
		struct rp_err err = { "" };

		assert_int_equal(compressor_new(RP_COMP_GZIP, threads, sink, &out, &c, &err), 0);
		assert_int_equal(compressor_write(c, in, BIG, &err), 0);
		compressor_free(c);
		free(out.p);
		out.p = NULL;
		out.len = out.cap = 0;
		assert_int_equal(compressor_new(RP_COMP_ZSTD, threads, sink, &out, &c, &err), 0);
		assert_int_equal(compressor_write(c, in, BIG, &err), 0);
		compressor_free(c);
		free(out.p);
	}
	compressor_free(NULL);
	free(in);
}

/* Chunks alternate between the two levels by number, whatever the thread count: each member is
 * exactly what libdeflate gives for its chunk at its level (0: FAST, 1: GOOD, 2: FAST), and the
 * compression id names both levels, so no cached result of another scheme is reused. */
static void test_gzip_levels_alternate(void **state)
{
	size_t len = 3 * RP_GZIP_CHUNK, i;
	unsigned char *in = make_input(len);
	static const int levels[] = { RP_GZIP_LEVEL_FAST, RP_GZIP_LEVEL_GOOD, RP_GZIP_LEVEL_FAST };
	struct buf want = { 0 };
	char id[128], lv[32];
	int threads;

	(void)state;
	for (i = 0; i < 3; i++) {
		struct libdeflate_compressor *d = libdeflate_alloc_compressor(levels[i]);
		size_t cap = libdeflate_gzip_compress_bound(d, RP_GZIP_CHUNK);
		unsigned char *z = malloc(cap);
		size_t n;

		assert_non_null(z);
		n = libdeflate_gzip_compress(d, in + i * RP_GZIP_CHUNK, RP_GZIP_CHUNK, z, cap);
		assert_true(n > 0);
		if (i == 0) { /* the levels must differ on this input, or the test shows nothing */
			struct libdeflate_compressor *g = libdeflate_alloc_compressor(levels[1]);
			unsigned char *z2 = malloc(cap);

			assert_non_null(z2);
			assert_int_not_equal(libdeflate_gzip_compress(g, in, RP_GZIP_CHUNK, z2, cap), n);
			free(z2);
			libdeflate_free_compressor(g);
		}
		assert_int_equal(sink(&want, z, n, NULL), 0);
		free(z);
		libdeflate_free_compressor(d);
	}
	for (threads = 1; threads <= 3; threads++) {
		struct buf got = compress_all(RP_COMP_GZIP, threads, in, len, 0);

		if (got.len != want.len || memcmp(got.p, want.p, want.len))
			fail_msg("threads %d: %zu bytes, not the %zu of levels %d, %d, %d", threads,
				 got.len, want.len, levels[0], levels[1], levels[2]);
		free(got.p);
	}
	compression_id(RP_COMP_GZIP, id, sizeof(id));
	snprintf(lv, sizeof(lv), "-l%dl%d-", RP_GZIP_LEVEL_FAST, RP_GZIP_LEVEL_GOOD);
	assert_non_null(strstr(id, lv));
	free(want.p);
	free(in);
}

static void test_names(void **state)
{
	(void)state;
	assert_int_equal(compression_parse("gzip"), RP_COMP_GZIP);
	assert_int_equal(compression_parse("zstd"), RP_COMP_ZSTD);
	assert_int_equal(compression_parse("none"), RP_COMP_NONE);
	assert_int_equal(compression_parse("GZIP"), -1);
	assert_int_equal(compression_parse("gz"), -1);
	assert_int_equal(compression_parse(""), -1);
	assert_string_equal(compression_name(RP_COMP_GZIP), "gzip");
	assert_string_equal(compression_name(RP_COMP_ZSTD), "zstd");
	assert_string_equal(compression_name(RP_COMP_NONE), "none");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_gzip_header),
		cmocka_unit_test(test_gzip_levels_alternate),
		cmocka_unit_test(test_empty_input),
		cmocka_unit_test(test_gzip_roundtrip),
		cmocka_unit_test(test_zstd_roundtrip),
		cmocka_unit_test(test_none_roundtrip),
		cmocka_unit_test(test_gzip_deterministic),
		cmocka_unit_test(test_zstd_deterministic),
		cmocka_unit_test(test_none_deterministic),
		cmocka_unit_test(test_zstd_threads_large),
		cmocka_unit_test(test_sink_error),
		cmocka_unit_test(test_free_unfinished),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
