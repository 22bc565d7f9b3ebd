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
#include "snapshot.h"
#include "source.h"
#include "tree.h"

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
	if (!e || e->size > (int64_t)LAYOUT_MANIFEST_MAX || ar_load(idx, &e, 1, &ignored) < 0)
		return;
	m = json_loadb((const char *)e->data, e->data_len, 0, NULL);
	d = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
	if (d && rp_digest_parse(d, &h))
		memcpy(cfg, h, RP_HEX_LEN + 1);
	if (json_is_array(json_object_get(m, "manifests")))
		*children = json_incref(json_object_get(m, "manifests"));
	json_decref(m);
}

static void note_config(json_t *by_config, const char *cfg, size_t root)
{
	json_t *list;

	if (!cfg[0])
		return;
	list = json_object_get(by_config, cfg);
	if (!list) {
		list = json_array();
		json_object_set_new(by_config, cfg, list);
	}
	json_array_append_new(list, json_integer((json_int_t)root));
}

/* config hex -> [root...]: the roots that reach an image manifest with that config (itself, or a
 * child of an index), each manifest looked at once. */
static json_t *roots_by_config(struct ar_index *idx, const struct src_images *out)
{
	json_t *by_config = json_object();
	char got[RP_HEX_LEN + 1];
	size_t r;

	for (r = 0; by_config && r < out->nroots; r++) {
		json_t *children, *c;
		size_t i;

		manifest_config(idx, out->roots[r].desc.hex, got, &children);
		note_config(by_config, got, r);
		json_array_foreach(children, i, c) {
			const char *d = json_string_value(json_object_get(c, "digest")), *h;
			json_t *none;

			if (!d || !rp_digest_parse(d, &h))
				continue;
			manifest_config(idx, h, got, &none);
			json_decref(none);
			note_config(by_config, got, r);
		}
		json_decref(children);
	}
	return by_config;
}

/* Docker >= 25 and containerd saves also carry manifest.json: take its RepoTags, and rebuild the
 * images that index.json does not reach. */
