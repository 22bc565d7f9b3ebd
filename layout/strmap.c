#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Open addressing with linear probing over a power-of-two table, at most half full (deleted
 * slots count as used until the next growth rebuilds the table). */
struct slot {
	char *key;  /* NULL: empty; TOMBSTONE: deleted */
	size_t val;
};

struct strmap {
	struct slot *v;
	size_t cap, count, used;
};

static char tombstone;
#define TOMBSTONE (&tombstone)

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h ^ (h >> 29);
}

struct strmap *strmap_new(void)
{
	struct strmap *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->cap = 64;
	m->v = calloc(m->cap, sizeof(*m->v));
	if (!m->v) {
		free(m);
		return NULL;
	}
	return m;
}

void strmap_free(struct strmap *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->cap; i++)
		if (m->v[i].key && m->v[i].key != TOMBSTONE)
			free(m->v[i].key);
	free(m->v);
	free(m);
}

/* The slot holding key, or the first free one on its probe path (NULL key). */
static struct slot *find(const struct strmap *m, const char *key, struct slot **free_slot)
{
	size_t i = (size_t)hash(key) & (m->cap - 1);

	*free_slot = NULL;
	for (;; i = (i + 1) & (m->cap - 1)) {
		struct slot *s = &m->v[i];

		if (!s->key) {
			if (!*free_slot)
				*free_slot = s;
			return NULL;
		}
		if (s->key == TOMBSTONE) {
			if (!*free_slot)
				*free_slot = s;
		} else if (!strcmp(s->key, key)) {
			return s;
		}
	}
}

static int grow(struct strmap *m)
{
	struct slot *old = m->v;
	size_t i, oldcap = m->cap;

	m->cap = m->count * 4 > oldcap ? oldcap * 2 : oldcap;
	m->v = calloc(m->cap, sizeof(*m->v));
	if (!m->v) {
		m->v = old;
		m->cap = oldcap;
		return -1;
	}
	m->used = m->count;
	for (i = 0; i < oldcap; i++) {
		struct slot *fs;

		if (!old[i].key || old[i].key == TOMBSTONE)
			continue;
		find(m, old[i].key, &fs);
		*fs = old[i];
	}
	free(old);
	return 0;
}

int strmap_get(const struct strmap *m, const char *key, size_t *val)
{
	struct slot *fs, *s = find(m, key, &fs);

	if (!s)
		return -1;
	*val = s->val;
	return 0;
}

int strmap_put(struct strmap *m, const char *key, size_t val)
{
	struct slot *fs, *s;

	if ((m->used + 1) * 2 > m->cap && grow(m) < 0)
		return -1;
	s = find(m, key, &fs);
	if (s) {
		s->val = val;
		return 0;
	}
	if (fs->key != TOMBSTONE)
		m->used++;
	fs->key = strdup(key);
	if (!fs->key) {
		fs->key = NULL;
		return -1;
	}
	fs->val = val;
	m->count++;
	return 0;
}

void strmap_del(struct strmap *m, const char *key)
{
	struct slot *fs, *s = find(m, key, &fs);

	if (!s)
		return;
	free(s->key);
	s->key = TOMBSTONE;
	m->count--;
}

size_t strmap_count(const struct strmap *m)
{
	return m->count;
}

int strmap_next(const struct strmap *m, size_t *pos, const char **key, size_t *val)
{
	for (; *pos < m->cap; (*pos)++) {
		const struct slot *s = &m->v[*pos];

		if (s->key && s->key != TOMBSTONE) {
			*key = s->key;
			if (val)
				*val = s->val;
			(*pos)++;
			return 0;
		}
	}
	return -1;
}
