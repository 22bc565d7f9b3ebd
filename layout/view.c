#include "view.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define OCI_LAYOUT "{\"imageLayoutVersion\":\"1.0.0\"}"

static int emit_json(const struct view_sink *sink, const char *rel, json_t *j, struct rp_err *err)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	int rc;

	if (!s)
		return rp_errf(err, "out of memory");
	rc = sink->file(sink->ctx, rel, s, strlen(s), err);
	free(s);
	return rc;
}

static int repo_file(const struct view_sink *sink, const char *repo, const char *rel,
		     const char *body, struct rp_err *err)
{
	char dir[RP_REPO_MAX + 1], path[RP_REPO_MAX + RP_TAG_MAX + 96];

	layout_repo_path(repo, dir, sizeof(dir));
	snprintf(path, sizeof(path), "registry/repos/%s/%s", dir, rel);
	return sink->file(sink->ctx, path, body, strlen(body), err);
}

/* The OCI form of a Docker schema2 manifest: same config and layer blobs, OCI media types.
 * OCI tools (skopeo's oci: transport among them) skip Docker types in index.json, so the tree's
 * OCI view lists this twin while the registry view serves the original. The twin is a pure
 * function of the original's bytes, so it is as reproducible as everything else. */
static int oci_twin(const struct view_sink *sink, const char *hex, char twin_hex[RP_HEX_LEN + 1],
		    size_t *twin_size, struct rp_err *err)
{
	static const char *const map[][2] = {
		{ "application/vnd.docker.container.image.v1+json",
		  "application/vnd.oci.image.config.v1+json" },
		{ "application/vnd.docker.image.rootfs.diff.tar.gzip",
		  "application/vnd.oci.image.layer.v1.tar+gzip" },
		{ "application/vnd.docker.image.rootfs.diff.tar",
		  "application/vnd.oci.image.layer.v1.tar" },
		{ "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
		  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" },
	};
	char *bytes = NULL, *out = NULL;
	json_t *m = NULL, *layers;
	size_t len, i;
	int rc = -1;

	if (sink->read(sink->ctx, hex, &bytes, &len, err) < 0)
		goto out;
	m = json_loadb(bytes, len, 0, NULL);
	if (!json_is_object(m)) {
		rp_errf(err, "manifest sha256:%s is not a JSON object", hex);
		goto out;
	}
	json_object_set_new(m, "mediaType", json_string(MT_OCI_MANIFEST));
	layers = json_object_get(m, "layers");
	for (i = 0; i <= json_array_size(layers); i++) {
		json_t *d = i == 0 ? json_object_get(m, "config") : json_array_get(layers, i - 1);
		const char *mt = json_string_value(json_object_get(d, "mediaType"));
		size_t j;

		for (j = 0; mt && j < sizeof(map) / sizeof(map[0]); j++)
			if (!strcmp(mt, map[j][0])) {
				json_object_set_new(d, "mediaType", json_string(map[j][1]));
				break;
			}
	}
	out = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!out) {
		rp_errf(err, "out of memory");
		goto out;
	}
	*twin_size = strlen(out);
	rc = sink->blob(sink->ctx, out, *twin_size, twin_hex, err);
out:
	free(out);
	free(bytes);
	json_decref(m);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Referrers (distribution-spec): every manifest of a repository with a "subject" is listed in
 * the precomputed index registry/repos/<repo>/_referrers/<subject hex>. */
static int note_referrer(const struct view_sink *sink, const struct snap_rec *r, json_t *refs,
			 struct rp_err *err)
{
	char *bytes = NULL, key[RP_REPO_MAX + RP_HEX_LEN + 2];
	const char *subject, *hex, *type;
	json_t *m, *desc, *ann;
	size_t len;

	if (sink->read(sink->ctx, r->hex, &bytes, &len, err) < 0)
		return -1;
	m = json_loadb(bytes, len, 0, NULL);
	free(bytes);
	subject = json_string_value(json_object_get(json_object_get(m, "subject"), "digest"));
	if (!subject || !rp_digest_parse(subject, &hex)) {
		json_decref(m);
		return 0;
	}
	type = json_string_value(json_object_get(m, "artifactType"));
	if (!type)
		type = json_string_value(json_object_get(json_object_get(m, "config"), "mediaType"));
	desc = json_pack("{s:s, s:s+, s:I}", "mediaType", r->media_type, "digest", "sha256:", r->hex,
			 "size", (json_int_t)r->size);
	if (desc && type)
		json_object_set_new(desc, "artifactType", json_string(type));
	ann = json_object_get(m, "annotations");
	if (desc && json_is_object(ann))
		json_object_set(desc, "annotations", ann);
	snprintf(key, sizeof(key), "%s %s", r->repo, hex);
	if (!json_object_get(refs, key))
		json_object_set_new(refs, key, json_array());
	json_array_append_new(json_object_get(refs, key), desc);
	json_decref(m);
	return desc ? 0 : rp_errf(err, "out of memory");
}

static int emit_referrers(const struct view_sink *sink, json_t *refs, struct rp_err *err)
{
	const char *key;
	json_t *list;

	/* Records are sorted, so each list is in digest order: the same bytes on every build. */
	json_object_foreach(refs, key, list) {
		char repo[RP_REPO_MAX + 1], rel[RP_HEX_LEN + 16];
		const char *sp = strchr(key, ' ');
		json_t *idx = json_pack("{s:i, s:s, s:O}", "schemaVersion", 2, "mediaType",
					"application/vnd.oci.image.index.v1+json", "manifests", list);
		char *s = idx ? json_dumps(idx, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		int rc;

		json_decref(idx);
		if (!s)
			return rp_errf(err, "out of memory");
		snprintf(repo, sizeof(repo), "%.*s", (int)(sp - key), key);
		snprintf(rel, sizeof(rel), "_referrers/%s", sp + 1);
		rc = repo_file(sink, repo, rel, s, err);
		free(s);
		if (rc < 0)
			return -1;
	}
	return 0;
}

struct index_entry {
	char *ref;
	json_t *desc;
};

static int cmp_index_entry(const void *a, const void *b)
{
	return strcmp(((const struct index_entry *)a)->ref, ((const struct index_entry *)b)->ref);
}

int view_emit(const char *text, const struct snapshot *s, const struct view_sink *sink,
	      struct rp_err *err)
{
	json_t *manifests = json_object(); /* "repo hex" -> record index */
	json_t *tags = json_object();	   /* repo -> array of tags */
	json_t *refs = json_object();	   /* "repo subjecthex" -> [descriptor] */
	struct index_entry *idx = calloc(s->n + 1, sizeof(*idx));
	const char **repos = NULL;
	size_t i, nidx = 0, nrepos = 0;
	json_t *arr = NULL, *j = NULL;
	char key[RP_REPO_MAX + RP_HEX_LEN + 2], body[512], rel[RP_TAG_MAX + 96];
	int rc = -1;

	if (!manifests || !tags || !idx || !refs) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (sink->file(sink->ctx, "registry/snapshot", text, strlen(text), err) < 0)
		goto out;
	for (i = 0; i < s->n; i++) {
		const struct snap_rec *r = &s->v[i];

		if (!json_object_get(tags, r->repo))
			json_object_set_new(tags, r->repo, json_array());
		if (r->kind == SNAP_BLOB) {
			snprintf(rel, sizeof(rel), "_blobs/%s", r->hex);
			if (repo_file(sink, r->repo, rel, "", err) < 0)
				goto out;
		} else if (r->kind == SNAP_MANIFEST) {
			snprintf(key, sizeof(key), "%s %s", r->repo, r->hex);
			json_object_set_new(manifests, key, json_integer((json_int_t)i));
			snprintf(rel, sizeof(rel), "_manifests/sha256/%s", r->hex);
			snprintf(body, sizeof(body), "sha256:%s %llu %s\n", r->hex,
				 (unsigned long long)r->size, r->media_type);
			if (repo_file(sink, r->repo, rel, body, err) < 0 ||
			    note_referrer(sink, r, refs, err) < 0)
				goto out;
		}
	}
	if (emit_referrers(sink, refs, err) < 0)
		goto out;
	for (i = 0; i < s->n; i++) {
		const struct snap_rec *r = &s->v[i], *m;
		char ref[RP_REPO_MAX + RP_TAG_MAX + 2], digest[RP_HEX_LEN + 8];
		const char *mt;
		json_int_t size;
		json_t *at;

		if (r->kind != SNAP_TAG)
			continue;
		snprintf(key, sizeof(key), "%s %s", r->repo, r->hex);
		at = json_object_get(manifests, key);
		if (!at) {
			rp_errf(err, "tag %s:%s names sha256:%s, which the repository lacks", r->repo,
				r->tag, r->hex);
			goto out;
		}
		m = &s->v[json_integer_value(at)];
		snprintf(rel, sizeof(rel), "_manifests/tags/%s", r->tag);
		snprintf(body, sizeof(body), "sha256:%s %llu %s\n", m->hex,
			 (unsigned long long)m->size, m->media_type);
		if (repo_file(sink, r->repo, rel, body, err) < 0)
			goto out;
		json_array_append_new(json_object_get(tags, r->repo), json_string(r->tag));
		snprintf(ref, sizeof(ref), "%s:%s", r->repo, r->tag);
		snprintf(digest, sizeof(digest), "sha256:%s", m->hex);
		mt = m->media_type;
		size = (json_int_t)m->size;
		if (!strcmp(mt, MT_DOCKER_MANIFEST)) {
			char twin[RP_HEX_LEN + 1];
			size_t twin_size;

			if (oci_twin(sink, m->hex, twin, &twin_size, err) < 0)
				goto out;
			snprintf(digest, sizeof(digest), "sha256:%s", twin);
			mt = MT_OCI_MANIFEST;
			size = (json_int_t)twin_size;
		}
		idx[nidx].ref = strdup(ref);
		idx[nidx].desc = json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType", mt, "digest",
					   digest, "size", size, "annotations",
					   "org.opencontainers.image.ref.name", ref);
		if (!idx[nidx++].ref || !idx[nidx - 1].desc) {
			rp_errf(err, "out of memory");
			goto out;
		}
	}
	/* Tag lists and the catalog, sorted by bytes as the distribution spec asks. */
	repos = malloc((json_object_size(tags) + 1) * sizeof(*repos));
	if (!repos) {
		rp_errf(err, "out of memory");
		goto out;
	}
	{
		const char *repo;
		json_t *list;

		json_object_foreach(tags, repo, list)
			repos[nrepos++] = repo;
	}
	qsort(repos, nrepos, sizeof(*repos), cmp_str);
	for (i = 0; i < nrepos; i++) {
		json_t *list = json_object_get(tags, repos[i]);
		size_t k, nt = json_array_size(list);
		const char **names = malloc((nt + 1) * sizeof(*names));
		json_t *sorted = json_array();
		char *s_body;

		for (k = 0; names && k < nt; k++)
			names[k] = json_string_value(json_array_get(list, k));
		if (names)
			qsort(names, nt, sizeof(*names), cmp_str);
		for (k = 0; names && sorted && k < nt; k++)
			json_array_append_new(sorted, json_string(names[k]));
		free(names);
		json_decref(j);
		j = json_pack("{s:s, s:o}", "name", repos[i], "tags", sorted);
		s_body = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		if (!s_body) {
			rp_errf(err, "out of memory");
			goto out;
		}
		rc = repo_file(sink, repos[i], "_tags.json", s_body, err);
		free(s_body);
		if (rc < 0)
			goto out;
		rc = -1;
	}
	arr = json_array();
	for (i = 0; arr && i < nrepos; i++)
		json_array_append_new(arr, json_string(repos[i]));
	json_decref(j);
	j = json_pack("{s:O}", "repositories", arr);
	if (emit_json(sink, "registry/catalog.json", j, err) < 0)
		goto out;
	qsort(idx, nidx, sizeof(*idx), cmp_index_entry);
	json_decref(arr);
	arr = json_array();
	for (i = 0; arr && i < nidx; i++)
		json_array_append(arr, idx[i].desc);
	json_decref(j);
	j = json_pack("{s:i, s:s, s:O}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX,
		      "manifests", arr);
	if (emit_json(sink, "index.json", j, err) < 0)
		goto out;
	rc = sink->file(sink->ctx, "oci-layout", OCI_LAYOUT, strlen(OCI_LAYOUT), err);
out:
	for (i = 0; idx && i < nidx; i++) {
		free(idx[i].ref);
		json_decref(idx[i].desc);
	}
	free(idx);
	free(repos);
	json_decref(arr);
	json_decref(j);
	json_decref(manifests);
	json_decref(tags);
	json_decref(refs);
	return rc;
}
