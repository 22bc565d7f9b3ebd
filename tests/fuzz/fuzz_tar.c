/* libFuzzer target: an input tarball (any compression libarchive detects) through the tar member
 * handling of builder/tarball.c and the format readers: the index pass with its caps, lookups,
 * link resolution confined to the archive, the streaming pass of every regular file, and the
 * docker-archive / OCI layout readers on top. Nothing is written anywhere.
 *
 * Invariants: a normalised entry name is found by ar_find, has no "." or ".." component, no
 * empty component and no leading "/"; resolving any name gives a regular file or an error; the
 * streaming pass gives each file exactly its size in bytes. */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "source.h"
#include "tarball.h"

static void check_name(const char *name)
{
	const char *p = name;

	FUZZ_ASSERT(*name && *name != '/');
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		FUZZ_ASSERT(len > 0);
		FUZZ_ASSERT(!(len == 1 && p[0] == '.'));
		FUZZ_ASSERT(!(len == 2 && p[0] == '.' && p[1] == '.'));
		if (!slash)
			break;
		p = slash + 1;
	}
}

struct stream_ctx {
	const struct ar_index *idx;
	int64_t *got;
};

static int want_all(void *ctx, const struct ar_entry *e)
{
	(void)ctx;
	(void)e;
	return 1;
}

static int count(void *vctx, const struct ar_entry *e, const void *buf, size_t len,
		 struct rp_err *err)
{
	struct stream_ctx *c = vctx;
	size_t i = (size_t)(e - c->idx->entries);

	(void)err;
	FUZZ_ASSERT(i < c->idx->n && e->type == AR_FILE);
	if (buf)
		c->got[i] += (int64_t)len;
	else
		FUZZ_ASSERT(c->got[i] == e->size);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_file(data, size);
	struct ar_index *idx = NULL;
	struct rp_err err;
	size_t i;

	if (ar_index_read(path, "fuzz", src_keep, &idx, &err) < 0)
		return 0;
	for (i = 0; i < idx->n; i++) {
		const struct ar_entry *e = &idx->entries[i], *f = NULL;

		FUZZ_ASSERT(e->raw);
		if (e->name) {
			check_name(e->name);
			FUZZ_ASSERT(ar_find(idx, e->name) != NULL);
		}
		if (ar_resolve(idx, e->raw, &f, &err) == 0)
			FUZZ_ASSERT(f && f->type == AR_FILE && f->name);
		if (e->link) {
			char *n = ar_normalize(e->name, e->link);

			if (n)
				check_name(n);
			free(n);
		}
	}
	{
		struct stream_ctx c = { idx, calloc(idx->n + 1, sizeof(int64_t)) };

		FUZZ_ASSERT(c.got);
		ar_stream(idx, want_all, count, &c, &err);
		free(c.got);
	}
	{
		const struct src_format *fmt = src_detect(idx, &err);
		struct src_images imgs;

		memset(&imgs, 0, sizeof(imgs));
		if (fmt && fmt->read(idx, &imgs, &err) == 0) {
			for (i = 0; i < imgs.n; i++) {
				size_t j;

				FUZZ_ASSERT(imgs.v[i].config && imgs.v[i].config->type == AR_FILE);
				for (j = 0; j < imgs.v[i].nlayers; j++)
					FUZZ_ASSERT(imgs.v[i].layers[j]->type == AR_FILE);
			}
			for (i = 0; i < imgs.nroots && fmt->blob; i++)
				fmt->blob(idx, imgs.roots[i].desc.hex);
			src_images_free(&imgs);
		}
	}
	ar_index_free(idx);
	return 0;
}
