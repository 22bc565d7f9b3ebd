/* Describing a tree for people (describe.h): the tags with kind, platforms, size and date. Read
 * through the tree handle; nothing is written. */
#include "describe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "describe_int.h"
#include "format.h"
#include "manifest.h"
#include "strmap.h"

#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define ANN_CREATED "org.opencontainers.image.created"
/* Nested indexes are followed this deep; real ones nest once at most. */
#define MAX_DEPTH 8
#define NONE ((size_t)-1)

/* What an image config says, read once per digest. */
struct dcfg {
	char *platform; /* "os/arch[/variant]", NULL when it names none */
	char *created;
};

struct dblob {
	char hex[RP_HEX_LEN + 1];
	uint64_t size;
};

struct dchild {
	char hex[RP_HEX_LEN + 1];
	char *platform; /* from the index's descriptor, NULL when it has none */
	int attestation;
};

/* What a manifest says, read once per digest, whichever repositories and tags name it. */
struct dman {
	enum describe_kind kind;
	char *artifact_type;
	char *created;	   /* an artifact's annotation */
	size_t cfg;	   /* an image's config in memo->cfgs, else NONE */
	struct dblob *blobs; /* the manifest itself, its config, its layers */
	size_t nblobs;
	struct dchild *children;
	size_t nchildren;
};

struct describe_memo {
	const struct layout_tree *t; /* NULL: only a snapshot */
	const struct snapshot *s;
	struct strmap *man_at, *cfg_at; /* hex -> index into mans, cfgs */
	struct dman *mans;
	size_t nmans, capmans;
	struct dcfg *cfgs;
	size_t ncfgs, capcfgs;
};

/* The array v (n elements of sz bytes, room for *cap) with room for one more: v itself, or
 * where it moved; NULL (v unchanged) when out of memory. */
