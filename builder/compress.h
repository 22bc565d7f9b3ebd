/* Deterministic layer compression: the same bytes in give the same bytes out, whatever the machine
 * load, thread count or clock.
 *
 * gzip: libdeflate level 2 on independent 1 MiB chunks, each a complete gzip member (mtime 0, no
 * name). A multi-member gzip stream is plain RFC 1952 and every client decodes it; independent chunks
 * are what let several cores compress one layer without changing a byte of output. Level 2 is
 * libdeflate's fastest greedy hash-chain level: on the benchmark image (tests/bench) it gives
 * 0.99x the bytes of skopeo's gzip for ~0.6x level 6's CPU; level 1 (a plain hash table) is
 * faster still but just over 1.02x.
 * zstd: libzstd level 2 with a checksum, always in its multi-threaded mode with a fixed job size:
 * the output then does not depend on the number of workers (checked by tests/unit), and the
 * fixed 2 MiB jobs bound memory (level 3's default jobs, 8 MiB, cost ~70 MB resident with two
 * workers). Level 2 takes ~0.75x level 3's CPU for 4% more bytes, still 12% fewer than skopeo's
 * gzip on the benchmark image. none: bytes pass through. */
#ifndef RP_COMPRESS_H
#define RP_COMPRESS_H

#include <stddef.h>

#include "err.h"

enum rp_compression { RP_COMP_GZIP, RP_COMP_ZSTD, RP_COMP_NONE };

/* gzip chunks alternate between two libdeflate levels by chunk number (even: FAST, odd: GOOD),
 * a level between the two that libdeflate does not offer. Measured on a 718 MB image against
 * skopeo's gzip: level 2 alone gives 0.99x its bytes at 0.68x its time, level 1 alone 1.02x at
 * 0.55x, alternating 1.005x at 0.60x. */
#define RP_GZIP_LEVEL_FAST 1
#define RP_GZIP_LEVEL_GOOD 2
#define RP_GZIP_CHUNK (1u << 20)
#define RP_ZSTD_LEVEL 2
#define RP_ZSTD_JOB (2u << 20)

typedef int (*compress_sink)(void *ctx, const void *buf, size_t len, struct rp_err *err);

struct compressor;

/* What a build needs to know of a compression besides its bytes. */
struct rp_codec {
	const char *name;	  /* "gzip", "zstd", "none" */
	const char *docker_layer; /* the layer media type in a Docker manifest, NULL: there is none */
	const char *oci_layer;	  /* ... in an OCI manifest */
	int passthrough;	  /* the bytes are stored as they are (the layer is its own blob) */
};

/* Parse "gzip", "zstd", "none"; -1 if unknown. */
int compression_parse(const char *s);
const char *compression_name(enum rp_compression c);
const struct rp_codec *compression_info(enum rp_compression c);
/* Everything that decides the output bytes (method, implementation and version, level, chunk),
 * as a file name: a cached compression result is reused only under the same id. */
void compression_id(enum rp_compression c, char *buf, size_t bufsz);

int compressor_new(enum rp_compression c, int threads, compress_sink sink, void *ctx,
		   struct compressor **out, struct rp_err *err);
int compressor_write(struct compressor *c, const void *buf, size_t len, struct rp_err *err);
int compressor_finish(struct compressor *c, struct rp_err *err);
void compressor_free(struct compressor *c);

#endif
