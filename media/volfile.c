/* The volume manifest: writing its shared part, parsing and checking it. */
#include "volfile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"

int volfile_cmp_blob_offset(const void *a, const void *b)
{
	const struct media_item *x = a, *y = b;
	int c = strcmp(x->hex, y->hex);

	if (c)
		return c;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

int volfile_cmp_item(const void *a, const void *b)
{
	const struct media_item *x = a, *y = b;

	if (x->volume != y->volume)
		return x->volume < y->volume ? -1 : 1;
	if (x->split != y->split)
		return x->split - y->split;
	return volfile_cmp_blob_offset(a, b);
}

void volfile_item_rel(const struct media_item *it, char *rel, size_t sz)
{
	snprintf(rel, sz, "%s/sha256/%s", it->split ? "parts" : "blobs",
		 it->split ? it->part_hex : it->hex);
}

void volfile_free(struct volfile *m)
{
	free(m->items);
	free(m->text);
	memset(m, 0, sizeof(*m));
}

static int any_signed(const struct volfile_signed *files)
{
	int i;

	for (i = 0; i < LAYOUT_SIGNED_N; i++)
		if (files[i].present)
			return 1;
	return 0;
}

/* The shared part of the manifest (malloc'd). Version 2 only when the set carries signed files,
 * so an unsigned set is written exactly as before. */
char *volfile_shared(const char *snapshot_id, uint64_t snapshot_len, const char *base_id,
		     uint32_t nvolumes, uint64_t capacity, const struct volfile_signed *files,
		     const struct media_item *items, size_t nitems, size_t *lenp)
{
	size_t cap = VOLFILE_HEADER_MAX + VOLFILE_ITEM_LINE_MAX * nitems, off, i;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	off = (size_t)snprintf(s, cap,
			       "regpress-volume %d\nsnapshot sha256:%s %" PRIu64 "\nbase %s%s\n"
			       "volumes %" PRIu32 "\ncapacity %" PRIu64 "\n",
			       any_signed(files) ? 2 : 1, snapshot_id, snapshot_len,
			       base_id[0] ? "sha256:" : "none", base_id, nvolumes, capacity);
	for (i = 0; i < LAYOUT_SIGNED_N; i++)
		if (files[i].present)
			off += (size_t)snprintf(s + off, cap - off, "file %s sha256:%s %" PRIu64 "\n",
						layout_signed_name((enum layout_signed)i),
						files[i].hex, files[i].size);
	for (i = 0; i < nitems; i++) {
		const struct media_item *it = &items[i];

		if (it->split)
			off += (size_t)snprintf(s + off, cap - off,
						"part %" PRIu32 " sha256:%s %" PRIu64 " sha256:%s %"
						PRIu64 " %" PRIu64 "\n", it->volume, it->part_hex,
						it->size, it->hex, it->blob_size, it->offset);
		else
			off += (size_t)snprintf(s + off, cap - off, "blob %" PRIu32 " sha256:%s %"
						PRIu64 "\n", it->volume, it->hex, it->size);
	}
	*lenp = off;
	return s;
}

/* The next line of [*p, end) into line (without its newline); 0 at the end, -1 if malformed. */
static int next_line(const char **p, const char *end, char *line, size_t sz)
{
	const char *nl;
	size_t l;

	if (*p >= end)
		return 0;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	if (!nl)
		return -1;
	l = (size_t)(nl - *p);
	if (l >= sz)
		return -1;
	memcpy(line, *p, l);
	line[l] = '\0';
	*p = nl + 1;
	return 1;
}

/* "sha256:<64 hex>" at s into hex; 1 if so. */
static int take_digest(const char *s, char hex[RP_HEX_LEN + 1])
{
	const char *h;

	if (!rp_digest_parse(s, &h))
		return 0;
	memcpy(hex, h, RP_HEX_LEN + 1);
	return 1;
}

/* Parts of each blob in order, from offset 0 to its size; a blob whole or in parts, not both. */
static int items_consistent(const struct media_item *items, size_t n)
{
	struct media_item *s = n ? malloc(n * sizeof(*s)) : NULL;
	size_t i;
	int ok = 1;

	if (n && !s)
		return 0;
	if (n)
		memcpy(s, items, n * sizeof(*s));
	if (n)
		qsort(s, n, sizeof(*s), volfile_cmp_blob_offset);
	for (i = 0; i < n && ok; i++) {
		size_t j;
		uint64_t off = 0;
		int split = s[i].split;

		if (i > 0 && !strcmp(s[i - 1].hex, s[i].hex))
			continue;
		for (j = i; j < n && !strcmp(s[j].hex, s[i].hex); j++) {
			if (s[j].split != split || s[j].offset != off ||
			    s[j].blob_size != s[i].blob_size || (!split && j > i))
				ok = 0;
			off += s[j].size;
		}
		if (off != s[i].blob_size)
			ok = 0;
	}
	free(s);
	return ok;
}

/* "file NAME sha256:HEX SIZE": one of the signed files, each once, in their order (the
 * canonical check afterwards enforces the order). */
static int take_file_line(const char *line, struct volfile_signed *files)
{
	char name[32], a[80];
	uint64_t size;
	int n, i;

	if (sscanf(line, "file %31s %79s %" SCNu64 "%n", name, a, &size, &n) != 3 || line[n] ||
	    size > LAYOUT_SIGNED_MAX)
		return -1;
	for (i = 0; i < LAYOUT_SIGNED_N; i++)
		if (!strcmp(name, layout_signed_name((enum layout_signed)i)))
			break;
	if (i == LAYOUT_SIGNED_N || files[i].present || !take_digest(a, files[i].hex))
		return -1;
	files[i].present = 1;
	files[i].size = size;
	return 0;
}

int volfile_parse(char *text, size_t len, const char *name, struct volfile *m,
		  struct rp_err *err)
{
	const char *p = text, *end = text + len, *vol_line = NULL;
	char line[VOLFILE_ITEM_LINE_MAX + 64], a[80], b[80];
	size_t cap = 0, slen;
	char *shared = NULL, hex[RP_HEX_LEN + 1];
	int n, version;

	memset(m, 0, sizeof(*m));
	m->text = text;
	m->len = len;
	if (memchr(text, '\0', len) || next_line(&p, end, line, sizeof(line)) != 1 ||
	    (strcmp(line, "regpress-volume 1") && strcmp(line, "regpress-volume 2")))
		return rp_errf(err, "'%s': not a regpress volume manifest (version 1 or 2)", name);
	version = line[16] - '0';
	if (next_line(&p, end, line, sizeof(line)) != 1 ||
	    sscanf(line, "snapshot %79s %" SCNu64 "%n", a, &m->snapshot_len, &n) != 2 ||
	    line[n] || !take_digest(a, m->snapshot_id))
		goto bad;
	if (next_line(&p, end, line, sizeof(line)) != 1 || strncmp(line, "base ", 5) ||
	    (strcmp(line + 5, "none") && !take_digest(line + 5, m->base_id)))
		goto bad;
	if (next_line(&p, end, line, sizeof(line)) != 1 ||
	    sscanf(line, "volumes %" SCNu32 "%n", &m->nvolumes, &n) != 1 || line[n] ||
	    m->nvolumes == 0 || m->nvolumes > 1000000)
		goto bad;
	if (next_line(&p, end, line, sizeof(line)) != 1 ||
	    sscanf(line, "capacity %" SCNu64 "%n", &m->capacity, &n) != 1 || line[n])
		goto bad;
	for (;;) {
		struct media_item it;
		const char *start = p;

		memset(&it, 0, sizeof(it));
		if (next_line(&p, end, line, sizeof(line)) != 1)
			goto bad;
		if (!strncmp(line, "file ", 5)) {
			if (version < 2 || m->nitems || take_file_line(line, m->files) < 0)
				goto bad;
			continue;
		}
		if (!strncmp(line, "volume ", 7)) {
			vol_line = start;
			break;
		}
		if (sscanf(line, "blob %" SCNu32 " %79s %" SCNu64 "%n", &it.volume, a, &it.size,
			   &n) == 3 && !line[n] && take_digest(a, it.hex)) {
			it.blob_size = it.size;
		} else if (sscanf(line, "part %" SCNu32 " %79s %" SCNu64 " %79s %" SCNu64 " %" SCNu64
				  "%n", &it.volume, a, &it.size, b, &it.blob_size, &it.offset, &n) ==
				   6 && !line[n] && take_digest(a, it.part_hex) &&
			   take_digest(b, it.hex)) {
			it.split = 1;
		} else {
			goto bad;
		}
		if (it.volume == 0 || it.volume > m->nvolumes ||
		    (m->nitems && volfile_cmp_item(&m->items[m->nitems - 1], &it) >= 0))
			goto bad;
		if (m->nitems == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct media_item *ni = realloc(m->items, ncap * sizeof(*ni));

			if (!ni)
				return rp_errf(err, "out of memory");
			m->items = ni;
			cap = ncap;
		}
		m->items[m->nitems++] = it;
	}
	m->shared_len = (size_t)(vol_line - text);
	p = vol_line;
	if (next_line(&p, end, line, sizeof(line)) != 1 ||
	    sscanf(line, "volume %" SCNu32 "%n", &m->volume, &n) != 1 || line[n] ||
	    m->volume == 0 || m->volume > m->nvolumes)
		goto bad;
	if (next_line(&p, end, line, sizeof(line)) != 1 || strncmp(line, "set ", 4) ||
	    !take_digest(line + 4, m->set_id) || p != end)
		goto bad;
	/* Canonical: written back, the shared part is the same bytes; and its digest is the set's. */
	shared = volfile_shared(m->snapshot_id, m->snapshot_len, m->base_id, m->nvolumes,
				 m->capacity, m->files, m->items, m->nitems, &slen);
	if (!shared)
		return rp_errf(err, "out of memory");
	if (slen != m->shared_len || memcmp(shared, text, slen)) {
		free(shared);
		goto bad;
	}
	free(shared);
	rp_sha256_buf(text, m->shared_len, hex);
	if (strcmp(hex, m->set_id))
		return rp_errf(err, "'%s': damaged (its contents have digest sha256:%s, its set "
			       "line says sha256:%s)", name, hex, m->set_id);
	if (!items_consistent(m->items, m->nitems))
		return rp_errf(err, "'%s': the parts of a blob do not add up to it", name);
	return 0;
bad:
	return rp_errf(err, "'%s': malformed or damaged volume manifest", name);
}

