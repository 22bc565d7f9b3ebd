#include "view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "manifest.h"
#include "names.h"
#include "strmap.h"

#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"

/* ---- records by repository ---- */

static int cmp_repo(const void *a, const void *b)
{
	return strcmp(((const struct view_repo *)a)->name, ((const struct view_repo *)b)->name);
}

int view_repos_make(const struct snapshot *s, struct view_repos *out, struct rp_err *err)
{
	size_t i, at;

	memset(out, 0, sizeof(*out));
	out->by_name = strmap_new();
	if (!out->by_name)
		goto oom;
	for (i = 0; i < s->n; i++) {
		struct view_repo *r;

		if (strmap_get(out->by_name, s->v[i].repo, &at) < 0) {
			struct view_repo *nv = realloc(out->v, (out->n + 1) * sizeof(*nv));

			if (!nv)
				goto oom;
			out->v = nv;
			at = out->n++;
			memset(&out->v[at], 0, sizeof(out->v[at]));
			out->v[at].name = s->v[i].repo;
			if (strmap_put(out->by_name, s->v[i].repo, at) < 0)
				goto oom;
		}
		r = &out->v[at];
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 8, *nr = realloc(r->recs, cap * sizeof(*nr));

			if (!nr)
				goto oom;
			r->recs = nr;
			r->cap = cap;
		}
		r->recs[r->n++] = i;
	}
	/* Records are sorted by kind first: sort the repositories themselves by name, then index. */
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), cmp_repo);
	for (i = 0; i < out->n; i++)
		if (strmap_put(out->by_name, out->v[i].name, i) < 0)
			goto oom;
	return 0;
oom:
	view_repos_free(out);
	return rp_errf(err, "out of memory");
}

void view_repos_free(struct view_repos *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		free(r->v[i].recs);
	free(r->v);
	strmap_free(r->by_name);
	memset(r, 0, sizeof(*r));
}

const struct view_repo *view_repos_find(const struct view_repos *r, const char *name)
{
	size_t at;

	return strmap_get(r->by_name, name, &at) < 0 ? NULL : &r->v[at];
}

void view_repo_dir(const char *repo, char *out, size_t outsz)
{
	char dir[RP_REPO_MAX + 1];

	layout_repo_path(repo, dir, sizeof(dir));
	snprintf(out, outsz, FMT_REPOS_NAME "/%s", dir);
}

/* ---- one repository ---- */

static int repo_file(const struct view_sink *sink, const char *repo, const char *rel,
		     const char *body, struct rp_err *err)
{
	char dir[RP_REPO_MAX + 16], path[RP_REPO_MAX + RP_TAG_MAX + 96];

	view_repo_dir(repo, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return sink->file(sink->ctx, path, body, strlen(body), err);
}

static int emit_json(const struct view_sink *sink, const char *repo, const char *rel, json_t *j,
		     struct rp_err *err)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	int rc;

	if (!s)
		return rp_errf(err, "out of memory");
	rc = repo ? repo_file(sink, repo, rel, s, err) : sink->file(sink->ctx, rel, s, strlen(s), err);
	free(s);
	return rc;
}

/* Referrers (distribution-spec): every manifest of a repository with a "subject" is listed in
 * the precomputed index _referrers/<subject hex>. */
static int note_referrer(const struct view_sink *sink, const struct snap_rec *r, json_t *refs,
			 struct rp_err *err)
{
	struct manifest_info m;
	char *bytes = NULL;
	json_t *desc, *ann;
	size_t len;