static void *grow(void *v, size_t *cap, size_t n, size_t sz)
{
	size_t ncap;

	if (n < *cap)
		return v;
	ncap = *cap ? *cap * 2 : 8;
	if (!(v = realloc(v, ncap * sz)))
		return NULL;
	*cap = ncap;
	return v;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

const char *describe_kind_name(enum describe_kind kind)
{
	switch (kind) {
	case DESCRIBE_IMAGE: return "image";
	case DESCRIBE_INDEX: return "index";
	case DESCRIBE_ARTIFACT: return "artifact";
	default: return NULL;
	}
}

/* ---- references ---- */

int describe_ref_parse(const char *s, struct describe_ref *ref, struct rp_err *err)
{
	const char *at, *slash, *colon;
	struct rp_ref r;
	size_t n;

	memset(ref, 0, sizeof(*ref));
	if (layout_ref_parse(s, &r, err) < 0)
		return -1;
	snprintf(ref->text, sizeof(ref->text), "%s", s);
	memcpy(ref->repo, r.repo, sizeof(ref->repo));
	memcpy(ref->tag, r.tag, sizeof(ref->tag));
	if (r.digest[0])
		memcpy(ref->hex, r.digest + 7, RP_HEX_LEN + 1);
	/* The name as written: before the digest, and before a tag (a ':' after the last '/'). */
	at = strchr(s, '@');
	n = at ? (size_t)(at - s) : strlen(s);
	slash = memrchr(s, '/', n);
	colon = memrchr(s, ':', n);
	if (colon && (!slash || colon > slash))
		n = (size_t)(colon - s);
	if (n < sizeof(ref->exact)) {
		memcpy(ref->exact, s, n);
		ref->exact[n] = '\0';
		if (!strcmp(ref->exact, ref->repo) || !layout_repo_valid(ref->exact))
			ref->exact[0] = '\0';
	}
	return 0;
}

static int ref_matches(const struct describe_ref *ref, const struct snap_rec *r)
{
	return (!strcmp(r->repo, ref->repo) || (ref->exact[0] && !strcmp(r->repo, ref->exact))) &&
	       (!ref->tag[0] || !strcmp(r->tag, ref->tag)) &&
	       (!ref->hex[0] || !strcmp(r->hex, ref->hex));
}

/* ---- the snapshot (describe_int.h says why binary search finds what it needs) ---- */

size_t dsc_lower(const struct snapshot *s, const char *prefix)
{
	size_t lo = 0, hi = s->n, len = strlen(prefix);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strncmp(s->v[mid].line, prefix, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int dsc_has_prefix(const struct snapshot *s, size_t i, const char *prefix)
{
	return i < s->n && !strncmp(s->v[i].line, prefix, strlen(prefix));
}

const struct snap_rec *dsc_find(const struct snapshot *s, const char *kind, const char *repo,
				const char *hex)
{
	char prefix[RP_REPO_MAX + RP_HEX_LEN + 32];
	size_t i;

	snprintf(prefix, sizeof(prefix), "%s %s sha256:%s ", kind, repo, hex);
	i = dsc_lower(s, prefix);
	return dsc_has_prefix(s, i, prefix) ? &s->v[i] : NULL;
}

/* ---- reading blobs ---- */

int dsc_read_blob(const struct layout_tree *t, const char *hex, size_t max, const char *what,
		  char **buf, size_t *len, struct rp_err *err)
{
	int r = layout_blob_read(t, hex, max, buf, len, err);

	if (r == 1)
		return rp_errf(err, "'%s/%s/%s': missing (the snapshot names this %s)",
			       layout_path(t), FMT_BLOBS, hex, what);
	return r;
}

int dsc_read_manifest(const struct layout_tree *t, const char *hex, struct manifest_info *mi,
		      size_t *len, struct rp_err *err)
{
	char *buf;
	size_t n;

	if (dsc_read_blob(t, hex, LAYOUT_MANIFEST_MAX, "manifest", &buf, &n, err) < 0)
		return -1;
	if (manifest_parse(buf, n, 0, mi) < 0) {
		free(buf);
		return rp_errf(err, "'%s/%s/%s': a manifest that is not a JSON object",
			       layout_path(t), FMT_BLOBS, hex);
	}
	free(buf);
	if (len)
		*len = n;
	return 0;
}

int dsc_read_config(const struct layout_tree *t, const char *hex, json_t **out,
		    struct rp_err *err)
{
	char *buf;
	size_t n;

	if (dsc_read_blob(t, hex, DESCRIBE_CONFIG_MAX, "config", &buf, &n, err) < 0)
		return -1;
	*out = json_loadb(buf, n, 0, NULL);
	free(buf);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return rp_errf(err, "'%s/%s/%s': an image config that is not a JSON object",
			       layout_path(t), FMT_BLOBS, hex);
	}
	return 0;
}

/* "os/arch[/variant]" of a config or a descriptor's platform; NULL without os and architecture. */
char *dsc_platform(const json_t *o)
{
	const char *os = json_string_value(json_object_get(o, "os"));
	const char *arch = json_string_value(json_object_get(o, "architecture"));
	const char *variant = json_string_value(json_object_get(o, "variant"));
	char *s;

	if (!os || !arch || !*os || !*arch)
		return NULL;
	if (asprintf(&s, "%s/%s%s%s", os, arch, variant && *variant ? "/" : "",
		     variant && *variant ? variant : "") < 0)
		return NULL;
	return s;
}

uint64_t dsc_desc_size(const json_t *desc)
{
	json_int_t n = json_integer_value(json_object_get(desc, "size"));

	return n > 0 ? (uint64_t)n : 0;
}

static int is_image_config(const char *mt)
{
	return mt && (!strcmp(mt, MT_OCI_CONFIG) || !strcmp(mt, MT_DOCKER_CONFIG));
}

enum describe_kind dsc_kind(const struct manifest_info *mi)
{
	if (mi->is_index)
		return DESCRIBE_INDEX;
	if (json_object_get(mi->json, "artifactType") || mi->subject || !mi->config.hex ||
	    !is_image_config(mi->config.media_type))
		return DESCRIBE_ARTIFACT;
	return DESCRIBE_IMAGE;
}

const char *dsc_annotation(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(json_object_get(o, "annotations"), key));
}

/* ---- the memo: each manifest and config read once ---- */

static int memo_config(struct describe_memo *m, const char *hex, size_t *at, struct rp_err *err)
{
	struct dcfg *c;
	json_t *cfg;
	void *v;

	if (strmap_get(m->cfg_at, hex, at) == 0)
		return 0;
	if (dsc_read_config(m->t, hex, &cfg, err) < 0)
		return -1;
	if (!(v = grow(m->cfgs, &m->capcfgs, m->ncfgs, sizeof(*m->cfgs)))) {
		json_decref(cfg);
		return rp_errf(err, "out of memory");
	}
	m->cfgs = v;
	c = &m->cfgs[m->ncfgs];
	c->platform = dsc_platform(cfg);
	c->created = dup_or_null(json_string_value(json_object_get(cfg, "created")));
	json_decref(cfg);
	*at = m->ncfgs++;
	return strmap_put(m->cfg_at, hex, *at) < 0 ? rp_errf(err, "out of memory") : 0;
}

static void dman_clear(struct dman *d)
{
	size_t i;

	for (i = 0; i < d->nchildren; i++)
		free(d->children[i].platform);
	free(d->children);
	free(d->blobs);
	free(d->artifact_type);
	free(d->created);
}

/* The manifest's own blobs (itself, config, layers) and, for an index, its children. */
static int dman_fill(struct dman *d, const char *hex, size_t len, const struct manifest_info *mi)
{
	size_t i;

	if (!(d->blobs = calloc(mi->nlayers + 2, sizeof(*d->blobs))) ||
	    !(d->children = calloc(mi->nchildren + 1, sizeof(*d->children))))
		return -1;
	memcpy(d->blobs[d->nblobs].hex, hex, RP_HEX_LEN + 1);
	d->blobs[d->nblobs++].size = len;
	if (mi->config.hex) {
		memcpy(d->blobs[d->nblobs].hex, mi->config.hex, RP_HEX_LEN + 1);
		d->blobs[d->nblobs++].size = dsc_desc_size(mi->config.desc);
	}
	for (i = 0; i < mi->nlayers; i++) {
		if (!mi->layers[i].hex)
			continue;
		memcpy(d->blobs[d->nblobs].hex, mi->layers[i].hex, RP_HEX_LEN + 1);
		d->blobs[d->nblobs++].size = dsc_desc_size(mi->layers[i].desc);
	}
	for (i = 0; i < mi->nchildren; i++) {
		const struct manifest_ref *c = &mi->children[i];
		const char *type = dsc_annotation(c->desc, DSC_ANN_REF_TYPE);
		struct dchild *k = &d->children[d->nchildren];

		if (!c->hex)
			continue;
		memcpy(k->hex, c->hex, RP_HEX_LEN + 1);
		k->platform = dsc_platform(json_object_get(c->desc, "platform"));
		k->attestation = type && !strcmp(type, DSC_REF_TYPE_ATTESTATION);
		d->nchildren++;
	}
	return 0;
}

static int memo_manifest(struct describe_memo *m, const char *hex, size_t *at, struct rp_err *err)
{
	struct manifest_info mi;
	struct dman d = { .cfg = NONE };
	size_t len;
	void *v;

	if (strmap_get(m->man_at, hex, at) == 0)
		return 0;
	if (dsc_read_manifest(m->t, hex, &mi, &len, err) < 0)
		return -1;
	d.kind = dsc_kind(&mi);
	if (dman_fill(&d, hex, len, &mi) < 0) {
		rp_errf(err, "out of memory");
		goto fail;
	}
	if (d.kind == DESCRIBE_IMAGE && memo_config(m, mi.config.hex, &d.cfg, err) < 0)
		goto fail;
	if (d.kind == DESCRIBE_ARTIFACT) {
		d.artifact_type = dup_or_null(mi.artifact_type);
		d.created = dup_or_null(dsc_annotation(mi.json, ANN_CREATED));
	}
	if (!(v = grow(m->mans, &m->capmans, m->nmans, sizeof(*m->mans)))) {
		rp_errf(err, "out of memory");
		goto fail;
	}
	m->mans = v;
	manifest_info_free(&mi);
	m->mans[m->nmans] = d;
	*at = m->nmans++;
	return strmap_put(m->man_at, hex, *at) < 0 ? rp_errf(err, "out of memory") : 0;
fail:
	manifest_info_free(&mi);
	dman_clear(&d);
	return -1;
}

int dsc_memo_new(const struct layout_tree *t, const struct snapshot *s,
		 struct describe_memo **out, struct rp_err *err)
{
	struct describe_memo *m = calloc(1, sizeof(*m));

	*out = m;
	if (!m || !(m->man_at = strmap_new()) || !(m->cfg_at = strmap_new()))
		return rp_errf(err, "out of memory");
	m->t = t;
	m->s = s;
	return 0;
}

void dsc_memo_free(struct describe_memo *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->nmans; i++)
		dman_clear(&m->mans[i]);
	for (i = 0; i < m->ncfgs; i++) {
		free(m->cfgs[i].platform);
		free(m->cfgs[i].created);
	}
	free(m->mans);
	free(m->cfgs);
	strmap_free(m->man_at);
	strmap_free(m->cfg_at);
	free(m);
}

