/* OCI image layouts: oci-archive tarballs and layout directories (skopeo, buildah, umoci), and the
 * OCI layout inside Docker >= 25 saves and containerd image-store exports (formats.md 3-5).
 *
 * Every descriptor of index.json is a root; its names come from the annotations
 * (io.containerd.image.name, a full reference; org.opencontainers.image.ref.name, a tag or a full
 * reference) and, when the tar also has a docker manifest.json, from its RepoTags, matched by
 * config digest. Images that manifest.json lists but index.json leaves out (Docker 25.0.x dropped
 * untagged ones) are rebuilt from manifest.json. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "names.h"
#include "source.h"

#define MAX_ROOTS 100000

static int oci_bid(const struct ar_index *idx)
{
	const struct ar_entry *i = ar_find(idx, "index.json");
	const struct ar_entry *l = ar_find(idx, "oci-layout");

	return i && l && i->type == AR_FILE && l->type == AR_FILE ? 20 : 0;
}

static const struct ar_entry *oci_blob(const struct ar_index *idx, const char *hex)
{
	char name[RP_HEX_LEN + 16];
	const struct ar_entry *e = NULL;
	struct rp_err ignored;

	snprintf(name, sizeof(name), "blobs/sha256/%s", hex);
	if (!ar_find(idx, name) || ar_resolve(idx, name, &e, &ignored) < 0)
		return NULL;
	return e;
}

/* Parse a descriptor object; 0 or -1 with err naming where. */
static int parse_desc(const struct ar_index *idx, json_t *d, const char *where,
		      struct src_desc *out, struct rp_err *err)
{
	switch (src_desc_parse(d, out)) {
	case SRC_DESC_OK:
	case SRC_DESC_NO_MEDIA_TYPE: /* index.json may leave it out */
		return 0;
	case SRC_DESC_NOT_OBJECT:
		return rp_errf(err, "'%s': %s is not a descriptor object", idx->display, where);
	case SRC_DESC_BAD_DIGEST:
		return rp_errf(err, "'%s': %s: digest is missing or not sha256:<64 hex>",
			       idx->display, where);
	case SRC_DESC_BAD_SIZE:
		return rp_errf(err, "'%s': %s: size is missing or negative", idx->display, where);
	case SRC_DESC_NO_MEMORY:
		break;
	}
	return rp_errf(err, "out of memory");
}

/* A ref.name is either a tag (the layout's convention) or a whole reference (skopeo oci:d:ref). */
static int root_names(json_t *annotations, struct src_root *r, struct rp_err *err)
{
	const char *full = json_string_value(json_object_get(annotations, "io.containerd.image.name"));
	const char *ref = json_string_value(
		json_object_get(annotations, "org.opencontainers.image.ref.name"));

	if (full && src_add_ref(&r->refs, &r->nrefs, full, err) < 0)
		return -1;
	if (ref && !full) {
		char buf[RP_TAG_MAX + 2];

		if (layout_tag_valid(ref)) { /* a tag alone: the repository comes from elsewhere */
			snprintf(buf, sizeof(buf), ":%s", ref);
			return src_add_ref(&r->refs, &r->nrefs, buf, err);
		}
		return src_add_ref(&r->refs, &r->nrefs, ref, err);
	}
	return 0;
}

/* The config digest of an image manifest blob, or "" (not loaded, not an image manifest). */
static void manifest_config(struct ar_index *idx, const char *hex, char cfg[RP_HEX_LEN + 1],
			    json_t **children)
{
	const struct ar_entry *e = oci_blob(idx, hex);
	const char *d, *h;
	struct rp_err ignored;
	json_t *m;

	cfg[0] = '\0';
	*children = NULL;
	if (!e || e->size > (4 << 20) || ar_load(idx, &e, 1, &ignored) < 0)
		return;
	m = json_loadb((const char *)e->data, e->data_len, 0, NULL);
	d = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
	if (d && rp_digest_parse(d, &h))
		memcpy(cfg, h, RP_HEX_LEN + 1);
	if (json_is_array(json_object_get(m, "manifests")))
		*children = json_incref(json_object_get(m, "manifests"));
	json_decref(m);
}