	if (sink->read(sink->ctx, r->hex, &bytes, &len, err) < 0)
		return -1;
	if (manifest_parse(bytes, len, 0, &m) < 0 || !m.subject) {
		free(bytes);
		manifest_info_free(&m);
		return 0;
	}
	free(bytes);
	desc = json_pack("{s:s, s:s+, s:I}", "mediaType", r->media_type, "digest", "sha256:", r->hex,
			 "size", (json_int_t)r->size);
	if (desc && m.artifact_type)
		json_object_set_new(desc, "artifactType", json_string(m.artifact_type));
	ann = json_object_get(m.json, "annotations");
	if (desc && json_is_object(ann))
		json_object_set(desc, "annotations", ann);
	if (!json_object_get(refs, m.subject))
		json_object_set_new(refs, m.subject, json_array());
	json_array_append_new(json_object_get(refs, m.subject), desc);
	manifest_info_free(&m);
	return desc ? 0 : rp_errf(err, "out of memory");
}

static int emit_referrers(const struct view_sink *sink, const char *repo, json_t *refs,
			  struct rp_err *err)
{
	const char *subject;
	json_t *list;

	/* Records are sorted, so each list is in digest order: the same bytes on every build. */
	json_object_foreach(refs, subject, list) {
		char rel[RP_HEX_LEN + 16];
		json_t *idx = json_pack("{s:i, s:s, s:O}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX,
					"manifests", list);
		int rc;

		snprintf(rel, sizeof(rel), FMT_REFERRERS "/%s", subject);
		rc = emit_json(sink, repo, rel, idx, err);
		json_decref(idx);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* _tags.json: the tags sorted by bytes, as the distribution spec asks. */
static int emit_tags(const struct view_sink *sink, const char *repo, const char **tags, size_t n,
		     struct rp_err *err)
{
	json_t *arr = json_array(), *j;
	size_t i;
	int rc;

	qsort(tags, n, sizeof(*tags), cmp_str);
	for (i = 0; arr && i < n; i++)
		json_array_append_new(arr, json_string(tags[i]));
	j = arr ? json_pack("{s:s, s:o}", "name", repo, "tags", arr) : NULL;
	rc = emit_json(sink, repo, FMT_TAGS_JSON, j, err);
	json_decref(j);
	return rc;
}

/* A manifest pointer: "sha256:<hex> <size> <media type>\n". */
static void pointer(const struct snap_rec *m, char *body, size_t sz)
{
	snprintf(body, sz, "sha256:%s %llu %s\n", m->hex, (unsigned long long)m->size,
		 m->media_type);
}

int view_emit_repo(const struct snapshot *s, const struct view_repo *repo,
		   const struct view_sink *sink, struct rp_err *err)
{
	const char **tags = calloc(repo->n + 1, sizeof(*tags));
	json_t *refs = json_object();
	struct strmap *manifests = strmap_new(); /* hex -> record */
	char rel[RP_TAG_MAX + 96], body[512];
	size_t i, ntags = 0, at;
	int rc = -1;

	if (!tags || !refs || !manifests) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < repo->n; i++) {
		const struct snap_rec *r = &s->v[repo->recs[i]];

		if (r->kind == SNAP_BLOB) {
			snprintf(rel, sizeof(rel), FMT_BLOB_MARKERS "/%s", r->hex);
			if (repo_file(sink, r->repo, rel, "", err) < 0)
				goto out;
		} else if (r->kind == SNAP_MANIFEST) {
			snprintf(rel, sizeof(rel), FMT_DIGEST_POINTERS "/%s", r->hex);
			pointer(r, body, sizeof(body));
			if (strmap_put(manifests, r->hex, repo->recs[i]) < 0) {
				rp_errf(err, "out of memory");
				goto out;
			}
			if (repo_file(sink, r->repo, rel, body, err) < 0 ||
			    note_referrer(sink, r, refs, err) < 0)
				goto out;
		} else if (r->kind == SNAP_TAG) {
			if (strmap_get(manifests, r->hex, &at) < 0) {
				rp_errf(err, "tag %s:%s names sha256:%s, which the repository lacks",
					r->repo, r->tag, r->hex);
				goto out;
			}
			snprintf(rel, sizeof(rel), FMT_TAG_POINTERS "/%s", r->tag);
			pointer(&s->v[at], body, sizeof(body));
			if (repo_file(sink, r->repo, rel, body, err) < 0)
				goto out;
			tags[ntags++] = r->tag;
		}
	}
	if (emit_referrers(sink, repo->name, refs, err) < 0 ||
	    emit_tags(sink, repo->name, tags, ntags, err) < 0)
		goto out;
	rc = 0;
out:
	free(tags);
	json_decref(refs);
	strmap_free(manifests);
	return rc;
}

/* ---- the whole view ---- */

int view_emit_top(const char *text, size_t len, const struct view_repos *repos,
		  const struct view_sink *sink, struct rp_err *err)
{
	json_t *arr = json_array(), *j;
	size_t i;
	int rc;

	if (sink->file(sink->ctx, FMT_SNAPSHOT_NAME, text, len, err) < 0) {
		json_decref(arr);
		return -1;
	}
	for (i = 0; arr && i < repos->n; i++)
		json_array_append_new(arr, json_string(repos->v[i].name));
	j = arr ? json_pack("{s:o}", "repositories", arr) : NULL;
	rc = emit_json(sink, NULL, FMT_CATALOG_NAME, j, err);
	json_decref(j);
	return rc;
}

int view_emit_all(const char *text, size_t len, const struct snapshot *s,
		  const struct view_sink *sink, struct rp_err *err)
{
	struct view_repos repos;
	size_t i;
	int rc;

	if (view_repos_make(s, &repos, err) < 0)
		return -1;
	rc = view_emit_top(text, len, &repos, sink, err);
	for (i = 0; rc == 0 && i < repos.n; i++)
		rc = view_emit_repo(s, &repos.v[i], sink, err);
	view_repos_free(&repos);
	return rc;
}

/* ---- index.json ---- */

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
	struct manifest_info m;
	size_t len, i, j;
	int rc = -1;