/* ---- one tag: walking a manifest and what it reaches ---- */

/* An RFC 3339 time ("2024-01-02T03:04:05.678Z", "...+01:00") as seconds and nanoseconds. */
static int parse_time(const char *s, int64_t *sec, long *nsec)
{
	static const int pos[6] = { 0, 5, 8, 11, 14, 17 }, width[6] = { 4, 2, 2, 2, 2, 2 };
	static const char seps[] = "--T::";
	int v[6], i, j, off = 0;
	struct tm tm;
	long ns = 0, scale = 100000000;
	const char *p;

	for (i = 0; i < 6; i++) {
		for (v[i] = 0, j = 0; j < width[i]; j++) {
			char c = s[pos[i] + j];

			if (c < '0' || c > '9')
				return -1;
			v[i] = v[i] * 10 + c - '0';
		}
		if (i < 5 && s[pos[i] + width[i]] != seps[i] &&
		    !(i == 2 && (s[10] == 't' || s[10] == ' ')))
			return -1;
	}
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60)
		return -1;
	p = s + 19;
	if (*p == '.') /* digits past nanoseconds add nothing: scale is 0 by then */
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			ns += (*p - '0') * scale;
	if (*p == '+' || *p == '-') {
		if (p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' || p[3] != ':' ||
		    p[4] < '0' || p[4] > '9' || p[5] < '0' || p[5] > '9' || p[6])
			return -1;
		off = ((p[1] - '0') * 10 + p[2] - '0') * 3600 +
		      ((p[4] - '0') * 10 + p[5] - '0') * 60;
		off = *p == '-' ? -off : off;
	} else if ((*p != 'Z' && *p != 'z') || p[1]) {
		return -1;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	*sec = (int64_t)timegm(&tm) - off;
	*nsec = ns;
	return 0;
}

