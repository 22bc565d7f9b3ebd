#include "media.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "snapshot.h"
#include "tree.h"

#define COPY_BUF (1u << 20)
#define MANIFEST_MAX (64u << 20)
/* Upper bounds of the manifest's lines, for the planner's cost of the manifest itself. */
#define HEADER_MAX 512u
#define ITEM_LINE_MAX 256u
#define STAGING_OUT ".regpress-media"

extern char **environ;

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

int media_parse_size(const char *s, uint64_t *bytes, struct rp_err *err)
{
	uint64_t v, mult = 1;
	char *end;
	size_t i;

	for (i = 0; i < sizeof(media_kinds) / sizeof(media_kinds[0]); i++)
		if (!strcasecmp(s, media_kinds[i].name)) {
			*bytes = media_kinds[i].bytes;
			return 0;
		}
	if (!isdigit((unsigned char)s[0]))
		goto bad;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		goto bad;
	if (*end) {
		switch (*end) {
		case 'k': case 'K': mult = 1ull << 10; break;
		case 'm': case 'M': mult = 1ull << 20; break;
		case 'g': case 'G': mult = 1ull << 30; break;
		default: goto bad;
		}
		if (end[1])
			goto bad;
	}
	if (v == 0 || v > UINT64_MAX / mult)
		goto bad;
	*bytes = v * mult;
	return 0;
bad:
	return rp_errf(err, "'%s': not a medium size (dvd, dvd-dl, bd, bd-dl, or bytes with an "
		       "optional K, M or G)", s);
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

/* By blob, then offset. */
static int cmp_hex_off(const void *a, const void *b)
{
	const struct media_item *x = a, *y = b;
	int c = strcmp(x->hex, y->hex);

	if (c)
		return c;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Placing order: largest first, then by digest and offset (a total order: deterministic). */
static int cmp_place(const void *a, const void *b)
{
	const struct media_item *x = a, *y = b;

	if (x->size != y->size)
		return x->size > y->size ? -1 : 1;
	return cmp_hex_off(a, b);
}

/* The manifest's order: by volume, whole blobs before parts, then by digest and offset. */
static int cmp_final(const void *a, const void *b)
{
	const struct media_item *x = a, *y = b;

	if (x->volume != y->volume)
		return x->volume < y->volume ? -1 : 1;
	if (x->split != y->split)
		return x->split - y->split;
	return cmp_hex_off(a, b);
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
		    uint64_t snapshot_len, struct media_plan *p, struct rp_err *err)
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
		uint64_t meta = fixed + media_file_cost(snapshot_len) +
				media_file_cost(HEADER_MAX + (uint64_t)ITEM_LINE_MAX * est);

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
	qsort(p->items, p->nitems, sizeof(*p->items), cmp_final);
	rc = 0;
out:
	free(b);
	if (rc)
		media_plan_free(p);
	return rc;
}

/* ---- the volume manifest ---- */

struct manifest {
	char snapshot_id[RP_HEX_LEN + 1];
	uint64_t snapshot_len;
	char base_id[RP_HEX_LEN + 1];
	uint32_t nvolumes, volume;
	uint64_t capacity;
	struct media_item *items;
	size_t nitems;
	char set_id[RP_HEX_LEN + 1];
	char *text; /* the whole file */
	size_t len, shared_len; /* the lines before "volume": the same on every volume of the set */
};

static void manifest_free(struct manifest *m)
{
	free(m->items);
	free(m->text);
	memset(m, 0, sizeof(*m));
}

/* The shared part of the manifest (malloc'd). */
static char *manifest_shared(const char *snapshot_id, uint64_t snapshot_len, const char *base_id,
			     uint32_t nvolumes, uint64_t capacity, const struct media_item *items,
			     size_t nitems, size_t *lenp)
{
	size_t cap = HEADER_MAX + ITEM_LINE_MAX * nitems, off, i;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	off = (size_t)snprintf(s, cap,
			       "regpress-volume 1\nsnapshot sha256:%s %" PRIu64 "\nbase %s%s\n"
			       "volumes %" PRIu32 "\ncapacity %" PRIu64 "\n",
			       snapshot_id, snapshot_len, base_id[0] ? "sha256:" : "none", base_id,
			       nvolumes, capacity);
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
		qsort(s, n, sizeof(*s), cmp_hex_off);
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

static int manifest_parse(char *text, size_t len, const char *name, struct manifest *m,
			  struct rp_err *err)
{
	const char *p = text, *end = text + len, *vol_line = NULL;
	char line[ITEM_LINE_MAX + 64], a[80], b[80];
	size_t cap = 0, slen;
	char *shared = NULL, hex[RP_HEX_LEN + 1];
	int n;

	memset(m, 0, sizeof(*m));
	m->text = text;
	m->len = len;
	if (memchr(text, '\0', len) || next_line(&p, end, line, sizeof(line)) != 1 ||
	    strcmp(line, "regpress-volume 1"))
		return rp_errf(err, "'%s': not a regpress volume manifest (version 1)", name);
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
		    (m->nitems && cmp_final(&m->items[m->nitems - 1], &it) >= 0))
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
	shared = manifest_shared(m->snapshot_id, m->snapshot_len, m->base_id, m->nvolumes,
				 m->capacity, m->items, m->nitems, &slen);
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

/* ---- copying and hashing ---- */

struct copier {
	unsigned char *buf;
	uint64_t done, total;
	media_progress_fn progress;
	void *ctx;
	uint64_t files_copied, bytes_copied;
};

/* Read [off, off + len) of src, hashing it into h (and into whole if set), writing it to dst when
 * dst >= 0. */
static int copy_range(struct copier *c, int src, const char *src_name, uint64_t off, uint64_t len,
		      int dst, const char *dst_name, struct rp_sha256 *h, struct rp_sha256 *whole,
		      struct rp_err *err)
{
	while (len) {
		size_t want = len < COPY_BUF ? (size_t)len : COPY_BUF;
		ssize_t n = pread(src, c->buf, want, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return rp_errno(err, "cannot read '%s'", src_name);
		}
		if (n == 0)
			return rp_errf(err, "'%s': shorter than expected", src_name);
		if (h)
			rp_sha256_update(h, c->buf, (size_t)n);
		if (whole)
			rp_sha256_update(whole, c->buf, (size_t)n);
		if (dst >= 0 && rp_write_all(dst, dst_name, c->buf, (size_t)n, err) < 0)
			return -1;
		off += (uint64_t)n;
		len -= (uint64_t)n;
		c->done += (uint64_t)n;
		if (c->progress)
			c->progress(c->ctx, c->done, c->total);
	}
	return 0;
}

static int open_regular(const char *path, uint64_t want_size, const char *says, int *fdp,
			struct rp_err *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? rp_errf(err, "'%s': missing", path)
				       : rp_errno(err, "cannot open '%s'", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return rp_errf(err, "'%s': not a regular file", path);
	}
	if ((uint64_t)st.st_size != want_size) {
		close(fd);
		return rp_errf(err, "'%s': %lld bytes, %s says %" PRIu64, path,
			       (long long)st.st_size, says, want_size);
	}
	*fdp = fd;
	return 0;
}

/* Bytes [off, off + len) of src (of src_size bytes, as `says` says) must hash to want; with dst,
 * they are also copied to dst (a new file, 0644, mtime SOURCE_DATE_EPOCH, synced if sync). */
static int copy_checked(struct copier *c, const char *src, uint64_t src_size, const char *says,
			uint64_t off, uint64_t len, const char *want, const char *dst, int sync,
			struct rp_err *err)
{
	struct rp_sha256 h;
	char got[RP_HEX_LEN + 1];
	int in = -1, out = -1, rc = -1;

	if (open_regular(src, src_size, says, &in, err) < 0)
		return -1;
	if (rp_sha256_init(&h) < 0) {
		close(in);
		return rp_errf(err, "out of memory");
	}
	if (dst) {
		rp_crash_point();
		out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, RP_FILE_MODE);
		if (out < 0) {
			rp_errno(err, "cannot create '%s'", dst);
			rp_sha256_free(&h);
			goto out;
		}
	}
	if (copy_range(c, in, src, off, len, out, dst, &h, NULL, err) < 0) {
		rp_sha256_free(&h);
		goto out;
	}
	rp_sha256_final(&h, got);
	if (strcmp(got, want)) {
		if (off == 0 && len == src_size)
			rp_errf(err, "'%s': content has digest sha256:%s, not sha256:%s", src, got,
				want);
		else
			rp_errf(err, "'%s': bytes %" PRIu64 "-%" PRIu64 " have digest sha256:%s, not "
				"sha256:%s", src, off, off + len, got, want);
		goto out;
	}
	if (out >= 0) {
		if (rp_fix_file(out, dst, err) < 0)
			goto out;
		if (sync && fdatasync(out) < 0) {
			rp_errno(err, "cannot sync '%s'", dst);
			goto out;
		}
		c->files_copied++;
		c->bytes_copied += len;
	}
	rc = 0;
out:
	close(in);
	if (out >= 0) {
		if (close(out) < 0 && rc == 0)
			rc = rp_errno(err, "cannot write '%s'", dst);
		if (rc)
			unlink(dst);
	}
	return rc;
}

static char *path2(const char *a, const char *b)
{
	char *p = NULL;

	return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

/* Relative path of an item in a volume. */
static void item_rel(const struct media_item *it, char *rel, size_t sz)
{
	snprintf(rel, sz, "%s/sha256/%s", it->split ? "parts" : "blobs",
		 it->split ? it->part_hex : it->hex);
}

/* ---- writing volumes ---- */

/* Write the image of dir to iso (named final in messages). */
static int make_iso(const char *dir, const char *iso, const char *final, const char *volid,
		    const char *log, struct rp_err *err)
{
	const char *argv[] = { "xorriso", "-as", "mkisofs", "-R", "-J", "-V", volid, "-no-pad",
			       "-uid", "0", "-gid", "0", "-file-mode", "0644", "-dir-mode", "0755",
			       "-o", iso, dir, NULL };
	char epoch[64], **envp, *buf = NULL, *last, *nl;
	size_t n = 0, i, len;
	int status;
	pid_t pid;

	/* xorriso takes the volume dates, the volume UUID and every file date from
	 * SOURCE_DATE_EPOCH: the image is a function of the directory and this time. */
	snprintf(epoch, sizeof(epoch), "SOURCE_DATE_EPOCH=%lld", (long long)rp_epoch());
	while (environ[n])
		n++;
	envp = calloc(n + 2, sizeof(*envp));
	if (!envp)
		return rp_errf(err, "out of memory");
	for (i = n = 0; environ[i]; i++)
		if (strncmp(environ[i], "SOURCE_DATE_EPOCH=", 18))
			envp[n++] = environ[i];
	envp[n++] = epoch;
	pid = fork();
	if (pid < 0) {
		free(envp);
		return rp_errno(err, "cannot run xorriso");
	}
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execvpe(argv[0], (char *const *)argv, envp);
		_exit(127);
	}
	free(envp);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return rp_errno(err, "cannot wait for xorriso");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return rp_errf(err, "cannot make '%s': xorriso not found (install the xorriso "
			       "package)", final);
	/* The last line xorriso wrote says why. */
	last = "";
	if (rp_read_file(log, 1u << 20, &buf, &len, NULL) == 0) {
		while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
			buf[--len] = '\0';
		nl = strrchr(buf, '\n');
		last = nl ? nl + 1 : buf;
	}
	if (WIFEXITED(status))
		rp_errf(err, "cannot make '%s': xorriso exited with status %d: %s", final,
			WEXITSTATUS(status), last);
	else
		rp_errf(err, "cannot make '%s': xorriso killed by signal %d", final,
			WTERMSIG(status));
	free(buf);
	return -1;
}

struct writer {
	const char *tree, *outdir;
	const struct media_opts *o;
	struct media_result *r;
	struct copier c;
	char *tmp;	   /* outdir/.regpress-media */
	char *manifest;	   /* shared part */
	size_t manifest_len;
	const char *snapshot_text;
	int width;
};

static char *blob_src(const char *tree, const char *hex)
{
	char rel[RP_HEX_LEN + 16];

	snprintf(rel, sizeof(rel), "blobs/sha256/%s", hex);
	return path2(tree, rel);
}

/* Hash every part of every split blob (the manifests list their digests), checking each split
 * blob's own digest on the way. */
static int hash_parts(struct writer *w, struct rp_err *err)
{
	struct media_plan *p = &w->r->plan;
	size_t i, j;

	for (i = 0; i < p->nitems; i++) {
		struct rp_sha256 whole;
		char *src, got[RP_HEX_LEN + 1];
		int fd, rc = 0;

		if (!p->items[i].split || p->items[i].offset != 0)
			continue;
		src = blob_src(w->tree, p->items[i].hex);
		if (!src)
			return rp_errf(err, "out of memory");
		if (open_regular(src, p->items[i].blob_size, "the snapshot", &fd, err) < 0) {
			free(src);
			return -1;
		}
		if (rp_sha256_init(&whole) < 0) {
			close(fd);
			free(src);
			return rp_errf(err, "out of memory");
		}
		/* Parts of one blob: the same digest, offsets in any order in the plan. */
		for (uint64_t off = 0; rc == 0 && off < p->items[i].blob_size;) {
			struct media_item *it = NULL;
			struct rp_sha256 h;

			for (j = 0; j < p->nitems; j++)
				if (p->items[j].split && p->items[j].offset == off &&
				    !strcmp(p->items[j].hex, p->items[i].hex))
					it = &p->items[j];
			if (!it || rp_sha256_init(&h) < 0) {
				rc = rp_errf(err, "out of memory");
				break;
			}
			rc = copy_range(&w->c, fd, src, off, it->size, -1, NULL, &h, &whole, err);
			if (rc == 0)
				rp_sha256_final(&h, it->part_hex);
			else
				rp_sha256_free(&h);
			off += it->size;
		}
		close(fd);
		if (rc < 0) {
			rp_sha256_free(&whole);
			free(src);
			return -1;
		}
		rp_sha256_final(&whole, got);
		if (strcmp(got, p->items[i].hex)) {
			rp_errf(err, "'%s': content has digest sha256:%s, not its name", src, got);
			free(src);
			return -1;
		}
		free(src);
	}
	return 0;
}

static char *volume_name(const struct writer *w, uint32_t v, const char *suffix)
{
	char *s = NULL;

	return asprintf(&s, "volume-%0*" PRIu32 "%s", w->width, v, suffix) < 0 ? NULL : s;
}

static int write_volume(struct writer *w, uint32_t v, char *final, struct rp_err *err)
{
	struct media_plan *p = &w->r->plan;
	char *name = volume_name(w, v, ""), *vdir = NULL, *iso = NULL, *log = NULL, *mpath = NULL;
	char *tail = NULL, *spath = NULL;
	char volid[40];
	size_t i;
	int rc = -1, made_blobs = 0, made_parts = 0;

	if (!name || !(vdir = path2(w->tmp, name)) || !(mpath = path2(vdir, MEDIA_MANIFEST)) ||
	    !(spath = path2(vdir, MEDIA_SNAPSHOT)) ||
	    asprintf(&tail, "volume %" PRIu32 "\nset sha256:%s\n", v, w->r->set_id) < 0) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (rp_mkdirs(vdir, err) < 0)
		goto out;
	for (i = 0; i < p->nitems; i++) {
		const struct media_item *it = &p->items[i];
		char rel[RP_HEX_LEN + 32], *src, *dst, *dir;
		int r;

		if (it->volume != v)
			continue;
		if (!(it->split ? made_parts : made_blobs)) {
			dir = path2(vdir, it->split ? "parts/sha256" : "blobs/sha256");
			r = dir ? rp_mkdirs(dir, err) : rp_errf(err, "out of memory");
			free(dir);
			if (r < 0)
				goto out;
			*(it->split ? &made_parts : &made_blobs) = 1;
		}
		item_rel(it, rel, sizeof(rel));
		src = blob_src(w->tree, it->hex);
		dst = path2(vdir, rel);
		r = src && dst ? copy_checked(&w->c, src, it->blob_size, "the snapshot", it->offset,
					      it->size, it->split ? it->part_hex : it->hex, dst, 0,
					      err)
			       : rp_errf(err, "out of memory");
		free(src);
		free(dst);
		if (r < 0)
			goto out;
	}
	{
		/* The manifest: the shared part, then this volume's number and the set id. */
		size_t tl = strlen(tail);
		char *m = malloc(w->manifest_len + tl);

		if (!m) {
			rp_errf(err, "out of memory");
			goto out;
		}
		memcpy(m, w->manifest, w->manifest_len);
		memcpy(m + w->manifest_len, tail, tl);
		if (rp_write_new(mpath, m, w->manifest_len + tl, err) < 0) {
			free(m);
			goto out;
		}
		free(m);
	}
	if (rp_write_new(spath, w->snapshot_text, strlen(w->snapshot_text), err) < 0 ||
	    rp_fix_dir_mtimes(vdir, err) < 0)
		goto out;
	if (w->o->iso) {
		struct stat st;
		int fd;

		/* d-characters only, at most 32: REGPRESS_<set id>_<volume> */
		snprintf(volid, sizeof(volid), "REGPRESS_%.8s_%0*" PRIu32, w->r->set_id, w->width,
			 v);
		for (i = 0; volid[i]; i++)
			volid[i] = (char)toupper((unsigned char)volid[i]);
		if (asprintf(&iso, "%s.iso", vdir) < 0 || asprintf(&log, "%s.log", vdir) < 0) {
			rp_errf(err, "out of memory");
			goto out;
		}
		if (make_iso(vdir, iso, final, volid, log, err) < 0)
			goto out;
		fd = open(iso, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			if (fd >= 0)
				close(fd);
			rp_errno(err, "cannot read '%s'", iso);
			goto out;
		}
		if (rp_fix_file(fd, iso, err) < 0) {
			close(fd);
			goto out;
		}
		close(fd);
		if ((uint64_t)st.st_size > p->capacity) {
			rp_errf(err, "'%s': the image is %lld bytes, more than the medium's %" PRIu64
				" (the ISO overhead estimate in layout/media.h is too small)", iso,
				(long long)st.st_size, p->capacity);
			goto out;
		}
		if (rename(iso, final) < 0) {
			rp_errno(err, "cannot rename '%s' to '%s'", iso, final);
			goto out;
		}
		if (rp_rmtree(vdir, err) < 0)
			goto out;
	} else if (rename(vdir, final) < 0) {
		rp_errno(err, "cannot rename '%s' to '%s'", vdir, final);
		goto out;
	}
	rc = 0;
out:
	if (log)
		unlink(log);
	free(name);
	free(vdir);
	free(iso);
	free(log);
	free(mpath);
	free(spath);
	free(tail);
	return rc;
}

void media_result_free(struct media_result *r)
{
	uint32_t i;

	if (!r)
		return;
	if (r->paths)
		for (i = 0; i < r->plan.nvolumes; i++)
			free(r->paths[i]);
	free(r->paths);
	free(r->files);
	media_plan_free(&r->plan);
	memset(r, 0, sizeof(*r));
}

int media_write(const char *tree, const char *outdir, const struct media_opts *o,
		struct media_result *r, struct rp_err *err)
{
	struct writer w;
	struct snapshot snap = { NULL, 0, "" }, old = { NULL, 0, "" };
	struct media_blob *blobs = NULL;
	json_t *seen = json_object();
	char *text = NULL, **finals = NULL;
	size_t i, nb = 0;
	uint32_t v;
	int lockfd = -1, rc = -1, created_out = 0;

	memset(r, 0, sizeof(*r));
	memset(&w, 0, sizeof(w));
	w.tree = tree;
	w.outdir = outdir;
	w.o = o;
	w.r = r;
	w.c.progress = o->progress;
	w.c.ctx = o->ctx;
	w.c.buf = malloc(COPY_BUF);
	if (!seen || !w.c.buf) {
		rp_errf(err, "out of memory");
		goto out;
	}
	/* A shared lock: builds, rm and gc (exclusive) wait until the volumes are written. */
	lockfd = open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lockfd < 0) {
		rp_errno(err, "cannot open '%s'", tree);
		goto out;
	}
	while (flock(lockfd, LOCK_SH) < 0)
		if (errno != EINTR) {
			rp_errno(err, "cannot lock '%s'", tree);
			goto out;
		}
	if (snapshot_load(tree, &snap, &text, err) < 0)
		goto out;
	memcpy(r->snapshot_id, snap.id, sizeof(snap.id));
	if (o->since) {
		if (snapshot_load(o->since, &old, NULL, err) < 0)
			goto out;
		memcpy(r->base_id, old.id, sizeof(old.id));
		for (i = 0; i < old.n; i++)
			if (old.v[i].kind == SNAP_BLOB || old.v[i].kind == SNAP_MANIFEST)
				json_object_set_new(seen, old.v[i].hex, json_true());
	}
	blobs = calloc(snap.n ? snap.n : 1, sizeof(*blobs));
	if (!blobs) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < snap.n; i++) {
		if (snap.v[i].kind != SNAP_BLOB && snap.v[i].kind != SNAP_MANIFEST)
			continue;
		if (json_object_get(seen, snap.v[i].hex))
			continue;
		json_object_set_new(seen, snap.v[i].hex, json_true());
		memcpy(blobs[nb].hex, snap.v[i].hex, sizeof(blobs[nb].hex));
		blobs[nb++].size = snap.v[i].size;
	}
	if (media_plan_make(blobs, nb, o->capacity, strlen(text), &r->plan, err) < 0)
		goto out;
	if (o->only > r->plan.nvolumes) {
		rp_errf(err, "there is no volume %" PRIu32 ": the set has %" PRIu32, o->only,
			r->plan.nvolumes);
		goto out;
	}
	for (w.width = 1, v = r->plan.nvolumes; v >= 10; v /= 10)
		w.width++;
	if (w.width < 2)
		w.width = 2;
	r->paths = calloc(r->plan.nvolumes, sizeof(*r->paths));
	r->files = calloc(r->plan.nvolumes, sizeof(*r->files));
	finals = calloc(r->plan.nvolumes, sizeof(*finals));
	if (!r->paths || !r->files || !finals) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < r->plan.nitems; i++)
		r->files[r->plan.items[i].volume - 1]++;
	/* Nothing is ever replaced: check every name first. */
	for (v = 1; v <= r->plan.nvolumes; v++) {
		char *name;
		struct stat st;

		if (o->only && v != o->only)
			continue;
		name = volume_name(&w, v, o->iso ? ".iso" : "");
		finals[v - 1] = name ? path2(outdir, name) : NULL;
		free(name);
		if (!finals[v - 1]) {
			rp_errf(err, "out of memory");
			goto out;
		}
		if (lstat(finals[v - 1], &st) == 0) {
			rp_errf(err, "'%s' exists: regpress does not replace files (use another -o)",
				finals[v - 1]);
			goto out;
		}
	}
	for (i = 0; i < r->plan.nitems; i++) {
		const struct media_item *it = &r->plan.items[i];

		if (it->split && it->offset == 0)
			w.c.total += it->blob_size;
		if (!o->only || it->volume == o->only)
			w.c.total += it->size;
	}
	{
		struct stat st;

		created_out = stat(outdir, &st) < 0 && errno == ENOENT;
	}
	if (rp_mkdirs(outdir, err) < 0 || !(w.tmp = path2(outdir, STAGING_OUT)) ||
	    rp_rmtree(w.tmp, err) < 0 || rp_mkdirs(w.tmp, err) < 0)
		goto out;
	if (hash_parts(&w, err) < 0)
		goto out;
	w.manifest = manifest_shared(r->snapshot_id, strlen(text), r->base_id, r->plan.nvolumes,
				     r->plan.capacity, r->plan.items, r->plan.nitems,
				     &w.manifest_len);
	if (!w.manifest) {
		rp_errf(err, "out of memory");
		goto out;
	}
	rp_sha256_buf(w.manifest, w.manifest_len, r->set_id);
	w.snapshot_text = text;
	for (v = 1; v <= r->plan.nvolumes; v++) {
		if (o->only && v != o->only)
			continue;
		if (write_volume(&w, v, finals[v - 1], err) < 0)
			goto out;
		r->paths[v - 1] = finals[v - 1];
		finals[v - 1] = NULL;
	}
	rc = 0;