	memset(&m, 0, sizeof(m));
	if (sink->read(sink->ctx, hex, &bytes, &len, err) < 0)
		goto out;
	if (manifest_parse(bytes, len, 0, &m) < 0) {
		rp_errf(err, "manifest sha256:%s is not a JSON object", hex);
		goto out;
	}
	json_object_set_new(m.json, "mediaType", json_string(MT_OCI_MANIFEST));
	for (i = 0; i <= m.nlayers; i++) {
		const struct manifest_ref *d = i == 0 ? &m.config : &m.layers[i - 1];

		for (j = 0; d->desc && d->media_type && j < sizeof(map) / sizeof(map[0]); j++)
			if (!strcmp(d->media_type, map[j][0])) {
				json_object_set_new(d->desc, "mediaType", json_string(map[j][1]));
				break;
			}
	}
	out = json_dumps(m.json, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!out) {
		rp_errf(err, "out of memory");
		goto out;
	}
	*twin_size = strlen(out);
	rc = sink->blob(sink->ctx, out, *twin_size, twin_hex, err);
out:
	free(out);
	free(bytes);
	manifest_info_free(&m);
	return rc;
}

/* The index.json descriptor of tag record t, naming manifest record m. Twins already made (for
 * another tag of the same manifest) are in twins: hex -> [digest, size]. */
static json_t *index_desc(const struct view_sink *sink, const struct snap_rec *t,
			  const struct snap_rec *m, json_t *twins, struct rp_err *err)
{
	char ref[RP_REPO_MAX + RP_TAG_MAX + 2], digest[RP_HEX_LEN + 8];
	const char *mt = m->media_type;
	json_int_t size = (json_int_t)m->size;
	json_t *d;

	snprintf(ref, sizeof(ref), "%s:%s", t->repo, t->tag);
	snprintf(digest, sizeof(digest), "sha256:%s", m->hex);
	if (!strcmp(mt, MT_DOCKER_MANIFEST)) {
		json_t *known = json_object_get(twins, m->hex);
		char twin[RP_HEX_LEN + 1];
		size_t twin_size;

		if (known) {
			snprintf(twin, sizeof(twin), "%s", json_string_value(json_array_get(known, 0)));
			twin_size = (size_t)json_integer_value(json_array_get(known, 1));
		} else {
			if (oci_twin(sink, m->hex, twin, &twin_size, err) < 0)
				return NULL;
			json_object_set_new(twins, m->hex, json_pack("[s, I]", twin,
								     (json_int_t)twin_size));
		}
		snprintf(digest, sizeof(digest), "sha256:%s", twin);
		mt = MT_OCI_MANIFEST;
		size = (json_int_t)twin_size;
	}
	d = json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType", mt, "digest", digest, "size", size,
		      "annotations", "org.opencontainers.image.ref.name", ref);
	if (!d)
		rp_errf(err, "out of memory");
	return d;
}

