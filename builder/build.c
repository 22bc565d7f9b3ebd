#include "build.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "names.h"
#include "source.h"
#include "tarball.h"

#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"

struct builder {
	struct layout_tree *tree;
	struct build_opts opts;
	json_t *tags; /* "repo:tag" -> {"digest","mediaType","input"} built in this run */
};

/* One layer entry's result after streaming. */
struct layer_result {
	int wanted;
	int done;
	char diff_id[RP_HEX_LEN + 1]; /* sha256 of the bytes in the archive */
	char blob[RP_HEX_LEN + 1];    /* sha256 of the compressed blob */
	uint64_t size;
};

struct stream_ctx {
	struct builder *b;
	const struct ar_index *idx;
	struct layer_result *results; /* indexed like idx->entries */
	/* the layer being streamed */
	struct rp_sha256 raw;
	struct compressor *comp;
	struct layout_blob *blob;
};

static const char *layer_media_type(const struct build_opts *o)
{
	if (o->oci)
		return o->compression == RP_COMP_GZIP   ? "application/vnd.oci.image.layer.v1.tar+gzip"
		       : o->compression == RP_COMP_ZSTD ? "application/vnd.oci.image.layer.v1.tar+zstd"
							: "application/vnd.oci.image.layer.v1.tar";
	return o->compression == RP_COMP_GZIP ? "application/vnd.docker.image.rootfs.diff.tar.gzip"
					      : "application/vnd.docker.image.rootfs.diff.tar";
}

int builder_new(struct layout_tree *tree, const struct build_opts *opts, struct builder **out,
		struct rp_err *err)
{
	struct builder *b = calloc(1, sizeof(*b));

	*out = NULL;
	if (!b || !(b->tags = json_object())) {
		free(b);
		return rp_errf(err, "out of memory");
	}
	if (opts->compression == RP_COMP_ZSTD && !opts->oci) {
		json_decref(b->tags);
		free(b);
		return rp_errf(err, "zstd layers need OCI manifests (--format oci): Docker schema2 "
			       "has no zstd layer type");
	}
	b->tree = tree;
	b->opts = *opts;
	*out = b;
	return 0;
}

void builder_free(struct builder *b)
{
	if (!b)
		return;
	json_decref(b->tags);
	free(b);
}

static int want_entry(void *vctx, const struct ar_entry *e)
{
	struct stream_ctx *c = vctx;

	return c->results[e - c->idx->entries].wanted;
}

static int sink_blob(void *vctx, const void *buf, size_t len, struct rp_err *err)
{
	struct stream_ctx *c = vctx;

	return layout_blob_write(c->blob, buf, len, err);
}

static int on_data(void *vctx, const struct ar_entry *e, const void *buf, size_t len,
		   struct rp_err *err)
{
	struct stream_ctx *c = vctx;
	struct layer_result *r = &c->results[e - c->idx->entries];

	if (!c->blob) { /* first bytes of this layer */
		if (rp_sha256_init(&c->raw) < 0)
			return rp_errf(err, "out of memory");
		if (layout_blob_new(c->b->tree, &c->blob, err) < 0 ||
		    compressor_new(c->b->opts.compression, c->b->opts.threads, sink_blob, c,
				   &c->comp, err) < 0)
			return -1;
	}
	if (buf) {
		rp_sha256_update(&c->raw, buf, len);
		return compressor_write(c->comp, buf, len, err);
	}
	/* end of the entry */
	if (compressor_finish(c->comp, err) < 0)
		return -1;
	compressor_free(c->comp);
	c->comp = NULL;
	rp_sha256_final(&c->raw, r->diff_id);
	if (layout_blob_finish(c->blob, r->blob, &r->size, err) < 0) {
		c->blob = NULL;
		return -1;
	}
	c->blob = NULL;
	r->done = 1;
	return 0;
}

static void stream_ctx_clear(struct stream_ctx *c)
{
	compressor_free(c->comp);
	layout_blob_free(c->blob);
	rp_sha256_free(&c->raw);
	c->comp = NULL;
	c->blob = NULL;
}

