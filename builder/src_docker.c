/* docker-archive: the `docker save` format with a top-level manifest.json (formats.md 1-3).
 *
 * One reader serves every writer of it: Docker <= 24 (`<id>/layer.tar`, repeated layers as symlinks),
 * containers/image (`<diffid>.tar` at the root, written by skopeo and podman) and Docker >= 25, whose
 * manifest.json points into an OCI layout (`blobs/sha256/<hex>`, layers still uncompressed). The
 * config's rootfs.diff_ids, not any manifest, says which layer is which. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "source.h"

#define MAX_LAYERS 1024
#define MAX_TAGS 4096

static int docker_bid(const struct ar_index *idx)
{
	const struct ar_entry *m = ar_find(idx, "manifest.json");

	return m && m->type == AR_FILE ? 10 : 0;
}

static const char *json_type_name(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_NULL: return "null";
	default: return "a scalar";
	}
}

static int read_image(struct ar_index *idx, size_t n, json_t *item, struct src_image *img,
		      struct rp_err *err)
{
	json_t *config = json_object_get(item, "Config");
	json_t *tags = json_object_get(item, "RepoTags");
	json_t *layers = json_object_get(item, "Layers");
	const char *base;
	char want[RP_HEX_LEN + 1];
	size_t i;

	if (!json_is_object(item))
		return rp_errf(err, "'%s': manifest.json entry %zu is %s, not an object", idx->display,
			       n + 1, json_type_name(item));
	if (!json_is_string(config))
		return rp_errf(err, "'%s': manifest.json entry %zu has no Config", idx->display, n + 1);
	if (!json_is_array(layers))
		return rp_errf(err, "'%s': manifest.json entry %zu has no Layers", idx->display, n + 1);
	if (tags && !json_is_null(tags) && !json_is_array(tags))
		return rp_errf(err, "'%s': manifest.json entry %zu: RepoTags is %s", idx->display,
			       n + 1, json_type_name(tags));
	if (json_array_size(layers) > MAX_LAYERS || json_array_size(tags) > MAX_TAGS)
		return rp_errf(err, "'%s': manifest.json entry %zu: too many layers or tags",
			       idx->display, n + 1);
	if (asprintf(&img->what, "image %zu (%s)", n + 1, json_string_value(config)) < 0)
		return rp_errf(err, "out of memory");
	if (ar_resolve(idx, json_string_value(config), &img->config, err) < 0)
		return rp_err_prefix(err, "%s: Config", img->what);
	if (ar_load(idx, &img->config, 1, err) < 0)
		return rp_err_prefix(err, "%s: config", img->what);
	/* Writers name the config by its digest (the image ID): hold them to it. */
	base = strrchr(img->config->name, '/');
	base = base ? base + 1 : img->config->name;
	if (strlen(base) == RP_HEX_LEN ||
	    (strlen(base) == RP_HEX_LEN + 5 && !strcmp(base + RP_HEX_LEN, ".json"))) {
		char name_hex[RP_HEX_LEN + 1];

		memcpy(name_hex, base, RP_HEX_LEN);
		name_hex[RP_HEX_LEN] = '\0';
		if (rp_hex_valid(name_hex)) {
			rp_sha256_buf(img->config->data, img->config->data_len, want);
			if (strcmp(want, name_hex))
				return rp_errf(err, "'%s': config '%s' has digest sha256:%s, not the "
					       "one its name says", idx->display, img->config->raw,
					       want);
		}
	}
	img->layers = calloc(json_array_size(layers) + 1, sizeof(*img->layers));
	if (!img->layers)
		return rp_errf(err, "out of memory");
	for (i = 0; i < json_array_size(layers); i++) {
		json_t *l = json_array_get(layers, i);

		if (!json_is_string(l))
			return rp_errf(err, "'%s': %s: layer %zu is not a path", idx->display,
				       img->what, i + 1);
		if (ar_resolve(idx, json_string_value(l), &img->layers[i], err) < 0)
			return rp_err_prefix(err, "%s: layer %zu", img->what, i + 1);
		img->nlayers++;
	}
	for (i = 0; i < json_array_size(tags); i++) {
		json_t *t = json_array_get(tags, i);

		if (!json_is_string(t))
			return rp_errf(err, "'%s': %s: RepoTags[%zu] is not a string", idx->display,
				       img->what, i);
		if (src_add_ref(&img->refs, &img->nrefs, json_string_value(t), err) < 0)
			return -1;
	}
	return 0;
}

int src_docker_manifest(struct ar_index *idx, struct src_images *out, struct rp_err *err)
{
	const struct ar_entry *m = ar_find(idx, "manifest.json");
	json_error_t jerr;
	json_t *root;
	size_t i;
	int rc = -1;

	if (!m->data)
		return rp_errf(err, "'%s': manifest.json is too large", idx->display);
	root = json_loadb((const char *)m->data, m->data_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return rp_errf(err, "'%s': manifest.json: %s (line %d)", idx->display, jerr.text,
			       jerr.line);
	if (!json_is_array(root)) {
		rp_errf(err, "'%s': manifest.json is %s, not an array of images", idx->display,
			json_type_name(root));
		goto out;
	}
	if (json_array_size(root) == 0) {
		rp_errf(err, "'%s': manifest.json lists no images", idx->display);
		goto out;
	}
	out->v = calloc(json_array_size(root), sizeof(*out->v));
	if (!out->v) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < json_array_size(root); i++) {
		out->n++;
		if (read_image(idx, i, json_array_get(root, i), &out->v[i], err) < 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(root);
	if (rc < 0)
		src_images_free(out);
	return rc;
}

const struct src_format src_docker_archive = {
	.name = "docker-archive",
	.bid = docker_bid,
	.read = src_docker_manifest,
	.blob = NULL,
};
