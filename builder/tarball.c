#include "tarball.h"

#include "fsutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_BUF (128u << 10) /* small enough to stay in L2 (see layout/tree.c BLOB_BUF) */

char *ar_normalize(const char *base_dir, const char *path)
{
	size_t blen = base_dir ? strlen(base_dir) : 0;
	size_t plen = strlen(path);
	char *joined = malloc(blen + plen + 2);
	char *out, *seg, *save = NULL;
	size_t olen = 0;

	if (!joined)
		return NULL;
	if (path[0] == '/' || blen == 0) {
		memcpy(joined, path, plen + 1);
	} else {
		memcpy(joined, base_dir, blen);
		joined[blen] = '/';
		memcpy(joined + blen + 1, path, plen + 1);
	}
	out = malloc(strlen(joined) + 1);
	if (!out) {
		free(joined);
		return NULL;
	}
	out[0] = '\0';
	for (seg = strtok_r(joined, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
		if (!strcmp(seg, "."))
			continue;
		if (!strcmp(seg, "..")) {
			char *slash;

			if (olen == 0)
				goto escape; /* above the archive root */
			slash = strrchr(out, '/');
			olen = slash ? (size_t)(slash - out) : 0;
			out[olen] = '\0';
			continue;
		}
		if (olen)
			out[olen++] = '/';
		memcpy(out + olen, seg, strlen(seg) + 1);
		olen += strlen(seg);
	}
	free(joined);
	if (olen == 0) {
		free(out);
		return NULL;
	}
	return out;
escape:
	free(joined);
	free(out);
	return NULL;
}

/* ---- reading a tar: libarchive's tar format, fed by regpress from the file or a decompressor ---- */

/* The compressions regpress reads, each built into libarchive. Its other filters stay off: lrzip,
 * lzop and grzip (and any whose library libarchive was built without) run an external program,
 * which the bytes of an input must never make regpress do; the others are not documented inputs. */
static const struct {
	const char *name;
	int (*enable)(struct archive *);
} filters[] = {
	{ "gzip", archive_read_support_filter_gzip },
	{ "zstd", archive_read_support_filter_zstd },
	{ "xz", archive_read_support_filter_xz },
	{ "bzip2", archive_read_support_filter_bzip2 },
};

/* Compressions regpress does not read, named when an input that is not a tar starts with one. */
static const struct {
	const char *name;
	const char *magic;
	size_t len;
} foreign[] = {
	{ "lrzip", "LRZI", 4 },
	{ "lzop", "\x89LZO\0\r\n\x1a\n", 9 },
	{ "grzip", "GRZipII\0\x02\x04:)", 12 },
	{ "lz4", "\x04\x22\x4d\x18", 4 },
	{ "lz4 (legacy format)", "\x02\x21\x4c\x18", 4 },
	{ "lzip", "LZIP", 4 },
	{ "lzma", "\x5d\0\0", 3 },
	{ "compress (.Z)", "\x1f\x9d", 2 },
	{ "uuencode", "begin ", 6 },
	{ "rpm", "\xed\xab\xee\xdb", 4 },
};

struct reader {
	struct archive *tar;	/* libarchive's tar format alone, fed by feed() */
	struct archive *unz;	/* a compressed input: libarchive's filters, read as raw data */
	const char *display;
	int fd;
	int64_t size;		/* of the file */
	unsigned char *buf;	/* an uncompressed input: what feed() read */
	uint64_t fed;		/* bytes fed to the tar reader */
	uint64_t header_from;	/* fed when the current header began */
	int in_header, in_data;
	unsigned char head[16]; /* the first bytes of the tar stream, to name a compression */
	size_t head_len;
	char why[256];		/* regpress's own reason a read failed, if it is one */
};

static const char *reader_error(const struct reader *r)
{
	if (r->why[0])
		return r->why;
	if (r->tar && archive_error_string(r->tar))
		return archive_error_string(r->tar);
	return "cannot read the archive";
}

/* The compression-bomb cap (AR_RATIO_MAX): 1, with r->why set, once the input expands past it. */
static int ratio_exceeded(struct reader *r)
{
	la_int64_t in = archive_filter_bytes(r->unz, -1), out = archive_filter_bytes(r->unz, 0);

	if (in < 0 || out < 0 || (uint64_t)out <= (uint64_t)in * AR_RATIO_MAX + AR_RATIO_SLACK)
		return 0;
	snprintf(r->why, sizeof(r->why), "decompresses to more than %u times its size (%lld bytes "
		 "from %lld): a compression bomb? Decompress it first if it is genuine",
		 AR_RATIO_MAX, (long long)out, (long long)in);
	return 1;
}

static la_ssize_t feed_plain(struct reader *r, const void **out)
{
	ssize_t n;

	do
		n = read(r->fd, r->buf, STREAM_BUF);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		snprintf(r->why, sizeof(r->why), "%s", strerror(errno));
	*out = r->buf;
	return n;
}

static la_ssize_t feed_unz(struct reader *r, const void **out)
{
	size_t len = 0;
	la_int64_t off;
	int rc;

	do
		rc = archive_read_data_block(r->unz, out, &len, &off);
	while (rc == ARCHIVE_OK && len == 0);
	if (rc == ARCHIVE_EOF)
		return 0;
	if (rc != ARCHIVE_OK) {
		snprintf(r->why, sizeof(r->why), "%s", archive_error_string(r->unz)
			 ? archive_error_string(r->unz) : "cannot decompress");
		return -1;
	}
	return ratio_exceeded(r) ? -1 : (la_ssize_t)len;
}

/* libarchive's read callback. Every byte the tar reader parses passes here, so the caps that
 * libarchive itself lacks are applied here, before it can act on the bytes: the expansion of a
 * compressed input, and the size of one entry's headers (it keeps a sparse map in memory at ~12
 * times its size, and reads the whole map before returning the entry). */
static la_ssize_t feed(struct archive *a, void *vr, const void **out)
{
	struct reader *r = vr;
	la_ssize_t n = r->unz ? feed_unz(r, out) : feed_plain(r, out);

	if (n > 0 && r->head_len < sizeof(r->head)) {
		size_t k = sizeof(r->head) - r->head_len < (size_t)n ? sizeof(r->head) - r->head_len
								      : (size_t)n;

		memcpy(r->head + r->head_len, *out, k);
		r->head_len += k;
	}
	if (n > 0)
		r->fed += (uint64_t)n;
	if (n > 0 && r->in_header && r->fed - r->header_from > AR_HEADER_MAX) {
		snprintf(r->why, sizeof(r->why), "an entry's headers (names, pax attributes, sparse "
			 "map) take more than %u MiB", AR_HEADER_MAX >> 20);
		n = -1;
	}
	if (n < 0)
		archive_set_error(a, -1 /* ARCHIVE_ERRNO_MISC */, "%s", r->why);
	return n;
}

/* Skipping an uncompressed input seeks; a compressed one is read through (0: libarchive reads),
 * so that every byte counts for the expansion cap. */
static la_int64_t skip(struct archive *a, void *vr, la_int64_t request)
{
	struct reader *r = vr;
	off_t from, to;

	(void)a;
	if (r->unz)
		return 0;
	from = lseek(r->fd, 0, SEEK_CUR);
	/* Never past the end: libarchive would take the short read after it for the end of a
	 * tar that lacks its end blocks, and miss the truncation. Read there instead. */
	if (from < 0 || request > r->size - from)
		return 0;
	to = lseek(r->fd, (off_t)request, SEEK_CUR);
	return to < 0 ? 0 : (la_int64_t)(to - from);
}

/* Put the decompression filters in front if the file is compressed (r->unz), else leave the
 * file at its start for the tar reader. */
static int open_unz(struct reader *r, struct rp_err *err)
{
	struct archive_entry *ae;
	size_t i;

	r->unz = archive_read_new();
	if (!r->unz)
		return rp_errf(err, "'%s': out of memory", r->display);
	for (i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
		if (filters[i].enable(r->unz) != ARCHIVE_OK) /* ARCHIVE_WARN: it would run a program */
			return rp_errf(err, "'%s': this libarchive has no built-in %s decoder",
				       r->display, filters[i].name);
	if (archive_read_support_format_raw(r->unz) != ARCHIVE_OK ||
	    archive_read_open_fd(r->unz, r->fd, STREAM_BUF) != ARCHIVE_OK ||
	    archive_read_next_header(r->unz, &ae) != ARCHIVE_OK)
		return rp_errf(err, "'%s': %s", r->display, archive_error_string(r->unz)
			       ? archive_error_string(r->unz) : "cannot read");
	if (archive_filter_count(r->unz) > 1)
		return 0;
	archive_read_free(r->unz);
	r->unz = NULL;
	if (lseek(r->fd, 0, SEEK_SET) < 0)
		return rp_errno(err, "'%s'", r->display);
	return 0;
}

/* The input's first bytes (after its compression, if any) in a compression regpress does not
 * read: its name, or NULL. */
static const char *foreign_compression(const struct reader *r)
{
	size_t i;

	for (i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
		if (r->head_len >= foreign[i].len && !memcmp(r->head, foreign[i].magic, foreign[i].len))
			return foreign[i].name;
	return NULL;
}

/* The message for an input that does not even start as a tar archive. */
static int not_a_tar(const struct reader *r, struct rp_err *err)
{
	const char *name = foreign_compression(r);

	if (!name)
		return rp_errf(err, "'%s': %s", r->display, reader_error(r));
	return rp_errf(err, "'%s': unsupported compression %s%s%s%s: regpress reads tar archives, "
		       "plain or compressed with gzip, zstd, xz or bzip2; decompress it first",
		       r->display, name, r->unz ? " (inside " : "",
		       r->unz ? archive_filter_name(r->unz, 0) : "", r->unz ? ")" : "");
}

static void reader_close(struct reader *r)
{
	if (r->tar)
		archive_read_free(r->tar);
	if (r->unz)
		archive_read_free(r->unz);
	if (r->fd >= 0)
		close(r->fd);
	free(r->buf);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

static const char *file_kind(mode_t m)
{
	return S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
	       : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* Open the indexed file again (or for the first time): the same file, never blocking on a FIFO
 * put in its place. On failure the caller still calls reader_close. */
static int reader_open(const struct ar_index *idx, struct reader *r, struct rp_err *err)
{
	struct stat st;

	memset(r, 0, sizeof(*r));
	r->display = idx->display;
	r->fd = open(idx->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (r->fd < 0 || fstat(r->fd, &st) < 0)
		return rp_errno(err, "'%s'", idx->display);
	if (!S_ISREG(st.st_mode))
		return rp_errf(err, "'%s': %s, not a tar archive", idx->display, file_kind(st.st_mode));
	if (st.st_dev != idx->dev || st.st_ino != idx->ino || st.st_size != idx->file_size)
		return rp_errf(err, "'%s': changed while reading", idx->display);
	r->size = st.st_size;
	r->buf = malloc(STREAM_BUF);
	if (!r->buf)
		return rp_errf(err, "'%s': out of memory", idx->display);
	if (open_unz(r, err) < 0)
		return -1;
	r->tar = archive_read_new();
	if (!r->tar)
		return rp_errf(err, "'%s': out of memory", idx->display);
	r->in_header = 1; /* the format is recognised on its first header */
	if (archive_read_support_format_tar(r->tar) != ARCHIVE_OK ||
	    archive_read_open2(r->tar, r, NULL, feed, skip, NULL) != ARCHIVE_OK)
		return not_a_tar(r, err);
	r->in_header = 0;
	return 0;
}

/* The next entry's header. The current entry's data, unless read, is skipped first, so that the
 * header's budget counts header bytes only. */
static int reader_next(struct reader *r, struct archive_entry **ae)
{
	int rc;

	if (r->in_data && archive_read_data_skip(r->tar) != ARCHIVE_OK)
		return ARCHIVE_FATAL;
	r->in_header = 1;
	r->header_from = r->fed;
	rc = archive_read_next_header(r->tar, ae);
	r->in_header = 0;
	r->in_data = rc == ARCHIVE_OK;
	return rc;
}

typedef int (*chunk_fn)(void *ctx, const void *buf, size_t len, struct rp_err *err);

static const unsigned char zeros[STREAM_BUF];

static int fill_zeros(int64_t len, chunk_fn fn, void *ctx, struct rp_err *err)
{
	while (len > 0) {
		size_t n = len < (int64_t)STREAM_BUF ? (size_t)len : STREAM_BUF;

		if (fn(ctx, zeros, n, err) < 0)
			return -1;
		len -= (int64_t)n;
	}
	return 0;
}

/* Give fn an entry's bytes in order, exactly e->size of them, as GNU tar extracts them: the data
 * blocks at the offsets libarchive gives, and the holes of a sparse entry (between blocks, and
 * up to the end, which libarchive gives with ARCHIVE_EOF) as zeros. */
static int read_entry(struct reader *r, const struct ar_entry *e, chunk_fn fn, void *ctx,
		      struct rp_err *err)
{
	int64_t pos = 0;
	int rc;

	do {
		const void *buf = NULL;
		size_t len = 0;
		la_int64_t off = 0;

		rc = archive_read_data_block(r->tar, &buf, &len, &off);
		if (rc != ARCHIVE_OK && rc != ARCHIVE_EOF)
			return rp_errf(err, "'%s': entry '%s': %s", r->display, e->raw,
				       reader_error(r));
		if (rc == ARCHIVE_EOF)
			len = 0;
		if (off < pos || off > e->size || (uint64_t)len > (uint64_t)(e->size - off))
			return rp_errf(err, "'%s': entry '%s': data beyond its %lld bytes (a broken "
				       "sparse map)", r->display, e->raw, (long long)e->size);
		if (fill_zeros(off - pos, fn, ctx, err) < 0 || (len && fn(ctx, buf, len, err) < 0))
			return -1;
		pos = off + (int64_t)len;
	} while (rc == ARCHIVE_OK);
	if (pos != e->size)
		return rp_errf(err, "'%s': entry '%s': truncated", r->display, e->raw);
	return 0;
}

static enum ar_type entry_type(struct archive_entry *ae)
{
	if (archive_entry_hardlink(ae))
		return AR_HARDLINK;
	switch (archive_entry_filetype(ae)) {
	case AE_IFREG:
		return AR_FILE;
	case AE_IFDIR:
		return AR_DIR;
	case AE_IFLNK:
		return AR_SYMLINK;
	default:
		return AR_OTHER;
	}
}

static const struct ar_index *sort_idx;

static int cmp_entry(const void *a, const void *b)
{
	const char *na = sort_idx->entries[*(const size_t *)a].name;
	const char *nb = sort_idx->entries[*(const size_t *)b].name;

	return strcmp(na ? na : "", nb ? nb : "");
}

static int append_data(void *vctx, const void *buf, size_t len, struct rp_err *err)
{
	struct ar_entry *e = vctx;

	(void)err;
	memcpy(e->data + e->data_len, buf, len); /* read_entry gives at most e->size bytes */
	e->data_len += len;
	return 0;
}

static int read_data(struct reader *r, struct ar_entry *e, struct rp_err *err)
{
	e->data = malloc((size_t)e->size + 1);
	if (!e->data)
		return rp_errf(err, "'%s': out of memory", r->display);
	e->data_len = 0;
	if (read_entry(r, e, append_data, e, err) < 0)
		return -1;
	e->data[e->data_len] = '\0';
	return 0;
}

static int grow(struct ar_index *idx, size_t *cap, struct rp_err *err)
{
	struct ar_entry *ne;
	size_t ncap;

	if (idx->n == AR_ENTRIES_MAX)
		return rp_errf(err, "'%s': more than %u entries", idx->display, AR_ENTRIES_MAX);
	if (idx->n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 64;
	ne = realloc(idx->entries, ncap * sizeof(*ne));
	if (!ne)
		return rp_errf(err, "'%s': out of memory", idx->display);
	idx->entries = ne;
	*cap = ncap;
	return 0;
}

/* Keep this entry's bytes in memory? Applies the caps; returns 0 or 1, -1 on a hard error. */
static int decide_keep(const struct ar_index *idx, const struct ar_entry *e, ar_keep_fn keep,
		       size_t *kept, struct rp_err *err)
{
	int k = e->type == AR_FILE && e->name && keep ? keep(e->name, e->size) : 0;

	if (k == AR_KEEP_MAY &&
	    ((uint64_t)e->size > AR_META_MAX || *kept + (size_t)e->size > AR_META_TOTAL / 2))
		return 0; /* loaded later by ar_load if it turns out to be needed */
	if (!k)
		return 0;
	if ((uint64_t)e->size > AR_META_MAX)
		return rp_errf(err, "'%s': '%s' is %lld bytes, more than the %u MiB allowed for "
			       "metadata", idx->display, e->raw, (long long)e->size, AR_META_MAX >> 20);
	*kept += (size_t)e->size;
	if (*kept > AR_META_TOTAL)
		return rp_errf(err, "'%s': more than %u MiB of metadata", idx->display,
			       AR_META_TOTAL >> 20);
	return 1;
}

/* Charge a name (or a link target) to the archive's budget for names: 0, or -1 with err set.
 * A name is kept twice (as written and normalised), a link target once. */
static int charge_name(const struct ar_index *idx, const char *what, const char *s, int copies,
		       size_t *total, struct rp_err *err)
{
	size_t len = strlen(s);

	if (len > AR_NAME_MAX)
		return rp_errf(err, "'%s': %s of %zu bytes, more than the %u allowed: '%.64s...'",
			       idx->display, what, len, AR_NAME_MAX, s);
	*total += (size_t)copies * (len + 1);
	if (*total > AR_NAMES_TOTAL)
		return rp_errf(err, "'%s': more than %u MiB of entry names and link targets (at "
			       "'%.64s')", idx->display, AR_NAMES_TOTAL >> 20, s);
	return 0;
}

/* What an entry's size can honestly be (AR_ENTRY_MAX, tarball.h): 0, or -1 with err set. */
static int check_size(const struct ar_index *idx, const struct ar_entry *e, int sparse,
		      uint64_t *total, struct rp_err *err)
{
	uint64_t bound = (uint64_t)idx->file_size * AR_RATIO_MAX + AR_RATIO_SLACK;

	if (e->size < 0)
		return rp_errf(err, "'%s': entry '%s': negative size", idx->display, e->raw);
	if ((uint64_t)e->size > AR_ENTRY_MAX)
		return rp_errf(err, "'%s': entry '%s' is %lld bytes, more than the %llu GiB allowed "
			       "for one entry", idx->display, e->raw, (long long)e->size,
			       AR_ENTRY_MAX >> 30);
	if (!idx->compressed && !sparse && e->size > idx->file_size)
		return rp_errf(err, "'%s': entry '%s' is %lld bytes, more than the whole archive (%lld "
			       "bytes)", idx->display, e->raw, (long long)e->size,
			       (long long)idx->file_size);
	*total += (uint64_t)e->size;
	if (*total <= bound)
		return 0;
	if (idx->compressed && !sparse)
		return rp_errf(err, "'%s': entry '%s' is %lld bytes: the input decompresses to more "
			       "than %u times its size (%lld bytes): a compression bomb? Decompress "
			       "it first if it is genuine", idx->display, e->raw, (long long)e->size,
			       AR_RATIO_MAX, (long long)idx->file_size);
	return rp_errf(err, "'%s': entry '%s' is %lld bytes%s: the archive's entries come to more "
		       "than %u times its size (%lld bytes): a sparse-file bomb? Extract it and pack "
		       "it without -S if it is genuine", idx->display, e->raw, (long long)e->size,
		       sparse ? " (sparse: mostly holes)" : "", AR_RATIO_MAX,
		       (long long)idx->file_size);
}

struct tar_walk {
	size_t cap, kept, names;
	uint64_t total;
};

static int add_tar_entry(struct ar_index *idx, struct reader *r, struct archive_entry *ae,
			 ar_keep_fn keep, struct tar_walk *w, struct rp_err *err)
{
	const char *raw = archive_entry_pathname(ae);
	enum ar_type type = entry_type(ae);
	const char *link = type == AR_HARDLINK ? archive_entry_hardlink(ae)
			   : type == AR_SYMLINK ? archive_entry_symlink(ae) : NULL;
	struct ar_entry *e;
	int k;

	if (!raw)
		return rp_errf(err, "'%s': entry with no name", idx->display);
	/* Before anything is copied: the budget is what bounds memory. */
	if (charge_name(idx, "entry name", raw, 2, &w->names, err) < 0 ||
	    (link && charge_name(idx, "link target", link, 1, &w->names, err) < 0) ||
	    grow(idx, &w->cap, err) < 0)
		return -1;
	e = &idx->entries[idx->n++];
	memset(e, 0, sizeof(*e));
	e->raw = strdup(raw);
	e->name = ar_normalize(NULL, raw);
	e->type = type;
	e->size = archive_entry_size(ae);
	if (!e->raw || (link && !(e->link = strdup(link))))
		return rp_errf(err, "'%s': out of memory", idx->display);
	if (check_size(idx, e, archive_entry_sparse_count(ae) > 0, &w->total, err) < 0)
		return -1;
	k = decide_keep(idx, e, keep, &w->kept, err);
	if (k < 0)
		return -1;
	return k ? read_data(r, e, err) : 0;
}

static int index_tar(struct ar_index *idx, ar_keep_fn keep, struct rp_err *err)
{
	struct tar_walk w = { 0, 0, 0, 0 };
	struct archive_entry *ae;
	struct reader r;
	int rc = -1, h;

	if (reader_open(idx, &r, err) < 0)
		goto out;
	idx->compressed = r.unz != NULL;
	while ((h = reader_next(&r, &ae)) == ARCHIVE_OK)
		if (add_tar_entry(idx, &r, ae, keep, &w, err) < 0)
			goto out;
	if (h != ARCHIVE_EOF) {
		if (idx->n == 0)
			not_a_tar(&r, err);
		else
			rp_errf(err, "'%s': %s", idx->display, reader_error(&r));
		goto out;
	}
	rc = 0;
out:
	reader_close(&r);
	return rc;
}

/* An OCI layout directory (skopeo oci:, umoci, buildah): the same index, entries from the walk. */
static struct ar_index *walk_idx;
static ar_keep_fn walk_keep;
static size_t walk_cap, walk_kept, walk_names;
static int walk_prune;
static struct rp_err *walk_err;

/* A kept file of a directory input: opened without following a link or blocking on a FIFO (the
 * walk saw a regular file, but it may have been replaced since). */
static int read_small(const char *path, const struct ar_entry *e, struct ar_entry *out,
		      struct rp_err *err)
{
	struct stat st;
	ssize_t n = 0;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != e->size) {
		if (fd >= 0)
			close(fd);
		return rp_errf(err, "'%s': '%s' changed while reading", walk_idx->display, e->raw);
	}
	out->data = malloc((size_t)e->size + 1);
	while (out->data && got < (size_t)e->size &&
	       ((n = read(fd, out->data + got, (size_t)e->size - got)) > 0 || (n < 0 && errno == EINTR)))
		got += n > 0 ? (size_t)n : 0;
	close(fd);
	if (!out->data)
		return rp_errf(err, "'%s': out of memory", walk_idx->display);
	if (got != (size_t)e->size)
		return rp_errf(err, "'%s': '%s' changed while reading", walk_idx->display, e->raw);
	out->data[got] = '\0';
	out->data_len = got;
	return 0;
}

/* A regpress tree's served view and build cache are derived from its snapshot and blobs, and
 * hold many files: not worth an entry each (a tree given as input reads only those). */
static int pruned(const char *rel, int type)
{
	return walk_prune && type == FTW_D &&
	       (!strcmp(rel, "registry/repos") || !strcmp(rel, "cache") ||
		!strcmp(rel, ".regpress-tmp"));
}

static int walk_add(const char *path, const char *rel, const struct stat *st, int type)
{
	struct ar_index *idx = walk_idx;
	struct ar_entry *e;
	int k;

	if (charge_name(idx, "file name", rel, 2, &walk_names, walk_err) < 0 ||
	    grow(idx, &walk_cap, walk_err) < 0)
		return -1;
	e = &idx->entries[idx->n++];
	memset(e, 0, sizeof(*e));
	e->raw = strdup(rel);
	e->name = ar_normalize(NULL, rel);
	e->size = S_ISREG(st->st_mode) ? st->st_size : 0;
	e->type = type == FTW_D ? AR_DIR : type == FTW_SL || type == FTW_SLN ? AR_SYMLINK
		  : S_ISREG(st->st_mode) ? AR_FILE : AR_OTHER;
	if (!e->raw)
		return rp_errf(walk_err, "'%s': out of memory", idx->display);
	if (e->type == AR_SYMLINK) {
		char target[AR_NAME_MAX + 2];
		ssize_t n = readlink(path, target, sizeof(target) - 1);

		if (n < 0)
			return rp_errno(walk_err, "'%s'", path);
		target[n] = '\0';
		if (charge_name(idx, "link target", target, 1, &walk_names, walk_err) < 0)
			return -1;
		e->link = strdup(target);
		if (!e->link)
			return rp_errf(walk_err, "'%s': out of memory", idx->display);
	}
	k = decide_keep(idx, e, walk_keep, &walk_kept, walk_err);
	if (k < 0)
		return -1;
	return k ? read_small(path, e, e, walk_err) : 0;
}

static int walk_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	const char *rel = path + strlen(walk_idx->path);

	(void)ftw;
	while (*rel == '/')
		rel++;
	if (!*rel)
		return FTW_CONTINUE;
	if (walk_add(path, rel, st, type) < 0)
		return FTW_STOP;
	return pruned(rel, type) ? FTW_SKIP_SUBTREE : FTW_CONTINUE;
}

static int index_dir(struct ar_index *idx, ar_keep_fn keep, struct rp_err *err)
{
	char *snap = rp_join(idx->path, "registry/snapshot");
	struct stat st;

	walk_idx = idx;
	walk_keep = keep;
	walk_cap = walk_kept = walk_names = 0;
	walk_prune = snap && lstat(snap, &st) == 0 && S_ISREG(st.st_mode);
	walk_err = err;
	free(snap);
	err->msg[0] = '\0';
	if (nftw(idx->path, walk_entry, 32, FTW_PHYS | FTW_ACTIONRETVAL) != 0) {
		if (!err->msg[0])
			rp_errno(err, "cannot read '%s'", idx->display);
		return -1;
	}
	return 0;
}

/* Sort for lookups; the same name twice is ambiguous (which one would a reader take?): refused. */
static int sort_names(struct ar_index *idx, struct rp_err *err)
{
	size_t i;

	idx->sorted = malloc(idx->n * sizeof(*idx->sorted));
	if (!idx->sorted)
		return rp_errf(err, "'%s': out of memory", idx->display);
	for (i = 0; i < idx->n; i++)
		idx->sorted[i] = i;
	sort_idx = idx;
	qsort(idx->sorted, idx->n, sizeof(*idx->sorted), cmp_entry);
	for (i = 1; i < idx->n; i++) {
		const struct ar_entry *x = &idx->entries[idx->sorted[i - 1]];
		const struct ar_entry *y = &idx->entries[idx->sorted[i]];

		if (x->name && y->name && !strcmp(x->name, y->name) &&
		    !(x->type == AR_DIR && y->type == AR_DIR))
			return rp_errf(err, "'%s': entry '%s' appears more than once", idx->display,
				       y->raw);
	}
	return 0;
}

int ar_index_read(const char *path, const char *display, ar_keep_fn keep, struct ar_index **out,
		  struct rp_err *err)
{
	struct ar_index *idx = calloc(1, sizeof(*idx));
	struct stat st;

	*out = NULL;
	if (!idx || !(idx->path = strdup(path)) || !(idx->display = strdup(display))) {
		ar_index_free(idx);
		return rp_errf(err, "'%s': out of memory", display);
	}
	/* The type first, without opening: opening a device can have effects of its own. */
	if (stat(path, &st) < 0) {
		rp_errno(err, "'%s'", display);
		goto fail;
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
		rp_errf(err, "'%s': %s, not a tar archive or an OCI layout directory", display,
			file_kind(st.st_mode));
		goto fail;
	}
	idx->is_dir = S_ISDIR(st.st_mode);
	idx->dev = st.st_dev;
	idx->ino = st.st_ino;
	idx->file_size = idx->is_dir ? 0 : st.st_size;
	if (!idx->is_dir && st.st_size == 0) {
		rp_errf(err, "'%s': empty file", display);
		goto fail;
	}
	if ((idx->is_dir ? index_dir(idx, keep, err) : index_tar(idx, keep, err)) < 0)
		goto fail;
	if (idx->n == 0) {
		rp_errf(err, "'%s': %s", display, idx->is_dir ? "empty directory, not an OCI layout"
							      : "empty archive");
		goto fail;
	}
	if (sort_names(idx, err) < 0)
		goto fail;
	*out = idx;
	return 0;
fail:
	ar_index_free(idx);
	return -1;
}

void ar_index_free(struct ar_index *idx)
{
	size_t i;

	if (!idx)
		return;
	for (i = 0; i < idx->n; i++) {
		free(idx->entries[i].name);
		free(idx->entries[i].raw);
		free(idx->entries[i].link);
		free(idx->entries[i].data);
	}
	free(idx->entries);
	free(idx->sorted);
	free(idx->path);
	free(idx->display);
	free(idx);
}

const struct ar_entry *ar_find(const struct ar_index *idx, const char *name)
{
	size_t lo = 0, hi = idx->n;

	if (!*name)
		return NULL; /* entries whose names escape the root sort as "": never a match */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct ar_entry *e = &idx->entries[idx->sorted[mid]];
		int c = strcmp(name, e->name ? e->name : "");

		if (c == 0)
			return e;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int ar_resolve(const struct ar_index *idx, const char *ref, const struct ar_entry **out,
	       struct rp_err *err)
{
	char *name = ar_normalize(NULL, ref);
	int hops;

	*out = NULL;
	if (!name || ref[0] == '/')
		goto escape;
	for (hops = 0; hops < 16; hops++) {
		const struct ar_entry *e = ar_find(idx, name);
		char *dir, *slash, *next;

		if (!e) {
			if (hops == 0)
				rp_errf(err, "'%s': '%s' is not in the archive", idx->display, ref);
			else
				rp_errf(err, "'%s': '%s' links to '%s', which is not in the archive",
					idx->display, ref, name);
			free(name);
			return -1;
		}
		if (e->type == AR_FILE) {
			free(name);
			*out = e;
			return 0;
		}
		if (e->type != AR_SYMLINK && e->type != AR_HARDLINK) {
			rp_errf(err, "'%s': '%s' is not a regular file", idx->display, ref);
			free(name);
			return -1;
		}
		if (e->link[0] == '/')
			goto escape;
		/* Symlinks are relative to their directory, hard links to the archive root. */
		dir = strdup(name);
		if (!dir)
			break;
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		else
			dir[0] = '\0';
		next = ar_normalize(e->type == AR_SYMLINK ? dir : NULL, e->link);
		free(dir);
		free(name);
		name = next;
		if (!name)
			goto escape;
	}
	if (hops == 16) {
		free(name);
		return rp_errf(err, "'%s': '%s': too many levels of links", idx->display, ref);
	}
	free(name);
	return rp_errf(err, "out of memory");
escape:
	free(name);
	return rp_errf(err, "'%s': '%s' leads outside the archive", idx->display, ref);
}

/* Stream one file of a directory input: not following a link, not blocking on a FIFO, and only
 * the regular file the walk saw (a file replaced since would not be what was indexed). */
static int stream_file(const struct ar_index *idx, const struct ar_entry *e, unsigned char *buf,
		       ar_data_fn data, void *ctx, struct rp_err *err)
{
	char *path = malloc(strlen(idx->path) + strlen(e->name) + 2);
	struct stat st;
	int64_t got = 0;
	ssize_t n;
	int fd, rc = -1;

	if (!path)
		return rp_errf(err, "out of memory");
	sprintf(path, "%s/%s", idx->path, e->name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	free(path);
	if (fd < 0)
		return rp_errno(err, "'%s': '%s'", idx->display, e->raw);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rp_errf(err, "'%s': '%s' changed while reading", idx->display, e->raw);
		goto out;
	}
	while ((n = read(fd, buf, STREAM_BUF)) > 0 || (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		got += n;
		if (data(ctx, e, buf, (size_t)n, err) < 0)
			goto out;
	}
	if (n < 0) {
		rp_errno(err, "'%s': '%s'", idx->display, e->raw);
		goto out;
	}
	if (got != e->size) {
		rp_errf(err, "'%s': '%s' changed while reading", idx->display, e->raw);
		goto out;
	}
	rc = data(ctx, e, NULL, 0, err);
out:
	close(fd);
	return rc;
}

static int stream_dir(const struct ar_index *idx, ar_want_fn want, ar_data_fn data, void *ctx,
		      struct rp_err *err)
{
	unsigned char *buf = malloc(STREAM_BUF);
	size_t i;
	int rc = 0;

	if (!buf)
		return rp_errf(err, "'%s': out of memory", idx->display);
	for (i = 0; i < idx->n && rc == 0; i++) {
		const struct ar_entry *e = &idx->entries[i];

		if (e->type == AR_FILE && e->name && want(ctx, e))
			rc = stream_file(idx, e, buf, data, ctx, err);
	}
	free(buf);
	return rc;
}

struct chunk_ctx {
	ar_data_fn data;
	void *ctx;
	const struct ar_entry *e;
};

static int chunk_to_data(void *vc, const void *buf, size_t len, struct rp_err *err)
{
	struct chunk_ctx *c = vc;

	return c->data(c->ctx, c->e, buf, len, err);
}

static int stream_tar(const struct ar_index *idx, ar_want_fn want, ar_data_fn data, void *ctx,
		      struct rp_err *err)
{
	struct archive_entry *ae;
	struct reader r;
	size_t i = 0;
	int rc = -1, h;

	if (reader_open(idx, &r, err) < 0)
		goto out;
	while ((h = reader_next(&r, &ae)) == ARCHIVE_OK) {
		struct chunk_ctx c = { data, ctx, NULL };

		if (i >= idx->n || archive_entry_size(ae) != idx->entries[i].size) {
			rp_errf(err, "'%s': changed while reading", idx->display);
			goto out;
		}
		c.e = &idx->entries[i++];
		if (c.e->type != AR_FILE || !c.e->name || !want(ctx, c.e))
			continue;
		if (read_entry(&r, c.e, chunk_to_data, &c, err) < 0 ||
		    data(ctx, c.e, NULL, 0, err) < 0)
			goto out;
	}
	if (h != ARCHIVE_EOF) {
		rp_errf(err, "'%s': %s", idx->display, reader_error(&r));
		goto out;
	}
	rc = 0;
out:
	reader_close(&r);
	return rc;
}

int ar_stream(const struct ar_index *idx, ar_want_fn want, ar_data_fn data, void *ctx,
	      struct rp_err *err)
{
	return idx->is_dir ? stream_dir(idx, want, data, ctx, err)
			   : stream_tar(idx, want, data, ctx, err);
}

/* ar_load: collect the wanted entries' bytes into e->data through ar_stream. */
struct load_ctx {
	const struct ar_entry **want;
	size_t n;
	size_t *fill;
	struct ar_index *idx;
};

static int load_want(void *vctx, const struct ar_entry *e)
{
	struct load_ctx *c = vctx;
	size_t i;

	if (e->data)
		return 0;
	for (i = 0; i < c->n; i++)
		if (c->want[i] == e)
			return 1;
	return 0;
}

static int load_data(void *vctx, const struct ar_entry *ce, const void *buf, size_t len,
		     struct rp_err *err)
{
	struct load_ctx *c = vctx;
	struct ar_entry *e = &c->idx->entries[ce - c->idx->entries];
	size_t *fill = &c->fill[ce - c->idx->entries];

	if (!e->data) { /* first data, or the end of an empty file (no data calls at all) */
		e->data = malloc((size_t)e->size + 1);
		if (!e->data)
			return rp_errf(err, "out of memory");
	}
	if (!buf) {
		e->data_len = *fill;
		e->data[*fill] = '\0';
		return 0;
	}
	if (*fill + len > (size_t)e->size)
		return rp_errf(err, "'%s': '%s' changed while reading", c->idx->display, e->raw);
	memcpy(e->data + *fill, buf, len);
	*fill += len;
	return 0;
}

int ar_load(struct ar_index *idx, const struct ar_entry **want, size_t n, struct rp_err *err)
{
	struct load_ctx c = { want, n, NULL, idx };
	size_t i, missing = 0;
	int rc;

	for (i = 0; i < n; i++) {
		if (want[i]->data)
			continue;
		if ((uint64_t)want[i]->size > AR_META_MAX)
			return rp_errf(err, "'%s': '%s' is %lld bytes, too large for metadata",
				       idx->display, want[i]->raw, (long long)want[i]->size);
		missing++;
	}
	if (!missing)
		return 0;
	c.fill = calloc(idx->n, sizeof(*c.fill));
	if (!c.fill)
		return rp_errf(err, "out of memory");
	rc = ar_stream(idx, load_want, load_data, &c, err);
	free(c.fill);
	return rc;
}

int ar_seekable(const struct ar_index *idx)
{
	return idx->is_dir || !idx->compressed;
}