out:
	if (w.tmp) {
		rp_rmtree(w.tmp, NULL);
		free(w.tmp);
		/* a directory we made holds only volumes: its time is theirs */
		if (created_out && rc == 0 && rp_set_mtime(outdir, err) < 0)
			rc = -1;
	}
	if (rc < 0 && r->paths) /* all or nothing: drop the volumes already written */
		for (v = 0; v < r->plan.nvolumes; v++)
			if (r->paths[v])
				rp_rmtree(r->paths[v], NULL);
	if (created_out && rc < 0)
		rmdir(outdir); /* only if empty: what this call made */
	if (finals)
		for (v = 0; v < r->plan.nvolumes; v++)
			free(finals[v]);
	free(finals);
	if (rc < 0)
		media_result_free(r);
	if (lockfd >= 0)
		close(lockfd);
	free(w.manifest);
	free(w.c.buf);
	free(blobs);
	free(text);
	json_decref(seen);
	snapshot_free(&snap);
	snapshot_free(&old);
	return rc;
}

/* ---- reading volumes ---- */

struct volume {
	char *path;
	struct manifest m;
	char *snapshot; /* the text, NUL-terminated */
	size_t snapshot_len;
};

static void volume_free(struct volume *v)
{
	free(v->path);
	manifest_free(&v->m);
	free(v->snapshot);
	memset(v, 0, sizeof(*v));
}

