#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "names.h"
#include "strmap.h"

void snapshot_free(struct snapshot *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++)
		snap_rec_clear(&s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static int media_type_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return 0;
	return i > 0 && i < 256 && strchr(s, '/') != NULL;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;

	if (!*s || *s == '-' || (*s == '0' && s[1]))
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

static int parse_line(char *line, struct snap_rec *r)
{
	char *f[6];
	char *save = NULL, *tok;
	const char *hex;
	int n = 0;

	memset(r, 0, sizeof(*r));
	for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (n == 5)
			return -1;
		f[n++] = tok;
	}
	if (n < 4 || !layout_repo_valid(f[1]))
		return -1;
	if (!strcmp(f[0], "tag")) {
		if (n != 4 || !layout_tag_valid(f[2]) || !rp_digest_parse(f[3], &hex))
			return -1;
		r->kind = SNAP_TAG;
		r->tag = strdup(f[2]);
	} else {
		if (n != 5 || !rp_digest_parse(f[2], &hex) || parse_size(f[3], &r->size) < 0 ||
		    !media_type_valid(f[4]))
			return -1;
		if (!strcmp(f[0], "blob"))
			r->kind = SNAP_BLOB;
		else if (!strcmp(f[0], "manifest"))
			r->kind = SNAP_MANIFEST;
		else if (!strcmp(f[0], "missing"))
			r->kind = SNAP_MISSING;
		else
			return -1;
		r->media_type = strdup(f[4]);
	}
	r->repo = strdup(f[1]);
	memcpy(r->hex, hex, RP_HEX_LEN + 1);
	return 0;
}

int snapshot_parse(const char *text, size_t len, const char *name, struct snapshot *out,
		   struct rp_err *err)
{
	const char *p, *end = text + len, *prev = NULL;
	size_t prev_len = 0, lineno = 1, cap = 0;

	memset(out, 0, sizeof(*out));
	rp_sha256_buf(text, len, out->id);
	if (len < sizeof(SNAPSHOT_HEADER) || memcmp(text, SNAPSHOT_HEADER "\n", sizeof(SNAPSHOT_HEADER)))
		return rp_errf(err, "'%s': not a regpress snapshot (version 1)", name);
	if (memchr(text, '\0', len))
		return rp_errf(err, "'%s': contains a NUL byte", name);
	for (p = text + sizeof(SNAPSHOT_HEADER); p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		char line[1024];
		size_t l;
		int c;

		lineno++;
		if (!nl) {
			snapshot_free(out);
			return rp_errf(err, "'%s': line %zu: no newline at the end", name, lineno);
		}
		l = (size_t)(nl - p);
		if (l >= sizeof(line)) {
			snapshot_free(out);
			return rp_errf(err, "'%s': line %zu: too long", name, lineno);
		}
		/* Canonical: sorted by bytes and unique, so equal states have equal text. */
		if (prev) {
			c = memcmp(prev, p, prev_len < l ? prev_len : l);
			if (c > 0 || (c == 0 && prev_len >= l)) {
				snapshot_free(out);
				return rp_errf(err, "'%s': line %zu: out of order or repeated", name,
					       lineno);
			}
		}
		prev = p;
		prev_len = l;
		memcpy(line, p, l);
		line[l] = '\0';
		if (out->n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct snap_rec *nv = realloc(out->v, ncap * sizeof(*nv));

			if (!nv) {
				snapshot_free(out);
				return rp_errf(err, "out of memory");
			}
			out->v = nv;
			cap = ncap;
		}
		if (parse_line(line, &out->v[out->n]) < 0) {
			out->n++;
			snapshot_free(out);
			return rp_errf(err, "'%s': line %zu: malformed record", name, lineno);
		}
		out->v[out->n].line = strndup(p, l);
		if (!out->v[out->n++].line) {
			snapshot_free(out);
			return rp_errf(err, "out of memory");
		}
		p = nl + 1;
	}
	return 0;
}

void snap_rec_clear(struct snap_rec *r)
{
	free(r->line);
	free(r->repo);
	free(r->tag);
	free(r->media_type);
	memset(r, 0, sizeof(*r));
}

int snap_rec_cmp(const struct snap_rec *a, const struct snap_rec *b)
{
	return strcmp(a->line, b->line);
}

static const char *const kind_names[] = { "blob", "manifest", "missing", "tag" };

int snap_rec_make(struct snap_rec *r, enum snap_kind kind, const char *repo, const char *tag,
		  const char *hex, uint64_t size, const char *media_type, struct rp_err *err)
{
	int n;

	memset(r, 0, sizeof(*r));
	if (!layout_repo_valid(repo))
		return rp_errf(err, "invalid repository name '%s'", repo);
	if (!rp_hex_valid(hex))
		return rp_errf(err, "invalid digest '%s'", hex);
	if (kind == SNAP_TAG) {
		if (!layout_tag_valid(tag))
			return rp_errf(err, "invalid tag '%s'", tag);
		n = asprintf(&r->line, "tag %s %s sha256:%s", repo, tag, hex);
		r->tag = strdup(tag);
	} else {
		if (!media_type[0])
			return rp_errf(err, "empty media type for sha256:%s", hex);
		if (!media_type_valid(media_type))
			return rp_errf(err, "invalid media type '%s'", media_type);
		n = asprintf(&r->line, "%s %s sha256:%s %" PRIu64 " %s", kind_names[kind], repo, hex,
			     size, media_type);
		r->media_type = strdup(media_type);
		r->size = size;
	}
	r->kind = kind;
	r->repo = strdup(repo);
	memcpy(r->hex, hex, RP_HEX_LEN + 1);
	if (n < 0 || !r->repo || (kind == SNAP_TAG ? !r->tag : !r->media_type)) {
		if (n < 0)
			r->line = NULL;
		snap_rec_clear(r);
		return rp_errf(err, "out of memory");
	}
	return 0;
}