/* The config's rootfs.diff_ids, checked against what the layers hashed to. */
static int check_diff_ids(const struct ar_index *idx, const struct src_image *img, json_t *config,
			  const struct layer_result *results, struct rp_err *err)
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
		const struct layer_result *r = &results[img->layers[i] - idx->entries];
		const char *want = json_string_value(json_array_get(ids, i));
		const char *hex;

		if (!want || !rp_digest_parse(want, &hex))
			return rp_errf(err, "'%s': %s: diff_id %zu is not a sha256 digest",
				       idx->display, img->what, i + 1);
		if (strcmp(hex, r->diff_id))
			return rp_errf(err, "'%s': %s: layer %zu '%s' has digest sha256:%s but the "
				       "config says %s", idx->display, img->what, i + 1,
				       img->layers[i]->raw, r->diff_id, want);
	}
	return 0;
}

static int tag_image(struct builder *b, const struct ar_index *idx, const struct src_image *img,
		     const char *ref_str, const char *manifest_hex, uint64_t manifest_size,
		     const char *config_hex, json_t *manifest, struct rp_err *err)
{
	const char *mt = b->opts.oci ? MT_OCI_MANIFEST : MT_DOCKER_MANIFEST;
	struct rp_ref ref;
	char key[RP_REPO_MAX + RP_TAG_MAX + 2];
	json_t *prev, *layers;
	size_t i;

	if (layout_ref_parse(ref_str, &ref, err) < 0)
		return rp_err_prefix(err, "'%s': %s", idx->display, img->what);
	if (!ref.tag[0])
		strcpy(ref.tag, "latest");
	snprintf(key, sizeof(key), "%s:%s", ref.repo, ref.tag);
	prev = json_object_get(b->tags, key);
	if (prev && strcmp(json_string_value(json_object_get(prev, "digest")) + 7, manifest_hex))
		return rp_errf(err, "'%s': %s is also in '%s' with different content", idx->display,
			       key, json_string_value(json_object_get(prev, "input")));
	if (layout_add_manifest(b->tree, ref.repo, manifest_hex, manifest_size, mt, err) < 0 ||
	    layout_add_blob(b->tree, ref.repo, config_hex, img->config->data_len,
			    b->opts.oci ? MT_OCI_CONFIG : MT_DOCKER_CONFIG, err) < 0)
		return -1;
	layers = json_object_get(manifest, "layers");
	for (i = 0; i < json_array_size(layers); i++) {
		json_t *l = json_array_get(layers, i);

		if (layout_add_blob(b->tree, ref.repo,
				    json_string_value(json_object_get(l, "digest")) + 7,
				    (uint64_t)json_integer_value(json_object_get(l, "size")),
				    json_string_value(json_object_get(l, "mediaType")), err) < 0)
			return -1;
	}
	if (layout_set_tag(b->tree, ref.repo, ref.tag, manifest_hex, err) < 0)
		return -1;
	if (!prev) {
		char digest[RP_HEX_LEN + 8];

		snprintf(digest, sizeof(digest), "sha256:%s", manifest_hex);
		json_object_set_new(b->tags, key, json_pack("{s:s, s:s, s:s}", "digest", digest,
							     "mediaType", mt, "input", idx->display));
	}
	return 0;
}

