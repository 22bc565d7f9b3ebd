#include "build.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "digest.h"
#include "names.h"
#include "source.h"
#include "tarball.h"

#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MANIFEST_MAX (4u << 20) /* containerd refuses larger manifests */
#define INDEX_DEPTH_MAX 16	/* indexes of indexes: real ones nest two or three deep */

struct builder {
	struct layout_tree *tree;
	struct build_opts opts;
	json_t *cands;	  /* "repo:tag" -> [{"digest","size","mediaType","platform","input"}] */
	json_t *untagged; /* ["repo@sha256:..."] */
	json_t *missing;  /* ["repo@sha256:... (in index sha256:...)"] */
	json_t *stripped; /* repo after --strip-registry -> repo before */
	json_t *report;	  /* "repo:tag" -> {"digest","mediaType","inputs"} after finish */
};

/* What happens to one entry of the input in the streaming pass. */
/* ACT_VERIFY: the tree already holds what compressing this layer gives (build cache): only hash
 * the input to check its diff_id. */
enum entry_action { ACT_NONE, ACT_COMPRESS, ACT_COPY, ACT_VERIFY };

struct entry_result {
	enum entry_action action;
	int done;
	int worker;		   /* the parallel pass's thread that streams it, or -1 */
	char raw[RP_HEX_LEN + 1];  /* sha256 of the bytes in the input */
	char blob[RP_HEX_LEN + 1]; /* sha256 of what was stored */
	uint64_t size;		   /* size of what was stored */
};

/* One manifest or index of a preserved graph (or a hole in it). */
enum node_kind { NODE_IMAGE, NODE_INDEX, NODE_MISSING };

struct node {
	enum node_kind kind;
	struct src_desc in;	 /* as the input names it */
	const struct ar_entry *e;
	json_t *json;
	int rebuild;		 /* uncompressed layers: compress and write a new manifest */
	struct src_image img;	 /* when rebuild */
	size_t *children;	 /* NODE_INDEX: node indices */
	size_t nchildren;
	/* after finalize */
	int final_done;
	char hex[RP_HEX_LEN + 1];
	uint64_t size;
	const char *mt;
	json_t *blobs;		 /* NODE_IMAGE: [{"digest","size","mediaType"}] config and layers */
	json_t *platform;	 /* NODE_IMAGE: from the config */
};

struct input {
	struct builder *b;
	struct ar_index *idx;
	const struct src_format *fmt;
	struct src_images imgs;
	struct entry_result *res; /* indexed like idx->entries */
	struct node *nodes;
	size_t nnodes, cap;
	json_t *node_of;	  /* hex -> node index */
	uint64_t done, total; /* input bytes streamed, for progress */
	struct parallel_pass *pass; /* while parallel_pass runs */
	/* the entry being streamed */
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

static int is_uncompressed_layer(const char *mt)
{
	return !strcmp(mt, "application/vnd.oci.image.layer.v1.tar") ||
	       !strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar");
}

static int is_foreign_layer(const char *mt)
{
	return strstr(mt, "foreign") || strstr(mt, "nondistributable");
}

int builder_new(struct layout_tree *tree, const struct build_opts *opts, struct builder **out,
		struct rp_err *err)
{
	struct builder *b = calloc(1, sizeof(*b));

