/* Sizes of media and the volume planner: which blob (or part of one) goes on which volume. */
#include "media.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "volfile.h"

/* ---- sizes ---- */

static const struct {
	const char *name;
	uint64_t bytes;
} media_kinds[] = {
	/* sector counts x 2048 of the smaller of the -R/+R variants (../shared/notes/media.md) */
	{ "dvd", 4700372992ull },
	{ "dvd-dl", 8543666176ull },
	{ "bd", 25025314816ull },
	{ "bd-dl", 50050629632ull },
};

/* The most digits a fraction may have: far more than any size needs, and a bound on the work. */
#define FRACTION_MAX 32

/* floor(0.<digits> * 2^shift), exactly: the decimal fraction doubled shift times, each doubling's
 * carry out of the first digit adding to the whole bytes (no floating point, so 4.7G is the
 * same number of bytes everywhere). */
static uint64_t fraction_bytes(const char *digits, size_t n, unsigned shift)
{
	unsigned char d[FRACTION_MAX];
	uint64_t whole = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d[i] = (unsigned char)(digits[i] - '0');
	while (shift--) {
		unsigned carry = 0;

		for (i = n; i-- > 0;) {
			unsigned v = d[i] * 2u + carry;

			d[i] = (unsigned char)(v % 10);
			carry = v / 10;
		}
		whole = whole * 2 + carry;
	}
	return whole;
}

/* "4.7G": whole units, an optional decimal fraction (only with a unit: bytes are whole), and
 * K, M or G as 2^10, 2^20, 2^30; rounded down to whole bytes. */
static int parse_bytes(const char *s, uint64_t *bytes)
{
	const char *frac = NULL;
	char *end;
	size_t nfrac = 0;
	unsigned shift = 0;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || !isdigit((unsigned char)s[0]))
		return -1;
	if (*end == '.') {
		frac = ++end;
		while (isdigit((unsigned char)*end))
			end++;
		nfrac = (size_t)(end - frac);
		if (nfrac == 0 || nfrac > FRACTION_MAX)
			return -1;
	}
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	default: return -1;
	}
	if ((*end && end[1]) || (frac && !shift) || v > UINT64_MAX >> shift)
		return -1;
	/* v << shift leaves the low shift bits clear, and the fraction is below 1 << shift. */
	*bytes = (v << shift) + (frac ? fraction_bytes(frac, nfrac, shift) : 0);
	return *bytes ? 0 : -1;
}

