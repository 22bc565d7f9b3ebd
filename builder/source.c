#include "source.h"

#include <stdlib.h>
#include <string.h>

/* Cheapest first; see each file for what it reads. */
static const struct src_format *const formats[] = {
	&src_docker_archive,
	&src_oci_layout,
	&src_regpress_tree,
};

int src_keep(const char *name, int64_t size)
{
	const char *base = strrchr(name, '/');
	size_t len = strlen(name);

	base = base ? base + 1 : name;
	if (!strcmp(name, "manifest.json") || !strcmp(name, "index.json") ||
	    !strcmp(name, "oci-layout") || !strcmp(name, "repositories") ||
	    !strcmp(name, "registry/snapshot"))
		return AR_KEEP_MUST;
	/* Configs (legacy <hex>.json) and, in OCI layouts, manifests and configs among the blobs:
	 * kept while small and under the cap; anything else needed is loaded by one more pass. */
	if (len >= 5 && !strcmp(name + len - 5, ".json") && strcmp(base, "json"))
		return AR_KEEP_MAY;
	if (!strncmp(name, "blobs/", 6) && size <= (64 << 10))
		return AR_KEEP_MAY;
	return 0;
}

const struct src_format *src_detect(const struct ar_index *idx, struct rp_err *err)
{
	const struct src_format *best = NULL;
	int best_bid = 0;
	size_t i;

	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		int b = formats[i]->bid(idx);

		if (b > best_bid) {
			best_bid = b;
			best = formats[i];
		}
	}
	if (!best && idx->is_dir)
		rp_errf(err, "'%s': a directory, but not an OCI layout (files oci-layout and index.json) "
			"nor an unpacked docker save (a file manifest.json)", idx->display);
	else if (!best)
		rp_errf(err, "'%s': unrecognized input format (neither manifest.json nor an OCI "
			"index.json: not a docker save, OCI archive or OCI layout)", idx->display);
	return best;
}

enum src_desc_fault src_desc_parse(json_t *d, struct src_desc *out)
{
	const char *digest = json_string_value(json_object_get(d, "digest"));
	const char *mt = json_string_value(json_object_get(d, "mediaType"));
	json_t *size = json_object_get(d, "size");
	const char *hex;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(d))
		return SRC_DESC_NOT_OBJECT;
	if (!digest || !rp_digest_parse(digest, &hex))
		return SRC_DESC_BAD_DIGEST;
	if (!json_is_integer(size) || json_integer_value(size) < 0)
		return SRC_DESC_BAD_SIZE;
	memcpy(out->hex, hex, RP_HEX_LEN + 1);
	out->size = json_integer_value(size);
	out->media_type = strdup(mt ? mt : "");
	if (!out->media_type)
		return SRC_DESC_NO_MEMORY;
	return mt ? SRC_DESC_OK : SRC_DESC_NO_MEDIA_TYPE;
}

void src_image_clear(struct src_image *img)
{
	size_t i;

	free(img->what);
	for (i = 0; i < img->nrefs; i++)
		free(img->refs[i]);
	free(img->refs);
	free(img->layers);
	memset(img, 0, sizeof(*img));
}

void src_images_free(struct src_images *imgs)
{
	size_t i, j;

	if (!imgs)
		return;
	for (i = 0; i < imgs->nroots; i++) {
		free(imgs->roots[i].desc.media_type);
		for (j = 0; j < imgs->roots[i].nrefs; j++)
			free(imgs->roots[i].refs[j]);
		free(imgs->roots[i].refs);
	}
	free(imgs->roots);
	imgs->roots = NULL;
	imgs->nroots = 0;
	for (i = 0; i < imgs->n; i++)
		src_image_clear(&imgs->v[i]);
	free(imgs->v);
	imgs->v = NULL;
	imgs->n = 0;
}

int src_add_ref(char ***refs, size_t *n, const char *ref, struct rp_err *err)
{
	char **nr = *refs;

	/* Room for 2^k - 1 names and the NULL: grow geometrically, never rescan. Repeats are
	 * dropped once, by src_images_tidy. */
	if (*n == 0 || ((*n + 1) & *n) == 0) {
		nr = realloc(*refs, 2 * (*n + 1) * sizeof(*nr));
		if (!nr)
			return rp_errf(err, "out of memory");
		*refs = nr;
	}
	nr[*n] = strdup(ref);
	if (!nr[*n])
		return rp_errf(err, "out of memory");
	nr[++*n] = NULL;
	return 0;
}

static int cmp_ref(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t sort_unique(char **v, size_t n)
{
	size_t i, k = 0;

	if (n)
		qsort(v, n, sizeof(*v), cmp_ref);
	for (i = 0; i < n; i++) {
		if (k && !strcmp(v[k - 1], v[i])) {
			free(v[i]);
			continue;
		}
		v[k++] = v[i];
	}
	if (v)
		v[k] = NULL;
	return k;
}

int src_images_tidy(struct src_images *imgs, const char *display, struct rp_err *err)
{
	size_t i, total = 0;

	for (i = 0; i < imgs->n; i++)
		total += imgs->v[i].nrefs = sort_unique(imgs->v[i].refs, imgs->v[i].nrefs);
	for (i = 0; i < imgs->nroots; i++)
		total += imgs->roots[i].nrefs = sort_unique(imgs->roots[i].refs, imgs->roots[i].nrefs);
	if (total > SRC_NAMES_MAX)
		return rp_errf(err, "'%s': %zu image names, more than the %u one input may give",
			       display, total, SRC_NAMES_MAX);
	return 0;
}
