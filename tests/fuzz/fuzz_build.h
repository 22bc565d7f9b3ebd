/* For the targets that fuzz an input format through the real build pipeline (builder_add and
 * builder_finish into a tree that is never committed): fixed blobs the fuzzed metadata can name,
 * and placeholders for their digests and sizes, since a fuzzer cannot compute a sha256.
 *
 *   @U@ @US@   an uncompressed layer tar (one file), its sha256 hex and size
 *   @G@ @GS@   the same layer gzip-compressed
 *   @C@ @CS@   an image config whose rootfs.diff_ids is [sha256:@U@]
 *   @A@ @AS@, @B@ @BS@   fuzzed blobs of the OCI target (B is substituted first, then A) */
#ifndef RP_FUZZ_BUILD_H
#define RP_FUZZ_BUILD_H

#include <libdeflate.h>

#include "build.h"
#include "digest.h"
#include "fsutil.h"
#include "fuzz.h"
#include "tree.h"

struct fuzz_blob {
	unsigned char *data;
	size_t len;
	char hex[RP_HEX_LEN + 1];
	char size[24];
};

static struct fuzz_blob fuzz_u, fuzz_g, fuzz_c;

static void fuzz_blob_set(struct fuzz_blob *b, const void *data, size_t len)
{
	free(b->data);
	b->data = malloc(len + 1);
	FUZZ_ASSERT(b->data);
	memcpy(b->data, data, len);
	b->data[len] = '\0';
	b->len = len;
	rp_sha256_buf(data, len, b->hex);
	snprintf(b->size, sizeof(b->size), "%zu", len);
}

/* Replace every placeholder name (e.g. "@U@") by its value; malloc'd, NUL-terminated. */
static char *fuzz_subst(const char *in, const char *const (*pairs)[2], size_t npairs)
{
	struct fuzz_buf out = { NULL, 0, 0 };
	const char *p = in;

	while (*p) {
		size_t i;

		for (i = 0; i < npairs; i++) {
			size_t n = strlen(pairs[i][0]);

			if (!strncmp(p, pairs[i][0], n)) {
				fuzz_put(&out, pairs[i][1], strlen(pairs[i][1]));
				p += n;
				break;
			}
		}
		if (i == npairs)
			fuzz_put(&out, p++, 1);
	}
	fuzz_put(&out, "", 1);
	return (char *)out.p;
}

static void fuzz_rmtree(void)
{
	rp_rmtree(fuzz_scratch_dir(), NULL);
}

/* The fixed blobs, once. */
static void fuzz_build_init(void)
{
	struct fuzz_buf u = { NULL, 0, 0 };
	struct libdeflate_compressor *z;
	unsigned char gz[4096];
	size_t gzlen;
	char *config;
	static const char *const cfg[][2] = { { "@U@", fuzz_u.hex } };

	if (fuzz_u.data)
		return;
	fuzz_tar_member(&u, "hello.txt", '0', NULL, "hello\n", 6);
	fuzz_tar_end(&u);
	fuzz_blob_set(&fuzz_u, u.p, u.len);
	free(u.p);
	z = libdeflate_alloc_compressor(6);
	FUZZ_ASSERT(z);
	gzlen = libdeflate_gzip_compress(z, fuzz_u.data, fuzz_u.len, gz, sizeof(gz));
	FUZZ_ASSERT(gzlen > 0);
	libdeflate_free_compressor(z);
	fuzz_blob_set(&fuzz_g, gz, gzlen);
	config = fuzz_subst("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},"
			    "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:@U@\"]}}",
			    cfg, 1);
	fuzz_blob_set(&fuzz_c, config, strlen(config));
	free(config);
	atexit(fuzz_rmtree);
}

/* Add the archive at path to a fresh tree (never committed), then settle its tags. */
static void fuzz_build(const char *path, int oci_format)
{
	char tree[128];
	struct layout_tree *t = NULL;
	struct builder *b = NULL;
	struct build_opts o;
	struct rp_err err;

	memset(&o, 0, sizeof(o));
	o.compression = RP_COMP_GZIP;
	o.oci = oci_format;
	o.threads = 1;
	o.untagged_repo = "untagged/images";
	snprintf(tree, sizeof(tree), "%s/tree", fuzz_scratch_dir());
	err.msg[0] = '\0';
	if (layout_open(tree, LAYOUT_WRITE, &t, &err) == 0 && builder_new(t, &o, &b, &err) == 0 &&
	    builder_add(b, path, "fuzz", &err) == 0)
		builder_finish(b, &err);
	if (getenv("FUZZ_DEBUG")) /* what happened to each input, when building the seeds */
		fprintf(stderr, "fuzz_build: %s\n", err.msg[0] ? err.msg : "ok");
	builder_free(b);
	layout_close(t);
}

#endif