int media_parse_size(const char *s, uint64_t *bytes, struct rp_err *err)
{
	size_t i;

	for (i = 0; i < sizeof(media_kinds) / sizeof(media_kinds[0]); i++)
		if (!strcasecmp(s, media_kinds[i].name)) {
			*bytes = media_kinds[i].bytes;
			return 0;
		}
	if (parse_bytes(s, bytes) == 0)
		return 0;
	return rp_errf(err, "'%s': not a medium size (dvd, dvd-dl, bd, bd-dl, or bytes with an "
		       "optional K, M or G: 300K, 4480M, 4.7G)", s);
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

uint64_t media_file_cost(uint64_t size)
{
	return round_up(size, MEDIA_SECTOR) + MEDIA_FILE_META;
}

/* ---- the planner ---- */

static int cmp_blob(const void *a, const void *b)
{
	const struct media_blob *x = a, *y = b;

	if (x->size != y->size)
		return x->size > y->size ? -1 : 1;
	return strcmp(x->hex, y->hex);
}

static int cmp_blob_hex(const void *a, const void *b)
{
	return strcmp(((const struct media_blob *)a)->hex, ((const struct media_blob *)b)->hex);
}

/* Placing order: largest first, then by digest and offset (a total order: deterministic). */
static int cmp_place(const void *a, const void *b)
{
	const struct media_item *x = a, *y = b;

	if (x->size != y->size)
		return x->size > y->size ? -1 : 1;
	return volfile_cmp_blob_offset(a, b);
}

void media_plan_free(struct media_plan *p)
{
	if (!p)
		return;
	free(p->items);
	free(p->used);
	memset(p, 0, sizeof(*p));
}

double media_plan_fill(const struct media_plan *p)
{
	if (!p->nvolumes || !p->capacity)
		return 0;
	return (double)p->data_bytes / ((double)p->nvolumes * (double)p->capacity);
}

static int must_split(uint64_t size, uint64_t budget)
{
	return media_file_cost(size) > budget || size > MEDIA_MAX_FILE;
}

int media_plan_make(const struct media_blob *in, size_t n, uint64_t capacity,
		    uint64_t each_volume, struct media_plan *p, struct rp_err *err)
{
	struct media_blob *b = NULL;
	uint64_t fixed, budget = 0, part = 0, total_cost = 0;
	size_t i, nb = 0, est, count = 0, k, cap = 0;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	p->capacity = capacity;
	if (n) {
		b = malloc(n * sizeof(*b));
		if (!b)
			return rp_errf(err, "out of memory");
		memcpy(b, in, n * sizeof(*b));
		qsort(b, n, sizeof(*b), cmp_blob_hex);
	}
	for (i = 0; i < n; i++) {
		if (nb && !strcmp(b[nb - 1].hex, b[i].hex)) {
			if (b[nb - 1].size != b[i].size) {
				rp_errf(err, "sha256:%s is listed with two sizes", b[i].hex);
				goto out;
			}
			continue;
		}
		b[nb++] = b[i];
	}
	if (nb)
		qsort(b, nb, sizeof(*b), cmp_blob);
	/* The manifest lists every item, and its size depends on how many parts the budget makes,
	 * which depends on the manifest's size: iterate (the count only grows, so this ends). */
	fixed = MEDIA_FIXED + capacity / 1000;
	for (est = nb;;) {
		uint64_t meta = fixed + each_volume +
				media_file_cost(VOLFILE_HEADER_MAX + (uint64_t)VOLFILE_ITEM_LINE_MAX * est);

		if (capacity < meta + media_file_cost(MEDIA_SECTOR)) {
			rp_errf(err, "a medium of %" PRIu64 " bytes is too small: a volume needs %"
				PRIu64 " bytes for the file system, the snapshot and the manifest, "
				"and room for blobs", capacity, meta);
			goto out;
		}
		budget = capacity - meta;
		part = (budget - MEDIA_FILE_META) / MEDIA_SECTOR * MEDIA_SECTOR;
		if (part > MEDIA_MAX_FILE)
			part = MEDIA_MAX_FILE;
		for (count = 0, i = 0; i < nb; i++)
			count += must_split(b[i].size, budget) ? (size_t)((b[i].size + part - 1) / part)
							       : 1;
		if (count <= est)
			break;
		est = count;
	}
	p->budget = budget;
	p->part_size = part;
	p->items = calloc(count ? count : 1, sizeof(*p->items));
	if (!p->items) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < nb; i++) {
		uint64_t off = 0;
		int split = must_split(b[i].size, budget);

		p->split_blobs += (size_t)split;
		do {
			struct media_item *it = &p->items[p->nitems++];

			memcpy(it->hex, b[i].hex, sizeof(it->hex));
			it->blob_size = b[i].size;
			it->offset = off;
			it->size = split ? (b[i].size - off < part ? b[i].size - off : part) : b[i].size;
			it->split = split;
			off += it->size;
			p->data_bytes += it->size;
		} while (split && off < b[i].size);
	}
	/* First fit decreasing. */
	qsort(p->items, p->nitems, sizeof(*p->items), cmp_place);
	for (i = 0; i < p->nitems; i++) {
		uint64_t c = media_file_cost(p->items[i].size);

		total_cost += c;
		for (k = 0; k < p->nvolumes && p->used[k] + c > budget; k++)
			;
		if (k == p->nvolumes) {
			if (p->nvolumes == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				uint64_t *nu = realloc(p->used, ncap * sizeof(*nu));

				if (!nu) {
					rp_errf(err, "out of memory");
					goto out;
				}
				p->used = nu;
				cap = ncap;
			}
			p->used[p->nvolumes++] = 0;
		}
		p->used[k] += c;
		p->items[i].volume = (uint32_t)k + 1;
	}
	if (p->nvolumes == 0) { /* nothing to carry but the snapshot */
		p->used = calloc(1, sizeof(*p->used));
		if (!p->used) {
			rp_errf(err, "out of memory");
			goto out;
		}
		p->nvolumes = 1;
	}
	p->min_volumes = (uint32_t)((total_cost + budget - 1) / budget);
	if (p->min_volumes == 0)
		p->min_volumes = 1;
	qsort(p->items, p->nitems, sizeof(*p->items), volfile_cmp_item);
	rc = 0;
out:
	free(b);
	if (rc)
		media_plan_free(p);
	return rc;
}

