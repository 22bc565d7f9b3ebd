/* Copying and hashing file ranges with progress, for writing and reading volumes. Internal to
 * media/. */
#ifndef RP_MEDIA_COPY_H
#define RP_MEDIA_COPY_H

#include <stdint.h>

#include "digest.h"
#include "err.h"
#include "media.h"

#define COPY_BUF (1u << 20)

struct copier {
	unsigned char *buf; /* COPY_BUF bytes */
	uint64_t done, total;
	media_progress_fn progress;
	void *ctx;
	uint64_t files_copied, bytes_copied;
};

/* A copier with its buffer; copier_free releases it. */
int copier_init(struct copier *c, media_progress_fn progress, void *ctx, struct rp_err *err);
void copier_free(struct copier *c);

/* Read [off, off + len) of src, hashing it into h (and into whole if set), writing it to dst when
 * dst >= 0. Names are for messages. */
int copy_range(struct copier *c, int src, const char *src_name, uint64_t off, uint64_t len,
	       int dst, const char *dst_name, struct rp_sha256 *h, struct rp_sha256 *whole,
	       struct rp_err *err);
/* Bytes [off, off + len) of src (of src_size bytes) must hash to want; with dst >= 0 they are
 * also copied there, and dst gets mode 0644 and mtime SOURCE_DATE_EPOCH (and is synced if sync).
 * The caller opens and closes both. */
int copy_checked(struct copier *c, int src, const char *src_name, uint64_t src_size, uint64_t off,
		 uint64_t len, const char *want, int dst, const char *dst_name, int sync,
		 struct rp_err *err);
/* A file opened for reading must be want bytes, as `says` says. */
int copy_size_is(int fd, const char *name, uint64_t want, const char *says, struct rp_err *err);

#endif