/* ---- differences ---- */

int snap_merge(const struct snapshot *old, const struct snapshot *new,
	       int (*fn)(void *ctx, const struct snap_rec *old, const struct snap_rec *new),
	       void *ctx)
{
	size_t i = 0, j = 0;

	while (i < old->n || j < new->n) {
		int c = i == old->n ? 1 : j == new->n ? -1 : strcmp(old->v[i].line, new->v[j].line);

		if (c < 0 && fn(ctx, &old->v[i], NULL) < 0)
			return -1;
		if (c > 0 && fn(ctx, NULL, &new->v[j]) < 0)
			return -1;
		i += c <= 0;
		j += c >= 0;
	}
	return 0;
}

static int add_tag_change(struct snap_tag_change **v, size_t *n, const struct snap_rec *o,
			  const struct snap_rec *nw)
{
	struct snap_tag_change *nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -1;
	nv[*n].old = o;
	nv[(*n)++].new = nw;
	*v = nv;
	return 0;
}

static int add_blob_change(struct snap_blob_change **v, size_t *n, const struct snap_rec *r)
{
	struct snap_blob_change *nv;

	if ((*n & (*n - 1)) == 0) { /* grow at powers of two */
		nv = realloc(*v, (*n ? *n * 2 : 1) * sizeof(**v));
		if (!nv)
			return -1;
		*v = nv;
	}
	(*v)[*n].hex = r->hex;
	(*v)[(*n)++].size = r->size;
	return 0;
}

static int is_blob(const struct snap_rec *r)
{
	return r->kind == SNAP_BLOB || r->kind == SNAP_MANIFEST;
}

/* Index of a snapshot: "repo:tag" -> record, and blob hex -> record. */
static int index_snapshot(const struct snapshot *s, struct strmap *tags, struct strmap *blobs)
{
	char key[RP_REPO_MAX + RP_TAG_MAX + 2];
	size_t i;

	for (i = 0; i < s->n; i++) {
		const struct snap_rec *r = &s->v[i];
		size_t had;

		if (r->kind == SNAP_TAG) {
			snprintf(key, sizeof(key), "%s:%s", r->repo, r->tag);
			if (strmap_put(tags, key, i) < 0)
				return -1;
		} else if (is_blob(r) && strmap_get(blobs, r->hex, &had) < 0 &&
			   strmap_put(blobs, r->hex, i) < 0) {
			return -1;
		}
	}
	return 0;
}

/* One direction: what from has that other lacks (tags, blobs); changed tags when adding. */
static int diff_side(const struct snapshot *from, const struct snapshot *other,
		     struct strmap *other_tags, struct strmap *other_blobs, int adding,
		     struct snapshot_diff *d)
{
	struct strmap *seen = strmap_new();
	char key[RP_REPO_MAX + RP_TAG_MAX + 2];
	size_t i, at;
	int rc = -1;

	if (!seen)
		return -1;
	for (i = 0; i < from->n; i++) {
		const struct snap_rec *r = &from->v[i];

		if (r->kind == SNAP_TAG) {
			snprintf(key, sizeof(key), "%s:%s", r->repo, r->tag);
			if (strmap_get(other_tags, key, &at) < 0) {
				if (adding ? add_tag_change(&d->tags_added, &d->ntags_added, NULL, r)
					   : add_tag_change(&d->tags_removed, &d->ntags_removed, r, NULL))
					goto out;
			} else if (adding && strcmp(other->v[at].hex, r->hex) &&
				   add_tag_change(&d->tags_changed, &d->ntags_changed, &other->v[at], r)) {
				goto out;
			}
		} else if (is_blob(r) && strmap_get(other_blobs, r->hex, &at) < 0 &&
			   strmap_get(seen, r->hex, &at) < 0) {
			if (strmap_put(seen, r->hex, i) < 0 ||
			    add_blob_change(adding ? &d->blobs_added : &d->blobs_removed,
					    adding ? &d->nblobs_added : &d->nblobs_removed, r) < 0)
				goto out;
			if (adding)
				d->bytes_added += r->size;
			else
				d->bytes_removed += r->size;
		}
	}
	rc = 0;
out:
	strmap_free(seen);
	return rc;
}

int snapshot_diff(const struct snapshot *old, const struct snapshot *new, struct snapshot_diff *d,
		  struct rp_err *err)
{
	struct strmap *ot = strmap_new(), *ob = strmap_new(), *nt = strmap_new(), *nb = strmap_new();
	int rc = -1;

	memset(d, 0, sizeof(*d));
	if (ot && ob && nt && nb && index_snapshot(old, ot, ob) == 0 &&
	    index_snapshot(new, nt, nb) == 0 && diff_side(new, old, ot, ob, 1, d) == 0 &&
	    diff_side(old, new, nt, nb, 0, d) == 0)
		rc = 0;
	else
		snapshot_diff_free(d);
	strmap_free(ot);
	strmap_free(ob);
	strmap_free(nt);
	strmap_free(nb);
	return rc < 0 ? rp_errf(err, "out of memory") : 0;
}

void snapshot_diff_free(struct snapshot_diff *d)
{
	free(d->tags_added);
	free(d->tags_removed);
	free(d->tags_changed);
	free(d->blobs_added);
	free(d->blobs_removed);
	memset(d, 0, sizeof(*d));
}
