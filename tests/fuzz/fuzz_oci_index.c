/* libFuzzer target: an OCI layout's index.json, and the manifests and indexes it names, through
 * the OCI reader (builder/src_oci.c: descriptors, annotations, manifest.json merged as Docker 25
 * and containerd write it) and the build pipeline's walk of manifests and indexes (kept byte for
 * byte, or rebuilt when their layers are uncompressed).
 *
 * Input: index.json, then optionally NUL-separated blob A, blob B and a manifest.json. A and B are
 * stored under their own digests, which the others name with the placeholders of fuzz_build.h
 * (@A@ and @AS@ for A's digest hex and size, ...), as are the fixed config and layers. */
#include <stdint.h>
#include <string.h>

#include "fuzz_build.h"

/* The next NUL-separated part with the placeholders substituted, or NULL when there is none. */
static char *next_part(const uint8_t **p, size_t *len, const char *const (*pairs)[2], size_t n)
{
	const uint8_t *rest;
	size_t rest_len;
	char *raw, *out;

	if (!*p)
		return NULL;
	raw = fuzz_split(*p, *len, &rest, &rest_len);
	out = fuzz_subst(raw, pairs, n);
	free(raw);
	*p = rest;
	*len = rest_len;
	return out;
}

static void add_blob(struct fuzz_buf *tar, const void *data, size_t len)
{
	char name[RP_HEX_LEN + 16], hex[RP_HEX_LEN + 1];

	rp_sha256_buf(data, len, hex);
	snprintf(name, sizeof(name), "blobs/sha256/%s", hex);
	fuzz_tar_member(tar, name, '0', NULL, data, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_blob a = { NULL, 0, "", "" }, b = { NULL, 0, "", "" };
	const char *pairs[][2] = {
		{ "@U@", fuzz_u.hex }, { "@US@", fuzz_u.size }, { "@G@", fuzz_g.hex },
		{ "@GS@", fuzz_g.size }, { "@C@", fuzz_c.hex }, { "@CS@", fuzz_c.size },
		{ "@B@", "" }, { "@BS@", "0" }, { "@A@", "" }, { "@AS@", "0" },
	};
	const size_t npairs = sizeof(pairs) / sizeof(pairs[0]);
	struct fuzz_buf tar = { NULL, 0, 0 };
	const uint8_t *p = data;
	size_t len = size;
	char *index, *pa, *pb, *docker;

	fuzz_build_init();
	/* Parts in the input's order; substituted in dependency order: B, A, the rest. */
	index = fuzz_split(data, size, &p, &len);
	pa = next_part(&p, &len, NULL, 0);
	pb = next_part(&p, &len, pairs, 6);
	if (pb) {
		fuzz_blob_set(&b, pb, strlen(pb));
		pairs[6][1] = b.hex;
		pairs[7][1] = b.size;
	}
	if (pa) {
		char *s = fuzz_subst(pa, pairs, 8);

		fuzz_blob_set(&a, s, strlen(s));
		pairs[8][1] = a.hex;
		pairs[9][1] = a.size;
		free(s);
	}
	docker = next_part(&p, &len, pairs, npairs);
	{
		char *s = fuzz_subst(index, pairs, npairs);

		free(index);
		index = s;
	}
	fuzz_tar_member(&tar, "oci-layout", '0', NULL, "{\"imageLayoutVersion\":\"1.0.0\"}", 30);
	fuzz_tar_member(&tar, "blobs", '5', NULL, NULL, 0);
	fuzz_tar_member(&tar, "blobs/sha256", '5', NULL, NULL, 0);
	add_blob(&tar, fuzz_u.data, fuzz_u.len);
	add_blob(&tar, fuzz_g.data, fuzz_g.len);
	add_blob(&tar, fuzz_c.data, fuzz_c.len);
	if (a.data)
		add_blob(&tar, a.data, a.len);
	if (b.data && (!a.data || strcmp(a.hex, b.hex)))
		add_blob(&tar, b.data, b.len);
	if (docker)
		fuzz_tar_member(&tar, "manifest.json", '0', NULL, docker, strlen(docker));
	fuzz_tar_member(&tar, "index.json", '0', NULL, index, strlen(index));
	fuzz_tar_end(&tar);
	fuzz_build(fuzz_file(tar.p, tar.len), 0);
	free(tar.p);
	free(index);
	free(pa);
	free(pb);
	free(docker);
	free(a.data);
	free(b.data);
	return 0;
}