/* Parse a volume's manifest and check its snapshot against it. */
static int volume_open(const char *path, struct volume *v, struct rp_err *err)
{
	struct snapshot s;
	struct stat st;
	char *mpath = NULL, *spath = NULL, *text = NULL;
	size_t len;
	int rc = -1;

	memset(v, 0, sizeof(*v));
	if (stat(path, &st) < 0)
		return rp_errno(err, "'%s'", path);
	if (!S_ISDIR(st.st_mode))
		return rp_errf(err, "'%s': not a volume directory or ISO image", path);
	v->path = strdup(path);
	mpath = path2(path, MEDIA_MANIFEST);
	spath = path2(path, MEDIA_SNAPSHOT);
	if (!v->path || !mpath || !spath) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (access(mpath, F_OK) < 0) {
		rp_errf(err, "'%s': not a regpress volume (no %s)", path, MEDIA_MANIFEST);
		goto out;
	}
	if (rp_read_file(mpath, MANIFEST_MAX, &text, &len, err) < 0)
		goto out;
	if (manifest_parse(text, len, mpath, &v->m, err) < 0) {
		text = NULL; /* owned by v->m */
		goto out;
	}
	text = NULL;
	if (rp_read_file(spath, SNAPSHOT_MAX, &v->snapshot, &v->snapshot_len, err) < 0)
		goto out;
	{
		char hex[RP_HEX_LEN + 1];

		rp_sha256_buf(v->snapshot, v->snapshot_len, hex);
		if (v->snapshot_len != v->m.snapshot_len || strcmp(hex, v->m.snapshot_id)) {
			rp_errf(err, "'%s': damaged (content has digest sha256:%s, the volume "
				"manifest says sha256:%s)", spath, hex, v->m.snapshot_id);
			goto out;
		}
	}
	if (snapshot_parse(v->snapshot, v->snapshot_len, spath, &s, err) < 0)
		goto out;
	snapshot_free(&s);
	rc = 0;
out:
	free(text);
	free(mpath);
	free(spath);
	if (rc)
		volume_free(v);
	return rc;
}

