/* Unit tests of builder/tarball.c: indexing tarballs written here with libarchive (ustar, pax,
 * gzip), link resolution confined to the archive, duplicate and truncated archives, the metadata
 * caps, streaming, and path normalisation; sparse entries (read, and capped), the caps on names
 * and headers, compressions regpress does not read, and special files (issue 17). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "source.h"
#include "tarball.h"

/* ---- writing test archives ---- */

enum { F, D, L, H }; /* file, directory, symlink, hard link */

struct ent {
	int type;
	const char *name;
	const char *data; /* file contents; for L and H the link target */
	size_t size;	  /* for F: 0 means strlen(data); (size_t)-1 with data NULL: zeros */
};

enum { USTAR, PAX, PAX_GZIP };

struct fx {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/rp-tar-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/t.tar", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct rp_err err;

	rp_rmtree(f->dir, &err);
	free(f);
	return 0;
}

static size_t ent_size(const struct ent *e)
{
	return e->type != F ? 0 : e->size ? e->size : e->data ? strlen(e->data) : 0;
}

static void write_tar(const char *path, int format, const struct ent *ents, size_t n)
{
	struct archive *a = archive_write_new();
	static char zeros[65536];
	size_t i;

	assert_non_null(a);
	if (format == USTAR)
		assert_int_equal(archive_write_set_format_ustar(a), ARCHIVE_OK);
	else
		assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	if (format == PAX_GZIP)
		assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	else
		assert_int_equal(archive_write_add_filter_none(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();
		size_t size = ent_size(&ents[i]);

		archive_entry_set_pathname(ae, ents[i].name);
		archive_entry_set_mtime(ae, 0, 0);
		switch (ents[i].type) {
		case F:
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_perm(ae, 0644);
			archive_entry_set_size(ae, (la_int64_t)size);
			break;
		case D:
			archive_entry_set_filetype(ae, AE_IFDIR);
			archive_entry_set_perm(ae, 0755);
			break;
		case L:
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_set_perm(ae, 0777);
			archive_entry_set_symlink(ae, ents[i].data);
			break;
		case H:
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_perm(ae, 0644);
			archive_entry_set_hardlink(ae, ents[i].data);
			archive_entry_set_size(ae, 0);
			break;
		}
		if (archive_write_header(a, ae) != ARCHIVE_OK)
			fail_msg("write header %s: %s", ents[i].name, archive_error_string(a));
		if (ents[i].type == F) {
			size_t done = 0;

			while (done < size) {
				size_t k = size - done < sizeof(zeros) ? size - done : sizeof(zeros);
				la_ssize_t w = archive_write_data(a, ents[i].data ? ents[i].data + done
								: zeros, k);

				assert_int_equal(w, (la_ssize_t)k);
				done += k;
			}
		}
		archive_entry_free(ae);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static int keep_json(const char *name, int64_t size)
{
	(void)size;
	return strstr(name, ".json") ? AR_KEEP_MUST : 0;
}

static struct ar_index *index_ok(const char *path, ar_keep_fn keep)
{
	struct ar_index *idx = NULL;
	struct rp_err err = { "" };

	if (ar_index_read(path, "input.tar", keep, &idx, &err) < 0)
		fail_msg("ar_index_read: %s", err.msg);
	assert_non_null(idx);
	return idx;
}

/* ar_index_read must fail, with a message naming the input and containing want. */
static void index_fails(const char *path, ar_keep_fn keep, const char *want)
{
	struct ar_index *idx = (struct ar_index *)1;
	struct rp_err err = { "" };

	if (ar_index_read(path, "input.tar", keep, &idx, &err) == 0)
		fail_msg("ar_index_read accepted %s", path);
	assert_null(idx);
	if (!strstr(err.msg, "input.tar") || (want && !strstr(err.msg, want)))
		fail_msg("message '%s' lacks 'input.tar' or '%s'", err.msg, want ? want : "");
}

static void resolve_fails(const struct ar_index *idx, const char *ref, const char *want)
{
	const struct ar_entry *e = (const struct ar_entry *)1;
	struct rp_err err = { "" };

	if (ar_resolve(idx, ref, &e, &err) == 0)
		fail_msg("ar_resolve('%s') resolved to '%s'", ref, e->name);
	assert_null(e);
	if (!strstr(err.msg, "input.tar") || !strstr(err.msg, ref) || !strstr(err.msg, want))
		fail_msg("ar_resolve('%s'): message '%s' lacks 'input.tar', the name or '%s'", ref,
			 err.msg, want);
}

static const struct ar_entry *resolve_ok(const struct ar_index *idx, const char *ref)
{
	const struct ar_entry *e = NULL;
	struct rp_err err = { "" };

	if (ar_resolve(idx, ref, &e, &err) < 0)
		fail_msg("ar_resolve('%s'): %s", ref, err.msg);
	assert_non_null(e);
	assert_int_equal(e->type, AR_FILE);
	return e;
}

/* ---- tests ---- */

static const struct ent docker_like[] = {
	{ F, "manifest.json", "[{\"Config\":\"c.json\"}]", 0 },
	{ F, "c.json", "{\"config\":1}", 0 },
	{ D, "a/", NULL, 0 },
	{ D, "b/", NULL, 0 },
	{ F, "b/layer.tar", "LAYER-B-BYTES", 0 },
	{ L, "a/layer.tar", "../b/layer.tar", 0 },
	{ L, "./c//chain.tar", "../a/layer.tar", 0 },
	{ H, "d/hard.tar", "b/layer.tar", 0 },
	{ L, "e/dot.tar", "./../b/./layer.tar", 0 },
	{ F, "./big.bin", NULL, 100000 },
	{ F, "empty", "", 0 },
};

static void check_docker_like(const char *path)
{
	struct ar_index *idx = index_ok(path, keep_json);
	const struct ar_entry *e, *b;

	assert_int_equal(idx->n, sizeof(docker_like) / sizeof(docker_like[0]));
	/* Names are normalised; raw names kept for messages. */
	e = ar_find(idx, "c/chain.tar");
	assert_non_null(e);
	assert_string_equal(e->raw, "./c//chain.tar");
	assert_int_equal(e->type, AR_SYMLINK);
	assert_string_equal(e->link, "../a/layer.tar");
	assert_non_null(ar_find(idx, "a"));
	assert_int_equal(ar_find(idx, "a")->type, AR_DIR);
	assert_null(ar_find(idx, "a/"));
	assert_null(ar_find(idx, "nope"));
	assert_int_equal(ar_find(idx, "d/hard.tar")->type, AR_HARDLINK);
	/* Kept metadata is in memory, NUL-terminated; the rest is not. */
	e = ar_find(idx, "manifest.json");
	assert_non_null(e->data);
	assert_int_equal(e->data_len, strlen(docker_like[0].data));
	assert_string_equal((const char *)e->data, docker_like[0].data);
	assert_null(ar_find(idx, "b/layer.tar")->data);
	assert_int_equal(ar_find(idx, "big.bin")->size, 100000);

	b = resolve_ok(idx, "b/layer.tar");
	assert_string_equal(b->name, "b/layer.tar");
	assert_int_equal(b->size, 13);
	assert_ptr_equal(resolve_ok(idx, "a/layer.tar"), b);	  /* ../b/layer.tar from a/ */
	assert_ptr_equal(resolve_ok(idx, "./a//layer.tar"), b); /* the ref is normalised too */
	assert_ptr_equal(resolve_ok(idx, "c/chain.tar"), b);	  /* two hops */
	assert_ptr_equal(resolve_ok(idx, "d/hard.tar"), b);	  /* hard links: from the root */
	assert_ptr_equal(resolve_ok(idx, "e/dot.tar"), b);
	resolve_fails(idx, "a", "not a regular file");
	resolve_fails(idx, "missing.tar", "not in the archive");
	ar_index_free(idx);
}

static void test_ustar(void **state)
{
	struct fx *f = *state;

	write_tar(f->path, USTAR, docker_like, sizeof(docker_like) / sizeof(docker_like[0]));
	check_docker_like(f->path);
}

static void test_pax(void **state)
{
	struct fx *f = *state;

	write_tar(f->path, PAX, docker_like, sizeof(docker_like) / sizeof(docker_like[0]));
	check_docker_like(f->path);
}

static void test_gzip_compressed(void **state)
{
	struct fx *f = *state;
	unsigned char magic[2];
	FILE *fp;

	write_tar(f->path, PAX_GZIP, docker_like, sizeof(docker_like) / sizeof(docker_like[0]));
	fp = fopen(f->path, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(magic, 1, 2, fp), 2);
	fclose(fp);
	assert_int_equal(magic[0], 0x1f); /* really gzip on disk */
	assert_int_equal(magic[1], 0x8b);
	check_docker_like(f->path);
}

static void test_resolve_errors(void **state)
{
	struct fx *f = *state;
	static const struct ent ents[] = {
		{ D, "b/", NULL, 0 },
		{ F, "b/layer.tar", "x", 0 },
		{ L, "abs.tar", "/b/layer.tar", 0 },
		{ L, "a/up.tar", "../../etc/passwd", 0 },
		{ L, "a/up2.tar", "../b/../../b/layer.tar", 0 },
		{ L, "loop1", "loop2", 0 },
		{ L, "loop2", "loop1", 0 },
		{ L, "self", "self", 0 },
		{ L, "a/dangling.tar", "../b/nope.tar", 0 },
		{ H, "hard-missing", "b/gone", 0 },
		{ H, "hard-up", "../b/layer.tar", 0 },
		{ L, "to-dir", "b", 0 },
	};
	struct ar_index *idx;

	write_tar(f->path, PAX, ents, sizeof(ents) / sizeof(ents[0]));
	idx = index_ok(f->path, NULL);
	resolve_fails(idx, "abs.tar", "leads outside the archive");
	resolve_fails(idx, "a/up.tar", "leads outside the archive");
	resolve_fails(idx, "a/up2.tar", "leads outside the archive");
	resolve_fails(idx, "loop1", "too many levels of links");
	resolve_fails(idx, "self", "too many levels of links");
	resolve_fails(idx, "a/dangling.tar", "not in the archive");
	resolve_fails(idx, "hard-missing", "not in the archive");
	resolve_fails(idx, "hard-up", "leads outside the archive");
	resolve_fails(idx, "to-dir", "not a regular file");
	resolve_fails(idx, "b", "not a regular file");
	/* The reference itself may not escape either. */
	resolve_fails(idx, "/b/layer.tar", "leads outside the archive");
	resolve_fails(idx, "../b/layer.tar", "leads outside the archive");
	resolve_fails(idx, "", "leads outside the archive");
	ar_index_free(idx);
}

static void test_dangling_names_target(void **state)
{
	struct fx *f = *state;
	static const struct ent ents[] = {
		{ F, "b/layer.tar", "x", 0 },
		{ L, "a/dangling.tar", "../b/nope.tar", 0 },
	};
	const struct ar_entry *e;
	struct ar_index *idx;
	struct rp_err err = { "" };

	/* The message must not claim that a/dangling.tar, which is there, is missing: it names the
	 * link's target that is. */
	write_tar(f->path, PAX, ents, 2);
	idx = index_ok(f->path, NULL);
	assert_int_equal(ar_resolve(idx, "a/dangling.tar", &e, &err), -1);
	if (!strstr(err.msg, "b/nope.tar"))
		fail_msg("message '%s' does not name the missing target 'b/nope.tar'", err.msg);
	ar_index_free(idx);
}

static void test_escaping_entry_name(void **state)
{
	struct fx *f = *state;
	static const struct ent ents[] = {
		{ F, "../evil", "x", 0 },
		{ F, "ok", "y", 0 },
	};
	struct ar_index *idx;

	/* Names are only keys: an escaping name is indexed without a name and never found. */
	write_tar(f->path, PAX, ents, 2);
	idx = index_ok(f->path, keep_json);
	assert_int_equal(idx->n, 2);
	assert_null(idx->entries[0].name);
	assert_string_equal(idx->entries[0].raw, "../evil");
	assert_non_null(ar_find(idx, "ok"));
	assert_null(ar_find(idx, "evil"));
	assert_null(ar_find(idx, ""));
	ar_index_free(idx);
}

static void test_duplicates(void **state)
{
	struct fx *f = *state;
	static const struct ent dup_files[] = {
		{ F, "x/layer.tar", "one", 0 },
		{ F, "y", "", 0 },
		{ F, "./x//layer.tar", "two", 0 },
	};
	static const struct ent dup_link[] = {
		{ F, "manifest.json", "[]", 0 },
		{ L, "manifest.json", "other.json", 0 },
	};
	static const struct ent dup_dirs[] = {
		{ D, "x/", NULL, 0 },
		{ F, "x/a", "1", 0 },
		{ D, "./x", NULL, 0 },
	};
	static const struct ent dup_dir_file[] = {
		{ D, "x/", NULL, 0 },
		{ F, "x", "1", 0 },
	};
	struct ar_index *idx;

	write_tar(f->path, PAX, dup_files, 3);
	index_fails(f->path, NULL, "appears more than once");
	write_tar(f->path, PAX, dup_link, 2);
	index_fails(f->path, keep_json, "appears more than once");
	write_tar(f->path, PAX, dup_dir_file, 2);
	index_fails(f->path, NULL, "appears more than once");
	/* A directory listed twice is harmless (tar does it). */
	write_tar(f->path, PAX, dup_dirs, 3);
	idx = index_ok(f->path, NULL);
	assert_int_equal(idx->n, 3);
	ar_index_free(idx);
}

static void truncate_to(const char *path, off_t len)
{
	assert_int_equal(truncate(path, len), 0);
}

static void test_truncated(void **state)
{
	struct fx *f = *state;
	static const struct ent ents[] = {
		{ F, "manifest.json", NULL, 3000 }, /* header at 0, data 512..3512, padded to 3584 */
		{ F, "layer.tar", NULL, 5000 },	    /* header at 3584, data at 4096 */
		{ F, "z", "end", 0 },
	};
	static const off_t cuts[] = { 100, 1000, 3584 + 100, 4096 + 2000 };
	size_t i;

	for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		/* Kept (metadata) and skipped entries alike. */
		write_tar(f->path, USTAR, ents, 3);
		truncate_to(f->path, cuts[i]);
		index_fails(f->path, keep_json, NULL);
		write_tar(f->path, USTAR, ents, 3);
		truncate_to(f->path, cuts[i]);
		index_fails(f->path, NULL, NULL);
	}
	/* Gzip-compressed and cut in the middle. */
	write_tar(f->path, PAX_GZIP, ents, 3);
	{
		struct stat st;

		assert_int_equal(stat(f->path, &st), 0);
		truncate_to(f->path, st.st_size / 2);
	}
	index_fails(f->path, NULL, NULL);
}

static int want_all(void *ctx, const struct ar_entry *e)
{
	(void)ctx;
	(void)e;
	return 1;
}

struct collect {
	char names[1024];
	unsigned char *buf[16];
	size_t len[16];
	int ends[16];
	int n;
	const struct ar_index *idx;
};

static int collect_data(void *vctx, const struct ar_entry *e, const void *buf, size_t len,
			struct rp_err *err)
{
	struct collect *c = vctx;
	int i = (int)(e - c->idx->entries);

	(void)err;
	assert_true(i >= 0 && i < 16);
	if (!buf) {
		c->ends[i]++;
		strcat(c->names, e->name);
		strcat(c->names, ";");
		return 0;
	}
	assert_int_equal(c->ends[i], 0); /* no data after the end call */
	c->buf[i] = realloc(c->buf[i], c->len[i] + len);
	assert_non_null(c->buf[i]);
	memcpy(c->buf[i] + c->len[i], buf, len);
	c->len[i] += len;
	return 0;
}

static void collect_free(struct collect *c)
{
	int i;

	for (i = 0; i < 16; i++)
		free(c->buf[i]);
}

static void test_stream_truncated_after_index(void **state)
{
	struct fx *f = *state;
	static const struct ent ents[] = {
		{ F, "manifest.json", NULL, 3000 },
		{ F, "layer.tar", NULL, 5000 },
		{ F, "z", "end", 0 },
	};
	struct ar_index *idx;
	struct rp_err err = { "" };
	struct collect c;

	write_tar(f->path, USTAR, ents, 3);
	idx = index_ok(f->path, NULL);
	truncate_to(f->path, 4096 + 2000); /* in layer.tar's data */
	memset(&c, 0, sizeof(c));
	c.idx = idx;
	assert_int_equal(ar_stream(idx, want_all, collect_data, &c, &err), -1);
	assert_non_null(strstr(err.msg, "input.tar"));
	assert_int_equal(c.ends[1], 0); /* layer.tar never reported complete */
	collect_free(&c);
	ar_index_free(idx);
}

static int want_tar(void *ctx, const struct ar_entry *e)
{
	(void)ctx;
	return strstr(e->name, ".tar") != NULL;
}

static void test_stream(void **state)
{
	struct fx *f = *state;
	static char big[300000];
	struct ent ents[] = {
		{ F, "manifest.json", "[]", 0 },
		{ F, "one.tar", "first", 0 },
		{ L, "link.tar", "one.tar", 0 },
		{ F, "two.tar", big, sizeof(big) },
		{ F, "skip.bin", "nope", 0 },
		{ F, "empty.tar", "", 0 },
	};
	struct ar_index *idx;
	struct rp_err err = { "" };
	struct collect c;
	size_t i;
	int fmt;

	for (i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 23);
	big[sizeof(big) - 1] = 'Z';
	for (fmt = USTAR; fmt <= PAX_GZIP; fmt++) {
		write_tar(f->path, fmt, ents, 6);
		idx = index_ok(f->path, keep_json);
		memset(&c, 0, sizeof(c));
		c.idx = idx;
		if (ar_stream(idx, want_tar, collect_data, &c, &err) < 0)
			fail_msg("ar_stream: %s", err.msg);
		/* Regular files only, in archive order, each ended once. */
		assert_string_equal(c.names, "one.tar;two.tar;empty.tar;");
		assert_int_equal(c.len[1], 5);
		assert_memory_equal(c.buf[1], "first", 5);
		assert_int_equal(c.len[3], sizeof(big));
		assert_memory_equal(c.buf[3], big, sizeof(big));
		assert_int_equal(c.len[5], 0);
		assert_int_equal(c.ends[5], 1);
		assert_int_equal(c.ends[4], 0);
		collect_free(&c);
		ar_index_free(idx);
	}
}

static int fail_data(void *vctx, const struct ar_entry *e, const void *buf, size_t len,
		     struct rp_err *err)
{
	(void)vctx;
	(void)buf;
	(void)len;
	return rp_errf(err, "callback refused %s", e->name);
}

static void test_stream_callback_error(void **state)
{
	struct fx *f = *state;
	static const struct ent ents[] = { { F, "one.tar", "first", 0 } };
	struct ar_index *idx;
	struct rp_err err = { "" };

	write_tar(f->path, PAX, ents, 1);
	idx = index_ok(f->path, NULL);
	assert_int_equal(ar_stream(idx, want_all, fail_data, NULL, &err), -1);
	assert_string_equal(err.msg, "callback refused one.tar");
	ar_index_free(idx);
}

static void test_load(void **state)
{
	struct fx *f = *state;
	static const struct ent ents[] = {
		{ F, "a.cfg", "{\"late\":true}", 0 },
		{ F, "b.cfg", "", 0 },
		{ F, "c.json", "kept", 0 },
	};
	const struct ar_entry *want[3];
	struct ar_index *idx;
	struct rp_err err = { "" };

	write_tar(f->path, PAX, ents, 3);
	idx = index_ok(f->path, keep_json);
	want[0] = ar_find(idx, "a.cfg");
	want[1] = ar_find(idx, "b.cfg"); /* an empty file: loaded as "" */
	want[2] = ar_find(idx, "c.json");
	assert_null(want[0]->data);
	assert_null(want[1]->data);
	assert_non_null(want[2]->data);
	if (ar_load(idx, want, 3, &err) < 0)
		fail_msg("ar_load: %s", err.msg);
	assert_non_null(want[0]->data);
	assert_string_equal((const char *)want[0]->data, "{\"late\":true}");
	assert_int_equal(want[0]->data_len, 13);
	assert_non_null(want[1]->data);
	assert_int_equal(want[1]->data_len, 0);
	assert_string_equal((const char *)want[1]->data, "");
	assert_string_equal((const char *)want[2]->data, "kept");
	ar_index_free(idx);
}

static void test_metadata_caps(void **state)
{
	struct fx *f = *state;
	static const struct ent too_big[] = {
		{ F, "layer.tar", "x", 0 },
		{ F, "manifest.json", NULL, AR_META_MAX + 1 },
	};
	static const struct ent just_fits[] = {
		{ F, "manifest.json", NULL, AR_META_MAX },
	};
	static const struct ent may_big[] = {
		{ F, "manifest.json", "[]", 0 },
		{ F, "cfg/big.json", NULL, AR_META_MAX + 1 },
	};
	struct ar_index *idx;
	struct rp_err err = { "" };
	const struct ar_entry *e;

	write_tar(f->path, PAX, too_big, 2);
	index_fails(f->path, src_keep, "'manifest.json' is 16777217 bytes, more than the 16 MiB "
		    "allowed for metadata");
	write_tar(f->path, PAX, just_fits, 1);
	idx = index_ok(f->path, src_keep);
	e = ar_find(idx, "manifest.json");
	assert_non_null(e->data);
	assert_int_equal(e->data_len, AR_META_MAX);
	ar_index_free(idx);
	/* AR_KEEP_MAY: too large is not an error at index time, only not kept; ar_load refuses it. */
	write_tar(f->path, PAX, may_big, 2);
	idx = index_ok(f->path, src_keep);
	e = ar_find(idx, "cfg/big.json");
	assert_null(e->data);
	assert_int_equal(ar_load(idx, &e, 1, &err), -1);
	assert_non_null(strstr(err.msg, "cfg/big.json"));
	assert_non_null(strstr(err.msg, "too large"));
	ar_index_free(idx);
}

static void test_not_archives(void **state)
{
	struct fx *f = *state;
	struct rp_err err = { "" };
	FILE *fp;

	fp = fopen(f->path, "w");
	assert_non_null(fp);
	fclose(fp);
	index_fails(f->path, NULL, "empty file");
	fp = fopen(f->path, "w");
	assert_non_null(fp);
	fputs("this is not a tar archive, just some text that goes on for a while.\n", fp);
	fclose(fp);
	index_fails(f->path, NULL, NULL);
	{
		struct ar_index *idx = (struct ar_index *)1;
		char *missing = rp_join(f->dir, "missing.tar");

		assert_int_equal(ar_index_read(missing, "input.tar", NULL, &idx, &err), -1);
		assert_null(idx);
		assert_non_null(strstr(err.msg, "input.tar"));
		free(missing);
	}
	/* An archive with no entries at all (just the end blocks). */
	write_tar(f->path, USTAR, NULL, 0);
	index_fails(f->path, NULL, "empty archive");
	ar_index_free(NULL);
}

/* ---- issue 17: sparse entries, names, compressions, special files ---- */

struct region {
	int64_t off, len;
};

/* One sparse entry (libarchive's pax writer: GNU sparse 1.0, as `tar -S --format=posix`):
 * size bytes, data ('a' + offset % 26) in the regions, holes elsewhere. The writer takes the
 * whole content and stores the regions, so entries too large to write, and the caps on them,
 * are in the corpus instead (tests/bad/mkbad.py writes their headers by hand). */
static void add_sparse(struct archive *a, const char *name, int64_t size, const struct region *r,
		       size_t n)
{
	struct archive_entry *ae = archive_entry_new();
	static char buf[65536];
	int64_t done = 0;
	size_t i;

	archive_entry_set_pathname(ae, name);
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_perm(ae, 0644);
	archive_entry_set_size(ae, size);
	for (i = 0; i < n; i++)
		archive_entry_sparse_add_entry(ae, r[i].off, r[i].len);
	if (archive_write_header(a, ae) != ARCHIVE_OK)
		fail_msg("write header %s: %s", name, archive_error_string(a));
	while (done < size) {
		size_t k = size - done < (int64_t)sizeof(buf) ? (size_t)(size - done) : sizeof(buf);
		size_t j, m;

		for (j = 0; j < k; j++) {
			int64_t at = done + (int64_t)j;

			buf[j] = 0;
			for (m = 0; m < n; m++)
				if (at >= r[m].off && at < r[m].off + r[m].len)
					buf[j] = (char)('a' + at % 26);
		}
		assert_int_equal(archive_write_data(a, buf, k), (la_ssize_t)k);
		done += (int64_t)k;
	}
	archive_entry_free(ae);
}

static struct archive *pax_writer(const char *path, int gz)
{
	struct archive *a = archive_write_new();

	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax(a), ARCHIVE_OK);
	assert_int_equal(gz ? archive_write_add_filter_gzip(a) : archive_write_add_filter_none(a),
			 ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	return a;
}

static void writer_close(struct archive *a)
{
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

/* The bytes a sparse entry stands for: its regions' data, zeros in the holes. */
static void check_sparse_bytes(const unsigned char *got, size_t len, int64_t size,
			       const struct region *r, size_t n)
{
	size_t i, k;

	assert_int_equal(len, (size_t)size);
	for (i = 0; i < len; i++) {
		int want = 0;

		for (k = 0; k < n; k++)
			if ((int64_t)i >= r[k].off && (int64_t)i < r[k].off + r[k].len)
				want = 'a' + (int)(i % 26);
		if (got[i] != want)
			fail_msg("byte %zu is %d, want %d", i, got[i], want);
	}
}

static void test_sparse_read(void **state)
{
	struct fx *f = *state;
	static const struct region mixed[] = { { 4096, 512 }, { 200000, 100 } };
	static const struct region kept[] = { { 0, 10 } };
	static const struct region last[] = { { (1 << 20) - 1, 1 } };
	struct ar_index *idx;
	struct rp_err err = { "" };
	struct collect c;
	int gz;

	for (gz = 0; gz <= 1; gz++) { /* plain: read blocks skip; compressed: read through */
		struct archive *a = pax_writer(f->path, gz);

		/* a hole and one byte, holes inside and at the end, and a kept (metadata) file with
		 * a hole at its end (libarchive cannot write an entry of holes only: GNU tar's,
		 * tests/e2e/50-bad-inputs.sh) */
		add_sparse(a, "zero.tar", 1 << 20, last, 1);
		add_sparse(a, "mixed.tar", 300000, mixed, 2);
		add_sparse(a, "m.json", 20, kept, 1);
		writer_close(a);
		idx = index_ok(f->path, keep_json);
		assert_int_equal(ar_find(idx, "zero.tar")->size, 1 << 20);
		check_sparse_bytes(ar_find(idx, "m.json")->data, ar_find(idx, "m.json")->data_len,
				   20, kept, 1);
		memset(&c, 0, sizeof(c));
		c.idx = idx;
		if (ar_stream(idx, want_tar, collect_data, &c, &err) < 0)
			fail_msg("ar_stream: %s", err.msg);
		assert_string_equal(c.names, "zero.tar;mixed.tar;");
		check_sparse_bytes(c.buf[0], c.len[0], 1 << 20, last, 1);
		check_sparse_bytes(c.buf[1], c.len[1], 300000, mixed, 2);
		collect_free(&c);
		ar_index_free(idx);
	}
}

static void test_name_caps(void **state)
{
	struct fx *f = *state;
	static char name[AR_NAME_MAX + 2], target[AR_NAME_MAX + 2];
	struct ent ents[] = { { F, name, "x", 0 } };
	struct ent link[] = { { L, "link", target, 0 } };
	struct ar_index *idx;
	struct archive *a;
	size_t i;

	memset(name, 'n', AR_NAME_MAX);
	write_tar(f->path, PAX, ents, 1);
	idx = index_ok(f->path, NULL); /* exactly the cap */
	assert_int_equal(strlen(idx->entries[0].raw), AR_NAME_MAX);
	ar_index_free(idx);
	name[AR_NAME_MAX] = 'n';
	write_tar(f->path, PAX, ents, 1);
	index_fails(f->path, NULL, "entry name of 4097 bytes, more than the 4096 allowed");
	memset(target, 't', AR_NAME_MAX + 1);
	write_tar(f->path, PAX, link, 1);
	index_fails(f->path, NULL, "link target of 4097 bytes, more than the 4096 allowed");
	/* 4200 names of 4000 bytes: each allowed, together (kept twice) over 32 MiB */
	a = pax_writer(f->path, 1);
	for (i = 0; i < 4200; i++) {
		struct archive_entry *ae = archive_entry_new();

		memset(name, 'n', 4000);
		snprintf(name, 8, "%06zu", i);
		name[6] = 'n';
		name[4000] = '\0';
		archive_entry_set_pathname(ae, name);
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_perm(ae, 0644);
		archive_entry_set_size(ae, 0);
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		archive_entry_free(ae);
	}
	writer_close(a);
	index_fails(f->path, NULL, "more than 32 MiB of entry names and link targets");
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void test_unsupported_compression(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *bytes;
		size_t len;
		const char *want;
	} magics[] = {
		{ "LRZI\0\x06\0\0\0\0\0\0\0\0junkjunk", 22, "unsupported compression lrzip" },
		{ "\x89LZO\0\r\n\x1a\n\x10\x30\x20\xa0\x09\x40\x03\x05junk", 21,
		  "unsupported compression lzop" },
		{ "GRZipII\0\x02\x04:)junkjunk", 20, "unsupported compression grzip" },
		{ "\x04\x22\x4d\x18\x64\x40\xa7junkjunk", 15, "unsupported compression lz4" },
	};
	struct archive *a;
	struct archive_entry *ae;
	size_t i;

	for (i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
		write_bytes(f->path, magics[i].bytes, magics[i].len);
		index_fails(f->path, NULL, magics[i].want);
	}
	/* the same inside a compression regpress reads */
	a = archive_write_new();
	assert_int_equal(archive_write_set_format_raw(a), ARCHIVE_OK);
	assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, f->path), ARCHIVE_OK);
	ae = archive_entry_new();
	archive_entry_set_filetype(ae, AE_IFREG);
	assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
	assert_int_equal(archive_write_data(a, magics[0].bytes, magics[0].len),
			 (la_ssize_t)magics[0].len);
	archive_entry_free(ae);
	writer_close(a);
	index_fails(f->path, NULL, "unsupported compression lrzip (inside gzip)");
}

static void test_special_files(void **state)
{
	struct fx *f = *state;
	static const struct ent ents[] = { { F, "one.tar", "first", 0 } };
	char *other = rp_join(f->dir, "other.tar");
	struct ar_index *idx = (struct ar_index *)1;
	struct rp_err err = { "" };

	/* refused by type, without opening: a FIFO with no writer cannot hang the index */
	assert_int_equal(mkfifo(f->path, 0600), 0);
	index_fails(f->path, NULL, "a FIFO, not a tar archive or an OCI layout directory");
	assert_int_equal(ar_index_read("/dev/null", "input.tar", NULL, &idx, &err), -1);
	assert_non_null(strstr(err.msg, "a character device"));
	/* a file replaced between passes is not read as if it were the one indexed */
	unlink(f->path);
	write_tar(f->path, PAX, ents, 1);
	idx = index_ok(f->path, NULL);
	write_tar(other, PAX, ents, 1);
	assert_int_equal(rename(other, f->path), 0);
	assert_int_equal(ar_stream(idx, want_all, fail_data, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "changed while reading"));
	ar_index_free(idx);
	/* ... nor a FIFO put in its place */
	idx = index_ok(f->path, NULL);
	unlink(f->path);
	assert_int_equal(mkfifo(f->path, 0600), 0);
	assert_int_equal(ar_stream(idx, want_all, fail_data, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "a FIFO"));
	ar_index_free(idx);
	unlink(f->path);
	free(other);
}

static void norm(const char *base, const char *path, const char *want)
{
	char *got = ar_normalize(base, path);

	if (!want && got)
		fail_msg("ar_normalize('%s', '%s') = '%s', want NULL", base ? base : "(null)", path,
			 got);
	if (want && (!got || strcmp(got, want)))
		fail_msg("ar_normalize('%s', '%s') = '%s', want '%s'", base ? base : "(null)", path,
			 got ? got : "NULL", want);
	free(got);
}

static void test_normalize(void **state)
{
	(void)state;
	norm(NULL, "./a//b/", "a/b");
	norm(NULL, "a/../../x", NULL);
	norm(NULL, "a/b", "a/b");
	norm(NULL, "/a/b", "a/b");
	norm(NULL, "//a///b//", "a/b");
	norm(NULL, "a/./b/../c", "a/c");
	norm(NULL, "a/b/../../c", "c");
	norm(NULL, "a/..", NULL); /* empty */
	norm(NULL, ".", NULL);
	norm(NULL, "./", NULL);
	norm(NULL, "", NULL);
	norm(NULL, "/", NULL);
	norm(NULL, "..", NULL);
	norm(NULL, "../a", NULL);
	norm(NULL, "/../a", NULL);
	norm(NULL, "a/../../a", NULL); /* escaping and coming back is still escaping */
	norm(NULL, "...", "...");	/* just a name */
	norm(NULL, "a..b/.c", "a..b/.c");
	norm(NULL, "sha256:abc/x", "sha256:abc/x");
	/* Relative to a base directory (symlink targets). */
	norm("a", "../b/layer.tar", "b/layer.tar");
	norm("a/b", "../c", "a/c");
	norm("a/b", "./c", "a/b/c");
	norm("a", "../../c", NULL);
	norm("", "x", "x");
	norm("a", "/x", "x"); /* absolute: not joined (callers refuse absolute links) */
	norm("a/", "x", "a/x");
	norm("a", "..", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize),
		cmocka_unit_test_setup_teardown(test_ustar, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pax, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gzip_compressed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dangling_names_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaping_entry_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_truncated_after_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_callback_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_archives, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_compression, setup, teardown),
		cmocka_unit_test_setup_teardown(test_special_files, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