/* What a tag reaches, gathered as its manifests are walked. */
struct acc {
	struct describe_memo *m;
	const char *repo;
	struct strmap *seen; /* blobs already counted */
	uint64_t size;
	struct describe_platform *pv;
	size_t pn, pcap;
	const char **missing;
	size_t nmissing, mcap;
	const char *created; /* the newest time, else the first string that is no time */
	int64_t sec;
	long nsec;
	int timed;
};

static void note_created(struct acc *a, const char *s)
{
	int64_t sec;
	long nsec;

	if (!s)
		return;
	if (parse_time(s, &sec, &nsec) < 0) {
		if (!a->created)
			a->created = s;
		return;
	}
	if (!a->timed || sec > a->sec || (sec == a->sec && nsec > a->nsec)) {
		a->created = s;
		a->sec = sec;
		a->nsec = nsec;
		a->timed = 1;
	}
}

static int add_platform(struct acc *a, const char *name, const char *hex, int missing)
{
	struct describe_platform *v;

	if (!name)
		return 0;
	if (!(v = grow(a->pv, &a->pcap, a->pn, sizeof(*a->pv))))
		return -1;
	a->pv = v;
	a->pv[a->pn].name = name;
	a->pv[a->pn].hex = hex;
	a->pv[a->pn++].missing = missing;
	return 0;
}