static void volume_info(const struct volume *v, struct media_volume_info *info)
{
	size_t i;

	memset(info, 0, sizeof(*info));
	info->volume = v->m.volume;
	info->nvolumes = v->m.nvolumes;
	memcpy(info->snapshot_id, v->m.snapshot_id, sizeof(info->snapshot_id));
	memcpy(info->base_id, v->m.base_id, sizeof(info->base_id));
	memcpy(info->set_id, v->m.set_id, sizeof(info->set_id));
	for (i = 0; i < v->m.nitems; i++)
		if (v->m.items[i].volume == v->m.volume) {
			info->files++;
			info->bytes += v->m.items[i].size;
		}
}

/* The files a volume may hold: its manifest, snapshot, the directories and its items. */
static struct {
	json_t *allowed;
	const char *root;
	struct rp_err *err;
	int bad;
} stray_walk;

static int stray_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	const char *rel = path + strlen(stray_walk.root);

	(void)st;
	(void)ftw;
	while (*rel == '/')
		rel++;
	if (!*rel)
		return 0;
	if (type == FTW_D && (!strcmp(rel, "blobs") || !strcmp(rel, "parts") ||
			      !strcmp(rel, "blobs/sha256") || !strcmp(rel, "parts/sha256")))
		return 0;
	if (type == FTW_F && json_object_get(stray_walk.allowed, rel))
		return 0;
	rp_errf(stray_walk.err, "'%s': not part of the volume (not in its manifest)", path);
	stray_walk.bad = 1;
	return 1;
}

