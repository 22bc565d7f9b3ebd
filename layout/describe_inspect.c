/* One manifest in full (describe.h): `regpress inspect`. Read through the tree handle. */
#include "describe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "describe_int.h"

/* The record of repo:tag, NULL if there is none. */
static const struct snap_rec *snap_tag(const struct snapshot *s, const char *repo, const char *tag)
{
	char prefix[RP_REPO_MAX + RP_TAG_MAX + 16];
	size_t i;

	snprintf(prefix, sizeof(prefix), "tag %s %s sha256:", repo, tag);
	i = dsc_lower(s, prefix);
	return dsc_has_prefix(s, i, prefix) ? &s->v[i] : NULL;
}

int describe_resolve(const struct layout_tree *t, const struct describe_ref *ref,
		     char repo[RP_REPO_MAX + 1], char hex[RP_HEX_LEN + 1], struct rp_err *err)
{
	const struct snapshot *s = layout_snapshot(t);
	/* The tree's own name first: it is what `ls` prints. */
	const char *names[2] = { ref->exact[0] ? ref->exact : ref->repo, ref->repo };
	const char *tag = ref->tag[0] ? ref->tag : "latest";
	int i, missing = 0;

	for (i = 0; i < 2; i++) {
		const struct snap_rec *r = ref->hex[0] ? dsc_find(s, "manifest", names[i], ref->hex)
						       : snap_tag(s, names[i], tag);

		if (!r) {
			missing |= ref->hex[0] && dsc_find(s, "missing", names[i], ref->hex);
			continue;
		}
		memcpy(repo, r->repo, strlen(r->repo) + 1);
		memcpy(hex, r->hex, RP_HEX_LEN + 1);
		return 0;
	}
	if (missing)
		return rp_errf(err, "'%s': recorded as missing in '%s' (an index names it; the "
			       "input did not carry it)", ref->text, layout_path(t));
	return rp_errf(err, "'%s': no such %s in '%s'%s", ref->text,
		       ref->hex[0] ? "manifest" : "tag", layout_path(t),
		       ref->tag[0] || ref->hex[0] ? "" : " (a name alone means :latest)");
}

int describe_manifest_bytes(const struct layout_tree *t, const char *hex, char **buf, size_t *len,
			    struct rp_err *err)
{
	return dsc_read_blob(t, hex, LAYOUT_MANIFEST_MAX, "manifest", buf, len, err);
}

/* The referrers of every manifest of repo, by subject hex: what the served _referrers/ index
 * holds, worked out from the snapshot's manifests as view.c does (a reader has no view files; a
 * manifest that is not JSON refers to nothing). */
static int referrers_of(const struct layout_tree *t, const char *repo, json_t **out,
			struct rp_err *err)
{
	const struct snapshot *s = layout_snapshot(t);
	char prefix[RP_REPO_MAX + 16];
	size_t i;