static int add_missing(struct acc *a, const char *hex)
{
	const char **v = grow(a->missing, &a->mcap, a->nmissing, sizeof(*a->missing));

	if (!v)
		return -1;
	a->missing = v;
	a->missing[a->nmissing++] = hex;
	return 0;
}

static int count_blobs(struct acc *a, const struct dman *d)
{
	size_t i, dummy;

	for (i = 0; i < d->nblobs; i++) {
		if (strmap_get(a->seen, d->blobs[i].hex, &dummy) == 0)
			continue;
		if (strmap_put(a->seen, d->blobs[i].hex, 0) < 0)
			return -1;
		a->size += d->blobs[i].size;
	}
	return 0;
}

/* Walk manifest hex (a stable string: the snapshot's or a child's) of a->repo; platform is what
 * the index that names it says, show whether its platforms are listed. */
static int walk(struct acc *a, const char *hex, const char *platform, int show, int depth,
		struct rp_err *err)
{
	struct describe_memo *m = a->m;
	const struct dchild *kids;
	size_t at, i, nkids;

	if (depth > MAX_DEPTH)
		return 0;
	if (memo_manifest(m, hex, &at, err) < 0)
		return -1;
	if (count_blobs(a, &m->mans[at]) < 0)
		return rp_errf(err, "out of memory");
	if (m->mans[at].kind == DESCRIBE_IMAGE) {
		const struct dcfg *c = &m->cfgs[m->mans[at].cfg];

		note_created(a, c->created);
		return show && add_platform(a, platform ? platform : c->platform, hex, 0) < 0
			       ? rp_errf(err, "out of memory") : 0;
	}
	if (m->mans[at].kind == DESCRIBE_ARTIFACT) {
		note_created(a, m->mans[at].created);
		return 0;
	}
	/* Children are their own allocation: m->mans may move as the walk reads more. */
	kids = m->mans[at].children;
	nkids = m->mans[at].nchildren;
	for (i = 0; i < nkids; i++) {
		int shown = show && !kids[i].attestation;

		if (dsc_find(m->s, "manifest", a->repo, kids[i].hex)) {
			if (walk(a, kids[i].hex, kids[i].platform, shown, depth + 1, err) < 0)
				return -1;
			continue;
		}
		if ((shown && add_platform(a, kids[i].platform, kids[i].hex, 1) < 0) ||
		    add_missing(a, kids[i].hex) < 0)
			return rp_errf(err, "out of memory");
	}
	return 0;
}

void dsc_tag_clear(struct describe_tag *d)
{
	free(d->platforms);
	free(d->missing);
	memset(d, 0, sizeof(*d));
}

/* Describe manifest hex of repo (named by tag, or NULL) into d. */
int dsc_describe_one(struct describe_memo *m, const char *repo, const char *tag,
		     const char *hex, struct describe_tag *d, struct rp_err *err)
{
	const struct snap_rec *mr = dsc_find(m->s, "manifest", repo, hex);
	struct acc a = { .m = m, .repo = repo };
	size_t at;
	int rc;

	memset(d, 0, sizeof(*d));
	if (!mr)
		return rp_errf(err, "%s%s%s: the snapshot names manifest sha256:%s but has no "
			       "record of it", repo, tag ? ":" : "", tag ? tag : "", hex);
	d->repo = repo;
	d->tag = tag;
	d->hex = hex;
	d->media_type = mr->media_type;
	d->manifest_size = mr->size;
	if (!m->t)
		return 0;
	if (!(a.seen = strmap_new()))
		return rp_errf(err, "out of memory");
	rc = walk(&a, hex, NULL, 1, 0, err);
	strmap_free(a.seen);
	d->platforms = a.pv;
	d->nplatforms = a.pn;
	d->missing = a.missing;
	d->nmissing = a.nmissing;
	if (rc < 0 || memo_manifest(m, hex, &at, err) < 0) {
		dsc_tag_clear(d);
		return -1;
	}
	d->described = 1;
	d->kind = m->mans[at].kind;
	d->artifact_type = m->mans[at].artifact_type;
	d->size = a.size;
	d->created = a.created;
	d->created_ok = a.timed;
	d->created_unix = a.sec;
	return 0;
}

