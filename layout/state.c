#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "strmap.h"

/* A record's identity: its kind, repository and digest; for a tag, the repository and the tag.
 * \x1f cannot occur in repository names, tags or digests. */
static void key_of(enum snap_kind kind, const char *repo, const char *what, char *key, size_t sz)
{
	snprintf(key, sz, "%d\x1f%s\x1f%s", (int)kind, repo, what);
}

static void rec_key(const struct snap_rec *r, char *key, size_t sz)
{
	key_of(r->kind, r->repo, r->kind == SNAP_TAG ? r->tag : r->hex, key, sz);
}

#define KEY_MAX (RP_REPO_MAX + RP_TAG_MAX + RP_HEX_LEN + 16)

int state_init(struct state *st, struct rp_err *err)
{
	memset(st, 0, sizeof(*st));
	st->keys = strmap_new();
	st->sorted = 1;
	return st->keys ? 0 : rp_errf(err, "out of memory");
}

void state_free(struct state *st)
{
	size_t i;

	for (i = 0; i < st->n; i++)
		snap_rec_clear(&st->v[i]);
	free(st->v);
	strmap_free(st->keys);
	memset(st, 0, sizeof(*st));
}

static int append(struct state *st, struct snap_rec *r, struct rp_err *err)
{
	char key[KEY_MAX];

	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 256;
		struct snap_rec *v = realloc(st->v, cap * sizeof(*v));

		if (!v)
			return rp_errf(err, "out of memory");
		st->v = v;
		st->cap = cap;
	}
	rec_key(r, key, sizeof(key));
	if (strmap_put(st->keys, key, st->n) < 0)
		return rp_errf(err, "out of memory");
	st->v[st->n++] = *r;
	memset(r, 0, sizeof(*r));
	st->sorted = 0;
	return 0;
}

int state_take(struct state *st, struct snapshot *snap, struct rp_err *err)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < snap->n; i++)
		if (rc == 0)
			rc = append(st, &snap->v[i], err);
		else
			snap_rec_clear(&snap->v[i]);
	free(snap->v);
	snap->v = NULL;
	snap->n = 0;
	st->sorted = rc == 0; /* a parsed snapshot is in order */
	return rc;
}

int state_copy(struct state *st, const struct snapshot *snap, struct rp_err *err)
{
	size_t i;

	for (i = 0; i < snap->n; i++) {
		const struct snap_rec *o = &snap->v[i];
		struct snap_rec r = *o;

		r.line = strdup(o->line);
		r.repo = strdup(o->repo);
		r.tag = o->tag ? strdup(o->tag) : NULL;
		r.media_type = o->media_type ? strdup(o->media_type) : NULL;
		if (!r.line || !r.repo || (o->tag && !r.tag) || (o->media_type && !r.media_type)) {
			snap_rec_clear(&r);
			return rp_errf(err, "out of memory");
		}
		if (append(st, &r, err) < 0) {
			snap_rec_clear(&r);
			return -1;
		}
	}
	st->sorted = 1; /* a snapshot's records are in order */
	return 0;
}

void state_view(const struct state *st, const char *text, size_t len, struct snapshot *out)
{
	out->v = st->v;
	out->n = st->n;
	rp_sha256_buf(text, len, out->id);
}

void state_give(struct state *st, const char *text, size_t len, struct snapshot *out)
{
	state_view(st, text, len, out);
	st->v = NULL;
	st->n = st->cap = 0;
	strmap_free(st->keys);
	st->keys = strmap_new();
	st->sorted = 1;
}

long state_find(const struct state *st, enum snap_kind kind, const char *repo, const char *what)
{
	char key[KEY_MAX];
	size_t i;

	key_of(kind, repo, what, key, sizeof(key));
	return strmap_get(st->keys, key, &i) < 0 ? -1 : (long)i;
}

/* Put r in place of record i (same key). */
static void replace(struct state *st, size_t i, struct snap_rec *r)
{
	snap_rec_clear(&st->v[i]);
	st->v[i] = *r;
	memset(r, 0, sizeof(*r));
	st->sorted = 0;
}

int state_put(struct state *st, enum snap_kind kind, const char *repo, const char *hex,
	      uint64_t size, const char *media_type, struct rp_err *err)
{
	struct snap_rec r;
	long at;

	if (snap_rec_make(&r, kind, repo, NULL, hex, size, media_type, err) < 0)
		return -1;
	at = state_find(st, kind, repo, hex);
	if (at < 0)
		return append(st, &r, err) < 0 ? (snap_rec_clear(&r), -1) : 0;
	if (snap_rec_cmp(&r, &st->v[at]) < 0)
		replace(st, (size_t)at, &r);
	else
		snap_rec_clear(&r);
	return 0;
}

int state_set_tag(struct state *st, const char *repo, const char *tag, const char *hex,
		  struct rp_err *err)
{
	struct snap_rec r;
	long at;

	if (snap_rec_make(&r, SNAP_TAG, repo, tag, hex, 0, NULL, err) < 0)
		return -1;
	at = state_find(st, SNAP_TAG, repo, tag);
	if (at < 0)
		return append(st, &r, err) < 0 ? (snap_rec_clear(&r), -1) : 0;
	replace(st, (size_t)at, &r);
	return 0;
}

void state_remove(struct state *st, size_t i)
{
	char key[KEY_MAX];

	rec_key(&st->v[i], key, sizeof(key));
	strmap_del(st->keys, key);
	snap_rec_clear(&st->v[i]);
	st->sorted = 0;
}

static int cmp_rec(const void *a, const void *b)
{
	return snap_rec_cmp(a, b);
}

int state_sort(struct state *st, struct rp_err *err)
{
	size_t i, n = 0;

	if (st->sorted)
		return 0;
	for (i = 0; i < st->n; i++)
		if (st->v[i].line)
			st->v[n++] = st->v[i];
	st->n = n;
	if (st->n)
		qsort(st->v, st->n, sizeof(*st->v), cmp_rec);
	strmap_free(st->keys);
	st->keys = strmap_new();
	if (!st->keys)
		return rp_errf(err, "out of memory");
	for (i = 0; i < st->n; i++) {
		char key[KEY_MAX];

		rec_key(&st->v[i], key, sizeof(key));
		if (strmap_put(st->keys, key, i) < 0)
			return rp_errf(err, "out of memory");
	}
	st->sorted = 1;
	return 0;
}

char *state_text(struct state *st, size_t *len, struct rp_err *err)
{
	size_t i, total = sizeof(SNAPSHOT_HEADER);
	char *s, *p;

	if (state_sort(st, err) < 0)
		return NULL;
	for (i = 0; i < st->n; i++)
		total += strlen(st->v[i].line) + 1;
	s = malloc(total + 1);
	if (!s) {
		rp_errf(err, "out of memory");
		return NULL;
	}
	p = s + sprintf(s, "%s\n", SNAPSHOT_HEADER);
	for (i = 0; i < st->n; i++) {
		size_t l = strlen(st->v[i].line);

		memcpy(p, st->v[i].line, l);
		p[l] = '\n';
		p += l + 1;
	}
	*p = '\0';
	*len = (size_t)(p - s);
	return s;
}