	*out = NULL;
	if (!b)
		return rp_errf(err, "out of memory");
	b->cands = json_object();
	b->untagged = json_array();
	b->missing = json_array();
	b->stripped = json_object();
	b->report = json_object();
	if (!b->cands || !b->untagged || !b->missing || !b->stripped || !b->report) {
		builder_free(b);
		return rp_errf(err, "out of memory");
	}
	if (opts->compression == RP_COMP_ZSTD && !opts->oci) {
		builder_free(b);
		return rp_errf(err, "zstd layers need OCI manifests (--format oci): Docker schema2 "
			       "has no zstd layer type");
	}
	if (opts->prefix && !layout_repo_valid(opts->prefix)) {
		builder_free(b);
		return rp_errf(err, "--prefix '%s' is not a valid repository path", opts->prefix);
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
	json_decref(b->cands);
	json_decref(b->untagged);
	json_decref(b->missing);
	json_decref(b->stripped);
	json_decref(b->report);
	free(b);
}

/* ---- names ---- */

/* Turn one input name into the tree's repository and tag (tag "" = by digest only). */
static int resolve_ref(struct builder *b, const struct ar_index *idx, const char *what,
		       const char *name, struct rp_ref *ref, struct rp_err *err)
{
	const char *slash;

	if (name[0] == ':')
		return rp_errf(err, "'%s': %s is named only by the tag '%s'; name it with --tag "
			       "NAME:TAG", idx->display, what, name + 1);
	/* "=": a regpress tree's own name for its repository (source.h) */
	if ((name[0] == '=' ? src_tree_ref_parse(name + 1, ref, err)
			    : layout_ref_parse(name, ref, err)) < 0)
		return rp_err_prefix(err, "'%s': %s", idx->display, what);
	if (!ref->tag[0] && !ref->digest[0])
		strcpy(ref->tag, "latest");
	slash = strchr(ref->repo, '/');
	if (b->opts.strip_registry && slash &&
	    (memchr(ref->repo, '.', (size_t)(slash - ref->repo)) ||
	     memchr(ref->repo, ':', (size_t)(slash - ref->repo)) ||
	     !strncmp(ref->repo, "localhost/", 10))) {
		char original[RP_REPO_MAX + 1];
		const char *before;

		strcpy(original, ref->repo);
		memmove(ref->repo, slash + 1, strlen(slash + 1) + 1);
		before = json_string_value(json_object_get(b->stripped, ref->repo));
		if (before && strcmp(before, original))
			return rp_errf(err, "'%s': --strip-registry maps both %s and %s to %s",
				       idx->display, before, original, ref->repo);
		json_object_set_new(b->stripped, ref->repo, json_string(original));
	}
	if (b->opts.prefix) {
		char full[2 * RP_REPO_MAX + 2];

		snprintf(full, sizeof(full), "%s/%s", b->opts.prefix, ref->repo);
		if (strlen(full) > RP_REPO_MAX || !layout_repo_valid(full))
			return rp_errf(err, "'%s': %s: '%s' is not a valid repository name",
				       idx->display, what, full);
		strcpy(ref->repo, full);
	}
	return 0;
}

static json_t *platform_of(json_t *config)
{
	const char *os = json_string_value(json_object_get(config, "os"));
	const char *arch = json_string_value(json_object_get(config, "architecture"));
	const char *variant = json_string_value(json_object_get(config, "variant"));
	json_t *p;

	if (!os || !arch)
		return NULL;
	p = json_pack("{s:s, s:s}", "architecture", arch, "os", os);
	if (p && variant && *variant)
		json_object_set_new(p, "variant", json_string(variant));
	return p;
}

/* A name for content now in the tree: remember the tag candidate, or the digest-only image. */
static int name_content(struct builder *b, const struct ar_index *idx, const char *what,
			const char *name, const char *hex, uint64_t size, const char *mt,
			json_t *platform, struct rp_ref *ref, struct rp_err *err)
{
	char key[RP_REPO_MAX + RP_TAG_MAX + 80];
	json_t *list;

	if (resolve_ref(b, idx, what, name, ref, err) < 0)
		return -1;
	/* A name with a digest (app@sha256:..., app:1@sha256:...) says which manifest it names. */
	if (ref->digest[0] && strcmp(ref->digest + 7, hex))
		return rp_errf(err, "'%s': %s: '%s' names manifest %s, but the image's manifest is "
			       "sha256:%s", idx->display, what, name, ref->digest, hex);
	if (!ref->tag[0]) {
		snprintf(key, sizeof(key), "%s@sha256:%s", ref->repo, hex);
		json_array_append_new(b->untagged, json_string(key));
		return 0;
	}
	snprintf(key, sizeof(key), "%s:%s", ref->repo, ref->tag);
	list = json_object_get(b->cands, key);
	if (!list) {
		list = json_array();
		json_object_set_new(b->cands, key, list);
	}
	json_array_append_new(list, json_pack("{s:s+, s:I, s:s, s:O*, s:s}", "digest", "sha256:",
					      hex, "size", (json_int_t)size, "mediaType", mt,
					      "platform", platform, "input", idx->display));
	return 0;
}

/* ---- streaming pass ---- */

static int want_entry(void *vctx, const struct ar_entry *e)
{
	struct input *in = vctx;

	const struct entry_result *r = &in->res[e - in->idx->entries];

	return r->action != ACT_NONE && r->worker < 0;
}

static int sink_blob(void *vctx, const void *buf, size_t len, struct rp_err *err)
{
	return layout_blob_write(((struct input *)vctx)->blob, buf, len, err);
}

/* A failure while storing an entry (the disk full, a write refused) names the input and the
 * entry as well as the file being written, which is in the tree's staging area. */
static int storing_failed(const struct input *in, const struct ar_entry *e, struct rp_err *err)
{
	return rp_err_prefix(err, "'%s': '%s'", in->idx->display, e->raw ? e->raw : e->name);
}

static int store_data(void *vctx, const struct ar_entry *e, const void *buf, size_t len,
		      struct rp_err *err)
{
	struct input *in = vctx;
	struct entry_result *r = &in->res[e - in->idx->entries];
	enum rp_compression comp = r->action == ACT_COPY ? RP_COMP_NONE : in->b->opts.compression;