static int merge_docker_manifest(struct ar_index *idx, struct src_images *out, struct rp_err *err)
{
	struct src_images docker = { NULL, 0, NULL, 0 };
	json_t *by_config = NULL, *r;
	size_t i, j, keep = 0;

	if (src_docker_manifest(idx, &docker, err) < 0)
		return -1;
	if (!(by_config = roots_by_config(idx, out))) {
		rp_errf(err, "out of memory");
		goto fail;
	}
	for (i = 0; i < docker.n; i++) {
		struct src_image *img = &docker.v[i];
		const char *base = strrchr(img->config->name, '/');
		json_t *roots;
		int matched = 0;

		base = base ? base + 1 : img->config->name;
		roots = rp_hex_valid(base) ? json_object_get(by_config, base) : NULL;
		json_array_foreach(roots, j, r) {
			struct src_root *root = &out->roots[json_integer_value(r)];
			size_t k;

			matched = 1;
			for (k = 0; k < img->nrefs; k++)
				if (src_add_ref(&root->refs, &root->nrefs, img->refs[k], err) < 0)
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
	json_decref(by_config);
	return 0;
fail:
	json_decref(by_config);
	src_images_free(&docker);
	return -1;
}

static int oci_read(struct ar_index *idx, struct src_images *out, struct rp_err *err)
{
	const struct ar_entry *ie = ar_find(idx, "index.json");
	json_error_t jerr;
	json_t *index, *list, *d, *at, *root_of = NULL; /* hex -> root */
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
	root_of = json_object();
	if (!out->roots || !root_of) {
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
		at = json_object_get(root_of, desc.hex);
		j = at ? (size_t)json_integer_value(at) : out->nroots;
		if (!at) {
			json_object_set_new(root_of, desc.hex, json_integer((json_int_t)j));
			out->roots[out->nroots++].desc = desc;
		} else {
			free(desc.media_type);
		}
		if (root_names(json_object_get(d, "annotations"), &out->roots[j], err) < 0)
			goto out;
	}
	if (ar_find(idx, "manifest.json") && merge_docker_manifest(idx, out, err) < 0)
		goto out;
	rc = 0;
out:
	json_decref(index);
	json_decref(root_of);
	if (rc < 0)
		src_images_free(out);
	return rc;
}

static int is_uncompressed_layer(const char *mt)
{
	return !strcmp(mt, "application/vnd.oci.image.layer.v1.tar") ||
	       !strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar");
}

/* The layers of an image to rebuild, in rootfs.diff_ids order: an uncompressed layer's digest is
 * its diff_id, and Docker 25.0.x wrote its manifests' layers out of order. */
static int layers_by_diff_id(struct ar_index *idx, const char *hex, size_t nlayers,
			     struct src_image *img, struct rp_err *err)
{
	json_t *config = json_loadb((const char *)img->config->data, img->config->data_len, 0, NULL);
	json_t *ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids"), *id;
	size_t i;
	int rc = -1;

	if (json_array_size(ids) != nlayers) {
		rp_errf(err, "'%s': %s: config lists %zu diff_ids but the manifest %zu layers",
			idx->display, img->what, json_array_size(ids), nlayers);
		goto out;
	}
	json_array_foreach(ids, i, id) {
		const char *h = json_string_value(id);

		if (!h || !rp_digest_parse(h, &h)) {
			rp_errf(err, "'%s': %s: diff_id %zu is not a sha256 digest", idx->display,
				img->what, i + 1);
			goto out;
		}
		img->layers[i] = oci_blob(idx, h);
		if (!img->layers[i]) {
			rp_errf(err, "'%s': manifest sha256:%s needs blob sha256:%s, which is not in "
				"the input", idx->display, hex, h);
			goto out;
		}
		img->nlayers++;
	}
	rc = 0;
out:
	json_decref(config);
	return rc;
}

/* Uncompressed layers (Docker >= 25 graphdriver saves, some OCI layouts) are not what a registry
 * serves: such images are rebuilt like docker-archive ones. Compressed ones are the registry's
 * own blobs, kept with their manifest byte for byte. */
static int oci_rebuild(struct ar_index *idx, json_t *manifest, const char *hex,
		       const struct src_desc *cd, struct src_image *img, struct rp_err *err)
{
	json_t *layers = json_object_get(manifest, "layers"), *l;
	size_t i, uncompressed = 0;

	json_array_foreach(layers, i, l) {
		const char *mt = json_string_value(json_object_get(l, "mediaType"));

		uncompressed += mt && is_uncompressed_layer(mt);
	}
	if (!uncompressed || uncompressed != json_array_size(layers))
		return 0;
	if (asprintf(&img->what, "image sha256:%.12s", hex) < 0 ||
	    !(img->layers = calloc(json_array_size(layers) + 1, sizeof(*img->layers))))
		return rp_errf(err, "out of memory");
	img->config = oci_blob(idx, cd->hex);
	if (!img->config)
		return rp_errf(err, "'%s': manifest sha256:%s needs config sha256:%s, which is not "
			       "in the input", idx->display, hex, cd->hex);
	if (ar_load(idx, &img->config, 1, err) < 0 ||
	    layers_by_diff_id(idx, hex, json_array_size(layers), img, err) < 0)
		return -1;
	return 1;
}

const struct src_format src_oci_layout = {
	.name = "oci-layout",
	.bid = oci_bid,
	.read = oci_read,
	.blob = oci_blob,
	.rebuild = oci_rebuild,
};

/* ---- a regpress tree as input (docs/tree-format.md) ----
 *
 * Its root is an OCI layout, but its index.json lists the OCI twin of every Docker manifest (OCI
 * tools skip Docker media types): read as a layout, each Docker tag would move to the twin and the
 * original digest would be lost. registry/snapshot says what the tree serves instead: each of its
 * manifests is a root, named by its tags, or by its digest when it has none and no index of its
 * repository reaches it; all kept byte for byte (no rebuild). Building a new tree from an old
 * one so gives the old tree's snapshot. */

static int tree_bid(const struct ar_index *idx)
{
	const struct ar_entry *s = ar_find(idx, "registry/snapshot");

	return s && s->type == AR_FILE && oci_bid(idx) ? 30 : 0;
}

int src_tree_ref_parse(const char *s, struct rp_ref *ref, struct rp_err *err)
{
	const char *at = strchr(s, '@'), *colon = strrchr(s, ':');
	size_t len;

	memset(ref, 0, sizeof(*ref));
	if (at && rp_digest_parse(at + 1, NULL)) {
		snprintf(ref->digest, sizeof(ref->digest), "%s", at + 1);
		len = (size_t)(at - s);
	} else if (!at && colon && !strchr(colon, '/') && layout_tag_valid(colon + 1)) {
		snprintf(ref->tag, sizeof(ref->tag), "%s", colon + 1);
		len = (size_t)(colon - s);
	} else {
		return rp_errf(err, "invalid reference '%.300s' in a regpress tree", s);
	}
	if (len > RP_REPO_MAX)
		return rp_errf(err, "invalid reference '%.300s' in a regpress tree", s);
	memcpy(ref->repo, s, len);
	ref->repo[len] = '\0';
	if (!layout_repo_valid(ref->repo))
		return rp_errf(err, "invalid reference '%.300s' in a regpress tree", s);
	return 0;
}

static int is_index_type(const char *mt)
{
	return !strcmp(mt, "application/vnd.oci.image.index.v1+json") ||
	       !strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json");
}

static void repo_key(char *key, size_t size, const char *repo, const char *hex)
{
	snprintf(key, size, "%s %s", repo, hex);
}

/* Mark "repo hex" of every manifest an index of the same repository names: those are reached
 * through the index and are roots only if tagged. The indexes are loaded in one pass. */
static int tree_children(struct ar_index *idx, const struct snapshot *s, json_t *children,
			 struct rp_err *err)
{
	const struct ar_entry **want = calloc(s->n + 1, sizeof(*want));
	const struct snap_rec **rec = calloc(s->n + 1, sizeof(*rec));
	size_t i, n = 0;
	int rc = -1;

	if (!want || !rec) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < s->n; i++) {
		const struct ar_entry *e = s->v[i].kind == SNAP_MANIFEST &&
					   is_index_type(s->v[i].media_type)
					   ? oci_blob(idx, s->v[i].hex) : NULL;

		if (e && e->size <= (int64_t)LAYOUT_MANIFEST_MAX) { /* larger: the build refuses it */
			rec[n] = &s->v[i];
			want[n++] = e;
		}
	}
	if (ar_load(idx, want, n, err) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		json_t *m = json_loadb((const char *)want[i]->data, want[i]->data_len, 0, NULL), *d;
		size_t k;

		json_array_foreach(json_object_get(m, "manifests"), k, d) {
			const char *dg = json_string_value(json_object_get(d, "digest")), *h;
			char key[RP_REPO_MAX + RP_HEX_LEN + 2];

			if (dg && rp_digest_parse(dg, &h)) {
				repo_key(key, sizeof(key), rec[i]->repo, h);
				json_object_set_new(children, key, json_true());
			}
		}
		json_decref(m);
	}
	rc = 0;
out:
	free(want);
	free(rec);
	return rc;
}

/* Name manifest m with ref ("=..."): one root per digest, however many names it has. */
static int tree_root_ref(struct src_images *out, json_t *root_of, const struct snap_rec *m,
			 const char *ref, struct rp_err *err)
{
	json_t *j = json_object_get(root_of, m->hex);
	struct src_root *r;

	if (j) {
		r = &out->roots[json_integer_value(j)];
	} else {
		r = &out->roots[out->nroots];
		memcpy(r->desc.hex, m->hex, sizeof(r->desc.hex));
		r->desc.size = (int64_t)m->size;
		r->desc.media_type = strdup(m->media_type);
		if (!r->desc.media_type)
			return rp_errf(err, "out of memory");
		json_object_set_new(root_of, m->hex, json_integer((json_int_t)out->nroots++));
	}
	return src_add_ref(&r->refs, &r->nrefs, ref, err);
}

/* Tags first, then the manifests that nothing else names. */
static int tree_roots(const struct ar_index *idx, const struct snapshot *s, json_t *children,
		      struct src_images *out, struct rp_err *err)
{
	json_t *man = json_object(), *tagged = json_object(), *root_of = json_object();
	char key[RP_REPO_MAX + RP_HEX_LEN + 2], ref[RP_REPO_MAX + RP_TAG_MAX + RP_HEX_LEN + 16];
	size_t i;
	int rc = -1;

	if (!man || !tagged || !root_of) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < s->n; i++)
		if (s->v[i].kind == SNAP_MANIFEST) {
			repo_key(key, sizeof(key), s->v[i].repo, s->v[i].hex);
			json_object_set_new(man, key, json_integer((json_int_t)i));
		}
	for (i = 0; i < s->n; i++) {
		json_t *m;

		if (s->v[i].kind != SNAP_TAG)
			continue;
		repo_key(key, sizeof(key), s->v[i].repo, s->v[i].hex);
		m = json_object_get(man, key);
		if (!m) {
			rp_errf(err, "'%s': registry/snapshot: tag %s:%s names sha256:%s, which is not "
				"a manifest of %s", idx->display, s->v[i].repo, s->v[i].tag,
				s->v[i].hex, s->v[i].repo);
			goto out;
		}
		json_object_set_new(tagged, key, json_true());
		snprintf(ref, sizeof(ref), "=%s:%s", s->v[i].repo, s->v[i].tag);
		if (tree_root_ref(out, root_of, &s->v[json_integer_value(m)], ref, err) < 0)
			goto out;
	}
	for (i = 0; i < s->n; i++) {
		if (s->v[i].kind != SNAP_MANIFEST)
			continue;
		repo_key(key, sizeof(key), s->v[i].repo, s->v[i].hex);
		if (json_object_get(tagged, key) || json_object_get(children, key))
			continue;
		snprintf(ref, sizeof(ref), "=%s@sha256:%s", s->v[i].repo, s->v[i].hex);
		if (tree_root_ref(out, root_of, &s->v[i], ref, err) < 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(man);
	json_decref(tagged);
	json_decref(root_of);
	return rc;
}

static int tree_read(struct ar_index *idx, struct src_images *out, struct rp_err *err)
{
	const struct ar_entry *se = ar_find(idx, "registry/snapshot");
	struct snapshot s;
	json_t *children = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!se->data)
		return rp_errf(err, "'%s': registry/snapshot is too large", idx->display);
	if (snapshot_parse((const char *)se->data, se->data_len, idx->display, &s, err) < 0) {
		/* "'INPUT': what" (snapshot_parse) becomes "'INPUT': registry/snapshot: what" */
		char what[sizeof(err->msg)];
		size_t skip = strlen(idx->display) + 4;

		snprintf(what, sizeof(what), "%s", strlen(err->msg) > skip ? err->msg + skip : "");
		return rp_errf(err, "'%s': registry/snapshot: %s", idx->display, what);
	}
	out->roots = calloc(s.n + 1, sizeof(*out->roots));
	children = json_object();
	if (!out->roots || !children)
		rp_errf(err, "out of memory");
	else if (tree_children(idx, &s, children, err) == 0 &&
		 tree_roots(idx, &s, children, out, err) == 0)
		rc = 0;
	json_decref(children);
	snapshot_free(&s);
	if (rc < 0)
		src_images_free(out);
	return rc;
}

const struct src_format src_regpress_tree = {
	.name = "regpress-tree",
	.bid = tree_bid,
	.read = tree_read,
	.blob = oci_blob,
	.rebuild = NULL, /* a tree serves its manifests whatever their layers: all kept */
};