/* ---- volumes given as ISO images ---- */

/* A volume may also be given as the ISO image `regpress media --iso` wrote, so that no one needs
 * to mount it (which takes root, and a kernel with iso9660) or extract it by hand. The image is
 * extracted into a new directory under $TMPDIR and read from there like any volume; messages name
 * the image instead of that directory. Extraction trusts nothing in the image: only directories and
 * regular files with plain relative names, no two entries with one name, and no more file data
 * than the image's own size (entries that share their data could otherwise fill the disk). */

/* name, with any "./" in front taken off, as a relative path of plain components; NULL if it is
 * not one ("" for the root entry). */
static const char *iso_rel(const char *name)
{
	const char *p, *c;

	while (name[0] == '.' && name[1] == '/')
		name += 2;
	if (!strcmp(name, ".") || !*name)
		return "";
	if (name[0] == '/' || strlen(name) > PATH_MAX / 2)
		return NULL;
	for (c = name; *c; c = *p ? p + 1 : p) {
		p = strchrnul(c, '/');
		if (p == c && *p) /* an empty component: "a//b" */
			return NULL;
		if ((p - c == 1 && c[0] == '.') || (p - c == 2 && c[0] == '.' && c[1] == '.'))
			return NULL;
	}
	return name;
}

/* Extract the ISO image iso into the existing, empty directory dir. */
static int iso_extract(const char *iso, const char *dir, struct copier *c, struct rp_err *err)
{
	struct archive *a = NULL;
	struct archive_entry *e;
	struct stat st;
	uint64_t budget;
	char *path = NULL;
	int fd, out = -1, r, rc = -1;

	fd = open(iso, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return rp_errno(err, "cannot open '%s'", iso);
	if (fstat(fd, &st) < 0) {
		rp_errno(err, "cannot read '%s'", iso);
		goto out;
	}
	budget = (uint64_t)st.st_size;
	a = archive_read_new();
	if (!a || archive_read_support_format_iso9660(a) != ARCHIVE_OK) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (archive_read_open_fd(a, fd, 64 * 1024) != ARCHIVE_OK) {
		rp_errf(err, "'%s': not a volume directory or ISO image (%s)", iso,
			archive_error_string(a));
		goto out;
	}
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e), *rel = name ? iso_rel(name) : NULL;
		mode_t type = archive_entry_filetype(e);
		int64_t size = archive_entry_size(e), left;

		if (!rel) {
			rp_errf(err, "'%s': entry '%s' is not a plain relative path", iso,
				name ? name : "");
			goto out;
		}
		if (archive_entry_hardlink(e) || (type != AE_IFDIR && type != AE_IFREG)) {
			rp_errf(err, "'%s': entry '%s' is a link or a special file (a volume holds "
				"only files and directories)", iso, rel);
			goto out;
		}
		if (!*rel)
			continue;
		free(path);
		path = path2(dir, rel);
		if (!path) {
			rp_errf(err, "out of memory");
			goto out;
		}
		if (type == AE_IFDIR) {
			if (rp_mkdirs(path, err) < 0)
				goto out;
			continue;
		}
		if (size < 0 || (uint64_t)size > budget) {
			rp_errf(err, "'%s': entry '%s' claims more data than the image holds", iso, rel);
			goto out;
		}
		budget -= (uint64_t)size;
		{
			char *slash = strrchr(path, '/');

			*slash = '\0';
			r = rp_mkdirs(path, err);
			*slash = '/';
			if (r < 0)
				goto out;
		}
		out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (out < 0) {
			if (errno == EEXIST)
				rp_errf(err, "'%s': entry '%s' appears twice", iso, rel);
			else
				rp_errno(err, "cannot create '%s'", path);
			goto out;
		}
		for (left = size; left > 0;) {
			la_ssize_t n = archive_read_data(a, c->buf, COPY_BUF);

			if (n < 0) {
				rp_errf(err, "'%s': cannot read entry '%s': %s", iso, rel,
					archive_error_string(a));
				goto out;
			}
			if (n == 0 || n > left) {
				rp_errf(err, "'%s': entry '%s' is not the %" PRId64 " bytes it claims",
					iso, rel, size);
				goto out;
			}
			if (rp_write_all(out, path, c->buf, (size_t)n, err) < 0)
				goto out;
			left -= n;
			c->done += (uint64_t)n;
			if (c->progress)
				c->progress(c->ctx, c->done, c->total);
		}
		if (close(out) < 0) {
			out = -1;
			rp_errno(err, "cannot write '%s'", path);
			goto out;
		}
		out = -1;
	}
	if (r != ARCHIVE_EOF) {
		if (archive_format(a) == 0) /* not even the volume descriptors were read */
			rp_errf(err, "'%s': not a volume directory or ISO image (%s)", iso,
				archive_error_string(a));
		else
			rp_errf(err, "'%s': damaged ISO image (%s)", iso, archive_error_string(a));
		goto out;
	}
	rc = 0;
out:
	if (out >= 0)
		close(out);
	free(path);
	if (a)
		archive_read_free(a);
	close(fd);
	return rc;
}

/* Replace each "from" in the message by "to" (a directory by the image it came from). */
static void err_rename(struct rp_err *err, const char *from, const char *to)
{
	char buf[sizeof(err->msg)];
	const char *p = err->msg, *hit;
	size_t lf = strlen(from), used = 0;

	buf[0] = '\0';
	while ((hit = strstr(p, from)) && used < sizeof(buf)) {
		used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%.*s%s", (int)(hit - p), p,
					 to);
		p = hit + lf;
	}
	if (p == err->msg)
		return;
	if (used < sizeof(buf))
		snprintf(buf + used, sizeof(buf) - used, "%s", p);
	memcpy(err->msg, buf, sizeof(buf));
	err->msg[sizeof(err->msg) - 1] = '\0';
}

/* The volumes as directories: each ISO image among paths extracted into its own directory under
 * $TMPDIR (extracted[i] is NULL for a directory). Progress counts the images' bytes. */
struct volume_dirs {
	size_t n;
	const char **dirs;
	char **extracted;
};

static void volume_dirs_free(struct volume_dirs *vd)
{
	size_t i;

	for (i = 0; vd->extracted && i < vd->n; i++)
		if (vd->extracted[i]) {
			rp_rmtree(vd->extracted[i], NULL);
			free(vd->extracted[i]);
		}
	free(vd->extracted);
	free(vd->dirs);
	memset(vd, 0, sizeof(*vd));
}

