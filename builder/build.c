/* The build pipeline (build.h): each input read, its images named, its entries streamed, its
 * manifests written; the report of what was built. */
#include "build_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
	b->codec = compression_info(opts->compression);
	b->layer_mt = opts->oci ? b->codec->oci_layer : b->codec->docker_layer;
	if (!b->layer_mt) {
		builder_free(b);
		return rp_errf(err, "%s layers need OCI manifests (--format oci): Docker schema2 "
			       "has no %s layer type", b->codec->name, b->codec->name);
	}
	compression_id(opts->compression, b->cache_ns, sizeof(b->cache_ns));
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
int bld_resolve_ref(struct builder *b, const struct ar_index *idx, const char *what,
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

json_t *bld_platform_of(json_t *config)
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

int bld_name_content(struct builder *b, const struct ar_index *idx, const char *what,
			const char *name, const char *hex, uint64_t size, const char *mt,
			json_t *platform, struct rp_ref *ref, struct rp_err *err)
{
	char key[RP_REPO_MAX + RP_TAG_MAX + 80];
	json_t *list;

	if (bld_resolve_ref(b, idx, what, name, ref, err) < 0)
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

int bld_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
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
	if (!in.fmt || in.fmt->read(in.idx, &in.imgs, err) < 0 ||
	    src_images_tidy(&in.imgs, display, err) < 0)
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
		if (bld_walk(&in, &in.imgs.roots[i].desc, 0, &root_node[i], err) < 0)
			goto out;
	for (i = 0; i < in.imgs.n; i++)
		bld_plan_reuse(&in, &in.imgs.v[i]);
	for (i = 0; i < in.nnodes; i++)
		if (in.nodes[i].rebuild)
			bld_plan_reuse(&in, &in.nodes[i].img);
	for (i = 0; i < in.idx->n; i++)
		if (in.res[i].action != ACT_NONE)
			in.total += (uint64_t)in.idx->entries[i].size;
	if (bld_stream(&in, err) < 0)
		goto out;
	for (i = 0; i < in.imgs.n; i++)
		if (bld_emit_image(&in, &in.imgs.v[i], err) < 0)
			goto out;
	for (i = 0; i < in.imgs.nroots; i++)
		if (bld_emit_root(&in, &in.imgs.roots[i], root_node[i], in.imgs.nroots, err) < 0)
			goto out;
	rc = 0;
out:
	free(root_node);
	input_clear(&in);
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
		qsort(v, n, sizeof(*v), bld_cmp_str);
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
	qsort(keys, n, sizeof(*keys), bld_cmp_str);
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
