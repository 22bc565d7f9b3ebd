#include "source.h"

#include <stdlib.h>
#include <string.h>

/* Cheapest first; see each file for what it reads. */
static const struct src_format *const formats[] = {
	&src_docker_archive,
};

int src_keep(const char *name, int64_t size)
{
	const char *base = strrchr(name, '/');
	size_t len = strlen(name);

	base = base ? base + 1 : name;
	if (len >= 5 && !strcmp(name + len - 5, ".json"))
		return 1;
	if (!strcmp(base, "json") || !strcmp(base, "repositories") || !strcmp(base, "oci-layout") ||
	    !strcmp(base, "VERSION"))
		return 1;
	/* OCI layouts (Docker >= 25) keep configs and manifests as blobs: small ones may be either. */
	if (!strncmp(name, "blobs/", 6) && size <= (1 << 20))
		return 1;
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
	if (!best)
		rp_errf(err, "'%s': unrecognized input format (no manifest.json: not a docker save "
			"tarball)", idx->display);
	return best;
}

void src_images_free(struct src_images *imgs)
{
	size_t i, j;

	if (!imgs)
		return;
	for (i = 0; i < imgs->n; i++) {
		free(imgs->v[i].what);
		for (j = 0; j < imgs->v[i].nrefs; j++)
			free(imgs->v[i].refs[j]);
		free(imgs->v[i].refs);
		free(imgs->v[i].layers);
	}
	free(imgs->v);
	imgs->v = NULL;
	imgs->n = 0;
}