static int volume_dirs_open(const char *const *paths, size_t n, media_progress_fn progress,
			    void *ctx, struct volume_dirs *vd, struct rp_err *err)
{
	const char *tmp = getenv("TMPDIR");
	struct copier c = { NULL, 0, 0, progress, ctx, 0, 0 };
	struct stat st;
	size_t i;

	memset(vd, 0, sizeof(*vd));
	vd->n = n;
	vd->dirs = calloc(n ? n : 1, sizeof(*vd->dirs));
	vd->extracted = calloc(n ? n : 1, sizeof(*vd->extracted));
	if (!vd->dirs || !vd->extracted) {
		rp_errf(err, "out of memory");
		goto fail;
	}
	/* dirs[i] stays NULL for an image, to be extracted once the total size is known. */
	for (i = 0; i < n; i++) {
		if (stat(paths[i], &st) < 0) {
			rp_errno(err, "'%s'", paths[i]);
			goto fail;
		}
		if (S_ISREG(st.st_mode))
			c.total += (uint64_t)st.st_size;
		else
			vd->dirs[i] = paths[i]; /* volume_open says what is wrong with a non-directory */
	}
	for (i = 0; i < n; i++) {
		if (vd->dirs[i])
			continue;
		if (!c.buf && !(c.buf = malloc(COPY_BUF))) {
			rp_errf(err, "out of memory");
			goto fail;
		}
		if (asprintf(&vd->extracted[i], "%s/regpress-volume.XXXXXX",
			     tmp && *tmp ? tmp : "/tmp") < 0) {
			vd->extracted[i] = NULL;
			rp_errf(err, "out of memory");
			goto fail;
		}
		if (!mkdtemp(vd->extracted[i])) {
			rp_errno(err, "cannot make a directory to extract '%s' into ('%s')", paths[i],
				 vd->extracted[i]);
			free(vd->extracted[i]);
			vd->extracted[i] = NULL;
			goto fail;
		}
		vd->dirs[i] = vd->extracted[i];
		if (iso_extract(paths[i], vd->extracted[i], &c, err) < 0)
			goto fail;
	}
	free(c.buf);
	return 0;
fail:
	free(c.buf);
	volume_dirs_free(vd);
	return -1;
}

/* A failure while reading the extracted directories: name the images instead. */
static void volume_dirs_err(const struct volume_dirs *vd, const char *const *paths,
			    struct rp_err *err)
{
	size_t i;

	for (i = 0; i < vd->n; i++)
		if (vd->extracted[i])
			err_rename(err, vd->extracted[i], paths[i]);
}

static int check_dir(const char *voldir, media_progress_fn progress, void *ctx,
		     struct media_volume_info *info, struct rp_err *err)
{
	struct volume v;
	struct copier c = { NULL, 0, 0, progress, ctx, 0, 0 };
	json_t *allowed = json_object();
	size_t i;
	int rc = -1;

	if (volume_open(voldir, &v, err) < 0) {
		json_decref(allowed);
		return -1;
	}
	volume_info(&v, info);
	c.total = info->bytes;
	c.buf = malloc(COPY_BUF);
	if (!c.buf || !allowed) {
		rp_errf(err, "out of memory");
		goto out;
	}
	json_object_set_new(allowed, MEDIA_MANIFEST, json_true());
	json_object_set_new(allowed, MEDIA_SNAPSHOT, json_true());
	for (i = 0; i < v.m.nitems; i++) {
		const struct media_item *it = &v.m.items[i];
		char rel[RP_HEX_LEN + 32], *src;
		int r;

		if (it->volume != v.m.volume)
			continue;
		item_rel(it, rel, sizeof(rel));
		json_object_set_new(allowed, rel, json_true());
		src = path2(voldir, rel);
		r = src ? copy_checked(&c, src, it->size, "the volume manifest", 0, it->size,
				       it->split ? it->part_hex : it->hex, NULL, 0, err)
			: rp_errf(err, "out of memory");
		free(src);
		if (r < 0)
			goto out;
	}
	stray_walk.allowed = allowed;
	stray_walk.root = voldir;
	stray_walk.err = err;
	stray_walk.bad = 0;
	if (nftw(voldir, stray_one, 16, FTW_PHYS) < 0 || stray_walk.bad) {
		if (!stray_walk.bad)
			rp_errno(err, "cannot read '%s'", voldir);
		goto out;
	}
	rc = 0;
out:
	json_decref(allowed);
	free(c.buf);
	volume_free(&v);
	return rc;
}

int media_check(const char *voldir, media_progress_fn progress, void *ctx,
		struct media_volume_info *info, struct rp_err *err)
{
	struct volume_dirs vd;
	int rc;

	if (volume_dirs_open(&voldir, 1, progress, ctx, &vd, err) < 0)
		return -1;
	rc = check_dir(vd.dirs[0], progress, ctx, info, err);
	if (rc < 0)
		volume_dirs_err(&vd, &voldir, err);
	volume_dirs_free(&vd);
	return rc;
}

/* ---- import ---- */

/* Where a file an import needs is, once verified: key (a blob's or a part's digest) -> path. */
struct avail {
	json_t *whole; /* blob hex -> path */
	json_t *parts; /* part hex -> path */
};

static const char *avail_path(json_t *set, const char *hex)
{
	return json_string_value(json_object_get(set, hex));
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Add v to the sorted-unique list (list has room). */
static void add_u32(uint32_t *list, size_t *n, uint32_t v)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (list[i] == v)
			return;
	list[(*n)++] = v;
	qsort(list, *n, sizeof(*list), cmp_u32);
}

/* The blob is complete: whole, or every part of it is available. */
static int blob_ready(const struct manifest *m, const struct avail *a, const char *hex)
{
	size_t i;
	int any = 0;

	if (avail_path(a->whole, hex))
		return 1;
	for (i = 0; i < m->nitems; i++)
		if (!strcmp(m->items[i].hex, hex)) {
			if (!m->items[i].split || !avail_path(a->parts, m->items[i].part_hex))
				return 0;
			any = 1;
		}
	return any;
}

/* Link (or, across file systems, copy) a file kept from an earlier run into the scratch area,
 * so adopting it into the tree leaves the import area intact until the publish succeeded. */
static int take_kept(struct copier *c, const char *src, const char *dst, uint64_t size,
		     const char *hex, struct rp_err *err)
{
	if (link(src, dst) == 0)
		return 0;
	return copy_checked(c, src, size, "the volume manifest", 0, size, hex, dst, 1, err);
}

struct importer {
	const char *tree;
	struct layout_tree *t;
	struct volume *vols;
	size_t n;
	struct volume kept; /* the import area's manifest and snapshot, when there is one */
	int have_kept;
	const struct manifest *set; /* the set's manifest (shared part) */
	const char *target_text;
	char *state, *scratch_blobs, *scratch_parts;
	json_t *needed; /* blob hex -> true: what the tree lacks */
	struct avail a;
	struct copier c;
	struct media_import_result *r;
};

/* Note what the import area already holds (verified in an earlier run). */
static void scan_kept(struct importer *im)
{
	size_t i;

	for (i = 0; i < im->set->nitems; i++) {
		const struct media_item *it = &im->set->items[i];
		char rel[RP_HEX_LEN + 32], *p;

		if (!json_object_get(im->needed, it->hex))
			continue;
		item_rel(it, rel, sizeof(rel));
		p = path2(im->state, rel);
		if (p && access(p, F_OK) == 0)
			json_object_set_new(it->split ? im->a.parts : im->a.whole,
					    it->split ? it->part_hex : it->hex, json_string(p));
		free(p);
	}
}