static int emit_image(struct builder *b, const struct ar_index *idx, const struct src_image *img,
		      const struct layer_result *results, struct rp_err *err)
{
	const char *lmt = layer_media_type(&b->opts);
	char config_hex[RP_HEX_LEN + 1], manifest_hex[RP_HEX_LEN + 1], cdigest[RP_HEX_LEN + 8];
	json_t *config, *layers = NULL, *manifest = NULL;
	json_error_t jerr;
	char *bytes = NULL;
	size_t i;
	int rc = -1;

	config = json_loadb((const char *)img->config->data, img->config->data_len, 0, &jerr);
	if (!config || !json_is_object(config)) {
		rp_errf(err, "'%s': %s: config is not a JSON object: %s", idx->display, img->what,
			config ? "wrong type" : jerr.text);
		goto out;
	}
	if (check_diff_ids(idx, img, config, results, err) < 0)
		goto out;
	/* The config is stored byte for byte: its digest is the image ID users know. */
	if (layout_put_blob(b->tree, img->config->data, img->config->data_len, config_hex, err) < 0)
		goto out;
	snprintf(cdigest, sizeof(cdigest), "sha256:%s", config_hex);
	layers = json_array();
	for (i = 0; i < img->nlayers && layers; i++) {
		const struct layer_result *r = &results[img->layers[i] - idx->entries];
		char d[RP_HEX_LEN + 8];

		snprintf(d, sizeof(d), "sha256:%s", r->blob);
		json_array_append_new(layers, json_pack("{s:s, s:I, s:s}", "mediaType", lmt, "size",
							(json_int_t)r->size, "digest", d));
	}
	if (b->opts.oci)
		manifest = json_pack("{s:i, s:s, s:{s:s, s:I, s:s}, s:O}", "schemaVersion", 2,
				     "mediaType", MT_OCI_MANIFEST, "config", "mediaType", MT_OCI_CONFIG,
				     "size", (json_int_t)img->config->data_len, "digest", cdigest,
				     "layers", layers);
	else
		manifest = json_pack("{s:i, s:s, s:{s:s, s:I, s:s}, s:O}", "schemaVersion", 2,
				     "mediaType", MT_DOCKER_MANIFEST, "config", "mediaType",
				     MT_DOCKER_CONFIG, "size", (json_int_t)img->config->data_len,
				     "digest", cdigest, "layers", layers);
	bytes = manifest ? json_dumps(manifest, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (!bytes) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (layout_put_blob(b->tree, bytes, strlen(bytes), manifest_hex, err) < 0)
		goto out;
	if (b->opts.tag) {
		if (tag_image(b, idx, img, b->opts.tag, manifest_hex, strlen(bytes), config_hex,
			      manifest, err) < 0)
			goto out;
	} else if (img->nrefs == 0) {
		rp_errf(err, "'%s': %s has no name (RepoTags is empty); name it with --tag NAME:TAG",
			idx->display, img->what);
		goto out;
	}
	for (i = 0; !b->opts.tag && i < img->nrefs; i++)
		if (tag_image(b, idx, img, img->refs[i], manifest_hex, strlen(bytes), config_hex,
			      manifest, err) < 0)
			goto out;
	rc = 0;
out:
	free(bytes);
	json_decref(manifest);
	json_decref(layers);
	json_decref(config);
	return rc;
}

int builder_add(struct builder *b, const char *path, const char *display, struct rp_err *err)
{
	struct src_images imgs = { NULL, 0 };
	struct stream_ctx ctx;
	struct ar_index *idx = NULL;
	const struct src_format *fmt;
	size_t i, j;
	int rc = -1;

	memset(&ctx, 0, sizeof(ctx));
	if (ar_index_read(path, display, src_keep, &idx, err) < 0)
		return -1;
	fmt = src_detect(idx, err);
	if (!fmt || fmt->read(idx, &imgs, err) < 0)
		goto out;
	if (b->opts.tag && imgs.n != 1) {
		rp_errf(err, "'%s': --tag names the only image of an input, but it has %zu images",
			display, imgs.n);
		goto out;
	}
	ctx.b = b;
	ctx.idx = idx;
	ctx.results = calloc(idx->n, sizeof(*ctx.results));
	if (!ctx.results) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < imgs.n; i++)
		for (j = 0; j < imgs.v[i].nlayers; j++)
			ctx.results[imgs.v[i].layers[j] - idx->entries].wanted = 1;
	if (ar_stream(idx, want_entry, on_data, &ctx, err) < 0)
		goto out;
	for (i = 0; i < imgs.n; i++)
		if (emit_image(b, idx, &imgs.v[i], ctx.results, err) < 0)
			goto out;
	rc = 0;
out:
	stream_ctx_clear(&ctx);
	free(ctx.results);
	src_images_free(&imgs);
	ar_index_free(idx);
	return rc;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *builder_report(struct builder *b)
{
	size_t i, n = json_object_size(b->tags);
	const char **keys = malloc((n ? n : 1) * sizeof(*keys));
	json_t *out = json_array();
	const char *key;
	json_t *v;

	if (!keys || !out) {
		free(keys);
		json_decref(out);
		return NULL;
	}
	i = 0;
	json_object_foreach(b->tags, key, v)
		keys[i++] = key;
	qsort(keys, n, sizeof(*keys), cmp_key);
	for (i = 0; i < n; i++) {
		v = json_object_get(b->tags, keys[i]);
		json_array_append_new(out, json_pack("{s:s, s:O, s:O, s:O}", "ref", keys[i], "digest",
						     json_object_get(v, "digest"), "mediaType",
						     json_object_get(v, "mediaType"), "input",
						     json_object_get(v, "input")));
	}
	free(keys);
	return out;
}