struct index_entry {
	char ref[RP_REPO_MAX + RP_TAG_MAX + 2];
	json_t *desc;
};

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct index_entry *)a)->ref, ((const struct index_entry *)b)->ref);
}

/* The manifest record a tag names (in its repository), or NULL. */
static const struct snap_rec *tagged(const struct snapshot *s, struct strmap *manifests,
				     const struct snap_rec *t)
{
	char key[RP_REPO_MAX + RP_HEX_LEN + 2];
	size_t at;

	snprintf(key, sizeof(key), "%s %s", t->repo, t->hex);
	return strmap_get(manifests, key, &at) < 0 ? NULL : &s->v[at];
}

int view_index_json(const struct snapshot *s, json_t *reuse, const struct view_sink *sink,
		    struct strmap *made, char **out, size_t *len, struct rp_err *err)
{
	struct index_entry *e = calloc(s->n + 1, sizeof(*e));
	struct strmap *manifests = strmap_new(); /* "repo hex" -> record */
	json_t *arr = json_array(), *j = NULL, *twins = json_object();
	size_t i, n = 0;
	int rc = -1;

	*out = NULL;
	if (!e || !manifests || !arr || !twins)
		goto oom;
	for (i = 0; i < s->n; i++)
		if (s->v[i].kind == SNAP_MANIFEST) {
			char key[RP_REPO_MAX + RP_HEX_LEN + 2];

			snprintf(key, sizeof(key), "%s %s", s->v[i].repo, s->v[i].hex);
			if (strmap_put(manifests, key, i) < 0)
				goto oom;
		}
	for (i = 0; i < s->n; i++) {
		const struct snap_rec *t = &s->v[i], *m;
		json_t *kept;

		if (t->kind != SNAP_TAG)
			continue;
		if (!(m = tagged(s, manifests, t))) {
			rp_errf(err, "tag %s:%s names sha256:%s, which the repository lacks", t->repo,
				t->tag, t->hex);
			goto out;
		}
		snprintf(e[n].ref, sizeof(e[n].ref), "%s:%s", t->repo, t->tag);
		kept = reuse ? json_object_get(reuse, e[n].ref) : NULL;
		e[n].desc = kept ? json_incref(kept) : index_desc(sink, t, m, twins, err);
		if (!e[n++].desc)
			goto out;
		if (!kept && made) {
			const char *hex, *dg = json_string_value(json_object_get(e[n - 1].desc, "digest"));

			if (dg && rp_digest_parse(dg, &hex) && strmap_put(made, hex, 1) < 0)
				goto oom;
		}
	}
	qsort(e, n, sizeof(*e), cmp_entry);
	for (i = 0; i < n; i++)
		json_array_append(arr, e[i].desc);
	j = json_pack("{s:i, s:s, s:O}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX, "manifests",
		      arr);
	*out = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (!*out)
		goto oom;
	*len = strlen(*out);
	rc = 0;
	goto out;
oom:
	rp_errf(err, "out of memory");
out:
	for (i = 0; e && i < n; i++)
		json_decref(e[i].desc);
	free(e);
	strmap_free(manifests);
	json_decref(arr);
	json_decref(j);
	json_decref(twins);
	return rc;
}
