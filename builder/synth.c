/* Rebuilt images: the config stored byte for byte (its digest is the image ID users know), the
 * layers checked against its rootfs.diff_ids, a manifest written for the compressed layers. */
#include "build_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rebuilt images ---- */

/* The config's rootfs.diff_ids, checked against what the layers hashed to. */
static int check_diff_ids(const struct ar_index *idx, const struct src_image *img, json_t *config,
			  const struct entry_result *res, struct rp_err *err)
{
	json_t *ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
	size_t i;

	if (!json_is_array(ids))
		return rp_errf(err, "'%s': %s: config has no rootfs.diff_ids", idx->display,
			       img->what);
	if (json_array_size(ids) != img->nlayers)
		return rp_errf(err, "'%s': %s: config lists %zu diff_ids but the image has %zu "
			       "layers", idx->display, img->what, json_array_size(ids), img->nlayers);
	for (i = 0; i < img->nlayers; i++) {
		const struct entry_result *r = &res[img->layers[i] - idx->entries];
		const char *want = json_string_value(json_array_get(ids, i));
		const char *hex;

		if (!want || !rp_digest_parse(want, &hex))
			return rp_errf(err, "'%s': %s: diff_id %zu is not a sha256 digest",
				       idx->display, img->what, i + 1);
		if (strcmp(hex, r->raw))
			return rp_errf(err, "'%s': %s: layer %zu '%s' has digest sha256:%s but the "
				       "config says %s", idx->display, img->what, i + 1,
				       img->layers[i]->raw, r->raw, want);
	}
	return 0;
}

/* Store config and a synthesised manifest for a rebuilt image. Sets the manifest's digest, size
 * and media type, the blobs it references and its platform. */
int bld_synthesize(struct input *in, const struct src_image *img, char hex[RP_HEX_LEN + 1],
		      uint64_t *size, const char **mt, json_t **blobs, json_t **platform,
		      struct rp_err *err)
{
	const struct build_opts *o = &in->b->opts;
	const char *lmt = in->b->layer_mt, *cmt = o->oci ? MT_OCI_CONFIG : MT_DOCKER_CONFIG;
	char config_hex[RP_HEX_LEN + 1], cdigest[RP_HEX_LEN + 8];
	json_t *config, *layers = NULL, *manifest = NULL;
	json_error_t jerr;
	char *bytes = NULL;
	size_t i;
	int rc = -1;

	*blobs = NULL;
	*platform = NULL;
	config = json_loadb((const char *)img->config->data, img->config->data_len, 0, &jerr);
	if (!json_is_object(config)) {
		rp_errf(err, "'%s': %s: config is not a JSON object%s%s", in->idx->display,
			img->what, config ? "" : ": ", config ? "" : jerr.text);
		goto out;
	}
	if (check_diff_ids(in->idx, img, config, in->res, err) < 0)
		goto out;
	/* The config is stored byte for byte: its digest is the image ID users know. */
	if (layout_put_blob(in->b->tree, img->config->data, img->config->data_len, config_hex,
			    err) < 0)
		goto out;
	snprintf(cdigest, sizeof(cdigest), "sha256:%s", config_hex);
	layers = json_array();
	*blobs = json_array();
	json_array_append_new(*blobs, json_pack("{s:s, s:I, s:s}", "digest", cdigest, "size",
						(json_int_t)img->config->data_len, "mediaType", cmt));
	for (i = 0; i < img->nlayers; i++) {
		const struct entry_result *r = &in->res[img->layers[i] - in->idx->entries];
		char d[RP_HEX_LEN + 8];

		snprintf(d, sizeof(d), "sha256:%s", r->blob);
		json_array_append_new(layers, json_pack("{s:s, s:I, s:s}", "mediaType", lmt, "size",
							(json_int_t)r->size, "digest", d));
		json_array_append_new(*blobs, json_pack("{s:s, s:I, s:s}", "digest", d, "size",
							(json_int_t)r->size, "mediaType", lmt));
	}
	*mt = o->oci ? MT_OCI_MANIFEST : MT_DOCKER_MANIFEST;
	manifest = json_pack("{s:i, s:s, s:{s:s, s:I, s:s}, s:O}", "schemaVersion", 2, "mediaType",
			     *mt, "config", "mediaType", cmt, "size",
			     (json_int_t)img->config->data_len, "digest", cdigest, "layers", layers);
	bytes = manifest ? json_dumps(manifest, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (!bytes) {
		rp_errf(err, "out of memory");
		goto out;
	}
	*size = strlen(bytes);
	if (layout_put_blob(in->b->tree, bytes, *size, hex, err) < 0)
		goto out;
	*platform = bld_platform_of(config);
	rc = 0;
out:
	free(bytes);
	json_decref(manifest);
	json_decref(layers);
	json_decref(config);
	return rc;
}

int bld_record_blobs(struct builder *b, const char *repo, json_t *blobs, struct rp_err *err)
{
	size_t i;
	json_t *d;

	json_array_foreach(blobs, i, d)
		if (layout_add_blob(b->tree, repo, json_string_value(json_object_get(d, "digest")) + 7,
				    (uint64_t)json_integer_value(json_object_get(d, "size")),
				    json_string_value(json_object_get(d, "mediaType")), err) < 0)
			return -1;
	return 0;
}

int bld_emit_image(struct input *in, const struct src_image *img, struct rp_err *err)
{
	struct builder *b = in->b;
	char hex[RP_HEX_LEN + 1];
	json_t *blobs = NULL, *platform = NULL;
	const char *mt;
	uint64_t size;
	size_t i;
	int rc = -1;

	if (bld_synthesize(in, img, hex, &size, &mt, &blobs, &platform, err) < 0)
		goto out;
	if (!b->opts.tag && img->nrefs == 0 && !b->opts.untagged_repo) {
		rp_errf(err, "'%s': %s has no name (RepoTags is empty); name it with --tag NAME:TAG, "
			"or keep it by digest with --untagged-repo REPO", in->idx->display, img->what);
		goto out;
	}
	for (i = 0; i < (b->opts.tag || img->nrefs == 0 ? 1 : img->nrefs); i++) {
		struct rp_ref ref;
		char byd[RP_REPO_MAX + RP_HEX_LEN + 16];

		if (b->opts.untagged_repo)
			snprintf(byd, sizeof(byd), "%s@sha256:%s", b->opts.untagged_repo, hex);
		if (bld_name_content(b, in->idx, img->what, b->opts.tag ? b->opts.tag
				 : img->nrefs ? img->refs[i] : byd, hex,
				 size, mt, platform, &ref, err) < 0 ||
		    layout_add_manifest(b->tree, ref.repo, hex, size, mt, err) < 0 ||
		    bld_record_blobs(b, ref.repo, blobs, err) < 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(blobs);
	json_decref(platform);
	return rc;
}