	in->done += len;
	if (in->b->opts.progress)
		in->b->opts.progress(in->b->opts.progress_ctx, in->idx->display, in->done, in->total);
	if (r->action == ACT_VERIFY) {
		if (!in->raw.ctx && rp_sha256_init(&in->raw) < 0)
			return rp_errf(err, "out of memory");
		if (buf) {
			rp_sha256_update(&in->raw, buf, len);
		} else {
			rp_sha256_final(&in->raw, r->raw);
			r->done = 1;
		}
		return 0;
	}
	if (!in->blob) { /* first bytes of this entry */
		if (rp_sha256_init(&in->raw) < 0)
			return rp_errf(err, "out of memory");
		if (layout_blob_new(in->b->tree, &in->blob, err) < 0 ||
		    compressor_new(comp, in->b->opts.threads, sink_blob, in, &in->comp, err) < 0)
			return -1;
		/* Stored as is: the blob's digest is the input's, hashed once, below. */
		if (comp == RP_COMP_NONE)
			layout_blob_hashed_by_caller(in->blob);
	}
	if (buf) {
		rp_sha256_update(&in->raw, buf, len);
		return compressor_write(in->comp, buf, len, err);
	}
	if (compressor_finish(in->comp, err) < 0)
		return -1;
	compressor_free(in->comp);
	in->comp = NULL;
	rp_sha256_final(&in->raw, r->raw);
	if (comp == RP_COMP_NONE)
		memcpy(r->blob, r->raw, sizeof(r->blob));
	if (layout_blob_finish(in->blob, r->blob, &r->size, err) < 0) {
		in->blob = NULL;
		return -1;
	}
	in->blob = NULL;
	r->done = 1;
	if (r->action == ACT_COMPRESS && comp != RP_COMP_NONE) {
		char ns[128], val[RP_HEX_LEN + 40];

		compression_id(comp, ns, sizeof(ns));
		snprintf(val, sizeof(val), "sha256:%s %" PRIu64, r->blob, r->size);
		return layout_cache_put(in->b->tree, ns, r->raw, val, err);
	}
	return 0;
}

static int on_data(void *vctx, const struct ar_entry *e, const void *buf, size_t len,
		   struct rp_err *err)
{
	return store_data(vctx, e, buf, len, err) < 0 ? storing_failed(vctx, e, err) : 0;
}

/* Before streaming: layers whose compressed form the tree already has need only be hashed.
 * The expected diff_id comes from the config; the streaming pass still checks it. */
static void plan_reuse(struct input *in, const struct src_image *img)
{
	enum rp_compression comp = in->b->opts.compression;
	json_t *config, *ids;
	char ns[128];
	size_t i;

	compression_id(comp, ns, sizeof(ns));
	config = json_loadb((const char *)img->config->data, img->config->data_len, 0, NULL);
	ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
	for (i = 0; i < img->nlayers && i < json_array_size(ids); i++) {
		struct entry_result *r = &in->res[img->layers[i] - in->idx->entries];
		const char *id = json_string_value(json_array_get(ids, i)), *hex;
		char val[RP_HEX_LEN + 40], blob[RP_HEX_LEN + 8];
		unsigned long long size;

		if (r->action != ACT_COMPRESS || !id || !rp_digest_parse(id, &hex))
			continue;
		if (comp == RP_COMP_NONE) { /* uncompressed: the blob is the layer itself */
			if (layout_has_blob(in->b->tree, hex)) {
				r->action = ACT_VERIFY;
				memcpy(r->blob, hex, RP_HEX_LEN + 1);
				r->size = (uint64_t)img->layers[i]->size;
			}
			continue;
		}
		if (layout_cache_get(in->b->tree, ns, hex, val, sizeof(val)) == 0 &&
		    sscanf(val, "%71s %llu", blob, &size) == 2 && rp_digest_parse(blob, &hex) &&
		    layout_has_blob(in->b->tree, hex)) {
			r->action = ACT_VERIFY;
			memcpy(r->blob, hex, RP_HEX_LEN + 1);
			r->size = size;
		}
	}
	json_decref(config);
}

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
static int synthesize(struct input *in, const struct src_image *img, char hex[RP_HEX_LEN + 1],
		      uint64_t *size, const char **mt, json_t **blobs, json_t **platform,
		      struct rp_err *err)
{
	const struct build_opts *o = &in->b->opts;
	const char *lmt = layer_media_type(o), *cmt = o->oci ? MT_OCI_CONFIG : MT_DOCKER_CONFIG;
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
	*platform = platform_of(config);
	rc = 0;
out:
	free(bytes);
	json_decref(manifest);
	json_decref(layers);
	json_decref(config);
	return rc;
}

static int record_blobs(struct builder *b, const char *repo, json_t *blobs, struct rp_err *err)
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

static int emit_image(struct input *in, const struct src_image *img, struct rp_err *err)
{
	struct builder *b = in->b;
	char hex[RP_HEX_LEN + 1];
	json_t *blobs = NULL, *platform = NULL;
	const char *mt;
	uint64_t size;
	size_t i;
	int rc = -1;

	if (synthesize(in, img, hex, &size, &mt, &blobs, &platform, err) < 0)
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
		if (name_content(b, in->idx, img->what, b->opts.tag ? b->opts.tag
				 : img->nrefs ? img->refs[i] : byd, hex,
				 size, mt, platform, &ref, err) < 0 ||
		    layout_add_manifest(b->tree, ref.repo, hex, size, mt, err) < 0 ||
		    record_blobs(b, ref.repo, blobs, err) < 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(blobs);
	json_decref(platform);
	return rc;
}

/* ---- preserved graphs ---- */

static int add_node(struct input *in, size_t *out, struct rp_err *err)
{
	if (in->nnodes == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : 16;
		struct node *n = realloc(in->nodes, cap * sizeof(*n));

		if (!n)
			return rp_errf(err, "out of memory");
		in->nodes = n;
		in->cap = cap;
	}
	memset(&in->nodes[in->nnodes], 0, sizeof(in->nodes[0]));
	*out = in->nnodes++;
	return 0;
}

static int parse_child(struct input *in, json_t *d, const char *parent, size_t i,
		       struct src_desc *out, struct rp_err *err)
{
	enum src_desc_fault fault = src_desc_parse(d, out);

	if (fault == SRC_DESC_OK)
		return 0;
	if (fault == SRC_DESC_NO_MEMORY)
		return rp_errf(err, "out of memory");
	free(out->media_type); /* a manifest's descriptors must name their media type */
	out->media_type = NULL;
	return rp_errf(err, "'%s': sha256:%s: descriptor %zu is malformed", in->idx->display, parent,
		       i + 1);
}

/* Mark a blob of a preserved image for copying (or rebuilding), checking it is there. */
static int need_blob(struct input *in, const char *manifest, const struct src_desc *d,
		     enum entry_action action, const struct ar_entry **entry, struct rp_err *err)
{
	const struct ar_entry *e = in->fmt->blob(in->idx, d->hex);

	if (!e)
		return rp_errf(err, "'%s': manifest sha256:%s needs blob sha256:%s, which is not in "
			       "the input", in->idx->display, manifest, d->hex);
	if (e->size != d->size)
		return rp_errf(err, "'%s': blob sha256:%s is %lld bytes, its descriptor says %lld",
			       in->idx->display, d->hex, (long long)e->size, (long long)d->size);
	if (entry)
		*entry = e;
	if (action == ACT_COPY && layout_has_blob(in->b->tree, d->hex))
		return 0; /* the tree has it already: nothing to read */
	in->res[e - in->idx->entries].action = action;
	return 0;
}

static int walk(struct input *in, const struct src_desc *d, int depth, size_t *out,
		struct rp_err *err);

static int walk_image(struct input *in, size_t n, struct rp_err *err)
{
	json_t *m = in->nodes[n].json, *layers = json_object_get(m, "layers"), *l;
	const char *hex = in->nodes[n].in.hex;
	struct src_desc cd;
	size_t i, uncompressed = 0;
	int rc = -1;

	if (parse_child(in, json_object_get(m, "config"), hex, 0, &cd, err) < 0)
		return -1;
	if (!json_is_array(layers)) {
		free(cd.media_type);
		return rp_errf(err, "'%s': manifest sha256:%s has no layers", in->idx->display, hex);
	}
	json_array_foreach(layers, i, l) {
		const char *mt = json_string_value(json_object_get(l, "mediaType"));

		uncompressed += mt && is_uncompressed_layer(mt);
	}
	/* Uncompressed layers (Docker >= 25 graphdriver saves, some OCI layouts) are not what a
	 * registry serves: rebuild such images like docker-archive ones. Compressed ones are the
	 * registry's own blobs: keep them, and the manifest, byte for byte; and all of a regpress
	 * tree's, which it serves whatever their layers. */
	in->nodes[n].rebuild = !in->fmt->registry_only && uncompressed > 0 &&
			       uncompressed == json_array_size(layers);
	if (in->nodes[n].rebuild) {
		struct src_image *img = &in->nodes[n].img;
		json_t *config, *ids, *id;

		if (asprintf(&img->what, "image sha256:%.12s", hex) < 0 ||
		    !(img->layers = calloc(json_array_size(layers) + 1, sizeof(*img->layers)))) {
			rp_errf(err, "out of memory");
			goto out;
		}
		img->config = in->fmt->blob(in->idx, cd.hex);
		if (!img->config) {
			rp_errf(err, "'%s': manifest sha256:%s needs config sha256:%s, which is not "
				"in the input", in->idx->display, hex, cd.hex);
			goto out;
		}
		if (ar_load(in->idx, &img->config, 1, err) < 0)
			goto out;
		/* An uncompressed layer's digest is its diff_id, so take the layers in the order
		 * rootfs.diff_ids gives: Docker 25.0.x wrote them out of order in its manifests. */
		config = json_loadb((const char *)img->config->data, img->config->data_len, 0, NULL);
		ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
		if (json_array_size(ids) != json_array_size(layers)) {
			rp_errf(err, "'%s': %s: config lists %zu diff_ids but the manifest %zu layers",
				in->idx->display, img->what, json_array_size(ids),
				json_array_size(layers));
			json_decref(config);
			goto out;
		}
		json_array_foreach(ids, i, id) {
			struct src_desc ld;
			const char *h = json_string_value(id);
			int r;

			memset(&ld, 0, sizeof(ld));
			if (!h || !rp_digest_parse(h, &h)) {
				rp_errf(err, "'%s': %s: diff_id %zu is not a sha256 digest",
					in->idx->display, img->what, i + 1);
				json_decref(config);
				goto out;
			}
			memcpy(ld.hex, h, RP_HEX_LEN + 1);
			ld.size = in->fmt->blob(in->idx, h) ? in->fmt->blob(in->idx, h)->size : 0;
			r = need_blob(in, hex, &ld, ACT_COMPRESS, &img->layers[i], err);
			if (r < 0) {
				json_decref(config);
				goto out;
			}
			img->nlayers++;
		}
		json_decref(config);
		rc = 0;
		goto out;
	}
	if (need_blob(in, hex, &cd, ACT_COPY, NULL, err) < 0)
		goto out;
	in->nodes[n].blobs = json_array();
	json_array_append_new(in->nodes[n].blobs,
			      json_pack("{s:s+, s:I, s:s}", "digest", "sha256:", cd.hex, "size",
					(json_int_t)cd.size, "mediaType", cd.media_type));
	json_array_foreach(layers, i, l) {
		struct src_desc ld;
		int r = parse_child(in, l, hex, i, &ld, err);

		/* Foreign layers (Windows base images) live elsewhere by design. */
		if (r == 0 && !is_foreign_layer(ld.media_type)) {
			r = need_blob(in, hex, &ld, ACT_COPY, NULL, err);
			json_array_append_new(in->nodes[n].blobs,
					      json_pack("{s:s+, s:I, s:s}", "digest", "sha256:",
							ld.hex, "size", (json_int_t)ld.size,
							"mediaType", ld.media_type));
		}
		free(ld.media_type);
		if (r < 0)
			goto out;
	}
	{
		const struct ar_entry *ce = in->fmt->blob(in->idx, cd.hex);
		json_t *config;

		if (ce && ce->size <= (int64_t)MANIFEST_MAX && ar_load(in->idx, &ce, 1, err) == 0) {
			config = json_loadb((const char *)ce->data, ce->data_len, 0, NULL);
			in->nodes[n].platform = platform_of(config);
			json_decref(config);
		}
	}
	rc = 0;
out:
	free(cd.media_type);
	return rc;
}

/* Walk a root (depth 0) or a child of an index, recursively. */
static int walk(struct input *in, const struct src_desc *d, int depth, size_t *out,
		struct rp_err *err)
{
	json_t *seen = json_object_get(in->node_of, d->hex), *children;
	const struct ar_entry *e;
	char hex[RP_HEX_LEN + 1];
	const char *mt;
	size_t n = 0, i;

	if (seen) {
		*out = (size_t)json_integer_value(seen);
		return 0;
	}
	if (add_node(in, &n, err) < 0)
		return -1;
	*out = n;
	in->nodes[n].in = *d;
	in->nodes[n].in.media_type = strdup(d->media_type);
	if (!in->nodes[n].in.media_type)
		return rp_errf(err, "out of memory");
	json_object_set_new(in->node_of, d->hex, json_integer((json_int_t)n));
	e = in->fmt->blob(in->idx, d->hex);
	if (!e) {
		if (depth == 0)
			return rp_errf(err, "'%s': index.json names sha256:%s, which is not in the "
				       "input", in->idx->display, d->hex);
		in->nodes[n].kind = NODE_MISSING; /* kept in the index, recorded as absent */
		return 0;
	}
	if (e->size != d->size || (uint64_t)e->size > MANIFEST_MAX)
		return rp_errf(err, "'%s': manifest sha256:%s is %lld bytes (descriptor: %lld, "
			       "limit %u)", in->idx->display, d->hex, (long long)e->size,
			       (long long)d->size, MANIFEST_MAX);
	if (ar_load(in->idx, &e, 1, err) < 0)
		return -1;
	rp_sha256_buf(e->data, e->data_len, hex);
	if (strcmp(hex, d->hex))
		return rp_errf(err, "'%s': manifest sha256:%s has digest sha256:%s",
			       in->idx->display, d->hex, hex);
	in->nodes[n].e = e;
	in->nodes[n].json = json_loadb((const char *)e->data, e->data_len, JSON_REJECT_DUPLICATES,
				       NULL);
	if (!json_is_object(in->nodes[n].json))
		return rp_errf(err, "'%s': manifest sha256:%s is not a JSON object",
			       in->idx->display, d->hex);
	mt = json_string_value(json_object_get(in->nodes[n].json, "mediaType"));
	if (!d->media_type[0]) { /* descriptor without a type: the manifest's own says */
		free(in->nodes[n].in.media_type);
		in->nodes[n].in.media_type = strdup(mt ? mt : MT_OCI_MANIFEST);
	}
	children = json_object_get(in->nodes[n].json, "manifests");
	if (!json_is_array(children)) {
		in->nodes[n].kind = NODE_IMAGE;
		return walk_image(in, n, err);
	}
	in->nodes[n].kind = NODE_INDEX;
	if (depth >= INDEX_DEPTH_MAX)
		return rp_errf(err, "'%s': index sha256:%s: indexes nested more than %d deep",
			       in->idx->display, d->hex, INDEX_DEPTH_MAX);
	in->nodes[n].children = calloc(json_array_size(children) + 1, sizeof(size_t));
	if (!in->nodes[n].children)
		return rp_errf(err, "out of memory");
	for (i = 0; i < json_array_size(children); i++) {
		struct src_desc cd;
		size_t c;
		int r = parse_child(in, json_array_get(children, i), d->hex, i, &cd, err);

		if (r == 0)
			r = walk(in, &cd, depth + 1, &c, err);
		free(cd.media_type);
		if (r < 0)
			return -1;
		in->nodes[*out].children[in->nodes[*out].nchildren++] = c;
	}
	return 0;
}

/* After the streaming pass: check copied blobs, write manifests, rewrite indexes whose children
 * changed (rebuilt) or were pruned. */
static int finalize(struct input *in, size_t n, struct rp_err *err)
{
	struct node *nd = &in->nodes[n];
	json_t *copy = NULL;
	size_t i;
	int changed = 0, rc = -1;

	if (nd->final_done)
		return 0;
	nd->final_done = 1;
	memcpy(nd->hex, nd->in.hex, sizeof(nd->hex));
	nd->size = (uint64_t)nd->in.size;
	nd->mt = nd->in.media_type;
	if (nd->kind == NODE_MISSING)
		return 0;
	if (nd->kind == NODE_IMAGE && nd->rebuild)
		return synthesize(in, &nd->img, nd->hex, &nd->size, &nd->mt, &nd->blobs,
				  &nd->platform, err);
	if (nd->kind == NODE_IMAGE) {
		json_t *d;

		json_array_foreach(nd->blobs, i, d) {
			const char *hex = json_string_value(json_object_get(d, "digest")) + 7;
			const struct ar_entry *e = in->fmt->blob(in->idx, hex);
			const struct entry_result *r = e ? &in->res[e - in->idx->entries] : NULL;

			if (r && r->action == ACT_COPY && strcmp(r->blob, hex))
				return rp_errf(err, "'%s': blob sha256:%s has digest sha256:%s",
					       in->idx->display, hex, r->blob);
		}
		return layout_put_blob(in->b->tree, nd->e->data, nd->e->data_len, nd->hex, err);
	}
	for (i = 0; i < nd->nchildren; i++) {
		struct node *c = &in->nodes[nd->children[i]];

		if (finalize(in, nd->children[i], err) < 0)
			return -1;
		nd = &in->nodes[n]; /* finalize may not move nodes, but stay safe */
		if (strcmp(c->hex, c->in.hex) || (c->kind == NODE_MISSING && in->b->opts.prune_missing))
			changed = 1;
	}
	if (!changed)
		return layout_put_blob(in->b->tree, nd->e->data, nd->e->data_len, nd->hex, err);
	/* An index over rebuilt or pruned children is a new index, with a new digest. */
	copy = json_deep_copy(nd->json);
	if (!copy)
		return rp_errf(err, "out of memory");
	{
		json_t *list = json_object_get(copy, "manifests"), *kept = json_array();
		char *bytes;

		for (i = 0; i < nd->nchildren; i++) {
			struct node *c = &in->nodes[nd->children[i]];
			json_t *d = json_deep_copy(json_array_get(list, i));

			if (c->kind == NODE_MISSING && in->b->opts.prune_missing) {
				json_decref(d);
				continue;
			}
			json_object_set_new(d, "mediaType", json_string(c->mt));
			json_object_set_new(d, "digest", json_pack("s+", "sha256:", c->hex));
			json_object_set_new(d, "size", json_integer((json_int_t)c->size));
			json_array_append_new(kept, d);
		}
		json_object_set_new(copy, "manifests", kept);
		bytes = json_dumps(copy, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!bytes) {
			rp_errf(err, "out of memory");
			goto out;
		}
		nd->size = strlen(bytes);
		rc = layout_put_blob(in->b->tree, bytes, nd->size, nd->hex, err);
		free(bytes);
	}
out:
	json_decref(copy);
	return rc;
}

/* Record everything a finalized node serves under repo. */
static int record_node(struct input *in, const char *repo, size_t n, const char *index_hex,
		       struct rp_err *err)
{
	struct node *nd = &in->nodes[n];
	size_t i;

	if (nd->kind == NODE_MISSING) {
		char note[RP_REPO_MAX + 2 * RP_HEX_LEN + 64];

		if (in->b->opts.prune_missing)
			return 0;
		snprintf(note, sizeof(note), "%s@sha256:%s (in index sha256:%s)", repo, nd->hex,
			 index_hex);
		json_array_append_new(in->b->missing, json_string(note));
		return layout_add_missing(in->b->tree, repo, nd->hex, nd->size, nd->mt, err);
	}
	if (layout_add_manifest(in->b->tree, repo, nd->hex, nd->size, nd->mt, err) < 0)
		return -1;
	if (nd->kind == NODE_IMAGE)
		return record_blobs(in->b, repo, nd->blobs, err);
	for (i = 0; i < nd->nchildren; i++)
		if (record_node(in, repo, nd->children[i], nd->hex, err) < 0)
			return -1;
	return 0;
}

static int emit_root(struct input *in, const struct src_root *r, size_t n, size_t nroots,
		     struct rp_err *err)
{
	struct builder *b = in->b;
	char what[RP_HEX_LEN + 32];
	size_t i, count = b->opts.tag ? 1 : r->nrefs;

	snprintf(what, sizeof(what), "manifest sha256:%.12s", r->desc.hex);
	if (finalize(in, n, err) < 0)
		return -1;
	if (count == 0 && in->nodes[n].json) {
		/* An artifact (signature, SBOM) names no image: it belongs beside its subject, in
		 * every repository that holds the subject, reachable by digest and as a referrer. */
		const char *sd = json_string_value(json_object_get(
			json_object_get(in->nodes[n].json, "subject"), "digest"));
		const char *sh;
		size_t k, placed = 0;

		for (k = 0; sd && rp_digest_parse(sd, &sh) && k < nroots; k++) {
			const struct src_root *sr = &in->imgs.roots[k];
			size_t j;

			if (strcmp(sr->desc.hex, sh))
				continue;
			for (j = 0; j < sr->nrefs; j++) {
				struct rp_ref ref;

				if (resolve_ref(b, in->idx, what, sr->refs[j], &ref, err) < 0 ||
				    record_node(in, ref.repo, n, in->nodes[n].hex, err) < 0)
					return -1;
				placed++;
			}
		}
		if (placed)
			return 0;
	}
	if (count == 0 && b->opts.untagged_repo) {
		char byd[RP_REPO_MAX + RP_HEX_LEN + 16];
		struct rp_ref ref;

		snprintf(byd, sizeof(byd), "%s@sha256:%s", b->opts.untagged_repo, in->nodes[n].hex);
		if (name_content(b, in->idx, what, byd, in->nodes[n].hex, in->nodes[n].size,
				 in->nodes[n].mt, NULL, &ref, err) < 0)
			return -1;
		return record_node(in, ref.repo, n, in->nodes[n].hex, err);
	}
	if (b->opts.tag && nroots != 1)
		return rp_errf(err, "'%s': --tag names the only image of an input, but it has %zu",
			       in->idx->display, nroots);
	if (count == 0)
		return rp_errf(err, "'%s': %s has no name in index.json; name it with --tag "
			       "NAME:TAG, or keep it by digest with --untagged-repo REPO",
			       in->idx->display, what);
	for (i = 0; i < count; i++) {
		struct node *nd = &in->nodes[n];
		struct rp_ref ref;

		if (name_content(b, in->idx, what, b->opts.tag ? b->opts.tag : r->refs[i], nd->hex,
				 nd->size, nd->mt, nd->kind == NODE_IMAGE ? nd->platform : NULL,
				 &ref, err) < 0 ||
		    record_node(in, ref.repo, n, nd->hex, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- parallel pass ---- */

/* Entries whose only work is hashing (and maybe copying): layers the tree already holds (a
 * rebuild: their diff_id is checked), layers stored uncompressed and kept registry blobs (hashed
 * once and written as they are). SHA-256 of one stream cannot be split, but when the input can
 * skip cheaply (ar_seekable), several threads each stream their own share of these entries,
 * largest first to the least loaded, in passes of their own over the input; the main pass then
 * skips them. Compressed layers stay in the main pass: the compressors use every core already. */
struct worker {
	struct input *in;
	int id, failed;
	struct rp_sha256 sha;
	struct layout_blob *blob;
	struct rp_err err;
	pthread_t thread;
};

struct parallel_pass {
	pthread_mutex_t mu;	   /* done, running; and the tree's blob staging (not thread-safe) */
	pthread_cond_t cond;
	uint64_t done;
	int running;
};

static int hash_only(const struct input *in, const struct entry_result *r)
{
	return r->action == ACT_VERIFY || r->action == ACT_COPY ||
	       (r->action == ACT_COMPRESS && in->b->opts.compression == RP_COMP_NONE);
}

static int worker_want(void *vctx, const struct ar_entry *e)
{
	struct worker *w = vctx;

	return w->in->res[e - w->in->idx->entries].worker == w->id;
}

static int worker_store(void *vctx, const struct ar_entry *e, const void *buf, size_t len,
			struct rp_err *err)
{
	struct worker *w = vctx;
	struct entry_result *r = &w->in->res[e - w->in->idx->entries];
	struct parallel_pass *pp = w->in->pass;
	int rc = 0;

	if (!w->sha.ctx) { /* first bytes of this entry */
		if (rp_sha256_init(&w->sha) < 0)
			return rp_errf(err, "out of memory");
		if (r->action != ACT_VERIFY) {
			pthread_mutex_lock(&pp->mu);
			rc = layout_blob_new(w->in->b->tree, &w->blob, err);
			pthread_mutex_unlock(&pp->mu);
			if (rc < 0)
				return -1;
			layout_blob_hashed_by_caller(w->blob); /* stored as is: its digest is ours */
		}
	}
	if (buf) {
		rp_sha256_update(&w->sha, buf, len);
		if (w->blob && layout_blob_write(w->blob, buf, len, err) < 0)
			return -1;
		pthread_mutex_lock(&pp->mu);
		pp->done += len;
		pthread_mutex_unlock(&pp->mu);
		return 0;
	}
	rp_sha256_final(&w->sha, r->raw);
	if (w->blob) {
		memcpy(r->blob, r->raw, sizeof(r->blob));
		pthread_mutex_lock(&pp->mu);
		rc = layout_blob_finish(w->blob, r->blob, &r->size, err);
		pthread_mutex_unlock(&pp->mu);
		w->blob = NULL;
	}
	r->done = 1;
	return rc;
}

static int worker_data(void *vctx, const struct ar_entry *e, const void *buf, size_t len,
		       struct rp_err *err)
{
	const struct worker *w = vctx;

	return worker_store(vctx, e, buf, len, err) < 0 ? storing_failed(w->in, e, err) : 0;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct parallel_pass *pp = w->in->pass;

	w->failed = ar_stream(w->in->idx, worker_want, worker_data, w, &w->err) < 0;
	rp_sha256_free(&w->sha);
	layout_blob_free(w->blob);
	w->blob = NULL;
	pthread_mutex_lock(&pp->mu);
	pp->running--;
	pthread_cond_signal(&pp->cond);
	pthread_mutex_unlock(&pp->mu);
	return NULL;
}

static int parallel_pass(struct input *in, struct rp_err *err)
{
	struct worker w[8];
	struct parallel_pass pp;
	uint64_t load[8] = { 0 };
	size_t i, count = 0;
	int n = in->b->opts.threads < 8 ? in->b->opts.threads : 8, k, started = 0, rc = 0;

	for (i = 0; i < in->idx->n; i++) {
		in->res[i].worker = -1;
		count += hash_only(in, &in->res[i]);
	}
	if ((size_t)n > count)
		n = (int)count;
	if (n < 2 || !ar_seekable(in->idx))
		return 0;
	for (;;) { /* the largest entry left to the least loaded thread */
		size_t best = in->idx->n;
		int t = 0;

		for (i = 0; i < in->idx->n; i++)
			if (hash_only(in, &in->res[i]) && in->res[i].worker < 0 &&
			    (best == in->idx->n || in->idx->entries[i].size > in->idx->entries[best].size))
				best = i;
		if (best == in->idx->n)
			break;
		for (k = 1; k < n; k++)
			if (load[k] < load[t])
				t = k;
		in->res[best].worker = t;
		load[t] += (uint64_t)in->idx->entries[best].size;
	}
	memset(&pp, 0, sizeof(pp));
	pthread_mutex_init(&pp.mu, NULL);
	pthread_cond_init(&pp.cond, NULL);
	in->pass = &pp;
	memset(w, 0, sizeof(w));
	for (k = 0; k < n; k++) {
		w[k].in = in;
		w[k].id = k;
		pthread_mutex_lock(&pp.mu);
		pp.running++;
		pthread_mutex_unlock(&pp.mu);
		if (pthread_create(&w[k].thread, NULL, worker_run, &w[k])) {
			pthread_mutex_lock(&pp.mu);
			pp.running--;
			pthread_mutex_unlock(&pp.mu);
			rc = rp_errf(err, "cannot start hashing threads");
			break;
		}
		started++;
	}
	/* Wait, reporting progress a few times a second. */
	pthread_mutex_lock(&pp.mu);
	while (pp.running > 0) {
		struct timespec ts;
		uint64_t done;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&pp.cond, &pp.mu, &ts);
		done = pp.done;
		pthread_mutex_unlock(&pp.mu);
		if (in->b->opts.progress)
			in->b->opts.progress(in->b->opts.progress_ctx, in->idx->display, in->done + done,
					     in->total);
		pthread_mutex_lock(&pp.mu);
	}
	in->done += pp.done;
	pthread_mutex_unlock(&pp.mu);
	for (k = 0; k < started; k++) {
		pthread_join(w[k].thread, NULL);
		if (w[k].failed && rc == 0) {
			*err = w[k].err;
			rc = -1;
		}
	}
	in->pass = NULL;
	pthread_mutex_destroy(&pp.mu);
	pthread_cond_destroy(&pp.cond);
	return rc;
}

static void input_clear(struct input *in)
{
	size_t i;

	compressor_free(in->comp);
	layout_blob_free(in->blob);
	rp_sha256_free(&in->raw);
	for (i = 0; i < in->nnodes; i++) {
		struct node *nd = &in->nodes[i];

		free(nd->in.media_type);
		json_decref(nd->json);
		free(nd->img.what);
		free(nd->img.layers);
		free(nd->children);
		json_decref(nd->blobs);
		json_decref(nd->platform);
	}
	free(in->nodes);
	json_decref(in->node_of);
	free(in->res);
	src_images_free(&in->imgs);
	ar_index_free(in->idx);
}

static int same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

int builder_add(struct builder *b, const char *path, const char *display, struct rp_err *err)
{
	struct input in;
	size_t i, j, *root_node = NULL;
	int rc = -1;

	memset(&in, 0, sizeof(in));
	in.b = b;
	/* The output as its own input: it is locked, and changing under this build, and what it
	 * holds is in it already. */
	if (same_file(path, layout_path(b->tree)))
		return rp_errf(err, "'%s': is the output tree itself (-o); build from a copy of it, or "
			       "into another tree", display);
	if (ar_index_read(path, display, src_keep, &in.idx, err) < 0)
		return -1;
	in.fmt = src_detect(in.idx, err);
	if (!in.fmt || in.fmt->read(in.idx, &in.imgs, err) < 0)
		goto out;
	if (b->opts.tag && in.imgs.n + in.imgs.nroots != 1) {
		rp_errf(err, "'%s': --tag names the only image of an input, but it has %zu images",
			display, in.imgs.n + in.imgs.nroots);
		goto out;
	}
	in.res = calloc(in.idx->n, sizeof(*in.res));
	in.node_of = json_object();
	root_node = calloc(in.imgs.nroots + 1, sizeof(*root_node));
	if (!in.res || !in.node_of || !root_node) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < in.imgs.n; i++)
		for (j = 0; j < in.imgs.v[i].nlayers; j++)
			in.res[in.imgs.v[i].layers[j] - in.idx->entries].action = ACT_COMPRESS;
	for (i = 0; i < in.imgs.nroots; i++)
		if (walk(&in, &in.imgs.roots[i].desc, 0, &root_node[i], err) < 0)
			goto out;
	for (i = 0; i < in.imgs.n; i++)
		plan_reuse(&in, &in.imgs.v[i]);
	for (i = 0; i < in.nnodes; i++)
		if (in.nodes[i].rebuild)
			plan_reuse(&in, &in.nodes[i].img);
	for (i = 0; i < in.idx->n; i++)
		if (in.res[i].action != ACT_NONE)
			in.total += (uint64_t)in.idx->entries[i].size;
	if (parallel_pass(&in, err) < 0 || ar_stream(in.idx, want_entry, on_data, &in, err) < 0)
		goto out;
	for (i = 0; i < in.imgs.n; i++)
		if (emit_image(&in, &in.imgs.v[i], err) < 0)
			goto out;
	for (i = 0; i < in.imgs.nroots; i++)
		if (emit_root(&in, &in.imgs.roots[i], root_node[i], in.imgs.nroots, err) < 0)
			goto out;
	rc = 0;
out:
	free(root_node);
	input_clear(&in);
	return rc;
}

/* ---- settling tags ---- */

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char *platform_string(json_t *p)
{
	char *s = NULL;
	const char *v = json_string_value(json_object_get(p, "variant"));

	if (asprintf(&s, "%s/%s%s%s", json_string_value(json_object_get(p, "os")),
		     json_string_value(json_object_get(p, "architecture")), v ? "/" : "",
		     v ? v : "") < 0)
		return NULL;
	return s;
}

struct plat_item {
	char *key;
	json_t *cand;
};

static int cmp_plat(const void *a, const void *b)
{
	return strcmp(((const struct plat_item *)a)->key, ((const struct plat_item *)b)->key);
}

/* Several platforms of one image under one name: write the OCI index that joins them. */
static int merge_platforms(struct builder *b, const char *key, json_t *list, json_t **chosen,
			   struct rp_err *err)
{
	size_t i, n = json_array_size(list), k = 0;
	struct plat_item *items = calloc(n + 1, sizeof(*items));
	json_t *manifests = json_array(), *index = NULL, *c;
	char hex[RP_HEX_LEN + 1], *bytes = NULL;
	struct rp_ref ref;
	int rc = -1;

	if (!items || !manifests) {
		rp_errf(err, "out of memory");
		goto out;
	}
	json_array_foreach(list, i, c) {
		json_t *p = json_object_get(c, "platform");
		const char *mt = json_string_value(json_object_get(c, "mediaType"));
		size_t j;

		if (!p || (strcmp(mt, MT_OCI_MANIFEST) && strcmp(mt, MT_DOCKER_MANIFEST))) {
			rp_errf(err, "%s: '%s' gives an index or an image without a platform; "
				"--merge-platforms joins single-platform images", key,
				json_string_value(json_object_get(c, "input")));
			goto out;
		}
		items[k].key = platform_string(p);
		items[k].cand = c;
		for (j = 0; j < k; j++)
			if (!strcmp(items[j].key, items[k].key) &&
			    !json_equal(json_object_get(items[j].cand, "digest"),
					json_object_get(c, "digest"))) {
				rp_errf(err, "%s: '%s' and '%s' are both %s with different content",
					key, json_string_value(json_object_get(items[j].cand, "input")),
					json_string_value(json_object_get(c, "input")), items[k].key);
				k++;
				goto out;
			}
		k++;
	}
	/* Sorted by platform, so the index does not depend on the order of the inputs. */
	qsort(items, k, sizeof(*items), cmp_plat);
	for (i = 0; i < k; i++) {
		if (i > 0 && !strcmp(items[i].key, items[i - 1].key))
			continue;
		json_array_append_new(manifests, json_pack("{s:O, s:O, s:O, s:O}", "mediaType",
			json_object_get(items[i].cand, "mediaType"), "digest",
			json_object_get(items[i].cand, "digest"), "size",
			json_object_get(items[i].cand, "size"), "platform",
			json_object_get(items[i].cand, "platform")));
	}
	index = json_pack("{s:i, s:s, s:O}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX,
			  "manifests", manifests);
	bytes = index ? json_dumps(index, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (!bytes || layout_ref_parse(key, &ref, err) < 0) {
		if (!bytes)
			rp_errf(err, "out of memory");
		goto out;
	}
	if (layout_put_blob(b->tree, bytes, strlen(bytes), hex, err) < 0 ||
	    layout_add_manifest(b->tree, ref.repo, hex, strlen(bytes), MT_OCI_INDEX, err) < 0)
		goto out;
	*chosen = json_pack("{s:s+, s:s, s:I}", "digest", "sha256:", hex, "mediaType", MT_OCI_INDEX,
			    "size", (json_int_t)strlen(bytes));
	rc = 0;
out:
	for (i = 0; items && i < n; i++)
		free(items[i].key);
	free(items);
	free(bytes);
	json_decref(index);
	json_decref(manifests);
	return rc;
}

int builder_finish(struct builder *b, struct rp_err *err)
{
	size_t i, n = json_object_size(b->cands);
	const char **keys = malloc((n + 1) * sizeof(*keys));
	const char *key;
	json_t *list;
	int rc = -1;

	if (!keys)
		return rp_errf(err, "out of memory");
	i = 0;
	json_object_foreach(b->cands, key, list)
		keys[i++] = key;
	qsort(keys, n, sizeof(*keys), cmp_key);
	for (i = 0; i < n; i++) {
		json_t *first, *chosen = NULL, *inputs = json_array(), *c;
		struct rp_ref ref;
		size_t j;
		int differ = 0;

		list = json_object_get(b->cands, keys[i]);
		first = json_array_get(list, 0);
		json_array_foreach(list, j, c) {
			json_t *in = json_object_get(c, "input");
			size_t k;
			json_t *x;
			int dup = 0;

			json_array_foreach(inputs, k, x)
				dup |= json_equal(x, in);
			if (!dup)
				json_array_append(inputs, in);
			if (!json_equal(json_object_get(c, "digest"), json_object_get(first, "digest")))
				differ = 1;
		}
		if (differ && !b->opts.merge_platforms) {
			json_t *other = NULL;

			json_array_foreach(list, j, c)
				if (!other && !json_equal(json_object_get(c, "digest"),
							  json_object_get(first, "digest")))
					other = c;
			rp_errf(err, "%s is in '%s' and '%s' with different content (with "
				"--merge-platforms, different platforms of one image become an index)",
				keys[i], json_string_value(json_object_get(first, "input")),
				json_string_value(json_object_get(other, "input")));
			json_decref(inputs);
			goto out;
		}
		if (differ) {
			if (merge_platforms(b, keys[i], list, &chosen, err) < 0) {
				json_decref(inputs);
				goto out;
			}
		} else {
			chosen = json_incref(first);
		}
		if (layout_ref_parse(keys[i], &ref, err) < 0 ||
		    layout_set_tag(b->tree, ref.repo, ref.tag,
				   json_string_value(json_object_get(chosen, "digest")) + 7, err) < 0) {
			json_decref(chosen);
			json_decref(inputs);
			goto out;
		}
		json_object_set_new(b->report, keys[i],
				    json_pack("{s:O, s:O, s:o}", "digest",
					      json_object_get(chosen, "digest"), "mediaType",
					      json_object_get(chosen, "mediaType"), "inputs", inputs));
		json_decref(chosen);
	}
	rc = 0;
out:
	free(keys);
	return rc;
}

static json_t *sorted_strings(json_t *arr)
{
	size_t i, n = json_array_size(arr);
	const char **v = malloc((n + 1) * sizeof(*v));
	json_t *out = json_array();

	for (i = 0; v && i < n; i++)
		v[i] = json_string_value(json_array_get(arr, i));
	if (v)
		qsort(v, n, sizeof(*v), cmp_key);
	for (i = 0; v && i < n; i++)
		if (i == 0 || strcmp(v[i], v[i - 1]))
			json_array_append_new(out, json_string(v[i]));
	free(v);
	return out;
}

json_t *builder_report(struct builder *b)
{
	size_t i, n = json_object_size(b->report);
	const char **keys = malloc((n + 1) * sizeof(*keys));
	json_t *images = json_array(), *v;
	const char *key;

	if (!keys || !images) {
		free(keys);
		json_decref(images);
		return NULL;
	}
	i = 0;
	json_object_foreach(b->report, key, v)
		keys[i++] = key;
	qsort(keys, n, sizeof(*keys), cmp_key);
	for (i = 0; i < n; i++) {
		v = json_object_get(b->report, keys[i]);
		json_array_append_new(images, json_pack("{s:s, s:O, s:O, s:O}", "ref", keys[i],
							"digest", json_object_get(v, "digest"),
							"mediaType", json_object_get(v, "mediaType"),
							"inputs", json_object_get(v, "inputs")));
	}
	free(keys);
	return json_pack("{s:o, s:o, s:o}", "images", images, "untagged",
			 sorted_strings(b->untagged), "missing", sorted_strings(b->missing));
}
