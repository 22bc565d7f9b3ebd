/* The bounded libarchive reader: libarchive's tar format, fed by regpress from the file or a
 * decompressor, with the caps libarchive lacks applied to every byte before it parses it (the
 * expansion of a compressed input, the size of one entry's headers). */
#include "tarball_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

const char *ar_reader_error(const struct reader *r)
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
int ar_not_a_tar(const struct reader *r, struct rp_err *err)
{
	const char *name = foreign_compression(r);

	if (!name)
		return rp_errf(err, "'%s': %s", r->display, ar_reader_error(r));
	return rp_errf(err, "'%s': unsupported compression %s%s%s%s: regpress reads tar archives, "
		       "plain or compressed with gzip, zstd, xz or bzip2; decompress it first",
		       r->display, name, r->unz ? " (inside " : "",
		       r->unz ? archive_filter_name(r->unz, 0) : "", r->unz ? ")" : "");
}

void ar_reader_close(struct reader *r)
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

const char *ar_file_kind(mode_t m)
{
	return S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
	       : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* Open the indexed file again (or for the first time): the same file, never blocking on a FIFO
 * put in its place. On failure the caller still calls ar_reader_close. */
int ar_reader_open(const struct ar_index *idx, struct reader *r, struct rp_err *err)
{
	struct stat st;

	memset(r, 0, sizeof(*r));
	r->display = idx->display;
	r->fd = open(idx->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (r->fd < 0 || fstat(r->fd, &st) < 0)
		return rp_errno(err, "'%s'", idx->display);
	if (!S_ISREG(st.st_mode))
		return rp_errf(err, "'%s': %s, not a tar archive", idx->display, ar_file_kind(st.st_mode));
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
		return ar_not_a_tar(r, err);
	r->in_header = 0;
	return 0;
}

/* The next entry's header. The current entry's data, unless read, is skipped first, so that the
 * header's budget counts header bytes only. */
int ar_reader_next(struct reader *r, struct archive_entry **ae)
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

static const unsigned char zeros[STREAM_BUF];

static int fill_zeros(int64_t len, ar_chunk_fn fn, void *ctx, struct rp_err *err)
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
int ar_read_entry(struct reader *r, const struct ar_entry *e, ar_chunk_fn fn, void *ctx,
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
				       ar_reader_error(r));
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

enum ar_type ar_entry_type(struct archive_entry *ae)
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

