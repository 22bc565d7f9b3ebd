/* What the files of the tarball reader share (tarball.h is the interface): the bounded
 * libarchive reader of tarball_reader.c, used by the index pass (tarball_index.c) and the
 * streaming pass (tarball.c). Internal to builder/. */
#ifndef RP_TARBALL_INT_H
#define RP_TARBALL_INT_H

#include <archive.h>
#include <archive_entry.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "tarball.h"

#define STREAM_BUF (128u << 10) /* small enough to stay in L2 (see layout/tree.c BLOB_BUF) */

/* A tar read through libarchive's tar format alone, fed by regpress from the file or from
 * libarchive's decompression filters, with the caps libarchive lacks (tarball_reader.c). */
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

/* Open the indexed file again (or for the first time): the same file, never blocking on a FIFO
 * put in its place. On failure the caller still calls ar_reader_close. */
int ar_reader_open(const struct ar_index *idx, struct reader *r, struct rp_err *err);
/* The next entry's header (ARCHIVE_OK, ARCHIVE_EOF, or an error); the current entry's data,
 * unless read, is skipped first. */
int ar_reader_next(struct reader *r, struct archive_entry **ae);
void ar_reader_close(struct reader *r);
/* Why the last read failed: regpress's own reason, or libarchive's. */
const char *ar_reader_error(const struct reader *r);
/* The message for an input that does not even start as a tar archive (naming a compression
 * regpress does not read, if it is one); returns -1. */
int ar_not_a_tar(const struct reader *r, struct rp_err *err);

typedef int (*ar_chunk_fn)(void *ctx, const void *buf, size_t len, struct rp_err *err);
/* Give fn the current entry's bytes in order, exactly e->size of them, holes as zeros. */
int ar_read_entry(struct reader *r, const struct ar_entry *e, ar_chunk_fn fn, void *ctx,
		  struct rp_err *err);
enum ar_type ar_entry_type(struct archive_entry *ae);
/* "a FIFO", "a block device", ...: what a file that is not a regular file is. */
const char *ar_file_kind(mode_t m);

#endif