	snprintf(prefix, sizeof(prefix), "manifest %s ", repo);
	if (!(*out = json_object()))
		return rp_errf(err, "out of memory");
	for (i = dsc_lower(s, prefix); dsc_has_prefix(s, i, prefix); i++) {
		const struct snap_rec *r = &s->v[i];
		json_t *desc, *list, *ann;
		struct manifest_info mi;
		char *buf;
		size_t len;

		if (dsc_read_blob(t, r->hex, LAYOUT_MANIFEST_MAX, "manifest", &buf, &len, err) < 0)
			return -1;
		if (manifest_parse(buf, len, 0, &mi) < 0)
			memset(&mi, 0, sizeof(mi));
		free(buf);
		desc = !mi.subject ? NULL
				   : json_pack("{s:s, s:s+, s:I}", "mediaType", r->media_type,
					       "digest", "sha256:", r->hex, "size", (json_int_t)r->size);
		if (desc && mi.artifact_type)
			json_object_set_new(desc, "artifactType", json_string(mi.artifact_type));
		ann = json_object_get(mi.json, "annotations");
		if (desc && json_is_object(ann))
			json_object_set(desc, "annotations", ann);
		if (desc && !(list = json_object_get(*out, mi.subject)))
			json_object_set_new(*out, mi.subject, list = json_array());
		if (desc && json_array_append_new(list, desc) < 0)
			desc = NULL;
		if (mi.subject && !desc) {
			manifest_info_free(&mi);
			return rp_errf(err, "out of memory");
		}
		manifest_info_free(&mi);
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Labels in key order, so that the same config always reads the same. */
static json_t *sorted_labels(json_t *labels)
{
	size_t n = json_object_size(labels), i = 0, j;
	const char **keys = calloc(n + 1, sizeof(*keys));
	json_t *out = json_object(), *v;
	const char *k;

	if (!keys || !out) {
		free(keys);
		json_decref(out);
		return NULL;
	}
	json_object_foreach(labels, k, v)
		keys[i++] = k;
	qsort(keys, i, sizeof(*keys), cmp_str);
	for (j = 0; j < i; j++)
		json_object_set(out, keys[j], json_object_get(labels, keys[j]));
	free(keys);
	return out;
}

static json_t *array_or_null(json_t *v)
{
	return json_is_array(v) ? json_deep_copy(v) : json_null();
}

/* What a person asks of an image config (Docker's and OCI's have the same fields). */
static json_t *config_json(json_t *cfg, const struct manifest_ref *ref)
{
	json_t *run = json_object_get(cfg, "config");

	return json_pack("{s:s+, s:s?, s:I, s:s?, s:s?, s:s?, s:s?, s:o, s:o, s:I, s:o, s:s?,"
			 " s:s?}", "digest", "sha256:", ref->hex, "mediaType", ref->media_type, "size",
			 (json_int_t)dsc_desc_size(ref->desc), "os",
			 json_string_value(json_object_get(cfg, "os")), "architecture",
			 json_string_value(json_object_get(cfg, "architecture")), "variant",
			 json_string_value(json_object_get(cfg, "variant")), "created",
			 json_string_value(json_object_get(cfg, "created")), "entrypoint",
			 array_or_null(json_object_get(run, "Entrypoint")), "cmd",
			 array_or_null(json_object_get(run, "Cmd")), "env",
			 (json_int_t)json_array_size(json_object_get(run, "Env")), "labels",
			 sorted_labels(json_object_get(run, "Labels")), "workingDir",
			 json_string_value(json_object_get(run, "WorkingDir")), "user",
			 json_string_value(json_object_get(run, "User")));
}

static json_t *layers_json(const struct manifest_info *mi)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < mi->nlayers; i++) {
		const json_t *l = mi->layers[i].desc;
		json_t *d = json_pack("{s:s?, s:s?, s:I}", "mediaType", mi->layers[i].media_type,
				      "digest", json_string_value(json_object_get(l, "digest")),
				      "size", (json_int_t)dsc_desc_size(l));

		if (json_array_append_new(a, d) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* The config and layers of a platform's manifest into e; its platform from the config when the
 * index's descriptor named none. */
static int entry_body(const struct layout_tree *t, const char *hex, json_t *e, struct rp_err *err)
{
	struct manifest_info mi;
	enum describe_kind kind;
	json_t *cfg = NULL, *conf;
	char *platform = NULL;
	int rc;

	if (dsc_read_manifest(t, hex, &mi, NULL, err) < 0)
		return -1;
	kind = dsc_kind(&mi);
	if (kind == DESCRIBE_IMAGE && dsc_read_config(t, mi.config.hex, &cfg, err) < 0) {
		manifest_info_free(&mi);
		return -1;
	}
	if (cfg)
		conf = config_json(cfg, &mi.config);
	else if (mi.config.hex)
		conf = json_pack("{s:s?, s:s+, s:I}", "mediaType", mi.config.media_type, "digest",
				 "sha256:", mi.config.hex, "size",
				 (json_int_t)dsc_desc_size(mi.config.desc));
	else
		conf = json_null();
	if (cfg && json_is_null(json_object_get(e, "platform")) && (platform = dsc_platform(cfg)))
		json_object_set_new(e, "platform", json_string(platform));
	rc = json_object_set_new(e, "kind", json_string(describe_kind_name(kind))) < 0 ||
	     (kind == DESCRIBE_ARTIFACT && mi.artifact_type &&
	      json_object_set_new(e, "artifactType", json_string(mi.artifact_type)) < 0) ||
	     json_object_set_new(e, "config", conf) < 0 ||
	     json_object_set_new(e, "layers", layers_json(&mi)) < 0 ? rp_errf(err, "out of memory")
								    : 0;
	free(platform);
	json_decref(cfg);
	manifest_info_free(&mi);
	return rc;
}

/* One platform of a manifest: an image's is the manifest itself (desc NULL), an index's are its
 * children (desc the index's descriptor), present or recorded as missing. */
static json_t *entry_json(const struct layout_tree *t, const char *repo, const char *hex,
			  const json_t *desc, json_t *refs, struct rp_err *err)
{
	const struct snap_rec *r = dsc_find(layout_snapshot(t), "manifest", repo, hex);
	char *platform = dsc_platform(json_object_get(desc, "platform"));
	const char *type = dsc_annotation(desc, DSC_ANN_REF_TYPE);
	const char *mt = r ? r->media_type : json_string_value(json_object_get(desc, "mediaType"));
	json_t *rl = json_object_get(refs, hex);
	json_t *e = json_pack("{s:s?, s:s+, s:s?, s:I, s:b}", "platform", platform, "digest",
			      "sha256:", hex, "mediaType", mt, "size",
			      (json_int_t)(r ? r->size : dsc_desc_size(desc)), "missing", !r);

	free(platform);
	if (e && type && !strcmp(type, DSC_REF_TYPE_ATTESTATION))
		json_object_set_new(e, "attestation", json_true());
	if (e && r && entry_body(t, hex, e, err) < 0) {
		json_decref(e);
		return NULL;
	}
	if (!e || json_object_set_new(e, "referrers", rl ? json_incref(rl) : json_array()) < 0) {
		json_decref(e);
		rp_errf(err, "out of memory");
		return NULL;
	}
	return e;
}

static json_t *platforms_json(const struct layout_tree *t, const char *repo, const char *hex,
			      const struct manifest_info *mi, json_t *refs, struct rp_err *err)
{
	json_t *a = json_array(), *e;
	size_t i;

	if (!a) {
		rp_errf(err, "out of memory");
		return NULL;
	}
	if (!mi->is_index) {
		e = entry_json(t, repo, hex, NULL, refs, err);
		if (!e || json_array_append_new(a, e) < 0)
			goto fail;
		return a;
	}
	for (i = 0; i < mi->nchildren; i++) {
		if (!mi->children[i].hex)
			continue;
		e = entry_json(t, repo, mi->children[i].hex, mi->children[i].desc, refs, err);
		if (!e || json_array_append_new(a, e) < 0)
			goto fail;
	}
	return a;
fail:
	json_decref(a);
	return NULL;
}

/* The tags of repo that name hex, in tag order. */
static json_t *tags_of(const struct snapshot *s, const char *repo, const char *hex)
{
	char prefix[RP_REPO_MAX + 8];
	json_t *a = json_array();
	size_t i;

	snprintf(prefix, sizeof(prefix), "tag %s ", repo);
	for (i = dsc_lower(s, prefix); a && dsc_has_prefix(s, i, prefix); i++) {
		if (strcmp(s->v[i].hex, hex))
			continue;
		if (json_array_append_new(a, json_string(s->v[i].tag)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* The top of the object: what ls says of the manifest, its tags, subject and annotations. */
static json_t *inspect_head(const struct layout_tree *t, const struct describe_tag *d,
			    const struct manifest_info *mi)
{
	json_t *ann = json_object_get(mi->json, "annotations");
	json_t *j = json_pack("{s:s, s:s+, s:s, s:I, s:s, s:s?, s:o, s:I, s:s?}", "repository",
			      d->repo, "digest", "sha256:", d->hex, "mediaType", d->media_type,
			      "size", (json_int_t)d->manifest_size, "kind",
			      describe_kind_name(d->kind), "artifactType", d->artifact_type, "tags",
			      tags_of(layout_snapshot(t), d->repo, d->hex), "totalSize",
			      (json_int_t)d->size, "created", d->created);

	if (j && mi->subject &&
	    json_object_set_new(j, "subject", json_pack("s+", "sha256:", mi->subject)) < 0) {
		json_decref(j);
		return NULL;
	}
	if (j && json_is_object(ann) && json_object_set(j, "annotations", ann) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

int describe_inspect(const struct layout_tree *t, const char *repo, const char *hex, json_t **out,
		     struct rp_err *err)
{
	struct describe_memo *m = NULL;
	struct describe_tag d = { 0 };
	struct manifest_info mi = { 0 };
	json_t *refs = NULL, *plats = NULL, *rl;
	int rc = -1;

	*out = NULL;
	if (dsc_memo_new(t, layout_snapshot(t), &m, err) < 0 ||
	    dsc_describe_one(m, repo, NULL, hex, &d, err) < 0 ||
	    referrers_of(t, repo, &refs, err) < 0 ||
	    dsc_read_manifest(t, hex, &mi, NULL, err) < 0 ||
	    !(plats = platforms_json(t, repo, hex, &mi, refs, err)))
		goto out;
	rl = json_object_get(refs, hex);
	if (!(*out = inspect_head(t, &d, &mi)) || json_object_set(*out, "platforms", plats) < 0 ||
	    json_object_set_new(*out, "referrers", rl ? json_incref(rl) : json_array()) < 0) {
		json_decref(*out);
		*out = NULL;
		rp_errf(err, "out of memory");
		goto out;
	}
	rc = 0;
out:
	json_decref(plats);
	json_decref(refs);
	manifest_info_free(&mi);
	dsc_tag_clear(&d);
	dsc_memo_free(m);
	return rc;
}