/* Does root reach an image manifest with this config (itself, or a child of an index)? */
static int root_has_config(struct ar_index *idx, const struct src_root *r, const char *cfg)
{
	char got[RP_HEX_LEN + 1];
	json_t *children, *c;
	size_t i;
	int found = 0;

	manifest_config(idx, r->desc.hex, got, &children);
	if (!strcmp(got, cfg))
		found = 1;
	json_array_foreach(children, i, c) {
		const char *d = json_string_value(json_object_get(c, "digest")), *h;
		json_t *none;

		if (found || !d || !rp_digest_parse(d, &h))
			continue;
		manifest_config(idx, h, got, &none);
		json_decref(none);
		found = !strcmp(got, cfg);
	}
	json_decref(children);
	return found;
}

/* Docker >= 25 and containerd saves also carry manifest.json: take its RepoTags, and rebuild the
 * images that index.json does not reach. */
static int merge_docker_manifest(struct ar_index *idx, struct src_images *out, struct rp_err *err)
{
	struct src_images docker = { NULL, 0, NULL, 0 };
	size_t i, j, keep = 0;

	if (src_docker_manifest(idx, &docker, err) < 0)
		return -1;
	for (i = 0; i < docker.n; i++) {
		struct src_image *img = &docker.v[i];
		const char *base = strrchr(img->config->name, '/');
		int matched = 0;

		base = base ? base + 1 : img->config->name;
		for (j = 0; rp_hex_valid(base) && j < out->nroots; j++) {
			size_t k;

			if (!root_has_config(idx, &out->roots[j], base))
				continue;
			matched = 1;
			for (k = 0; k < img->nrefs; k++)
				if (src_add_ref(&out->roots[j].refs, &out->roots[j].nrefs, img->refs[k],
						err) < 0)
					goto fail;
		}
		if (matched) {
			/* index.json has it: its names were taken above, the rest is not needed. Freed
			 * now, as a later image may be moved into this slot. */
			src_image_clear(img);
			continue;
		}
		if (keep != i) {
			docker.v[keep] = *img; /* index.json does not reach it: rebuild from manifest.json */
			memset(img, 0, sizeof(*img));
		}
		keep++;
	}
	docker.n = keep;
	out->v = docker.v;
	out->n = docker.n;
	return 0;
fail:
	src_images_free(&docker);
	return -1;
}

static int oci_read(struct ar_index *idx, struct src_images *out, struct rp_err *err)
{
	const struct ar_entry *ie = ar_find(idx, "index.json");
	json_error_t jerr;
	json_t *index, *list, *d;
	size_t i, j;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!ie->data)
		return rp_errf(err, "'%s': index.json is too large", idx->display);
	index = json_loadb((const char *)ie->data, ie->data_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!index)
		return rp_errf(err, "'%s': index.json: %s (line %d)", idx->display, jerr.text,
			       jerr.line);
	list = json_object_get(index, "manifests");
	if (!json_is_object(index) || !json_is_array(list)) {
		rp_errf(err, "'%s': index.json is not an OCI image index", idx->display);
		goto out;
	}
	/* An empty index with no manifest.json beside it would add nothing: the input is not what
	 * the user meant (manifest.json's "[]" is an error too). */
	if (json_array_size(list) == 0 && !ar_find(idx, "manifest.json")) {
		rp_errf(err, "'%s': index.json lists no manifests", idx->display);
		goto out;
	}
	if (json_array_size(list) > MAX_ROOTS) {
		rp_errf(err, "'%s': index.json lists too many manifests", idx->display);
		goto out;
	}
	out->roots = calloc(json_array_size(list) + 1, sizeof(*out->roots));
	if (!out->roots) {
		rp_errf(err, "out of memory");
		goto out;
	}
	json_array_foreach(list, i, d) {
		struct src_desc desc;
		char where[64];

		snprintf(where, sizeof(where), "index.json manifest %zu", i + 1);
		if (parse_desc(idx, d, where, &desc, err) < 0)
			goto out;
		/* One root per digest, however many names point at it. */
		for (j = 0; j < out->nroots; j++)
			if (!strcmp(out->roots[j].desc.hex, desc.hex))
				break;
		if (j == out->nroots)
			out->roots[out->nroots++].desc = desc;
		else
			free(desc.media_type);
		if (root_names(json_object_get(d, "annotations"), &out->roots[j], err) < 0)
			goto out;
	}
	if (ar_find(idx, "manifest.json") && merge_docker_manifest(idx, out, err) < 0)
		goto out;
	rc = 0;
out:
	json_decref(index);
	if (rc < 0)
		src_images_free(out);
	return rc;
}

const struct src_format src_oci_layout = {
	.name = "oci-layout",
	.bid = oci_bid,
	.read = oci_read,
	.blob = oci_blob,
};
