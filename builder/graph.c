/* Preserved graphs: the manifests and indexes an input names (OCI layouts, containerd and
 * Docker >= 25 saves, regpress trees), walked from their roots, their blobs copied and checked,
 * kept byte for byte, or rebuilt where the format says so (and the indexes above them rewritten). */
#include "build_int.h"
#include "tree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int walk_image(struct input *in, size_t n, struct rp_err *err);

static int is_foreign_layer(const char *mt)
{
	return strstr(mt, "foreign") || strstr(mt, "nondistributable");
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


static int walk_image(struct input *in, size_t n, struct rp_err *err)
{
	json_t *m = in->nodes[n].json, *layers = json_object_get(m, "layers"), *l;
	const char *hex = in->nodes[n].in.hex;
	struct src_desc cd;
	size_t i;
	int r, rc = -1;

	if (parse_child(in, json_object_get(m, "config"), hex, 0, &cd, err) < 0)
		return -1;
	if (!json_is_array(layers)) {
		free(cd.media_type);
		return rp_errf(err, "'%s': manifest sha256:%s has no layers", in->idx->display, hex);
	}
	/* The format decides whether the manifest's blobs are the registry's own (kept byte for
	 * byte) or the image is to be rebuilt like a docker-archive one (src_oci.c: uncompressed
	 * layers, as Docker >= 25 saves them). */
	r = in->fmt->rebuild ? in->fmt->rebuild(in->idx, m, hex, &cd, &in->nodes[n].img, err) : 0;
	if (r < 0)
		goto out;
	if (r == 1) {
		const struct src_image *img = &in->nodes[n].img;

		in->nodes[n].rebuild = 1;
		for (i = 0; i < img->nlayers; i++)
			in->res[img->layers[i] - in->idx->entries].action = ACT_COMPRESS;
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
		int lr = parse_child(in, l, hex, i, &ld, err);

		/* Foreign layers (Windows base images) live elsewhere by design. */
		if (lr == 0 && !is_foreign_layer(ld.media_type)) {
			lr = need_blob(in, hex, &ld, ACT_COPY, NULL, err);
			json_array_append_new(in->nodes[n].blobs,
					      json_pack("{s:s+, s:I, s:s}", "digest", "sha256:",
							ld.hex, "size", (json_int_t)ld.size,
							"mediaType", ld.media_type));
		}
		free(ld.media_type);
		if (lr < 0)
			goto out;
	}
	{
		const struct ar_entry *ce = in->fmt->blob(in->idx, cd.hex);
		json_t *config;

		if (ce && ce->size <= (int64_t)LAYOUT_MANIFEST_MAX && ar_load(in->idx, &ce, 1, err) == 0) {
			config = json_loadb((const char *)ce->data, ce->data_len, 0, NULL);
			in->nodes[n].platform = bld_platform_of(config);
			json_decref(config);
		}
	}
	rc = 0;
out:
	free(cd.media_type);
	return rc;
}

/* Walk a root (depth 0) or a child of an index, recursively. */
int bld_walk(struct input *in, const struct src_desc *d, int depth, size_t *out,
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
	if (e->size != d->size || (uint64_t)e->size > LAYOUT_MANIFEST_MAX)
		return rp_errf(err, "'%s': manifest sha256:%s is %lld bytes (descriptor: %lld, "
			       "limit %u)", in->idx->display, d->hex, (long long)e->size,
			       (long long)d->size, LAYOUT_MANIFEST_MAX);
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
			r = bld_walk(in, &cd, depth + 1, &c, err);
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
		return bld_synthesize(in, &nd->img, nd->hex, &nd->size, &nd->mt, &nd->blobs,
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
		return bld_record_blobs(in->b, repo, nd->blobs, err);
	for (i = 0; i < nd->nchildren; i++)
		if (record_node(in, repo, nd->children[i], nd->hex, err) < 0)
			return -1;
	return 0;
}

int bld_emit_root(struct input *in, const struct src_root *r, size_t n, size_t nroots,
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

				if (bld_resolve_ref(b, in->idx, what, sr->refs[j], &ref, err) < 0 ||
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
		if (bld_name_content(b, in->idx, what, byd, in->nodes[n].hex, in->nodes[n].size,
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

		if (bld_name_content(b, in->idx, what, b->opts.tag ? b->opts.tag : r->refs[i], nd->hex,
				 nd->size, nd->mt, nd->kind == NODE_IMAGE ? nd->platform : NULL,
				 &ref, err) < 0 ||
		    record_node(in, ref.repo, n, nd->hex, err) < 0)
			return -1;
	}
	return 0;
}