/* ---- the tag list ---- */

static int describe_list(struct describe_memo *m, const char *name,
			 const struct describe_ref *only, size_t nonly, struct describe_list *out,
			 struct rp_err *err)
{
	const struct snapshot *s = m->s;
	size_t i, j, cap = 0;
	char *hit = calloc(nonly + 1, 1);

	if (!hit)
		return rp_errf(err, "out of memory");
	/* "tag" sorts after every other kind: the tags are the snapshot's last records. */
	for (i = dsc_lower(s, "tag "); i < s->n; i++) {
		const struct snap_rec *r = &s->v[i];
		struct describe_tag *v;
		int want = nonly == 0;

		for (j = 0; j < nonly; j++)
			if (ref_matches(&only[j], r))
				want = hit[j] = 1;
		if (!want)
			continue;
		if (!(v = grow(out->v, &cap, out->n, sizeof(*out->v)))) {
			free(hit);
			return rp_errf(err, "out of memory");
		}
		out->v = v;
		if (dsc_describe_one(m, r->repo, r->tag, r->hex, &out->v[out->n], err) < 0) {
			free(hit);
			return -1;
		}
		out->n++;
	}
	for (j = 0; j < nonly && hit[j]; j++)
		;
	free(hit);
	if (j < nonly)
		return rp_errf(err, "'%s': no such repository or tag in '%s'", only[j].text, name);
	return 0;
}

static int list_from(const struct layout_tree *t, const struct snapshot *s, const char *name,
		     const struct describe_ref *only, size_t nonly, struct describe_list *out,
		     struct rp_err *err)
{
	memset(out, 0, sizeof(*out));
	if (dsc_memo_new(t, s, &out->memo, err) < 0 ||
	    describe_list(out->memo, name, only, nonly, out, err) < 0) {
		describe_list_free(out);
		return -1;
	}
	return 0;
}

int describe_tree(const struct layout_tree *t, const struct describe_ref *only, size_t nonly,
		  struct describe_list *out, struct rp_err *err)
{
	return list_from(t, layout_snapshot(t), layout_path(t), only, nonly, out, err);
}

int describe_snapshot(const struct snapshot *s, const char *name, const struct describe_ref *only,
		      size_t nonly, struct describe_list *out, struct rp_err *err)
{
	return list_from(NULL, s, name, only, nonly, out, err);
}

void describe_list_free(struct describe_list *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++)
		dsc_tag_clear(&l->v[i]);
	free(l->v);
	dsc_memo_free(l->memo);
	memset(l, 0, sizeof(*l));
}

json_t *describe_tag_json(const struct describe_tag *d)
{
	json_t *j = json_pack("{s:s, s:s, s:s+, s:s?, s:I}", "repository", d->repo, "tag",
			      d->tag ? d->tag : "", "digest", "sha256:", d->hex, "mediaType",
			      d->media_type, "manifestSize", (json_int_t)d->manifest_size);
	json_t *platforms = d->described ? json_array() : json_null();
	json_t *missing = d->described ? json_array() : json_null();
	size_t i;

	for (i = 0; d->described && i < d->nplatforms; i++)
		json_array_append_new(platforms, json_string(d->platforms[i].name));
	for (i = 0; d->described && i < d->nmissing; i++)
		json_array_append_new(missing, json_pack("s+", "sha256:", d->missing[i]));
	if (!j || !platforms || !missing ||
	    json_object_set_new(j, "kind", d->described ? json_string(describe_kind_name(d->kind))
							: json_null()) < 0 ||
	    json_object_set_new(j, "artifactType", d->artifact_type ? json_string(d->artifact_type)
								     : json_null()) < 0 ||
	    json_object_set(j, "platforms", platforms) < 0 ||
	    json_object_set(j, "missing", missing) < 0 ||
	    json_object_set_new(j, "size", d->described ? json_integer((json_int_t)d->size)
							: json_null()) < 0 ||
	    json_object_set_new(j, "created", d->created ? json_string(d->created)
							 : json_null()) < 0) {
		json_decref(j);
		j = NULL;
	}
	json_decref(platforms);
	json_decref(missing);
	return j;
}