/* Read one volume: verify every file it carries; copy into scratch what the tree still needs. */
static int read_volume(struct importer *im, const struct volume *v, struct rp_err *err)
{
	size_t i;

	for (i = 0; i < v->m.nitems; i++) {
		const struct media_item *it = &v->m.items[i];
		const char *key = it->split ? it->part_hex : it->hex;
		json_t *set = it->split ? im->a.parts : im->a.whole;
		char rel[RP_HEX_LEN + 32], *src, *dst = NULL;
		int want, r;

		if (it->volume != v->m.volume)
			continue;
		want = json_object_get(im->needed, it->hex) && !avail_path(im->a.whole, it->hex) &&
		       !avail_path(set, key);
		item_rel(it, rel, sizeof(rel));
		src = path2(v->path, rel);
		if (want)
			dst = path2(it->split ? im->scratch_parts : im->scratch_blobs, key);
		if (!src || (want && !dst)) {
			free(src);
			free(dst);
			return rp_errf(err, "out of memory");
		}
		r = copy_checked(&im->c, src, it->size, "the volume manifest", 0, it->size, key,
				 dst, 1, err);
		if (r == 0 && dst)
			json_object_set_new(set, key, json_string(dst));
		free(src);
		free(dst);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* Every needed blob is there: stage them (joining parts), set the state, publish. */
static int publish(struct importer *im, struct rp_err *err)
{
	const char *hex, *scratch = layout_scratch_dir(im->t);
	json_t *val;
	int rc = 0;

	json_object_foreach(im->needed, hex, val) {
		const char *p = avail_path(im->a.whole, hex);
		size_t i;

		if (p) {
			char *tmp = NULL;

			/* Files of this run are in scratch; files kept from earlier runs are
			 * linked there first, so a failed publish leaves the import area whole. */
			if (strncmp(p, scratch, strlen(scratch))) {
				const struct media_item *it = NULL;

				for (i = 0; i < im->set->nitems && !it; i++)
					if (!strcmp(im->set->items[i].hex, hex))
						it = &im->set->items[i];
				if (asprintf(&tmp, "%s/kept-%s", scratch, hex) < 0)
					return rp_errf(err, "out of memory");
				if (take_kept(&im->c, p, tmp, it ? it->blob_size : 0, hex, err) < 0) {
					free(tmp);
					return -1;
				}
				p = tmp;
			}
			rc = layout_blob_adopt(im->t, p, hex, err);
			free(tmp);
		} else {
			struct layout_blob *b;
			char got[RP_HEX_LEN + 1];
			uint64_t off = 0, blob_size = 0;

			if (layout_blob_new(im->t, &b, err) < 0)
				return -1;
			for (;;) {
				const struct media_item *it = NULL;
				const char *pp;
				int fd;

				for (i = 0; i < im->set->nitems && !it; i++)
					if (im->set->items[i].split && im->set->items[i].offset == off &&
					    !strcmp(im->set->items[i].hex, hex))
						it = &im->set->items[i];
				if (!it)
					break;
				blob_size = it->blob_size;
				pp = avail_path(im->a.parts, it->part_hex);
				if (open_regular(pp, it->size, "the volume manifest", &fd, err) < 0) {
					layout_blob_free(b);
					return -1;
				}
				for (uint64_t done = 0; done < it->size;) {
					ssize_t n = pread(fd, im->c.buf, COPY_BUF, (off_t)done);

					if (n < 0 && errno == EINTR)
						continue;
					if (n <= 0) {
						close(fd);
						layout_blob_free(b);
						return n < 0 ? rp_errno(err, "cannot read '%s'", pp)
							     : rp_errf(err, "'%s': truncated", pp);
					}
					if (layout_blob_write(b, im->c.buf, (size_t)n, err) < 0) {
						close(fd);
						layout_blob_free(b);
						return -1;
					}
					done += (uint64_t)n;
				}
				close(fd);
				off += it->size;
				if (off == blob_size)
					break;
			}
			if (layout_blob_finish(b, got, NULL, err) < 0)
				return -1;
			if (strcmp(got, hex))
				return rp_errf(err, "blob sha256:%s joined from its parts has digest "
					       "sha256:%s", hex, got);
		}
		if (rc < 0)
			return -1;
	}
	if (layout_set_state(im->t, im->target_text, err) < 0 || layout_commit(im->t, err) < 0)
		return -1;
	/* Published: the kept files are not needed any more. */
	if (rp_rmtree(im->state, err) < 0 || rp_set_mtime(im->tree, err) < 0)
		return -1;
	im->r->published = 1;
	return 0;
}

/* Not complete yet: keep what this run verified for the next one. */
static int keep(struct importer *im, struct rp_err *err)
{
	char *blobs = path2(im->state, "blobs/sha256"), *parts = path2(im->state, "parts/sha256");
	char *mpath = path2(im->state, MEDIA_MANIFEST), *spath = path2(im->state, MEDIA_SNAPSHOT);
	const char *scratch = layout_scratch_dir(im->t);
	const char *key;
	json_t *val;
	int rc = -1, i, dfd;

	if (!blobs || !parts || !mpath || !spath) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (!im->have_kept) {
		/* A new import area (an earlier one of a published set is stale): the snapshot
		 * first, the manifest last, so a manifest there means a complete pair. */
		if (rp_rmtree(im->state, err) < 0 || rp_mkdirs(im->state, err) < 0 ||
		    rp_write_atomic(spath, im->vols[0].snapshot, im->vols[0].snapshot_len, err) < 0 ||
		    rp_write_atomic(mpath, im->vols[0].m.text, im->vols[0].m.len, err) < 0)
			goto out;
	}
	if (rp_mkdirs(blobs, err) < 0 || rp_mkdirs(parts, err) < 0)
		goto out;
	for (i = 0; i < 2; i++) {
		json_object_foreach(i ? im->a.parts : im->a.whole, key, val) {
			const char *p = json_string_value(val);
			char *dst;
			int r = 0;

			if (strncmp(p, scratch, strlen(scratch)))
				continue; /* kept already */
			dst = path2(i ? parts : blobs, key);
			rp_crash_point();
			if (!dst)
				r = rp_errf(err, "out of memory");
			else if (rename(p, dst) < 0)
				r = rp_errno(err, "cannot move '%s' to '%s'", p, dst);
			free(dst);
			if (r < 0)
				goto out;
		}
	}
	dfd = open(im->state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		syncfs(dfd);
		close(dfd);
	}
	rc = rp_fix_dir_mtimes(im->state, err);
out:
	free(blobs);
	free(parts);
	free(mpath);
	free(spath);
	return rc;
}

void media_import_result_free(struct media_import_result *r)
{
	if (!r)
		return;
	free(r->imported);
	free(r->missing);
	memset(r, 0, sizeof(*r));
}

static int import_dirs(const char *tree, const char *const *paths, size_t n,
		       media_progress_fn progress, void *ctx, struct media_import_result *r,
		       struct rp_err *err)
{
	struct importer im;
	struct snapshot target = { NULL, 0, "" };
	const char *cur;
	size_t i, j;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	memset(&im, 0, sizeof(im));
	im.tree = tree;
	im.r = r;
	im.n = n;
	im.c.progress = progress;
	im.c.ctx = ctx;
	im.vols = calloc(n ? n : 1, sizeof(*im.vols));
	im.needed = json_object();
	im.a.whole = json_object();
	im.a.parts = json_object();
	im.c.buf = malloc(COPY_BUF);
	if (!im.vols || !im.needed || !im.a.whole || !im.a.parts || !im.c.buf) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (n == 0) {
		rp_errf(err, "no volumes");
		goto out;
	}
	/* Every volume's manifest and snapshot, before the tree is touched. */
	for (i = 0; i < n; i++) {
		if (volume_open(paths[i], &im.vols[i], err) < 0)
			goto out;
		if (i && strcmp(im.vols[i].m.set_id, im.vols[0].m.set_id)) {
			rp_errf(err, "'%s' and '%s' belong to different volume sets (snapshots "
				"sha256:%s and sha256:%s)", paths[0], paths[i],
				im.vols[0].m.snapshot_id, im.vols[i].m.snapshot_id);
			goto out;
		}
	}
	im.set = &im.vols[0].m;
	im.target_text = im.vols[0].snapshot;
	r->nvolumes = im.set->nvolumes;
	memcpy(r->snapshot_id, im.set->snapshot_id, sizeof(r->snapshot_id));
	memcpy(r->base_id, im.set->base_id, sizeof(r->base_id));
	r->imported = calloc(n, sizeof(*r->imported));
	r->missing = calloc(im.set->nvolumes, sizeof(*r->missing));
	if (!r->imported || !r->missing) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		add_u32(r->imported, &r->nimported, im.vols[i].m.volume);

	if (layout_open(tree, &im.t, err) < 0)
		goto out;
	im.state = path2(tree, MEDIA_IMPORT_DIR);
	if (!im.state) {
		rp_errf(err, "out of memory");
		goto out;
	}
	cur = layout_snapshot_id(im.t);
	{
		char *kept_manifest = path2(im.state, MEDIA_MANIFEST);
		int has = kept_manifest && access(kept_manifest, F_OK) == 0;

		free(kept_manifest);
		if (has) {
			if (volume_open(im.state, &im.kept, err) < 0) {
				rp_err_prefix(err, "the unfinished import in '%s'", tree);
				goto out;
			}
			if (!strcmp(im.kept.m.set_id, im.set->set_id))
				im.have_kept = 1;
			else if (strcmp(cur, im.kept.m.snapshot_id)) {
				rp_errf(err, "'%s' has an unfinished import of another volume set "
					"(snapshot sha256:%s); finish it, or delete '%s' to start "
					"over", tree, im.kept.m.snapshot_id, im.state);
				goto out;
			}
			/* else: a set whose snapshot was published; its leftovers go */
		}
	}
	if (!strcmp(cur, im.set->snapshot_id)) {
		r->already = 1;
		/* leftovers of an import that published (layout_close puts the root's time back) */
		if (rp_rmtree(im.state, err) < 0)
			goto out;
		r->nmissing = 0;
		rc = 0;
		goto out;
	}
	if (im.set->base_id[0] && strcmp(cur, im.set->base_id)) {
		if (cur[0])
			rp_errf(err, "'%s': a delta from snapshot sha256:%s, but '%s' is at "
				"sha256:%s; nothing was changed", paths[0], im.set->base_id, tree,
				cur);
		else
			rp_errf(err, "'%s': a delta from snapshot sha256:%s, but '%s' has no "
				"snapshot (import the full set first); nothing was changed",
				paths[0], im.set->base_id, tree);
		goto out;
	}
	/* What the tree lacks; the set must carry all of it. */
	if (snapshot_parse(im.target_text, strlen(im.target_text), "snapshot", &target, err) < 0)
		goto out;
	for (i = 0; i < target.n; i++) {
		const char *hex = target.v[i].hex;

		if ((target.v[i].kind != SNAP_BLOB && target.v[i].kind != SNAP_MANIFEST) ||
		    layout_has_blob(im.t, hex))
			continue;
		for (j = 0; j < im.set->nitems && strcmp(im.set->items[j].hex, hex); j++)
			;
		if (j == im.set->nitems) {
			rp_errf(err, "'%s': the volume set does not carry sha256:%s, which '%s' "
				"lacks; nothing was changed", paths[0], hex, tree);
			goto out;
		}
		json_object_set_new(im.needed, hex, json_true());
	}
	if (im.have_kept)
		scan_kept(&im);
	im.scratch_blobs = path2(layout_scratch_dir(im.t), "in-blobs");
	im.scratch_parts = path2(layout_scratch_dir(im.t), "in-parts");
	if (!im.scratch_blobs || !im.scratch_parts || rp_mkdirs(im.scratch_blobs, err) < 0 ||
	    rp_mkdirs(im.scratch_parts, err) < 0)
		goto out;
	for (i = 0; i < n; i++)
		for (j = 0; j < im.vols[i].m.nitems; j++)
			if (im.vols[i].m.items[j].volume == im.vols[i].m.volume)
				im.c.total += im.vols[i].m.items[j].size;
	/* All volumes verified before anything outside the scratch area is written. */
	for (i = 0; i < n; i++) {
		for (j = 0; j < i && im.vols[j].m.volume != im.vols[i].m.volume; j++)
			;
		if (j < i)
			continue; /* the same volume twice */
		if (read_volume(&im, &im.vols[i], err) < 0)
			goto out;
	}
	r->files_copied = im.c.files_copied;
	r->bytes_copied = im.c.bytes_copied;
	{
		const char *hex;
		json_t *val;

		json_object_foreach(im.needed, hex, val) {
			if (blob_ready(im.set, &im.a, hex))
				continue;
			for (j = 0; j < im.set->nitems; j++) {
				const struct media_item *it = &im.set->items[j];

				if (!strcmp(it->hex, hex) &&
				    !avail_path(it->split ? im.a.parts : im.a.whole,
						it->split ? it->part_hex : it->hex))
					add_u32(r->missing, &r->nmissing, it->volume);
			}
		}
	}
	if (r->nmissing == 0)
		rc = publish(&im, err);
	else
		rc = keep(&im, err);
out:
	layout_close(im.t);
	for (i = 0; im.vols && i < n; i++)
		volume_free(&im.vols[i]);
	free(im.vols);
	volume_free(&im.kept);
	free(im.state);
	free(im.scratch_blobs);
	free(im.scratch_parts);
	json_decref(im.needed);
	json_decref(im.a.whole);
	json_decref(im.a.parts);
	free(im.c.buf);
	snapshot_free(&target);
	if (rc < 0)
		media_import_result_free(r);
	return rc;
}

int media_import(const char *tree, const char *const *paths, size_t n, media_progress_fn progress,
		 void *ctx, struct media_import_result *r, struct rp_err *err)
{
	struct volume_dirs vd;
	int rc;

	memset(r, 0, sizeof(*r));
	if (volume_dirs_open(paths, n, progress, ctx, &vd, err) < 0)
		return -1;
	rc = import_dirs(tree, vd.dirs, n, progress, ctx, r, err);
	if (rc < 0)
		volume_dirs_err(&vd, paths, err);
	volume_dirs_free(&vd);
	return rc;
}
