/* Everything in a tree besides the blobs is derived from the snapshot: the registry/ view, the
 * OCI index.json and oci-layout. view_emit() produces each derived file once, through a sink, so
 * the same code writes a tree (commit) and checks one (verify). */
#ifndef RP_VIEW_H
#define RP_VIEW_H

#include <stddef.h>

#include "digest.h"
#include "err.h"
#include "snapshot.h"

struct view_sink {
	/* A derived file, rel to the tree root ("registry/catalog.json", "index.json"). */
	int (*file)(void *ctx, const char *rel, const void *buf, size_t len, struct rp_err *err);
	/* A derived blob (the OCI twin of a Docker manifest): store it or note it; set hex. */
	int (*blob)(void *ctx, const void *buf, size_t len, char hex[RP_HEX_LEN + 1],
		    struct rp_err *err);
	/* Read a blob the snapshot names (a manifest, at most 4 MiB). */
	int (*read)(void *ctx, const char *hex, char **buf, size_t *len, struct rp_err *err);
	void *ctx;
};

int view_emit(const char *snapshot_text, const struct snapshot *s, const struct view_sink *sink,
	      struct rp_err *err);

#endif
