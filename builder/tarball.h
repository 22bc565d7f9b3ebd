/* Reading input tarballs (plain or gzip/zstd/xz/bzip2-compressed) without extracting them, and
 * OCI layout directories through the same interface.
 *
 * Metadata comes last in every docker save format, so reading is two passes over a seekable file:
 * ar_index_read() lists every entry and keeps the small metadata files in memory (capped);
 * ar_stream() then streams just the entries the caller wants, in archive order. Entry names are
 * only keys: nothing is ever extracted, so a hostile name cannot write anywhere. */
#ifndef RP_TARBALL_H
#define RP_TARBALL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

#define AR_META_MAX (16u << 20)	    /* one metadata file */
#define AR_META_TOTAL (256u << 20)  /* all metadata files of one input */
#define AR_ENTRIES_MAX 1000000u
/* A compressed input may expand to at most AR_RATIO_MAX times the bytes read from the file, plus
 * AR_RATIO_SLACK: gzip itself cannot exceed 1032:1, so no gzip input is refused, while a bzip2,
 * xz or zstd bomb (bzip2 turns 79 bytes into 64 MiB of zeros) stops within seconds instead of
 * keeping the build busy for hours. A genuine input beyond that can be decompressed first. */
#define AR_RATIO_MAX 1100u
#define AR_RATIO_SLACK (64u << 20)
/* What a tar entry can honestly be: the holes of a sparse entry expand like compression, so all
 * entries together are held to the same AR_RATIO_MAX of the input file's size (plus the slack),
 * compressed or not; a non-sparse entry of a plain tar to the file's size; any one entry to
 * AR_ENTRY_MAX. */
#define AR_ENTRY_MAX (1ull << 40)
/* Names are kept for every entry: one name or link target is at most AR_NAME_MAX bytes (PATH_MAX),
 * all of them together (each name twice: as written and normalised) at most AR_NAMES_TOTAL. */
#define AR_NAME_MAX 4096u
#define AR_NAMES_TOTAL (32u << 20)
/* One entry's headers (pax attributes, GNU long names, a sparse map), which libarchive parses
 * into memory before regpress sees the entry: a sparse map costs it ~12 bytes per byte. */
#define AR_HEADER_MAX (2u << 20)

enum ar_type { AR_FILE, AR_DIR, AR_SYMLINK, AR_HARDLINK, AR_OTHER };

struct ar_entry {
	char *name;  /* normalised: no "./", no "//", no trailing "/"; NULL if it escapes the root */
	char *raw;   /* as written in the archive, for messages */
	enum ar_type type;
	char *link;  /* symlink or hard link target, as written */
	int64_t size;
	unsigned char *data; /* kept metadata bytes (NUL-terminated), or NULL */
	size_t data_len;
};

struct ar_index {
	char *path;    /* file (or OCI layout directory) to read */
	int is_dir;
	char *display; /* name for messages (the user's argument) */
	struct ar_entry *entries;
	size_t n;
	size_t *sorted; /* entry indices sorted by name, for lookups */
	int compressed; /* a tar read through a decompression filter */
	dev_t dev;	/* the file indexed: every later pass must read this one */
	ino_t ino;
	int64_t file_size;
};

/* Which files to keep in memory during the index pass: AR_KEEP_MUST (metadata: too large is an
 * error), AR_KEEP_MAY (kept while under the total cap, else loaded later by ar_load), or 0. */
#define AR_KEEP_MUST 1
#define AR_KEEP_MAY 2
typedef int (*ar_keep_fn)(const char *name, int64_t size);

int ar_index_read(const char *path, const char *display, ar_keep_fn keep, struct ar_index **out,
		  struct rp_err *err);
void ar_index_free(struct ar_index *idx);
/* The entry with this normalised name, or NULL. */
const struct ar_entry *ar_find(const struct ar_index *idx, const char *name);
/* Follow symlinks and hard links (relative to the linking entry, confined to the archive, at most
 * 16 hops) to a regular file; ref is resolved relative to the archive root. */
int ar_resolve(const struct ar_index *idx, const char *ref, const struct ar_entry **out,
	       struct rp_err *err);

/* Second pass: for every regular-file entry e with want(ctx, e) true, call data() with its bytes in
 * order, then data(ctx, e, NULL, 0) at its end. */
typedef int (*ar_want_fn)(void *ctx, const struct ar_entry *e);
typedef int (*ar_data_fn)(void *ctx, const struct ar_entry *e, const void *buf, size_t len,
			  struct rp_err *err);
int ar_stream(const struct ar_index *idx, ar_want_fn want, ar_data_fn data, void *ctx,
	      struct rp_err *err);

/* 1 if skipping an entry's data is cheap (an OCI layout directory, or a tar file that is not
 * compressed): separate ar_stream passes over different entries can then run at once. */
int ar_seekable(const struct ar_index *idx);

/* Make sure these entries' bytes are in memory (one more pass for those that are not), each at
 * most AR_META_MAX. */
int ar_load(struct ar_index *idx, const struct ar_entry **want, size_t n, struct rp_err *err);

/* Normalise an archive path: returns a malloc'd name, or NULL if it is absolute-escaping ("..")
 * or empty. Leading "/" and "./" are dropped as tar does. */
char *ar_normalize(const char *base_dir, const char *path);

#endif
